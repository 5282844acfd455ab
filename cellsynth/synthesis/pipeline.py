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
from cellsynth.config import Config, with_overrides
from cellsynth.dataset.build import build_dataset, sample_names, sample_rng
from cellsynth.dataset.manifest import Dataset, check_dataset_target
from cellsynth.errors import InputError
from cellsynth.masks.simulate import masks_from_labels, simulate_masks
from cellsynth.sample import Sample

#: How long ``--scheduler`` waits for a dask scheduler to answer.
SCHEDULER_TIMEOUT_S = 10

#: Peak memory of simulating and rendering one sample, per voxel: measured 70–146 bytes for the
#: shipped presets at 32×160×160 (tracemalloc), rounded up.
BYTES_PER_GENERATED_VOXEL = 160


@runtime_checkable
class Renderer(Protocol):
    """Anything that turns a simulated annotation into an image (the config's ``renderer``).

    ``render`` gets a :class:`~cellsynth.sample.Sample` (labels, organism foreground, membranes and
    the voxel spacing in µm) and the sample's randomness (``rng``: a numpy Generator, a seed, or
    None), and returns the sample with its image: float32 ZYX in [0, 1] (or uint16 ADU) of the
    labels' shape. The physics renderer, the cGAN and the DDPM all implement it.

    Examples
    --------
    >>> from cellsynth.synthesis.optics import OpticsRenderer
    >>> isinstance(OpticsRenderer(), Renderer)
    True
    """

    name: str

    def render(self, sample: Sample, rng=None) -> Sample: ...

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
        volume = self.config.volume
        masks = simulate_masks(volume.shape, volume.spacing_um, self.config.masks, rng)
        if renderer is None:
            return masks
        sample = renderer.render(masks, rng)
        if sample.image is None or sample.image.dtype not in (np.float32, np.uint16, np.uint8):
            raise InputError(f"renderer '{renderer.name}' returned no float32, uint16 or uint8 image of the labels' "
                             f"shape {masks.shape}")
        if len(self.renderers) > 1:
            sample = sample.replace(params={**sample.params, "renderer": renderer.describe()})
        return sample


def load_renderer(config: Config, device: str = "auto") -> Renderer:
    """The renderer named in ``config.renderer`` (the learned ones from a cellsynth checkpoint, run on
    ``device``: ``auto``, ``cpu`` or ``cuda``).

    Parameters
    ----------
    config : Config
    device : {'auto', 'cpu', 'cuda'}

    Returns
    -------
    Renderer

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
    name, checkpoint = config.renderer.name, config.renderer.checkpoint
    if name == "optics":
        if checkpoint is not None:
            raise InputError("the optics renderer needs no checkpoint; drop --checkpoint or choose gan or ddpm")
        from cellsynth.synthesis.optics import OpticsRenderer

        return OpticsRenderer(config.optics, config.patching)
    if checkpoint is None:
        raise InputError(f"renderer '{name}' needs --checkpoint FILE (a cellsynth checkpoint from training)")
    if name == "gan":
        from cellsynth.synthesis.learned import GanRenderer

        alphas = config.renderer.alpha_um or [None]
        return GanRenderer(checkpoint, config.patching, alpha_um=alphas[0], units=config.renderer.units,
                           device=device)
    settings = config.renderer
    if name == "refine":
        from cellsynth.synthesis.refine import RefineRenderer

        return RefineRenderer(config.optics, checkpoint, config.patching, t_start=settings.t_start,
                              strength=settings.strength, snr=settings.snr, steps=settings.steps,
                              sampler=settings.sampler, device=device)
    from cellsynth.synthesis.learned import DiffusionRenderer

    return DiffusionRenderer(checkpoint, config.patching, sampler=settings.sampler, steps=settings.steps,
                             t_start=settings.t_start, strength=settings.strength, snr=settings.snr,
                             units=settings.units, device=device)


def quality_levels(config: Config, renderer: Renderer | None) -> tuple[list[str], tuple[Renderer, ...]]:
    """Sample names and renderers: one per sample, or with several ``renderer.alpha_um`` every
    sample once per level, named ``PREFIX_NNNN_alphaA``."""
    names = sample_names(config.dataset.name_prefix, config.dataset.n_samples)
    alphas = config.renderer.alpha_um or []
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
            client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
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
    >>> import tempfile
    >>> from cellsynth import load_preset, with_overrides
    >>> config = with_overrides(load_preset("default"), {"dataset.n_samples": 2, "volume.shape": [16, 64, 64]})
    >>> out = Path(tempfile.mkdtemp()) / "nuclei"
    >>> dataset = generate_dataset(config, out, renderer=load_renderer(config), progress=False)
    >>> len(dataset.done()), dataset.read_sample(0).shape
    (2, (16, 64, 64))
    """
    voxels = math.prod(config.volume.shape)
    check_memory(workers * voxels * BYTES_PER_GENERATED_VOXEL,
                 f"making {workers} sample(s) of {config.volume.shape} voxels at once",
                 "use a smaller volume.shape (tile a large field with the patch engine) or fewer --workers")
    names, renderers = quality_levels(config, renderer)
    recipe = {**config.model_dump(mode="json"), "renderer": renderer.describe() if renderer else None}
    check_dataset_target(out, resume)  # before starting any cluster
    with dask_executor(workers, scheduler) as executor:
        return build_dataset(out, names, SampleMaker(config, renderers), config=recipe, seed=config.dataset.seed,
                             output=config.dataset.output, resume=resume, progress=progress, executor=executor)


