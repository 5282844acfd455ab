"""Label-safe 3D augmentations: one transform, one class, applied jointly to image and labels.

Every transform maps a :class:`~cellsynth.sample.Sample` (image, optional instance labels and
other label-like volumes, voxel spacing, optional cached local std for :class:`Diversify`) to a
new one of the same shape, drawing its randomness from the ``numpy.random.Generator`` it is called
with, so the same seed gives the same output. Geometric transforms move every volume with one
mapping: images with linear interpolation (``image_order``), labels with nearest neighbour, so instance ids are only
ever kept or lost at the border, never blended or invented. Physical parameters are in µm and use
the item's spacing (a rotation of an anisotropic stack turns the physical volume, not the voxel
grid).

Combiners (Chen, augmentations): :class:`Stacked` applies each transform with probability ``p`` (``p = 1``
composes), :class:`RandomChoice` applies one. Put :class:`Diversify` before noise and intensity
jitter: it needs intensities in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy import ndimage as ndi

from cellsynth.augment.diversify import (
    NEUTRAL,
    W_I_LIMITS,
    W_V_LIMITS,
    check_limits,
    curriculum_limits,
    diversify,
    local_std,
    neighbourhood_voxels,
    single_weights,
)
from cellsynth.errors import InputError
from cellsynth.sample import Sample, as_sample

Fill = float | str


def as_item(item: Sample | np.ndarray) -> Sample:
    """``item`` ready for the transforms: a :class:`~cellsynth.sample.Sample` with a float32 image.

    A bare array becomes a sample's image. A sample without spacing keeps none: the transforms
    whose parameters are in µm (rotations, elastic, blur, diversification) then refuse it in one
    line, and the others (flips, intensity, noise) apply.

    Examples
    --------
    >>> item = as_item(np.zeros((2, 4, 4), np.uint16))
    >>> item.image.dtype, item.spacing
    (dtype('float32'), None)
    """
    item = as_sample(item)
    if item.image is None:
        raise InputError("augmentations need the sample's image; got labels only (render the sample first)")
    return item.replace(image=item.image.astype(np.float32)) if item.image.dtype != np.float32 else item


class Transform:
    """Base class: ``transform(item, rng)`` returns a new :class:`~cellsynth.sample.Sample`.

    ``item`` may also be a bare image array (see :func:`as_item`); ``rng`` a Generator, an int seed
    or None.

    Examples
    --------
    >>> class Invert(Transform):
    ...     def apply(self, item, rng):
    ...         return item.replace(image=1 - item.image)
    >>> float(Invert()(np.zeros((2, 4, 4)), rng=0).image.max())
    1.0
    """

    def __call__(self, item: Sample | np.ndarray, rng: np.random.Generator | int | None = None) -> Sample:
        return self.apply(as_item(item), np.random.default_rng(rng))

    def apply(self, item: Sample, rng: np.random.Generator) -> Sample:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Called once per training epoch (a curriculum uses it); no-op by default."""

    def walk(self) -> Iterator[Transform]:
        """This transform and every transform nested in it."""
        yield self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def _range(values: Sequence[float], name: str, *, positive: bool = False,
           nonnegative: bool = False) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a range (low, high); got {values!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise InputError(f"{name} must be a finite range with low <= high; got ({low:g}, {high:g})")
    if positive and low <= 0:
        raise InputError(f"{name} must be > 0; got ({low:g}, {high:g})")
    if nonnegative and low < 0:
        raise InputError(f"{name} must be >= 0; got ({low:g}, {high:g})")
    return low, high


def _probability(p: float, name: str = "p") -> float:
    if not 0 <= p <= 1:
        raise InputError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return float(p)


def _log_uniform(low: float, high: float, rng=None) -> float:
    rng = np.random.default_rng(rng)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


# ----------------------------------------------------------------------------- intensity


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
        self.brightness = _range(brightness, "brightness")
        self.contrast = _range(contrast, "contrast", positive=True)

    def apply(self, item, rng):
        shift, factor = rng.uniform(*self.brightness), rng.uniform(*self.contrast)
        mean = np.float32(item.image.mean())
        return item.replace(image=(item.image - mean) * np.float32(factor) + mean + np.float32(shift))


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
        self.gamma = _range(gamma, "gamma", positive=True)

    def apply(self, item, rng):
        gamma = _log_uniform(*self.gamma, rng=rng)
        low, high = float(item.image.min()), float(item.image.max())
        if high == low:
            return item
        scaled = (item.image - np.float32(low)) / np.float32(high - low)
        return item.replace(image=scaled ** np.float32(gamma) * np.float32(high - low) + np.float32(low))


class GaussianNoise(Transform):
    """Additive ``N(0, s²)`` with ``s ~ U(std)`` (intensity units); image only.

    Examples
    --------
    >>> item = Sample(image=np.full((4, 32, 32), 0.5), spacing=(1.0, 0.5, 0.5))
    >>> round(float(GaussianNoise(std=(0.05, 0.05))(item, rng=0).image.std()), 2)
    0.05
    """

    def __init__(self, std: Sequence[float] = (0.0, 0.05)):
        self.std = _range(std, "std", nonnegative=True)

    def apply(self, item, rng):
        scale = rng.uniform(*self.std)
        return item.replace(image=item.image + (scale * rng.standard_normal(item.image.shape)).astype(np.float32))


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
        self.photons = _range(photons, "photons", positive=True)

    def apply(self, item, rng):
        photons = _log_uniform(*self.photons, rng=rng)
        counts = rng.poisson(np.clip(item.image, 0, None).astype(np.float64) * photons)
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
        self.sigma_um = _range(sigma_um, "sigma_um", nonnegative=True)

    def apply(self, item, rng):
        sigma = rng.uniform(*self.sigma_um)
        if sigma == 0:
            return item
        voxels = [sigma / s for s in item.voxel_spacing()]
        return item.replace(image=ndi.gaussian_filter(item.image, voxels, mode="nearest").astype(np.float32))


class Identity(Transform):
    """Returns the item unchanged (no augmentation: ``--augment none``).

    Examples
    --------
    >>> float(Identity()(np.ones((2, 4, 4)), rng=0).image.sum())
    32.0
    """

    def apply(self, item, rng):
        return item


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

    def apply(self, item, rng):
        std = (item.local_std if item.local_std is not None
               else local_std(item.image, self.neighbourhood(item.voxel_spacing())))
        w_i, w_v = self.limits()
        if self.strategy == "single":
            weights = single_weights(w_i, w_v, rng=rng)
        else:
            weights = (rng.uniform(*w_i), rng.uniform(*w_v))
        return item.replace(image=diversify(item.image, std, *weights, rng), local_std=std)


# ----------------------------------------------------------------------------- geometry


class _Geometric(Transform):
    """Shared resampling: image (``image_order``), local std (linear), labels (nearest)."""

    def __init__(self, image_order: int = 1, fill: Fill = "min"):
        if image_order not in (0, 1, 3):
            raise InputError(f"image_order must be 0 (nearest), 1 (linear) or 3 (cubic); got {image_order!r}")
        if fill != "min" and not isinstance(fill, (int, float)):
            raise InputError(f"fill must be 'min' (the image minimum) or a number; got {fill!r}")
        self.image_order, self.fill = image_order, fill

    def _resample(self, item: Sample, resample: Callable[[np.ndarray, int, float], np.ndarray]) -> Sample:
        """Every volume of ``item`` through one mapping: the image at ``image_order``, the cached local
        std linearly, labels and the other label-like volumes by nearest neighbour (filled with 0)."""
        fill = float(item.image.min()) if self.fill == "min" else float(self.fill)
        orders = {"image": (self.image_order, fill), "local_std": (1, 0.0)}
        return item.replace(**{name: resample(volume, *orders.get(name, (0, 0)))
                               for name, volume in item.volumes().items()})

    def _affine(self, item: Sample, matrix: np.ndarray, offset: np.ndarray, mode: str) -> Sample:
        """Output voxel ``o`` takes the input at ``matrix @ o + offset`` (voxel indices)."""
        return self._resample(item, lambda a, order, cval: ndi.affine_transform(
            a, matrix, offset, order=order, mode=mode, cval=cval, prefilter=order > 1))


class Flip(Transform):
    """Mirror each of ``axes`` (0 = z, 1 = y, 2 = x) with probability 1/2.

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = Flip(axes=(2,))(item, rng=1)
    >>> bool(((out.labels > 0) == (out.image > 0.5)).all())
    True
    """

    def __init__(self, axes: Sequence[int] = (0, 1, 2)):
        self.axes = _axes(axes)

    def apply(self, item, rng):
        flipped = tuple(a for a in self.axes if rng.random() < 0.5)
        if not flipped:
            return item
        return item.replace(**{name: np.ascontiguousarray(np.flip(value, flipped))
                               for name, value in item.volumes().items()})


class Rotate90(Transform):
    """Rotate by k · 90° in a random plane whose two axes have equal spacing (in-plane yx when anisotropic).

    In a plane whose two sizes differ only k ∈ {0, 2} is drawn, so the shape never changes.

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = Rotate90()(item, rng=0)
    >>> out.shape, int((out.labels > 0).sum()) == int((labels > 0).sum())
    ((8, 16, 16), True)
    """

    def apply(self, item, rng):
        planes = [(a, b) for a, b in ((1, 2), (0, 1), (0, 2))
                  if math.isclose(item.voxel_spacing()[a], item.voxel_spacing()[b], rel_tol=1e-3)]
        if not planes:
            return item
        plane = planes[int(rng.integers(len(planes)))]
        square = item.image.shape[plane[0]] == item.image.shape[plane[1]]
        k = int(rng.integers(4)) if square else 2 * int(rng.integers(2))
        if k == 0:
            return item
        return item.replace(**{name: np.ascontiguousarray(np.rot90(value, k, plane))
                               for name, value in item.volumes().items()})


def _plane_rotation(angle: float, a: int, b: int) -> np.ndarray:
    matrix = np.eye(3)
    cos, sin = math.cos(angle), math.sin(angle)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = cos, -sin, sin, cos
    return matrix


class Rotate(_Geometric):
    """Rotate the physical volume about its centre.

    Parameters
    ----------
    max_angle_deg : float
        In-plane (about z) angle drawn uniformly in ±this.
    max_tilt_deg : float
        Tilts about y and about x, each uniform in ±this (default 0: in-plane only, the safe
        choice for anisotropic stacks).
    image_order : {0, 1, 3}
        Interpolation order of the image.
    fill : 'min' or float
        Image value where the rotated volume brings in space from outside (labels there are 0).

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = Rotate(max_angle_deg=30)(item, rng=0)
    >>> out.shape, np.unique(out.labels).tolist()
    ((8, 16, 16), [0, 1])
    """

    def __init__(self, max_angle_deg: float = 180.0, max_tilt_deg: float = 0.0, image_order: int = 1,
                 fill: Fill = "min"):
        super().__init__(image_order, fill)
        if not (0 <= max_angle_deg <= 180 and 0 <= max_tilt_deg <= 180):
            raise InputError(f"rotation angles must lie in [0, 180] degrees; got {max_angle_deg}, {max_tilt_deg}")
        self.max_angle_deg, self.max_tilt_deg = float(max_angle_deg), float(max_tilt_deg)

    def apply(self, item, rng):
        angle, tilt_y, tilt_x = np.radians(rng.uniform(-1, 1, 3) * [self.max_angle_deg, self.max_tilt_deg,
                                                                     self.max_tilt_deg])
        rotation = _plane_rotation(angle, 1, 2) @ _plane_rotation(tilt_y, 0, 2) @ _plane_rotation(tilt_x, 0, 1)
        scale = np.diag(item.voxel_spacing())
        matrix = np.linalg.inv(scale) @ rotation.T @ scale  # output voxel -> µm -> rotated back -> input voxel
        centre = (np.asarray(item.image.shape) - 1) / 2
        return self._affine(item, matrix, centre - matrix @ centre, mode="constant")


class _Zoom(_Geometric):
    """Crop a random sub-box of size ``shape / factor`` and resize it back to ``shape``."""

    def _zoom(self, item: Sample, factors: np.ndarray, rng: np.random.Generator) -> Sample:
        shape = np.asarray(item.image.shape, float)
        starts = rng.uniform(0, 1, 3) * (shape - shape / factors)
        offset = starts + 0.5 / factors - 0.5  # voxel centres of the crop map onto the output's
        return self._affine(item, 1 / factors, offset, mode="nearest")


class LateralStretch(_Zoom):
    """Stretch along y or x (chosen at random) by a factor uniform in ``[1, max_factor]`` (Chen, augmentations).

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = LateralStretch(max_factor=1.5)(item, rng=0)
    >>> out.shape, bool((out.labels > 0).sum() >= (labels > 0).sum())
    ((8, 16, 16), True)
    """

    def __init__(self, max_factor: float = 1.5, image_order: int = 1):
        super().__init__(image_order)
        if not max_factor >= 1:
            raise InputError(f"max_factor must be >= 1; got {max_factor!r}")
        self.max_factor = float(max_factor)

    def apply(self, item, rng):
        factors = np.ones(3)
        factors[1 + int(rng.integers(2))] = rng.uniform(1, self.max_factor)
        return self._zoom(item, factors, rng)


class CropResize(_Zoom):
    """Crop a random box keeping ``scale`` (uniform in the range) of each of ``axes`` and resize it back.

    The same scale on every axis keeps the aspect ratio (Chen, augmentations, random crop).

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = CropResize(scale=(0.5, 0.5))(item, rng=0)
    >>> out.shape, out.labels.dtype
    ((8, 16, 16), dtype('uint16'))
    """

    def __init__(self, scale: Sequence[float] = (0.6, 1.0), axes: Sequence[int] = (1, 2), image_order: int = 1):
        super().__init__(image_order)
        self.scale = _range(scale, "scale", positive=True)
        if self.scale[1] > 1:
            raise InputError(f"crop scale must lie in (0, 1]; got {scale!r}")
        self.axes = _axes(axes)

    def apply(self, item, rng):
        factors = np.ones(3)
        factors[list(self.axes)] = 1 / rng.uniform(*self.scale)
        return self._zoom(item, factors, rng)


class Elastic(_Geometric):
    """Elastic deformation by a smooth random displacement field (Malec, U-Net segmentation).

    A uniform random field per axis is smoothed with a Gaussian of ``sigma_um`` (σ: smoothness) and
    scaled to an RMS displacement of ``alpha_um`` (α: strength) — unlike Simard's α, whose effect
    depends on σ, this one is a length. The field is drawn on a grid coarser by up to σ/2 and
    upsampled linearly, which changes nothing visible and saves most of the time.

    Parameters
    ----------
    alpha_um : float
        RMS displacement in µm (0 = identity).
    sigma_um : float
        Gaussian smoothing of the field in µm.
    axes : sequence of int
        Axes along which voxels move (default all three; ``(1, 2)`` keeps z planes flat).

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = Elastic(alpha_um=1.0, sigma_um=3.0)(item, rng=0)
    >>> out.shape, np.unique(out.labels).tolist()
    ((8, 16, 16), [0, 1])
    """

    def __init__(self, alpha_um: float = 1.5, sigma_um: float = 6.0, axes: Sequence[int] = (0, 1, 2),
                 image_order: int = 1):
        super().__init__(image_order)
        if not (alpha_um >= 0 and sigma_um > 0):
            raise InputError(f"elastic alpha_um must be >= 0 and sigma_um > 0; got {alpha_um!r}, {sigma_um!r}")
        self.alpha_um, self.sigma_um, self.axes = float(alpha_um), float(sigma_um), _axes(axes)

    def displacement(self, shape: Sequence[int], spacing: Sequence[float], rng: np.random.Generator) -> np.ndarray:
        """The displacement field in voxels, ``(3, Z, Y, X)`` float32."""
        shape = tuple(shape)
        sigma = self.sigma_um / np.asarray(spacing)
        step = np.maximum(1, np.floor(sigma / 2)).astype(int)
        coarse = tuple(int(n) for n in -(-np.asarray(shape) // step) + 1)
        field = np.zeros((3, *shape), np.float32)
        for axis in self.axes:
            smooth = ndi.gaussian_filter(rng.uniform(-1, 1, coarse).astype(np.float32), sigma / step, mode="reflect")
            fine = ndi.zoom(smooth, step, order=1, mode="nearest", grid_mode=False)[tuple(slice(n) for n in shape)]
            rms = float(np.sqrt(np.mean(fine.astype(np.float64) ** 2)))
            field[axis] = fine * np.float32(self.alpha_um / spacing[axis] / rms) if rms > 0 else 0
        return field

    def apply(self, item, rng):
        coordinates = np.indices(item.image.shape, np.float32)
        coordinates += self.displacement(item.image.shape, item.voxel_spacing(), rng)
        return self._resample(item, lambda a, order, cval: ndi.map_coordinates(
            a, coordinates, order=order, mode="nearest", prefilter=order > 1))


# ----------------------------------------------------------------------------- copy-paste


class CopyPaste(Transform):
    """Paste instances of another labelled sample into this one (Chen, augmentations, simple copy-paste).

    A source is drawn from ``pool`` (cropped at random to the target's shape when larger), each of
    its instances is taken with probability ``p`` and pasted at the same place, image voxels and
    all, under a new id — unless it would overlap an existing or already pasted instance.

    Parameters
    ----------
    pool : sequence of Sample
        Labelled sources with the target's spacing, each at least the target's shape.
    p : float
        Probability of taking each source instance (0.25 in Chen, augmentations).

    Examples
    --------
    >>> source_labels = np.zeros((8, 16, 16), np.uint16); source_labels[2:6, 2:6, 2:6] = 1
    >>> source = Sample(source_labels, np.where(source_labels > 0, 0.9, 0.1), (1.0, 0.5, 0.5))
    >>> target = Sample(np.zeros((8, 16, 16), np.uint16), np.full((8, 16, 16), 0.1), (1.0, 0.5, 0.5))
    >>> np.unique(CopyPaste([source], p=1.0)(target, rng=0).labels).tolist()
    [0, 1]
    """

    def __init__(self, pool: Sequence[Sample], p: float = 0.25):
        if not pool or any(not isinstance(s, Sample) or s.labels is None or s.image is None for s in pool):
            raise InputError("copy-paste needs a non-empty pool of Sample sources with an image and labels")
        self.pool = [as_item(source) for source in pool]
        self.p = _probability(p)

    def __repr__(self) -> str:
        return f"CopyPaste(pool=<{len(self.pool)} sources>, p={self.p})"

    def apply(self, item, rng):
        if item.labels is None:
            raise InputError("copy-paste needs the target's labels")
        source = self.pool[int(rng.integers(len(self.pool)))]
        if not np.allclose(source.spacing, item.spacing, rtol=1e-3):
            raise InputError(f"copy-paste source spacing {source.spacing} µm differs from the target's "
                             f"{item.spacing} µm")
        if any(s < t for s, t in zip(source.image.shape, item.image.shape, strict=True)):
            raise InputError(f"copy-paste source shape {source.image.shape} is smaller than the target's "
                             f"{item.image.shape}")
        starts = [int(rng.integers(s - t + 1)) for s, t in zip(source.image.shape, item.image.shape, strict=True)]
        window = tuple(slice(a, a + n) for a, n in zip(starts, item.image.shape, strict=True))
        source_labels, source_image = source.labels[window], source.image[window]
        labels, image = item.labels.astype(np.uint32), item.image.copy()
        next_id = int(labels.max()) + 1
        for offset, box in enumerate(ndi.find_objects(source_labels)):
            if box is None or rng.random() >= self.p:
                continue
            mask = source_labels[box] == offset + 1
            if labels[box][mask].any():
                continue
            labels[box][mask] = next_id
            image[box][mask] = source_image[box][mask]
            next_id += 1
        return item.replace(image=image, labels=labels, local_std=None, semantic=None)  # semantic: from the labels


# ----------------------------------------------------------------------------- combiners


class Stacked(Transform):
    """Apply each transform in order with probability ``p`` (Chen, augmentations: stacked; ``p = 1`` composes).

    Examples
    --------
    >>> transform = Stacked([Flip(), GaussianNoise(std=(0.0, 0.02))], p=0.5)
    >>> transform(np.full((4, 8, 8), 0.5), rng=0).image.shape
    (4, 8, 8)
    """

    def __init__(self, transforms: Sequence[Transform], p: float = 0.5):
        self.transforms, self.p = _transforms(transforms), _probability(p)

    def apply(self, item, rng):
        for transform in self.transforms:
            if rng.random() < self.p:
                item = transform.apply(item, rng)
        return item

    def set_epoch(self, epoch: int) -> None:
        for transform in self.transforms:
            transform.set_epoch(epoch)

    def walk(self):
        yield self
        for transform in self.transforms:
            yield from transform.walk()


class RandomChoice(Stacked):
    """Apply one of ``transforms``, chosen with ``weights`` (default uniform; Chen, augmentations: random choice).

    Examples
    --------
    >>> transform = RandomChoice([Flip(), Rotate90()], weights=[3, 1])
    >>> transform(np.full((4, 8, 8), 0.5), rng=0).image.shape
    (4, 8, 8)
    """

    def __init__(self, transforms: Sequence[Transform], weights: Sequence[float] | None = None):
        self.transforms = _transforms(transforms)
        weights = np.ones(len(self.transforms)) if weights is None else np.asarray(weights, float)
        if weights.shape != (len(self.transforms),) or (weights < 0).any() or weights.sum() <= 0:
            raise InputError(f"random-choice weights must be {len(self.transforms)} numbers >= 0, not all 0; "
                             f"got {weights.tolist()}")
        self.weights = weights / weights.sum()

    def apply(self, item, rng):
        return self.transforms[int(rng.choice(len(self.transforms), p=self.weights))].apply(item, rng)


def _transforms(transforms: Sequence[Transform]) -> list[Transform]:
    transforms = list(transforms)
    if not transforms or not all(isinstance(t, Transform) for t in transforms):
        raise InputError("a combiner needs a non-empty list of cellsynth.augment transforms")
    return transforms


def _axes(axes: Sequence[int]) -> tuple[int, ...]:
    axes = tuple(axes)
    if not axes or any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
        raise InputError(f"axes must be distinct values among 0 (z), 1 (y), 2 (x); got {axes!r}")
    return axes

