"""Statistical shape models (Eschweiler et al., data synthesis §3.2) of star-convex shapes: fit from
labels, sample within ±3σ.

A shape is its radius (µm) from its centroid along ``N`` fixed, quasi-uniform unit vectors (a
Fibonacci sphere). Fitting stacks these radius vectors of the training shapes, takes their mean and
covariance and the eigen-decomposition ``Σ = Φ Λ Φᵀ`` (modes by decreasing variance). A new shape
is ``mean + Σ_j b_j φ_j`` with ``b_j ~ N(0, λ_j)`` truncated to ``±limit·√λ_j`` (limit 3 by
default). Shapes are voxelised like the SH nuclei: a voxel is inside when its distance to the
centre is ≤ the radius in its direction, interpolated from the nearest sample directions (a
KD-tree over unit vectors, so there is no pole or seam), which keeps concavities.

Shapes keep the orientation they had in the training images (microscope axes): no alignment is
done, so the model also learns the typical orientation, e.g. nuclei flattened along z.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage.measure import regionprops

from cellsynth.checks import as_volume, check_labels, check_regular_file, check_spacing
from cellsynth.errors import FileFormatError, InputError
from cellsynth.io import write_bytes_atomic, write_json_atomic
from cellsynth.masks.derived import depth_below_surface_um

#: Number of ray directions of a fitted model.
DEFAULT_DIRECTIONS = 512
#: Radius-lookup neighbours (inverse-distance weighted) when voxelising.
_NEIGHBOURS = 4
SSM_FORMAT = 1


#: The covariance of the radii is directions × directions: 4096 rays make 134 MB and a few seconds.
MAX_DIRECTIONS = 4096


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` quasi-uniform unit vectors (ZYX) on the sphere (golden-angle spiral), deterministic."""
    if not 6 <= n <= MAX_DIRECTIONS:
        raise InputError(f"a shape model takes 6 to {MAX_DIRECTIONS} directions (its covariance holds directions² "
                         f"numbers); got {n}")
    index = np.arange(n) + 0.5
    z = 1 - 2 * index / n
    ring = np.sqrt(1 - z * z)
    angle = np.pi * (3 - np.sqrt(5)) * index
    return np.stack([z, ring * np.sin(angle), ring * np.cos(angle)], axis=1)


@dataclass(frozen=True)
class RadialShape:
    """A star-convex shape: radius (µm) along unit ``directions`` (N, 3, ZYX) from its centre."""

    directions: np.ndarray
    radii: np.ndarray

    @cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self.directions)

    @property
    def mean_radius(self) -> float:
        return float(self.radii.mean())

    @property
    def max_radius(self) -> float:
        return float(self.radii.max())

    def radius(self, offsets_um: np.ndarray) -> np.ndarray:
        """Radius in the directions of ``offsets_um`` (…, 3): inverse-distance weights of the nearest samples."""
        offsets = np.asarray(offsets_um, float)
        norm = np.linalg.norm(offsets, axis=-1, keepdims=True)
        unit = np.divide(offsets, norm, out=np.tile([1.0, 0, 0], offsets.shape[:-1] + (1,)), where=norm > 0)
        distance, index = self._tree.query(unit, k=_NEIGHBOURS)
        weight = 1.0 / (distance + 1e-9)
        return (self.radii[index] * weight).sum(axis=-1) / weight.sum(axis=-1)

    def normalised_distance(self, offsets_um: np.ndarray) -> np.ndarray:
        return np.linalg.norm(offsets_um, axis=-1) / self.radius(offsets_um)


