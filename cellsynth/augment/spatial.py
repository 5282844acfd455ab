"""Spatial augmentations: every volume of a sample through one mapping (images interpolated, labels
by nearest neighbour, so instance ids are only ever kept or lost at the border), and copy-paste of
instances. Parameters in µm use the sample's spacing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi

from cellsynth.augment.transforms import (
    Transform,
    as_item,
    check_axes,
    check_probability,
    check_range_pair,
)
from cellsynth.errors import InputError
from cellsynth.sample import Sample

Fill = float | str


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


class RandomFlip(Transform):
    """Mirror each of ``axes`` (0 = z, 1 = y, 2 = x) with probability 1/2.

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = RandomFlip(axes=(2,))(item, rng=1)
    >>> bool(((out.labels > 0) == (out.image > 0.5)).all())
    True
    """

    def __init__(self, axes: Sequence[int] = (0, 1, 2)):
        self.axes = check_axes(axes)

    def make_params(self, item, rng):
        return {"axes": [a for a in self.axes if rng.random() < 0.5]}

    def apply_params(self, item, params, rng=None):
        if not params["axes"]:
            return item
        return item.replace(**{name: np.ascontiguousarray(np.flip(value, tuple(params["axes"])))
                               for name, value in item.volumes().items()})

    def inverse(self, item, params):
        return self.apply_params(item, params)


class RandomRotate90(Transform):
    """Rotate by k · 90° in a random plane whose two axes have equal spacing (in-plane yx when anisotropic).

    In a plane whose two sizes differ only k ∈ {0, 2} is drawn, so the shape never changes.

    Examples
    --------
    >>> labels = np.zeros((8, 16, 16), np.uint16); labels[2:6, 4:12, 4:10] = 1
    >>> item = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> out = RandomRotate90()(item, rng=0)
    >>> out.shape, int((out.labels > 0).sum()) == int((labels > 0).sum())
    ((8, 16, 16), True)
    """

    def make_params(self, item, rng):
        planes = [(a, b) for a, b in ((1, 2), (0, 1), (0, 2))
                  if math.isclose(item.voxel_spacing()[a], item.voxel_spacing()[b], rel_tol=1e-3)]
        if not planes:
            return {"k": 0, "plane": [1, 2]}
        plane = planes[int(rng.integers(len(planes)))]
        square = item.image.shape[plane[0]] == item.image.shape[plane[1]]
        return {"k": int(rng.integers(4)) if square else 2 * int(rng.integers(2)), "plane": list(plane)}

    def apply_params(self, item, params, rng=None):
        if params["k"] % 4 == 0:
            return item
        return item.replace(**{name: np.ascontiguousarray(np.rot90(value, params["k"], tuple(params["plane"])))
                               for name, value in item.volumes().items()})

    def inverse(self, item, params):
        return self.apply_params(item, {**params, "k": -params["k"]})


def _plane_rotation(angle: float, a: int, b: int) -> np.ndarray:
    matrix = np.eye(3)
    cos, sin = math.cos(angle), math.sin(angle)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = cos, -sin, sin, cos
    return matrix


class RandomRotate(_Geometric):
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
    >>> out = RandomRotate(max_angle_deg=30)(item, rng=0)
    >>> out.shape, np.unique(out.labels).tolist()
    ((8, 16, 16), [0, 1])
    """

    def __init__(self, max_angle_deg: float = 180.0, max_tilt_deg: float = 0.0, image_order: int = 1,
                 fill: Fill = "min"):
        super().__init__(image_order, fill)
        if not (0 <= max_angle_deg <= 180 and 0 <= max_tilt_deg <= 180):
            raise InputError(f"rotation angles must lie in [0, 180] degrees; got {max_angle_deg}, {max_tilt_deg}")
        self.max_angle_deg, self.max_tilt_deg = float(max_angle_deg), float(max_tilt_deg)

    def make_params(self, item, rng):
        degrees = rng.uniform(-1, 1, 3) * [self.max_angle_deg, self.max_tilt_deg, self.max_tilt_deg]
        return {"angle_deg": float(degrees[0]), "tilt_y_deg": float(degrees[1]), "tilt_x_deg": float(degrees[2])}

    def apply_params(self, item, params, rng=None):
        angle, tilt_y, tilt_x = np.radians([params["angle_deg"], params["tilt_y_deg"], params["tilt_x_deg"]])
        rotation = _plane_rotation(angle, 1, 2) @ _plane_rotation(tilt_y, 0, 2) @ _plane_rotation(tilt_x, 0, 1)
        scale = np.diag(item.voxel_spacing())
        matrix = np.linalg.inv(scale) @ rotation.T @ scale  # output voxel -> µm -> rotated back -> input voxel
        centre = (np.asarray(item.image.shape) - 1) / 2
        return self._affine(item, matrix, centre - matrix @ centre, mode="constant")


