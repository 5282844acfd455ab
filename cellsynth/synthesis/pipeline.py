"""From a config to a dataset on disk: simulate masks, render images with a renderer, write.

Sample ``i`` draws everything from its own generator (``SeedSequence(seed)`` spawn key ``i``), so
it comes out bit-identical whether it is made alone, in a serial run, or on any dask worker.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cellsynth.checks import check_memory
from cellsynth.config import Config
from cellsynth.dataset import (
    MANIFEST_NAME,
    Dataset,
    Sample,
    build_dataset,
    check_new_dataset_folder,
    sample_names,
    sample_rng,
)
from cellsynth.errors import InputError
from cellsynth.masks.simulate import SimulatedMasks, simulate_masks

#: Peak memory of simulating and rendering one sample, per voxel: measured 70–146 bytes for the
#: shipped presets at 32×160×160 (tracemalloc), rounded up.
BYTES_PER_GENERATED_VOXEL = 160


@runtime_checkable
class Renderer(Protocol):
    """Anything that turns a simulated annotation into an image (the config's ``generator``).

    ``render`` gets the masks (labels, organism foreground, membranes), the voxel spacing in µm
    and the sample's randomness (``rng``: a numpy Generator, a seed, or None), and returns a
    float32 ZYX image in [0, 1] of the labels' shape. The physics renderer, the cGAN and the DDPM
    all implement it.
    """

    name: str

    def render(self, masks: SimulatedMasks, spacing: Sequence[float], rng=None) -> np.ndarray: ...

    def describe(self) -> dict:
        """JSON-able parameters recorded in the manifest."""
        ...


@dataclass(frozen=True)
class SampleMaker:
    """``(index, rng) -> Sample`` for :func:`cellsynth.dataset.build_dataset`; pickles to workers.

    With several ``renderers`` (quality levels), item ``i`` is sample ``i // L`` rendered by
    renderer ``i % L``: the masks of a sample are the same at every level.
    """

    config: Config
    renderers: tuple[Renderer, ...] = ()

    def __call__(self, index: int, rng: np.random.Generator) -> Sample:
        renderer = None
        if self.renderers:
            sample, level = divmod(index, len(self.renderers))
            renderer = self.renderers[level]
            if len(self.renderers) > 1:
                rng = sample_rng(self.config.dataset.seed, sample)
        masks = simulate_masks(self.config.masks, self.config.volume, rng)
        spacing = self.config.volume.spacing_um
        image = None
        params = dict(masks.info)
        if renderer is not None:
            image = np.asarray(renderer.render(masks, spacing, rng))
            if image.shape != masks.labels.shape or image.dtype not in (np.float32, np.uint16):
                raise InputError(f"generator '{renderer.name}' returned {image.dtype} of shape {image.shape}; "
                                 f"expected float32 or uint16 of the labels' shape {masks.labels.shape}")
            if len(self.renderers) > 1:
                params["generator"] = renderer.describe()
        extras = {"foreground": masks.foreground}
        if masks.membranes is not None:
            extras["membranes"] = masks.membranes
        return Sample(image=image, labels=masks.labels, spacing=spacing, params=params, extras=extras)


def load_renderer(config: Config, device: str = "auto") -> Renderer:
    """The renderer named in ``config.generator`` (the learned ones from a cellsynth checkpoint, run on
    ``device``: ``auto``, ``cpu`` or ``cuda``).

    Raises
    ------
    InputError
        For a learned renderer without a checkpoint, or a file that is not a cellsynth checkpoint.

    Examples
    --------
    >>> from cellsynth import load_preset
    >>> load_renderer(load_preset("nuclei")).name
    'optics'
    """
    name, checkpoint = config.generator.name, config.generator.checkpoint
    if name == "optics":
        if checkpoint is not None:
            raise InputError("the optics renderer needs no checkpoint; drop --checkpoint or choose gan or ddpm")
        from cellsynth.synthesis.optics import OpticsRenderer

        return OpticsRenderer(config.optics, config.patching)
    if checkpoint is None:
        raise InputError(f"generator '{name}' needs --checkpoint FILE (a cellsynth checkpoint from training)")
    if name == "gan":
        from cellsynth.synthesis.learned import GanRenderer

        alphas = config.generator.alpha_um or [None]
        return GanRenderer(checkpoint, config.patching, alpha_um=alphas[0], units=config.generator.units,
                           device=device)
    from cellsynth.synthesis.learned import DiffusionRenderer

    settings = config.generator
    return DiffusionRenderer(checkpoint, config.patching, sampler=settings.sampler, steps=settings.steps,
                             t_start=settings.t_start, strength=settings.strength, snr=settings.snr,
                             units=settings.units, device=device)


def quality_levels(config: Config, renderer: Renderer | None) -> tuple[list[str], tuple[Renderer, ...]]:
    """Sample names and renderers: one per sample, or with several ``generator.alpha_um`` every
    sample once per level, named ``PREFIX_NNNN_alphaA``."""
    names = sample_names(config.dataset.name_prefix, config.dataset.n_samples)
    alphas = config.generator.alpha_um or []
    if renderer is None or len(alphas) < 2:
        return names, () if renderer is None else (renderer,)
    return ([f"{name}_alpha{alpha:g}" for name in names for alpha in alphas],
            tuple(renderer.at_alpha(alpha) for alpha in alphas))


@contextmanager
def dask_executor(workers: int = 1, scheduler: str | None = None):
    """A dask ``Client``: on the cluster at ``scheduler``, or on a new ``LocalCluster`` of ``workers``
    single-threaded processes; None (serial) for one worker and no address.

    Raises
    ------
    InputError
        If the scheduler cannot be reached within 10 s.
    """
    if workers < 1:
        raise InputError(f"--workers must be >= 1; got {workers}")
    if scheduler is None and workers == 1:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(f"cannot reach the dask scheduler at '{scheduler}' ({type(err).__name__}: "
                             f"{' '.join(str(err).split())[:160]})") from None
        with client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def generate_dataset(
    config: Config,
    out: str | os.PathLike,
    *,
    renderer: Renderer | None = None,
    resume: bool = False,
    progress: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
) -> Dataset:
    """Make ``config.dataset.n_samples`` annotated samples in the dataset folder ``out``.

    Parameters
    ----------
    config : Config
        Volume, masks, dataset options.
    out : path-like
        New dataset folder (or the one to resume).
    renderer : Renderer, optional
        Renders each image (:func:`load_renderer`); None writes a masks-only dataset (labels,
        foreground, membranes).
    resume : bool
        Complete an interrupted run made with the same config, renderer and seed.
    progress : bool
        Show a progress bar (only on a terminal).
    workers : int
        Samples in parallel on a dask ``LocalCluster`` of this many processes.
    scheduler : str, optional
        Address of an existing dask.distributed scheduler to run on instead.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> from cellsynth import load_preset, with_overrides
    >>> config = with_overrides(load_preset("nuclei"), {"dataset.n_samples": 2})
    >>> dataset = generate_dataset(config, "data/nuclei", renderer=load_renderer(config))  # doctest: +SKIP
    >>> len(dataset.done())  # doctest: +SKIP
    2
    """
    voxels = math.prod(config.volume.shape)
    check_memory(workers * voxels * BYTES_PER_GENERATED_VOXEL,
                 f"making {workers} sample(s) of {config.volume.shape} voxels at once",
                 "use a smaller volume.shape (tile a large field with the patch engine) or fewer --workers")
    names, renderers = quality_levels(config, renderer)
    recipe = {**config.model_dump(mode="json"), "generator": renderer.describe() if renderer else None}
    if not (resume and (Path(out) / MANIFEST_NAME).exists()):
        check_new_dataset_folder(out)  # before starting any cluster
    with dask_executor(workers, scheduler) as executor:
        return build_dataset(out, names, SampleMaker(config, renderers), config=recipe, seed=config.dataset.seed,
                             output=config.dataset.output, resume=resume, progress=progress, executor=executor)
