"""Intensity augmentations: they change the image only (labels and every other volume stay).

Put :class:`Diversify` before noise and intensity jitter: it needs intensities in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from cellsynth.augment.diversify import NEUTRAL, W_I_LIMITS, W_V_LIMITS, diversify, local_std, neighbourhood_voxels
from cellsynth.augment.transforms import (
    Transform,
    check_range_pair,
    log_uniform,
)
from cellsynth.augment.weights import check_limits, curriculum_limits, single_weights
from cellsynth.errors import InputError
from cellsynth.sample import Sample  # noqa: F401 (the Examples build Samples)


class BrightnessContrast(Transform):
    """``(I − mean) · c + mean + b`` with ``b ~ U(brightness)``, ``c ~ U(contrast)``; image only.

    Examples
    --------
    >>> item = Sample(image=np.linspace(0, 1, 64).reshape(1, 8, 8), spacing=(1.0, 0.5, 0.5))
    >>> out = BrightnessContrast(brightness=(0.1, 0.1), contrast=(1.0, 1.0))(item, rng=0)
    >>> round(float(out.image.mean() - item.image.mean()), 3)
    0.1
    """

    def __init__(self, brightness: Sequence[float] = (-0.1, 0.1), contrast: Sequence[float] = (0.75, 1.25)):
        self.brightness = check_range_pair(brightness, "brightness")
        self.contrast = check_range_pair(contrast, "contrast", positive=True)

    def make_params(self, item, rng):
        return {"brightness": float(rng.uniform(*self.brightness)), "contrast": float(rng.uniform(*self.contrast))}

    def apply_params(self, item, params, rng=None):
        mean = np.float32(item.image.mean())
        return item.replace(image=(item.image - mean) * np.float32(params["contrast"]) + mean
                            + np.float32(params["brightness"]))


class Gamma(Transform):
    """``((I − min) / range)^γ · range + min`` with γ log-uniform in ``gamma``; image only.

    Examples
    --------
    >>> item = Sample(image=np.linspace(0, 1, 64).reshape(1, 8, 8), spacing=(1.0, 0.5, 0.5))
    >>> out = Gamma(gamma=(2.0, 2.0))(item, rng=0)
    >>> float(out.image.min()), float(out.image.max()), bool(out.image.mean() < item.image.mean())
    (0.0, 1.0, True)
    """

    def __init__(self, gamma: Sequence[float] = (0.7, 1.5)):
        self.gamma = check_range_pair(gamma, "gamma", positive=True)

    def make_params(self, item, rng):
        return {"gamma": log_uniform(*self.gamma, rng=rng)}

    def apply_params(self, item, params, rng=None):
        low, high = float(item.image.min()), float(item.image.max())
        if high == low:
            return item
        scaled = (item.image - np.float32(low)) / np.float32(high - low)
        return item.replace(image=scaled ** np.float32(params["gamma"]) * np.float32(high - low) + np.float32(low))


class GaussianNoise(Transform):
    """Additive ``N(0, s²)`` with ``s ~ U(std)`` (intensity units); image only.

    Examples
    --------
    >>> item = Sample(image=np.full((4, 32, 32), 0.5), spacing=(1.0, 0.5, 0.5))
    >>> round(float(GaussianNoise(std=(0.05, 0.05))(item, rng=0).image.std()), 2)
    0.05
    """

    def __init__(self, std: Sequence[float] = (0.0, 0.05)):
        self.std = check_range_pair(std, "std", nonnegative=True)

    def make_params(self, item, rng):
        return {"std": float(rng.uniform(*self.std))}

    def apply_params(self, item, params, rng=None):
        noise = params["std"] * np.random.default_rng(rng).standard_normal(item.image.shape)
        return item.replace(image=item.image + noise.astype(np.float32))


class PoissonNoise(Transform):
    """Shot noise: ``Poisson(max(I, 0) · n) / n`` with ``n`` photons at intensity 1, log-uniform in ``photons``.

    Examples
    --------
    >>> item = Sample(image=np.full((4, 32, 32), 0.5), spacing=(1.0, 0.5, 0.5))
    >>> out = PoissonNoise(photons=(100, 100))(item, rng=0)
    >>> round(float(out.image.mean()), 1), bool(out.image.std() > 0)
    (0.5, True)
    """

    def __init__(self, photons: Sequence[float] = (20.0, 500.0)):
        self.photons = check_range_pair(photons, "photons", positive=True)

    def make_params(self, item, rng):
        return {"photons": log_uniform(*self.photons, rng=rng)}

    def apply_params(self, item, params, rng=None):
        photons = params["photons"]
        counts = np.random.default_rng(rng).poisson(np.clip(item.image, 0, None).astype(np.float64) * photons)
        return item.replace(image=(counts / photons).astype(np.float32))


class GaussianBlur(Transform):
    """A Gaussian blur of σ ``~ U(sigma_um)`` µm per axis at the item's spacing (a softer PSF); image only.

    Examples
    --------
    >>> image = np.zeros((9, 16, 16)); image[4, 8, 8] = 1.0
    >>> out = GaussianBlur(sigma_um=(1.0, 1.0))(Sample(image=image, spacing=(1.0, 0.5, 0.5)), rng=0)
    >>> round(float(out.image.sum()), 3), bool(out.image.max() < 0.1)
    (1.0, True)
    """

    def __init__(self, sigma_um: Sequence[float] = (0.0, 0.5)):
        self.sigma_um = check_range_pair(sigma_um, "sigma_um", nonnegative=True)

    def make_params(self, item, rng):
        return {"sigma_um": float(rng.uniform(*self.sigma_um))}

    def apply_params(self, item, params, rng=None):
        sigma = params["sigma_um"]
        if sigma == 0:
            return item
        voxels = [sigma / s for s in item.voxel_spacing()]
        return item.replace(image=ndi.gaussian_filter(item.image, voxels, mode="nearest").astype(np.float32))


class Diversify(Transform):
    """Probabilistic diversification: ``clip(N(0,1) · w_v · σ_x + w_i · I_x, 0, 1)`` (Eschweiler et al.,
    diversification).

    Parameters
    ----------
    w_i, w_v : (low, high)
        Weight limits (default [0.2, 1.8] and [0, 8]).
    strategy : {"single", "random"}
        ``single``: each weight from a normal around its neutral value with the farther limit at
        3σ, truncated to the limits; ``random``: uniform in the limits.
    size : int or 3 ints, optional
        Neighbourhood ``s_σ`` in voxels (default 5), or ``size_um`` in µm.
    epochs_to_full : int
        Curriculum δ_full: the limits grow from the neutral element to the given ones over this
        many epochs (:meth:`set_epoch`); 0 = full limits from the start.

    Uses the item's cached ``local_std`` when present, else computes it.

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = Diversify(w_i=(1.0, 1.0), w_v=(4.0, 4.0), size_um=1.5)(item, rng=0)
    >>> out.image.shape, bool((out.labels == labels).all()), out.local_std is not None
    ((8, 16, 16), True, True)
    """

    def __init__(self, w_i: Sequence[float] = W_I_LIMITS, w_v: Sequence[float] = W_V_LIMITS, *,
                 strategy: str = "single", size: int | Sequence[int] | None = None,
                 size_um: float | Sequence[float] | None = None, epochs_to_full: int = 0):
        self.w_i, self.w_v = check_limits(w_i, "w_i"), check_limits(w_v, "w_v")
        if strategy not in ("single", "random"):
            raise InputError(f"unknown diversification strategy '{strategy}'; accepted: single, random")
        if size is not None or size_um is None:
            neighbourhood_voxels(size)  # validate now, not at the first sample
        elif size_um is not None and not np.all(np.asarray(size_um, float) > 0):
            raise InputError(f"neighbourhood size in µm must be > 0; got {size_um!r}")
        if epochs_to_full < 0:
            raise InputError(f"epochs_to_full must be >= 0; got {epochs_to_full}")
        self.strategy, self.size, self.size_um, self.epochs_to_full = strategy, size, size_um, epochs_to_full
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def neighbourhood(self, spacing: Sequence[float]) -> tuple[int, int, int]:
        """``s_σ`` in voxels for data of this spacing."""
        return neighbourhood_voxels(self.size, size_um=self.size_um, spacing=spacing)

    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The ``(w_i, w_v)`` limits at the current epoch."""
        return (curriculum_limits(self.w_i, NEUTRAL[0], self.epoch, self.epochs_to_full),
                curriculum_limits(self.w_v, NEUTRAL[1], self.epoch, self.epochs_to_full))

    def make_params(self, item, rng):
        w_i, w_v = self.limits()
        weights = single_weights(w_i, w_v, rng=rng) if self.strategy == "single" else (rng.uniform(*w_i),
                                                                                         rng.uniform(*w_v))
        return {"w_i": float(weights[0]), "w_v": float(weights[1])}

    def apply_params(self, item, params, rng=None):
        std = (item.local_std if item.local_std is not None
               else local_std(item.image, self.neighbourhood(item.voxel_spacing())))
        return item.replace(image=diversify(item.image, std, params["w_i"], params["w_v"], rng), local_std=std)
