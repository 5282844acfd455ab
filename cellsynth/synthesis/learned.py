"""Generators that come from a training checkpoint, behind the pipeline's generator interface.

They load their network lazily (and drop it when pickled to a dask worker, which reloads it from
the checkpoint), condition on the whole volume, and run the network tile by tile through the
patch engine at the checkpoint's training patch size. Masks at another voxel spacing than the
training images are resampled to the training spacing and the image back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checkpoints import CheckpointInfo, read_checkpoint
from cellsynth.checks import check_spacing
from cellsynth.config import PatchingConfig
from cellsynth.errors import InputError
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import apply_patched

#: Relative spacing difference above which masks are resampled to the training spacing.
SPACING_TOLERANCE = 0.02
#: Output units of a learned generator: [0, 1], or the training images' (camera) units.
UNITS = ("normalised", "camera")


def load_network(checkpoint: str | os.PathLike, model: str, prefix: str = "generator."):
    """The eval-mode network stored in a cellsynth checkpoint under ``prefix`` and its info.

    Raises
    ------
    InputError
        If the file is not a cellsynth ``model`` checkpoint or its weights do not fit its architecture.
    """
    from cellsynth.models.common import skeleton
    from cellsynth.models.unet3d import UNet3D

    tensors, info = read_checkpoint(checkpoint, model)
    weights = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    architecture = info["architecture"] if isinstance(info.get("architecture"), dict) else {}
    expected = {name: tuple(t.shape) for name, t in
                skeleton(lambda: UNet3D(**architecture), f"'{checkpoint}'").state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in weights.items()}
    if expected != stored:  # checked on the meta device: a forged architecture allocates nothing
        name = next(iter(sorted(set(expected) ^ set(stored)) or
                         [n for n in expected if expected[n] != stored[n]]))
        raise InputError(f"'{checkpoint}' holds weights that do not fit its architecture (first: '{name}' is "
                         f"{stored.get(name, 'missing')} stored, {expected.get(name, 'not in the network')} described)")
    network = UNet3D(**architecture)
    network.load_state_dict(weights)
    return network.eval(), info


def _resample(volume: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(volume, (volume.shape[0], *shape), order=order, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


class LearnedRenderer:
    """What the cGAN and DDPM generators share: checkpoint, device, tiling, spacing handling."""

    name = "learned"
    #: Checkpoint info keys this renderer needs besides architecture, spacing and patch.
    required: tuple[str, ...] = ()

    def __init__(self, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None, device: str = "auto",
                 units: str = "normalised", precision: str = "auto"):
        from cellsynth.models.common import autocast_dtype, resolve_device

        self.checkpoint = Path(checkpoint)
        self.info = CheckpointInfo.read(self.checkpoint, self.name, self.required)
        if units not in UNITS:
            raise InputError(f"unknown units {units!r}; accepted: {', '.join(UNITS)}")
        if units == "camera" and self.info.normalisation is None:
            raise InputError(f"'{checkpoint}' records no normalisation; units 'camera' needs one")
        self.units = units
        self.patching = patching or PatchingConfig()
        self.device = resolve_device(device)
        # auto: bf16 on a GPU that has it; fp32 on the CPU, where bf16 would change outputs for little gain
        self.dtype = autocast_dtype(self.device, precision) if self.device == "cuda" or precision != "auto" else None
        self._network = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_network": None}

    @property
    def network(self):
        if self._network is None:
            self._network = load_network(self.checkpoint, self.name)[0].to(self.device)
        return self._network

    @property
    def training_spacing(self) -> tuple[float, float, float]:
        return self.info.spacing_um

    #: Lateral tile size at inference, in training patches (see :meth:`tile_geometry`).
    tile_scale = 1

    def tile_geometry(self, shape: Sequence[int] | None = None) -> dict:
        """Tiles of the training patch; overlap and crop per axis between 1/8 and 1/4 of it.

        The network's norms (and attention) saw training-patch inputs, so tiles are never shrunk to
        fit the volume (a smaller volume is reflect-padded). Its receptive field is wider than any
        useful crop, so tiling is not exact; :func:`fusion_error` measures how far it is. With a
        ``tile_scale`` above 1 (a fully convolutional network: no attention), tiles of a volume of
        ``shape`` grow up to that many training patches per axis, the volume split evenly between them:
        far fewer tiles and much less overlap computed twice; the margins stay the training patch's.
        """
        patch = list(self.info.patch)
        overlap = [min(max(self.patching.overlap, p // 8), p // 4) for p in patch]
        crop = [min(max(self.patching.crop, p // 8), p // 4) for p in patch]
        if self.tile_scale > 1 and shape is not None and not self.info.architecture.get("attention", False):
            for axis, size in enumerate(int(n) for n in shape):
                largest = self.tile_scale * patch[axis]
                count = math.ceil((size + 2 * crop[axis]) / largest)
                patch[axis] = max(patch[axis], math.ceil((size + (count - 1) * overlap[axis]) / count) + 2 * crop[axis])
        return {"patch": patch, "overlap": overlap, "crop": crop, "window": self.patching.window}

    def run_whole(self, condition: np.ndarray, spacing: Sequence[float], fn) -> np.ndarray:
        """``fn`` on a ``(C, Z, Y, X)`` condition at the training spacing (resampled there and the result
        back when ``spacing`` differs); returns the ZYX result at the input's shape."""
        spacing = check_spacing(spacing)
        shape = condition.shape[1:]
        resample = not np.allclose(spacing, self.training_spacing, rtol=SPACING_TOLERANCE)
        if resample:
            size = [max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, self.training_spacing, strict=True)]
            condition = _resample(condition, size, order=1)
        result = np.asarray(fn(condition), np.float32).reshape(condition.shape[1:])
        return _resample(result[None], shape, order=1)[0] if resample else result

    def run_tiled(self, condition: np.ndarray, spacing: Sequence[float], fn) -> np.ndarray:
        """:meth:`run_whole` with ``fn`` (a network on a tile batch) applied tile by tile by the patch engine."""
        return self.run_whole(condition, spacing, lambda c: apply_patched(
            fn, c, **self.tile_geometry(), multiple=None, batch_size=self.batch_size, out_channels=1)[0])

    def autocast(self):
        """The inference precision's autocast context (a no-op in fp32)."""
        import torch

        return torch.autocast(device_type=self.device, dtype=self.dtype or torch.bfloat16,
                              enabled=self.dtype is not None)

    @property
    def batch_size(self) -> int:
        """Tiles per network call: ``patching.batch_size``, or on a GPU as many as fit in half its free
        memory (an estimate: patch voxels × the widths' sum × 16 bytes per tile), 1 on the CPU."""
        import torch

        if self.patching.batch_size is not None:
            return self.patching.batch_size
        if self.device != "cuda":
            return 1
        per_tile = math.prod(self.info.patch) * sum(self.info.architecture["widths"]) * 16
        return max(1, min(64, int(torch.cuda.mem_get_info()[0] / 2 // per_tile)))

    def in_units(self, image: np.ndarray) -> np.ndarray:
        """A [0, 1] image in the generator's units: as it is, or mapped back through the training
        images' percentile normalisation (``low + image · (high − low)``, float32) for ``camera``."""
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
        if self.units == "normalised":
            return image
        low, high = self.info.normalisation.low, self.info.normalisation.high
        return (low + image * (high - low)).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": str(self.checkpoint), "step": self.info.step,
                "patch": list(self.info.patch), "training_spacing_um": list(self.training_spacing),
                "units": self.units}


class GanRenderer(LearnedRenderer):
    """The positionally-conditioned cGAN (Eschweiler et al., data synthesis): masks + positional map → image in [0, 1].

    Parameters
    ----------
    checkpoint : path
        From ``cellsynth train gan``.
    patching : PatchingConfig, optional
        Overlap, crop, window and batch size of the tiles (the patch is the training patch).
    alpha_um : float, optional
        Positional-map α (µm): the quality level; default the one trained with.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    units : {'normalised', 'camera'}
        Images in [0, 1], or in the training images' units (see :meth:`LearnedRenderer.in_units`).

    Examples
    --------
    >>> from cellsynth.sample import Sample
    >>> renderer = GanRenderer('runs/gan/checkpoint.safetensors', alpha_um=100)  # doctest: +SKIP
    >>> image = renderer.render(Sample(labels, spacing=(0.29, 0.26, 0.26))).image  # doctest: +SKIP
    """

    name = "gan"
    required = ("conditioning",)

    def __init__(self, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None,
                 alpha_um: float | None = None, device: str = "auto", units: str = "normalised"):
        super().__init__(checkpoint, patching, device, units)
        conditioning = self.info.conditioning
        self.kind, self.beta_um = conditioning["kind"], float(conditioning["beta_um"])
        self.alpha_um = float(conditioning["alpha_um"] if alpha_um is None else alpha_um)

    def at_alpha(self, alpha_um: float) -> GanRenderer:
        """The same generator (sharing the loaded network) at another quality level α (µm)."""
        other = object.__new__(GanRenderer)
        other.__dict__.update(self.__dict__)
        other.alpha_um = float(alpha_um)
        return other

    def describe(self) -> dict:
        return {**super().describe(), "alpha_um": self.alpha_um, "beta_um": self.beta_um, "kind": self.kind}

    def render(self, sample: Sample, rng=None) -> Sample:
        """``sample`` with its image (float32 in [0, 1] or see ``units``) drawn at its spacing (µm);
        ``rng`` is unused (G is deterministic)."""
        import torch

        spacing = sample.voxel_spacing()

        from cellsynth.synthesis.conditioning import gan_condition

        condition = gan_condition(sample.labels, spacing, kind=self.kind, foreground=sample.foreground,
                                  membranes=sample.membranes, alpha_um=self.alpha_um, beta_um=self.beta_um)
        network = self.network

        @torch.no_grad()
        def run(tiles: np.ndarray) -> np.ndarray:
            with self.autocast():
                output = network(torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device))
            return output.float().cpu().numpy()

        return sample.replace(image=self.in_units(self.run_tiled(condition, spacing, run)))


class DiffusionRenderer(LearnedRenderer):
    """The DDPM (Eschweiler et al., DDPM): a blurred sketch of the masks, noised to a start timestep and
    denoised (SDEdit).

    Every denoising step runs the network on all tiles of the volume and blends them before one
    scheduler step on the whole volume (per-step fusion: one coherent sample, no seams).

    Parameters
    ----------
    checkpoint : path
        From ``cellsynth train ddpm``.
    patching : PatchingConfig, optional
        Overlap, crop, window and batch size of the tiles (the patch is the training patch).
    sampler : str
        ``ddpm`` (ancestral), ``ddim`` or ``dpmsolver`` (DPM-Solver++).
    steps : int
        Denoising steps.
    t_start, strength, snr : optional
        Where to start (at most one; default t_start = 400 of 1000).
    statistics : SketchStatistics, optional
        Sketch intensities; default the ones fitted to the training images.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    units : {'normalised', 'camera'}
        Images in [0, 1], or in the training images' units (see :meth:`LearnedRenderer.in_units`).
    tile_scale : int
        Inference tiles of up to this many training patches per axis (see :meth:`tile_geometry`).

    Examples
    --------
    >>> from cellsynth.sample import Sample
    >>> renderer = DiffusionRenderer('runs/ddpm/checkpoint.safetensors', sampler='ddim', t_start=300)  # doctest: +SKIP
    >>> image = renderer.render(Sample(labels, spacing=(0.29, 0.26, 0.26)), rng=0).image  # doctest: +SKIP
    """

    name = "ddpm"
    required = ("schedule", "sketch")

    def __init__(self, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None, *,
                 sampler: str = "dpmsolver", steps: int = 25, t_start: int | None = None,
                 strength: float | None = None, snr: float | None = None, statistics=None, device: str = "auto",
                 units: str = "normalised", tile_scale: int = 1):
        from cellsynth.models.diffusion import make_scheduler, start_timestep
        from cellsynth.synthesis.conditioning import SketchStatistics

        super().__init__(checkpoint, patching, device, units)
        self.tile_scale = int(tile_scale)
        sketch = dict(self.info.sketch)
        self.blur_um = tuple(sketch.pop("blur_um"))
        self.statistics = statistics or SketchStatistics(**sketch)
        try:
            self.scheduler = make_scheduler(sampler, **self.info.schedule)
            if t_start is None and strength is None and snr is None:
                t_start = min(400, self.scheduler.config.num_train_timesteps - 1)
            self.t_start = start_timestep(self.scheduler, t_start=t_start, strength=strength, snr=snr)
            timesteps = self.scheduler.config.num_train_timesteps
            if not 1 <= steps <= timesteps:
                raise ValueError(f"steps must be between 1 and the checkpoint's {timesteps} training timesteps; "
                                 f"got {steps}")
        except ValueError as err:
            raise InputError(str(err)) from None
        self.sampler, self.steps = sampler, int(steps)

    def describe(self) -> dict:
        alpha = float(self.scheduler.alphas_cumprod[self.t_start])
        return {**super().describe(), "sampler": self.sampler, "steps": self.steps, "t_start": self.t_start,
                "start_snr": round(alpha / max(1 - alpha, 1e-12), 6), "sketch": self.statistics.as_dict(),
                "blur_um": list(self.blur_um)}

    def sample(self, sketch: np.ndarray, spacing: Sequence[float], rng=None) -> np.ndarray:
        """SDEdit of a ZYX ``sketch`` in [0, 1] (float32 result in [0, 1], the sketch's shape).

        Raises
        ------
        InputError
            If the sketch is outside [0, 1] (e.g. already in the model's [−1, 1]).
        """
        import torch

        from cellsynth.models.diffusion import from_model_range, fused_denoiser, sdedit, to_model_range
        from cellsynth.synthesis.patching import PatchPlan

        sketch = np.asarray(sketch, np.float32)
        low, high = float(sketch.min()), float(sketch.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise InputError(f"the sketch must be in [0, 1] (the model's [−1, 1] is applied here); got "
                             f"[{low:.3g}, {high:.3g}]")
        rng = np.random.default_rng(rng)
        generator = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**63)))  # noise on the device

        def run(condition: np.ndarray) -> np.ndarray:
            plan = PatchPlan(condition.shape[1:], **self.tile_geometry(condition.shape[1:]))
            x0 = torch.from_numpy(to_model_range(condition)).to(self.device)
            denoise = fused_denoiser(self.network, plan, self.batch_size)
            with self.autocast():
                sample = sdedit(denoise, x0, self.scheduler, t_start=self.t_start, steps=self.steps,
                                generator=generator)
            return from_model_range(sample).float().cpu().numpy()

        return np.clip(self.run_whole(sketch[None], spacing, run), 0.0, 1.0)

    def render(self, sample: Sample, rng=None) -> Sample:
        """``sample`` with its image: a sketch of its masks (intensities from ``rng``) sampled by SDEdit
        at its spacing (µm); float32, see ``units``."""
        spacing = sample.voxel_spacing()
        rng = np.random.default_rng(rng)  # a Generator, a seed or None: one stream for sketch and noise
        from cellsynth.synthesis.conditioning import make_sketch

        sketch = make_sketch(sample.labels, spacing, self.statistics, blur_um=self.blur_um,
                             membranes=sample.membranes, rng=rng)
        return sample.replace(image=self.in_units(self.sample(sketch, spacing, rng)))