def ray_radii(mask: np.ndarray, spacing: Sequence[float], centre_um: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance (µm) from ``centre_um`` to where each ray first leaves ``mask``.

    Rays are sampled every quarter of the finest voxel; a voxel covers ±½ voxel around its centre,
    so a one-voxel object at the centre has radius ½ voxel along each axis. Leaving the volume
    counts as leaving the mask.
    """
    spacing_arr = np.asarray(spacing, float)
    step = spacing_arr.min() / 4
    reach = float(np.linalg.norm(np.asarray(mask.shape) * spacing_arr)) + step
    t = np.arange(0.0, reach, step)
    points = (centre_um[None, None, :] + t[None, :, None] * directions[:, None, :]) / spacing_arr
    inside = ndimage.map_coordinates(mask.astype(np.uint8), points.reshape(-1, 3).T, order=0, mode="constant",
                                     cval=0).reshape(len(directions), len(t)).astype(bool)
    first_out = np.argmin(inside, axis=1)  # rays end outside: reach exceeds the volume diagonal
    return np.maximum(t[first_out] - step / 2, step / 2)


def _shape_centre(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The centroid (µm), or the deepest voxel when the centroid is outside (a non-star-convex shape)."""
    centroid = np.array(ndimage.center_of_mass(mask)) * spacing
    voxel = tuple(np.clip(np.rint(centroid / spacing).astype(int), 0, np.asarray(mask.shape) - 1))
    if mask[voxel]:
        return centroid
    depth = depth_below_surface_um(mask, spacing)
    return np.array(np.unravel_index(np.argmax(depth), mask.shape)) * spacing


def shape_radii(
    volumes: np.ndarray | Sequence[np.ndarray],
    spacing: Sequence[float],
    directions: np.ndarray,
    *,
    per: str = "instance",
    exclude_border: bool = True,
) -> np.ndarray:
    """Radius vectors (k, N) in µm of the shapes in ``volumes``.

    ``per='instance'``: every labelled object (objects cut by the volume border are left out with
    ``exclude_border``); ``per='foreground'``: the non-zero region of each volume is one shape
    (a specimen). Holes inside a shape are filled first, so a ray does not stop at an unlabelled
    cavity (a nucleolus left out of a segmentation).
    """
    if per not in ("instance", "foreground"):
        raise InputError(f"unknown shape unit '{per}'; accepted: instance, foreground")
    spacing_arr = np.asarray(check_spacing(spacing))
    stack = [volumes] if isinstance(volumes, np.ndarray) else list(volumes)
    rows = []
    for volume in stack:
        labels = (as_volume(np.asarray(volume), "label volume") if per == "foreground"
                  else check_labels(volume, "label volume"))  # instances need integer ids >= 0
        if per == "foreground":
            if labels.any():
                mask = ndimage.binary_fill_holes(labels != 0)
                rows.append(ray_radii(mask, spacing_arr, _shape_centre(mask, spacing_arr), directions))
            continue
        for region in regionprops(labels.astype(np.int64, copy=False)):
            low, high = np.asarray(region.bbox[:3]), np.asarray(region.bbox[3:])
            if exclude_border and (np.any(low == 0) or np.any(high == labels.shape)):
                continue
            mask = ndimage.binary_fill_holes(np.pad(region.image, 1))  # a dark nucleolus is not outside
            rows.append(ray_radii(mask, spacing_arr, _shape_centre(mask, spacing_arr), directions))
    if not rows:
        what = "instance inside the volume (not touching its border)" if per == "instance" and exclude_border else \
            ("labelled instance" if per == "instance" else "non-empty foreground")
        raise InputError(f"cannot fit a shape model: no {what} in the given label volume(s)")
    return np.asarray(rows)


@dataclass(frozen=True)
class StatisticalShapeModel:
    """Mean radius vector, modes and variances of a set of star-convex shapes (µm).

    Attributes
    ----------
    directions : ndarray, shape (N, 3)
        Unit ray directions, ZYX.
    mean : ndarray, shape (N,)
        Mean radius along each direction, µm.
    modes : ndarray, shape (N, m)
        Orthonormal eigenvectors of the covariance, by decreasing variance.
    variances : ndarray, shape (m,)
        Eigenvalues λ (µm²), decreasing, all > 0.
    n_training : int
        Number of shapes fitted.

    Examples
    --------
    >>> ball = np.linalg.norm(np.indices((20, 20, 20)) - 9.5, axis=0) < 6
    >>> model = fit_ssm([ball.astype(np.uint16)], (1, 1, 1), n_directions=64)
    >>> model.mean.shape, round(float(model.mean.mean()), 1)
    ((64,), 6.0)
    >>> len(model.sample_shapes(2, rng=0))
    2
    """

    directions: np.ndarray
    mean: np.ndarray
    modes: np.ndarray
    variances: np.ndarray
    n_training: int

    @property
    def n_modes(self) -> int:
        return int(len(self.variances))

    def project(self, radii: np.ndarray) -> np.ndarray:
        """Mode weights ``b = Φᵀ (r − mean)`` of radius vectors (…, N)."""
        return (np.asarray(radii) - self.mean) @ self.modes

    def reconstruct(self, weights: np.ndarray) -> np.ndarray:
        """Radius vectors ``mean + Φ b`` from weights (…, m'), using the first m' modes."""
        weights = np.asarray(weights, float)
        return self.mean + weights @ self.modes[:, : weights.shape[-1]].T

    def sample_radii(self, n: int = 1, *, n_modes: int | None = None,
                     limit: float = 3.0, min_radius_fraction: float = 0.1, rng=None) -> np.ndarray:
        """``n`` random radius vectors (n, N) from the first ``n_modes`` modes (default all).

        Each ``b_j`` is normal with variance λ_j, redrawn until within ``±limit·√λ_j``; radii are
        floored at ``min_radius_fraction`` of the mean radius so no shape turns inside out.
        """
        rng = np.random.default_rng(rng)
        n_modes = self.n_modes if n_modes is None else n_modes
        if not 0 <= n_modes <= self.n_modes:
            raise InputError(f"n_modes must be in 0..{self.n_modes} for this model; got {n_modes}")
        if not limit > 0:
            raise InputError(f"mode limit must be > 0 standard deviations; got {limit!r}")
        z = rng.standard_normal((n, n_modes))
        while np.any(out := np.abs(z) > limit):
            z[out] = rng.standard_normal(int(out.sum()))
        radii = self.reconstruct(z * np.sqrt(self.variances[:n_modes]))
        return np.maximum(radii, min_radius_fraction * self.mean.mean())

    def shape(self, radii: np.ndarray) -> RadialShape:
        return RadialShape(self.directions, np.asarray(radii, float))

    def sample_shapes(self, n: int, rng=None, **kwargs) -> list[RadialShape]:
        """``n`` random shapes (see :meth:`sample_radii` for the options)."""
        rng = np.random.default_rng(rng)
        return [self.shape(r) for r in self.sample_radii(n, **kwargs, rng=rng)]

    def summary(self) -> str:
        """One line: shapes, modes, the variance the first three explain and the mean radius (µm).

        Examples
        --------
        >>> labels = np.zeros((16, 32, 48), np.uint16); labels[4:12, 8:24, 4:20], labels[2:14, 6:26, 26:44] = 1, 2
        >>> print(fit_ssm(labels, (1.0, 1.0, 1.0), n_directions=64).summary())
        2 shapes, 1 modes (first three explain 100 %), mean radius 8.52 µm
        """
        explained = self.variances / self.variances.sum() if self.n_modes else np.zeros(0)
        shares = ", ".join(f"{100 * e:.0f} %" for e in explained[:3]) or "nothing"
        return (f"{self.n_training} shapes, {self.n_modes} modes (first three explain {shares}), "
                f"mean radius {self.mean.mean():.2f} µm")

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``PATH.npz`` (arrays) and ``PATH.json`` (format and sizes), atomically; returns the npz path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InputError(f"a shape model is saved as .npz (plus a .json beside it); got '{path.name}'")
        buffer = io.BytesIO()
        np.savez(buffer, directions=self.directions, mean=self.mean, modes=self.modes, variances=self.variances)
        write_bytes_atomic(path, buffer.getvalue())
        write_json_atomic(path.with_suffix(".json"), {
            "cellsynth_ssm": SSM_FORMAT, "n_directions": len(self.mean), "n_modes": self.n_modes,
            "n_training": self.n_training, "units": "µm",
            "explained_variance": (self.variances / self.variances.sum()).round(6).tolist() if self.n_modes else [],
        })
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> StatisticalShapeModel:
        """Read a model written by :meth:`save` (never unpickles)."""
        path = Path(path)
        for part in (path, path.with_suffix(".json")):
            if part.exists():
                check_regular_file(part, "shape model")
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            with np.load(path, allow_pickle=False) as arrays:
                fields = {key: np.asarray(arrays[key], float) for key in ("directions", "mean", "modes", "variances")}
        except (OSError, ValueError, KeyError) as err:
            raise FileFormatError(f"'{path}' is not a cellsynth shape model (.npz + .json): {err}") from None
        if not isinstance(meta, dict) or meta.get("cellsynth_ssm") != SSM_FORMAT:
            raise FileFormatError(f"'{path.with_suffix('.json')}' is not a cellsynth shape model description")
        n = len(fields["mean"])
        if fields["directions"].shape != (n, 3) or fields["modes"].shape != (n, len(fields["variances"])):
            raise FileFormatError(f"'{path}': inconsistent array shapes in the shape model")
        return cls(**fields, n_training=int(meta.get("n_training", 0)))


def fit_ssm(
    volumes: np.ndarray | Sequence[np.ndarray],
    spacing: Sequence[float],
    *,
    per: str = "instance",
    n_directions: int = DEFAULT_DIRECTIONS,
    exclude_border: bool = True,
) -> StatisticalShapeModel:
    """Fit a statistical shape model to the shapes in label volume(s).

    Parameters
    ----------
    volumes : ndarray or sequence of ndarray
        Label volume(s), ZYX (a 2D image is one z-slice).
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm, shared by the volumes.
    per : {'instance', 'foreground'}
        Fit each labelled object (nuclei, cells) or each volume's whole foreground (specimens).
    n_directions : int
        Rays per shape.
    exclude_border : bool
        Leave out instances cut by the volume border (their radii would be truncated).

    Returns
    -------
    StatisticalShapeModel
        Modes with variance above 1e-10 of the largest (k shapes give at most k − 1 modes).

    Raises
    ------
    InputError
        If there is no shape to fit.

    Examples
    --------
    >>> zz, yy, xx = np.ogrid[:20, :32, :72]
    >>> labels = np.zeros((20, 32, 72), np.uint16)
    >>> for k, (cx, r) in enumerate([(12, 4), (34, 5), (56, 6)], 1):  # three ellipsoids inside the volume
    ...     labels[((zz - 10) / r) ** 2 + ((yy - 16) / r) ** 2 + ((xx - cx) / (r + 2)) ** 2 <= 1] = k
    >>> model = fit_ssm(labels, (1.0, 1.0, 1.0), n_directions=64)
    >>> model.n_training, model.n_modes
    (3, 2)
    """
    directions = fibonacci_directions(n_directions)
    radii = shape_radii(volumes, spacing, directions, per=per, exclude_border=exclude_border)
    mean = radii.mean(axis=0)
    if len(radii) < 2:
        return StatisticalShapeModel(directions, mean, np.empty((len(mean), 0)), np.empty(0), len(radii))
    variances, modes = np.linalg.eigh(np.cov(radii, rowvar=False))
    order = np.argsort(variances)[::-1]
    variances, modes = variances[order], modes[:, order]
    keep = variances > 1e-10 * max(variances[0], 1e-300)
    return StatisticalShapeModel(directions, mean, modes[:, keep], variances[keep], len(radii))


def fit_ssm_files(paths: Sequence[str | os.PathLike], spacing: Sequence[float] | None = None,
                  **options) -> StatisticalShapeModel:
    """:func:`fit_ssm` on label files or folders of them, with the spacing they carry (or ``spacing``, µm).

    Parameters
    ----------
    paths : sequence of path-like
        Label files, or one folder of them.
    spacing : 3 floats, optional
        Voxel size in µm of files without one.
    **options
        Keywords of :func:`fit_ssm` (``per``, ``n_directions``, ``exclude_border``).

    Returns
    -------
    StatisticalShapeModel

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from cellsynth.io import write_volume
    >>> zz, yy, xx = np.ogrid[:20, :32, :72]
    >>> labels = np.zeros((20, 32, 72), np.uint16)
    >>> for k, (cx, r) in enumerate([(12, 4), (34, 5), (56, 6)], 1):
    ...     labels[((zz - 10) / r) ** 2 + ((yy - 16) / r) ** 2 + ((xx - cx) / (r + 2)) ** 2 <= 1] = k
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_volume(folder / "labels.tif", labels, (1.0, 1.0, 1.0))
    >>> fit_ssm_files([folder], n_directions=64).n_training
    3
    """
    from cellsynth.io import read_volume, volume_files

    files, _ = volume_files(paths, "label")
    volumes = []
    for file in files:
        volume, spacing = read_volume(file, spacing)
        volumes.append(volume)
    return fit_ssm(volumes, spacing, **options)