def render_labels_file(labels: str | os.PathLike, out: str | os.PathLike, config: Config, *,
                       spacing: Sequence[float] | None = None, foreground: str | os.PathLike | None = None,
                       device: str = "auto", rng=None, overwrite: bool = False) -> Path:
    """Render a label volume file (your own annotation) with the renderer of ``config`` into the image file ``out``.

    Parameters
    ----------
    labels : path-like
        Instance labels (any volume format cellsynth reads).
    out : path-like
        Image file to write (.tif, .ome.tif or .ome.zarr), atomically.
    config : Config
        Its renderer (the physics renderer, or a checkpoint's) and, for the physics renderer, its
        masks section (``kind: membranes`` draws each cell's membrane).
    spacing : 3 floats, optional
        Voxel size in µm of a file that does not carry one.
    foreground : path-like, optional
        The organism (non-zero inside); default: the whole volume is inside the specimen.
    device : {"auto", "cpu", "cuda"}
        For learned renderers.
    rng : None, int or numpy Generator
    overwrite : bool
        Replace an existing ``out`` (never the labels or the foreground file themselves).

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth import load_preset
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.io import read_volume, write_volume
    >>> _, labels, spacing = toy_nuclei()
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_volume(root / "labels.tif", labels, spacing)
    >>> out = render_labels_file(root / "labels.tif", root / "rendered.tif", load_preset("nuclei"))
    >>> image, found = read_volume(out)
    >>> image.shape, found
    ((16, 64, 64), (1.0, 0.5, 0.5))
    """
    from cellsynth.checks import check_labels, check_output
    from cellsynth.io import read_volume, volume_format, write_volume
    from cellsynth.masks.simulate import masks_from_labels

    if volume_format(out) == "npy":
        raise InputError(f"'{out}': .npy is read only; write .tif, .ome.tif or .ome.zarr")
    check_output(out, "image", folder=False, overwrite=overwrite,
                 inputs=[labels] + ([foreground] if foreground is not None else []))
    volume, spacing = read_volume(labels, spacing)
    volume = check_labels(volume, f"labels '{labels}'")
    check_memory(volume.size * BYTES_PER_GENERATED_VOXEL, f"rendering {volume.shape} voxels",
                 "synthesize a smaller crop")
    inside = None
    if foreground is not None:
        inside, _ = read_volume(foreground, spacing)
        if inside.shape != volume.shape:
            raise InputError(f"foreground of shape {inside.shape} differs from the labels' {volume.shape}")
        inside = inside > 0
    renderer = load_renderer(config, device=device)
    # the physics renderer draws membranes as its masks config says; organism 'none' unless given
    masks = masks_from_labels(volume, spacing, config.masks if renderer.name in ("optics", "refine") else None,
                              inside)
    write_volume(out, renderer.render(masks, rng).image, spacing)
    return Path(out)


