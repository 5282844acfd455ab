"""Generators that come from a training checkpoint, behind the pipeline's generator interface.

They load their network lazily (and drop it when pickled to a dask worker, which reloads it from
the checkpoint), condition on the whole volume, and run the network tile by tile through the
patch engine at the checkpoint's training patch size. Masks at another voxel spacing than the
training images are resampled to the training spacing and the image back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.config import PatchingConfig
from cellsynth.errors import InputError
from cellsynth.io import check_spacing, read_checkpoint, read_checkpoint_info
from cellsynth.masks.simulate import SimulatedMasks
from cellsynth.synthesis.patching import apply_patched

#: Relative spacing difference above which masks are resampled to the training spacing.
SPACING_TOLERANCE = 0.02


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device '{device}'; choose auto, cpu or cuda")
    return device


def load_network(checkpoint: str | os.PathLike, model: str, prefix: str = "generator."):
    """The eval-mode network stored in a cellsynth checkpoint under ``prefix`` and its info.

    Raises
    ------
    InputError
        If the file is not a cellsynth ``model`` checkpoint or its weights do not fit its architecture.
    """
    from cellsynth.models.unet3d import UNet3D

    tensors, info = read_checkpoint(checkpoint, model)
    network = UNet3D(**info["architecture"])
    weights = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise InputError(f"'{checkpoint}' holds weights that do not fit its architecture "
                         f"({str(err).splitlines()[0][:120]})") from None
    return network.eval(), info


def _resample(volume: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(volume, (volume.shape[0], *shape), order=order, mode="edge", anti_aliasing=False,
                  preserve_range=True).astype(np.float32)


class LearnedGenerator:
    """What the cGAN and DDPM generators share: checkpoint, device, tiling, spacing handling."""

    name = "learned"

    def __init__(self, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None, device: str = "auto"):
        self.checkpoint = Path(checkpoint)
        self.info = read_checkpoint_info(self.checkpoint, self.name)
        self.patching = patching or PatchingConfig()
        self.device = _device(device)
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
        return tuple(self.info["spacing_um"])  # type: ignore[return-value]

    def tile_geometry(self) -> dict:
        """Patch (the training patch), overlap and crop per axis for the patch engine."""
        patch = self.info["patch"]
        return {"patch": patch, "overlap": [min(self.patching.overlap, p // 4) for p in patch],
                "crop": [min(self.patching.crop, p // 8) for p in patch], "window": self.patching.window}

    def run_tiled(self, condition: np.ndarray, spacing: Sequence[float], fn) -> np.ndarray:
        """``fn`` over the tiles of a ``(C, Z, Y, X)`` condition at ``spacing``, resampled to the training
        spacing and back when they differ; returns the ZYX result at the input's shape."""
        spacing = check_spacing(spacing)
        shape = condition.shape[1:]
        resample = not np.allclose(spacing, self.training_spacing, rtol=SPACING_TOLERANCE)
        if resample:
            size = [max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, self.training_spacing, strict=True)]
            condition = _resample(condition, size, order=1)
        result, _ = apply_patched(fn, condition, **self.tile_geometry(), multiple=max(self.network.divisor),
                                  batch_size=self.patching.batch_size, out_channels=1)
        result = np.asarray(result, np.float32)[0]
        if resample:
            result = _resample(result[None], shape, order=1)[0]
        return result

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": str(self.checkpoint), "step": self.info.get("step"),
                "patch": self.info["patch"], "training_spacing_um": list(self.training_spacing)}


class GanGenerator(LearnedGenerator):
    """The positionally-conditioned cGAN (seed 001): masks + positional map → image in [0, 1].

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
    """

    name = "gan"

    def __init__(self, checkpoint: str | os.PathLike, patching: PatchingConfig | None = None,
                 alpha_um: float | None = None, device: str = "auto"):
        super().__init__(checkpoint, patching, device)
        conditioning = self.info["conditioning"]
        self.kind, self.beta_um = conditioning["kind"], float(conditioning["beta_um"])
        self.alpha_um = float(conditioning["alpha_um"] if alpha_um is None else alpha_um)

    def at_alpha(self, alpha_um: float) -> GanGenerator:
        """The same generator (sharing the loaded network) at another quality level α (µm)."""
        other = object.__new__(GanGenerator)
        other.__dict__.update(self.__dict__)
        other.alpha_um = float(alpha_um)
        return other

    def describe(self) -> dict:
        return {**super().describe(), "alpha_um": self.alpha_um, "beta_um": self.beta_um, "kind": self.kind}

    def render(self, masks: SimulatedMasks, spacing: Sequence[float], rng: np.random.Generator | None = None
               ) -> np.ndarray:
        """The image of ``masks`` (float32 in [0, 1], the labels' shape); ``rng`` is unused (G is deterministic)."""
        import torch

        from cellsynth.synthesis.conditioning import gan_condition

        condition = gan_condition(masks.labels, spacing, kind=self.kind, foreground=masks.foreground,
                                  membranes=masks.membranes, alpha_um=self.alpha_um, beta_um=self.beta_um)
        network = self.network

        @torch.no_grad()
        def run(tiles: np.ndarray) -> np.ndarray:
            return network(torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)).float().cpu().numpy()

        return np.clip(self.run_tiled(condition, spacing, run), 0.0, 1.0)
