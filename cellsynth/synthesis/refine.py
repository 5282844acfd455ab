"""The refiner: calibrated physics first, then a DDPM trained on the user's own images finishes it.

The physics renderer (:class:`~cellsynth.synthesis.optics.OpticsRenderer`) already draws the right
shapes, layout and levels; what it lacks is the real images' fine texture. A DDPM trained on the
unlabelled images (``cellsynth train ddpm``) learned that texture, so the physics image is mapped into
the checkpoint's range (camera units → the training images' percentile normalisation → [0, 1]),
noised to a low ``t_start`` and denoised in a few steps (SDEdit, Meng et al. 2022, "SDEdit: guided
image synthesis and editing with stochastic differential equations"), then mapped back to the
physics renderer's output units. At a low noise level the objects stay where the labels put them.
"""

from __future__ import annotations

import os

import numpy as np

from cellsynth.config import OpticsConfig, PatchingConfig
from cellsynth.errors import InputError
from cellsynth.sample import Sample
from cellsynth.synthesis.learned import SPACING_TOLERANCE, DiffusionRenderer
from cellsynth.synthesis.optics import OpticsRenderer

#: Default start timestep of the refinement (of 1000), picked by benchmarks/bench_refine.py (2026-12-04, cells3d,
#: C2ST mean of 3 seeds): t_start 50 → 0.715, 100 → 0.997, 200 → 1.000, 400 → 0.944; physics alone 0.976.
T_START = 50
#: Inference tiles of up to this many training patches per axis (a fully convolutional denoiser only):
#: a 60×256×128 volume in 2 tiles of 64×148×144 instead of 168 of 16×64×64.
TILE_SCALE = 4
#: Largest share of the mapped physics image that may fall outside the checkpoint's [0, 1]: more means the
#: physics render and the training images are not in the same units.
MAX_CLIPPED = 0.2


class RefineRenderer:
    """Physics render, finished by a DDPM trained on the user's unlabelled images.

    Parameters
    ----------
    optics : OpticsConfig
        The calibrated physics renderer (``cellsynth calibrate``) of the images the DDPM was trained on: its
        camera produces their levels (see :attr:`training_unit`).
    checkpoint : path
        A ``cellsynth train ddpm`` checkpoint of those images, at the volume's voxel spacing.
    patching : PatchingConfig, optional
        Tiles of the PSF convolution and of the denoiser.
    t_start, strength, snr : optional
        Noise level the physics image is taken to (at most one; default ``t_start`` :data:`T_START`); higher
        changes more.
    steps : int
        Denoising steps (DPM-Solver++ by default: 5 are enough from a low ``t_start``).
    sampler : {'dpmsolver', 'ddim', 'ddpm'}
    device : {'auto', 'cpu', 'cuda'}

    Examples
    --------
    >>> from cellsynth import load_preset
    >>> renderer = RefineRenderer(load_preset("nuclei").optics, "runs/ddpm/checkpoint.safetensors")  # doctest: +SKIP
    >>> refined = renderer.render(sample, rng=0)  # doctest: +SKIP
    """

    name = "refine"

    def __init__(self, optics: OpticsConfig, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None, *,
                 t_start: int | None = None, strength: float | None = None, snr: float | None = None, steps: int = 5,
                 sampler: str = "dpmsolver", device: str = "auto"):
        if t_start is None and strength is None and snr is None:
            t_start = T_START
        self.physics = OpticsRenderer(optics, patching)
        self.diffusion = DiffusionRenderer(checkpoint, patching, sampler=sampler, steps=steps, t_start=t_start,
                                           strength=strength, snr=snr, device=device, tile_scale=TILE_SCALE)
        info = self.diffusion.info
        channels = (info.architecture.get("in_channels", 1), info.architecture.get("out_channels", 1))
        if channels != (1, 1):
            raise InputError(f"'{checkpoint}' has {channels[0]} input and {channels[1]} output channels; the refiner "
                             "needs a one-channel DDPM (`cellsynth train ddpm` on single-channel images)")
        if info.normalisation is None:
            raise InputError(f"'{checkpoint}' records no intensity normalisation; re-train it with this cellsynth")
        if self.diffusion.t_start < 1:
            raise InputError("t_start must be >= 1 for the refiner (0 would return the physics image unchanged)")

    @property
    def full_scale(self) -> float:
        """The camera's full scale, ADU."""
        return float(2**self.physics.optics.camera.bit_depth - 1)

    @property
    def training_unit(self) -> float:
        """ADU per unit of the DDPM's training images: the physics output's own unit when it is set
        (``camera.output_scale``: a calibration on floating-point images), else 1 for images in camera
        units (ADU, the calibration image itself) and the full scale for images stored as a fraction of it
        (levels at most 2, e.g. the physics renderer's default float32 output)."""
        if self.physics.optics.camera.output_scale is not None:
            return 1.0 / self.physics.optics.camera.output_scale
        return 1.0 if self.diffusion.info.normalisation.high > 2 else self.full_scale

    def to_model(self, image: np.ndarray) -> np.ndarray:
        """A physics image (the physics renderer's output) in the checkpoint's [0, 1], unclipped:
        ``(v − low) / (high − low)``, ``v`` the image in the training images' units, ``low`` and ``high`` their
        percentile levels."""
        low, high = self.diffusion.info.normalisation.low, self.diffusion.info.normalisation.high
        return ((self.physics.to_adu(image) / self.training_unit - low) / (high - low)).astype(np.float32)

    def from_model(self, values: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_model`, in the physics renderer's output type (integer ADU are rounded)."""
        low, high = self.diffusion.info.normalisation.low, self.diffusion.info.normalisation.high
        adu = np.clip((low + values.astype(np.float64) * (high - low)) * self.training_unit, 0, self.full_scale)
        return self.physics.from_adu(adu)

    def describe(self) -> dict:
        return {"name": self.name, "physics": self.physics.describe(), "refiner": self.diffusion.describe()}

    def render(self, sample: Sample, rng=None) -> Sample:
        """``sample`` with its refined image, in the physics renderer's units; ``rng`` draws the physics
        noise and then the diffusion noise (the same state gives the same image).

        Raises
        ------
        InputError
            If the sample's spacing is not the checkpoint's (the learned texture belongs to one voxel
            size), or the physics image does not land in the checkpoint's range (other units).
        """
        spacing = sample.voxel_spacing()
        trained = self.diffusion.training_spacing
        if not np.allclose(spacing, trained, rtol=SPACING_TOLERANCE):
            raise InputError(f"the refiner was trained at {list(trained)} µm, the volume is at {list(spacing)} µm; "
                             "train it on images of this voxel size (or resample them)")
        rng = np.random.default_rng(rng)
        physics = self.physics.render(sample, rng)
        mapped = self.to_model(physics.image)
        clipped = float(np.mean((mapped < -0.05) | (mapped > 1.05)))
        if clipped > MAX_CLIPPED:
            raise InputError(f"{100 * clipped:.0f} % of the physics image falls outside the refiner's training range "
                             f"[{self.diffusion.info.normalisation.low:g}, {self.diffusion.info.normalisation.high:g}] "
                             "(training units): calibrate the physics renderer on the images the refiner was "
                             "trained on")
        refined = self.diffusion.sample(np.clip(mapped, 0.0, 1.0), spacing, rng)
        return physics.replace(image=self.from_model(refined))