def generate_like(images: Sequence[str | os.PathLike], out: str | os.PathLike, *,
                  labels: Sequence[str | os.PathLike] | None = None, spacing: Sequence[float] | None = None,
                  kind: str = "nuclei", n_samples: int = 8, seed: int = 0, resume: bool = False,
                  progress: bool = True, workers: int = 1, scheduler: str | None = None,
                  refiner: str | os.PathLike | None = None) -> Dataset:
    """Calibrate on real image file(s), then generate a dataset like them; the preset goes into the dataset.

    ``cellsynth generate --like``: :func:`~cellsynth.synthesis.calibrate.calibrate_files`, then
    :func:`generate_dataset` with the physics renderer; ``out/calibration.yaml`` is the calibrated
    preset (commented, as ``cellsynth calibrate`` writes it). With ``refiner`` (a DDPM checkpoint trained
    on the same images, see :func:`cellsynth.training.refine.generate_refined_like`) every image is the
    physics render finished by it (:class:`~cellsynth.synthesis.refine.RefineRenderer`, 5 steps from t_start 50).

    Parameters
    ----------
    images : sequence of path-like
        Real image files, globs or a folder.
    out : path-like
        The new dataset folder.
    labels : sequence of path-like, optional
        Their labels (default: the classical segmentation).
    spacing : 3 floats, optional
        Voxel size in µm for files without one.
    kind : {'nuclei', 'membranes'}
        What is stained.
    n_samples, seed : int
        The dataset's size and base seed.
    resume : bool
        Complete an interrupted run.
    progress : bool
        Show progress bars (only on a terminal).
    workers : int
        Samples in parallel on a local dask cluster.
    scheduler : str, optional
        Address of a running dask scheduler.
    refiner : path-like, optional
        A refiner checkpoint: every physics render finished by it.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.io import write_volume
    >>> image, labels, spacing = toy_nuclei()
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = write_volume(root / "nuclei.tif", image, spacing), write_volume(root / "labels.tif", labels, spacing)
    >>> dataset = generate_like([root / "nuclei.tif"], root / "like", labels=[root / "labels.tif"], n_samples=1,
    ...                         progress=False)
    >>> dataset.read_sample(0).image.dtype, sorted(path.name for path in (root / "like").glob("*.yaml"))
    (dtype('uint16'), ['calibration.yaml'])
    """
    from cellsynth.synthesis.calibrate import calibrate_files
    from cellsynth.synthesis.preset import write_calibration

    check_dataset_target(out, resume)
    calibration = calibrate_files(images, labels, spacing, kind=kind, n_samples=n_samples, seed=seed,
                                  progress=progress)
    config = calibration.config
    if refiner is not None:
        config = with_overrides(config, {"renderer.name": "refine", "renderer.checkpoint": str(refiner),
                                         "renderer.steps": 5})
    renderer = load_renderer(config)
    masks = masks_from_labels(calibration.labels[0], config.volume.spacing_um)
    check_looks_like(renderer.render(masks, rng=0).image, calibration.images[0], str(images[0]))
    dataset = generate_dataset(config, out, renderer=renderer, resume=resume, progress=progress,
                               workers=workers, scheduler=scheduler)
    write_calibration(calibration, Path(out) / "calibration.yaml", sources=[str(i) for i in images])
    return dataset


def check_looks_like(generated: np.ndarray, reference: np.ndarray, name: str) -> None:
    """Refuse a generated image whose levels, contrast or bright fraction are far from ``reference``'s.

    Both are in the same units (a calibrated generator draws the calibration image's own labels):
    the median may move by at most half the reference's contrast (99th − 1st percentile), the
    contrast by at most a factor 3, and the fraction of voxels above the reference's Otsu threshold by
    at most half of it (plus 5 points). A constant image, or one in other units, fails all three.

    Raises
    ------
    InputError
        Naming each measure that is off, both values, and ``name``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.poisson(np.where(np.indices((8, 32, 32))[2] < 12, 900, 100)).astype(np.uint16)
    >>> check_looks_like(rng.poisson(real.astype(float)).astype(np.uint16), real, "real.tif")
    >>> check_looks_like(np.ones((8, 32, 32), np.float32), real, "real.tif")
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: the generated image is constant (1) unlike real.tif: ...
    """
    from skimage.filters import threshold_otsu

    generated, reference = generated.astype(np.float64), reference.astype(np.float64)
    consequence = ("the renderer or its calibration does not produce images like it (in its units); nothing "
                   "was written")
    if np.ptp(generated) == 0:
        raise InputError(f"the generated image is constant ({generated.flat[0]:g}) unlike {name}: {consequence}")
    low_g, median_g, high_g = np.percentile(generated, (1, 50, 99))
    low_r, median_r, high_r = np.percentile(reference, (1, 50, 99))
    contrast_g, contrast_r = high_g - low_g, max(high_r - low_r, 1e-12)
    threshold = threshold_otsu(reference)
    bright_g, bright_r = float(np.mean(generated > threshold)), float(np.mean(reference > threshold))
    off = []
    if abs(median_g - median_r) > 0.5 * contrast_r:
        off.append(f"median {median_g:.4g} vs {median_r:.4g}")
    if not 1 / 3 <= contrast_g / contrast_r <= 3:
        off.append(f"contrast (99th − 1st percentile) {contrast_g:.4g} vs {contrast_r:.4g}")
    if abs(bright_g - bright_r) > 0.5 * bright_r + 0.05:
        off.append(f"{100 * bright_g:.0f} % vs {100 * bright_r:.0f} % of voxels above its Otsu threshold")
    if off:
        raise InputError(f"the generated image is unlike {name} ({'; '.join(off)}): {consequence}")