class _Zoom(_Geometric):
    """Crop a random sub-box of size ``shape / factor`` and resize it back to ``shape``."""

    def _crop_params(self, item: Sample, factors: np.ndarray, rng: np.random.Generator) -> dict:
        """Where the crop of ``shape / factors`` starts (voxels), drawn for ``item``."""
        shape = np.asarray(item.image.shape, float)
        starts = rng.uniform(0, 1, 3) * (shape - shape / factors)
        return {"factors": [float(f) for f in factors], "starts": [float(s) for s in starts]}

    def apply_params(self, item, params, rng=None):
        factors, starts = np.asarray(params["factors"]), np.asarray(params["starts"])
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

    def make_params(self, item, rng):
        factors = np.ones(3)
        factors[1 + int(rng.integers(2))] = rng.uniform(1, self.max_factor)
        return self._crop_params(item, factors, rng)


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
        self.scale = check_range_pair(scale, "scale", positive=True)
        if self.scale[1] > 1:
            raise InputError(f"crop scale must lie in (0, 1]; got {scale!r}")
        self.axes = check_axes(axes)

    def make_params(self, item, rng):
        factors = np.ones(3)
        factors[list(self.axes)] = 1 / rng.uniform(*self.scale)
        return self._crop_params(item, factors, rng)


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
        self.alpha_um, self.sigma_um, self.axes = float(alpha_um), float(sigma_um), check_axes(axes)

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

    def apply_params(self, item, params, rng=None):
        coordinates = np.indices(item.image.shape, np.float32)
        coordinates += self.displacement(item.image.shape, item.voxel_spacing(), np.random.default_rng(rng))
        return self._resample(item, lambda a, order, cval: ndi.map_coordinates(
            a, coordinates, order=order, mode="nearest", prefilter=order > 1))


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
        self.p = check_probability(p)

    def __repr__(self) -> str:
        return f"CopyPaste(pool=<{len(self.pool)} sources>, p={self.p})"

    def make_params(self, item, rng):
        if item.labels is None:
            raise InputError("copy-paste needs the target's labels")
        index = int(rng.integers(len(self.pool)))
        source = self.pool[index]
        if not np.allclose(source.spacing, item.spacing, rtol=1e-3):
            raise InputError(f"copy-paste source spacing {source.spacing} µm differs from the target's "
                             f"{item.spacing} µm")
        if any(s < t for s, t in zip(source.image.shape, item.image.shape, strict=True)):
            raise InputError(f"copy-paste source shape {source.image.shape} is smaller than the target's "
                             f"{item.image.shape}")
        starts = [int(rng.integers(s - t + 1)) for s, t in zip(source.image.shape, item.image.shape, strict=True)]
        window = tuple(slice(a, a + n) for a, n in zip(starts, item.image.shape, strict=True))
        taken = [offset + 1 for offset, box in enumerate(ndi.find_objects(source.labels[window]))
                 if box is not None and rng.random() < self.p]
        return {"source": index, "starts": starts, "taken": taken}

    def apply_params(self, item, params, rng=None):
        source = self.pool[params["source"]]
        window = tuple(slice(a, a + n) for a, n in zip(params["starts"], item.image.shape, strict=True))
        source_labels, source_image = source.labels[window], source.image[window]
        labels, image = item.labels.astype(np.uint32), item.image.copy()
        next_id = int(labels.max()) + 1
        boxes = ndi.find_objects(source_labels)
        for instance in params["taken"]:
            box = boxes[instance - 1]
            mask = source_labels[box] == instance
            if labels[box][mask].any():
                continue
            labels[box][mask] = next_id
            image[box][mask] = source_image[box][mask]
            next_id += 1
        return item.replace(image=image, labels=labels, local_std=None, semantic=None)  # semantic: from the labels


def _renamed(old: str, new: type) -> type:
    """``new`` under its old name, warning once per construction that the name says too little."""
    def __init__(self, *args, **kwargs):
        warnings.warn(f"{old} is now {new.__name__} (it draws at random; MONAI's Flip vs RandFlip); the name {old} "
                      "will go", DeprecationWarning, stacklevel=2)
        new.__init__(self, *args, **kwargs)

    return type(old, (new,), {"__init__": __init__, "__doc__": f"Deprecated name of :class:`{new.__name__}`."})


Flip, Rotate90, Rotate = (_renamed(old, new) for old, new in (("Flip", RandomFlip), ("Rotate90", RandomRotate90),
                                                               ("Rotate", RandomRotate)))

