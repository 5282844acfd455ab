"""Star-convex nuclei (spherical harmonics or oriented ellipsoids) voxelised into instance labels.

Shapes
------
A shape maps an offset ``d`` from its centre (µm) to a normalised distance ``q(d)``: the voxel is
inside when ``q <= 1``. For a spherical-harmonic shape ``q = |d| / r(θ, φ)``; for an ellipsoid
``q = |A⁻¹ Rᵀ d|``. Both are evaluated only inside the cell's own bounding box.

Spherical-harmonic radii (Eschweiler et al., data synthesis §3.3, fixed)
------------------------------------------------
``r(θ, φ) = Σ c_lm Y_lm(θ, φ)`` with real, 4π-normalised harmonics (so the mean of r over the
sphere is exactly ``c_00``). ``c_00`` is the requested mean radius; ``c_1m = 0`` (degree 1 is a
translation of the centre, not a shape change); for ``l >= 2`` each coefficient is
``c_00 · N(0, 1) · sqrt(P_l / (2l + 1))``. The degree power ``P_l ∝ l^(-γ) = exp(-γ ln l)`` decays
exponentially in γ as in the paper, and is normalised so that ``Σ P_l = deformation²``: the
expected RMS of ``r / c_00 - 1`` is ``deformation`` whatever γ, and γ alone sets smoothness
(larger γ, less of the deformation in high degrees). The reference's un-normalised ``l^(-5)``
amounts to γ = 5, deformation ≈ 0.19. If a draw dips below ``min_radius_fraction`` of the mean
anywhere, its deformation (all ``l >= 2`` terms) is scaled down until it does not: radii are
never negative and the mean radius stays exact.

Voxel rule for contacts
-----------------------
Placement keeps centres apart, but two shapes can still reach into the same voxels. Such a voxel
goes to the cell in which it lies deepest (smallest ``q``), independent of drawing order (an exact
tie keeps the cell drawn first); the number of contested voxels is reported. Nothing is silently
overwritten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cellsynth.checks import check_spacing
from cellsynth.errors import InputError
from cellsynth.masks.derived import depth_below_surface_um

#: Degree of the SH expansion of random nuclei.
DEFAULT_LMAX = 12


def _check_positive(value: float, what: str) -> float:
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{what} must be a finite number > 0 (µm); got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SHShape:
    """A star-convex shape given by its radius on a Driscoll–Healy grid (north pole = +z).

    Attributes
    ----------
    coefficients : ndarray, shape (2, L+1, L+1)
        Real 4π-normalised SH coefficients in µm (pyshtools layout: cosine, sine).
    grid : ndarray, shape (nlat, nlon)
        Radius in µm at colatitudes 0..π (rows) and longitudes 0..2π inclusive (columns).
    """

    coefficients: np.ndarray
    grid: np.ndarray

    @classmethod
    def from_coefficients(cls, coefficients: np.ndarray, grid_lmax: int | None = None) -> SHShape:
        """Expand coefficients onto a fine grid (at least 4× the coefficients' degree)."""
        from pyshtools.expand import MakeGridDH  # heavy import, only where shapes are made

        lmax = coefficients.shape[1] - 1
        grid = MakeGridDH(coefficients, sampling=2, extend=True, lmax=grid_lmax or max(4 * lmax, 32),
                          norm=1, csphase=1)
        return cls(coefficients=coefficients, grid=grid)

    @property
    def mean_radius(self) -> float:
        """Mean radius over the sphere (µm): the ``c_00`` coefficient."""
        return float(self.coefficients[0, 0, 0])

    @property
    def max_radius(self) -> float:
        return float(self.grid.max())

    def radius(self, offsets_um: np.ndarray) -> np.ndarray:
        """``r(θ, φ)`` in the directions of ``offsets_um`` (…, 3) in ZYX µm; bilinear on the grid."""
        return self._radius(offsets_um, np.sqrt((offsets_um * offsets_um).sum(axis=-1)))

    def _radius(self, offsets_um: np.ndarray, rho: np.ndarray) -> np.ndarray:
        z, y, x = offsets_um[..., 0], offsets_um[..., 1], offsets_um[..., 2]
        colat = np.arccos(np.clip(np.divide(z, rho, out=np.ones_like(rho), where=rho > 0), -1, 1))
        lon = np.mod(np.arctan2(y, x), 2 * np.pi)
        nlat, nlon = self.grid.shape
        rows = colat * ((nlat - 1) / np.pi)
        cols = lon * ((nlon - 1) / (2 * np.pi))
        return ndimage.map_coordinates(self.grid, [rows, cols], order=1, mode="nearest")

    def normalised_distance(self, offsets_um: np.ndarray) -> np.ndarray:
        rho = np.sqrt((offsets_um * offsets_um).sum(axis=-1))
        return rho / self._radius(offsets_um, rho)


@dataclass(frozen=True)
class EllipsoidShape:
    """An ellipsoid with semi-axes (µm) along the columns of a rotation matrix."""

    semi_axes_um: tuple[float, float, float]
    rotation: np.ndarray  # (3, 3), columns = axis directions in ZYX

    @property
    def mean_radius(self) -> float:
        """Radius of the sphere of equal volume (µm)."""
        return float(np.prod(self.semi_axes_um) ** (1 / 3))

    @property
    def max_radius(self) -> float:
        return float(max(self.semi_axes_um))

    def normalised_distance(self, offsets_um: np.ndarray) -> np.ndarray:
        local = offsets_um @ self.rotation  # coordinates along the ellipsoid's own axes
        return np.sqrt(((local / np.asarray(self.semi_axes_um)) ** 2).sum(axis=-1))


@dataclass(frozen=True)
class FlattenedShape:
    """``shape`` squeezed along the unit vector ``axis`` to ``ratio`` of its extent across it, volume kept.

    Along the axis lengths scale by ``ratio^(2/3)``, across it by ``ratio^(-1/3)``: a sphere becomes
    an oblate spheroid with minor/major axis ratio ``ratio`` (a prolate one for ``ratio`` > 1).
    """

    shape: object
    axis: np.ndarray
    ratio: float

    @property
    def factors(self) -> tuple[float, float]:
        return self.ratio ** (2 / 3), self.ratio ** (-1 / 3)

    @property
    def mean_radius(self) -> float:
        return self.shape.mean_radius

    @property
    def max_radius(self) -> float:
        return self.shape.max_radius * max(self.factors)

    def normalised_distance(self, offsets_um: np.ndarray) -> np.ndarray:
        along_factor, across_factor = self.factors
        along = (offsets_um @ self.axis)[..., None] * self.axis
        return self.shape.normalised_distance(along / along_factor + (offsets_um - along) / across_factor)


#: Anything with ``normalised_distance(offsets_um)``, ``max_radius`` and ``mean_radius`` (also
#: :class:`cellsynth.masks.ssm.RadialShape`).
Shape = SHShape | EllipsoidShape | FlattenedShape


def random_sh_coefficients(
    mean_radius_um: float,
    *,
    gamma: float = 5.0,
    deformation: float = 0.15,
    lmax: int = DEFAULT_LMAX,
    rng=None,
) -> np.ndarray:
    """Draw the SH coefficients of a nucleus (see the module docstring), from ``rng`` only.

    Returns
    -------
    ndarray, shape (2, lmax+1, lmax+1)
        4π-normalised real coefficients in µm; ``[0, 0, 0]`` is the mean radius, degree 1 is zero.
    """
    rng = np.random.default_rng(rng)
    mean_radius_um = _check_positive(mean_radius_um, "nucleus radius")
    if lmax < 2:
        raise InputError(f"lmax must be >= 2 to deform a sphere; got {lmax}")
    if not np.isfinite(gamma) or gamma <= 0:
        raise InputError(f"smoothness gamma must be > 0; got {gamma!r}")
    if not np.isfinite(deformation) or deformation < 0:
        raise InputError(f"deformation must be >= 0 (relative RMS of the radius); got {deformation!r}")
    degrees = np.arange(lmax + 1)
    std = np.zeros(lmax + 1)
    power = degrees[2:].astype(float) ** (-gamma)
    power *= deformation**2 / power.sum()
    std[2:] = np.sqrt(power / (2 * degrees[2:] + 1))
    coefficients = rng.standard_normal((2, lmax + 1, lmax + 1)) * std[None, :, None]
    m = np.arange(lmax + 1)
    coefficients[:, degrees[:, None] < m[None, :]] = 0  # only m <= l exists
    coefficients[1, :, 0] = 0  # no sine term for m = 0
    coefficients[0, 0, 0] = 1.0
    return coefficients * mean_radius_um


def random_sh_shape(
    mean_radius_um: float,
    *,
    gamma: float = 5.0,
    deformation: float = 0.15,
    lmax: int = DEFAULT_LMAX,
    min_radius_fraction: float = 0.3,
    rng=None,
) -> SHShape:
    """A random spherical-harmonic nucleus whose mean radius is exactly ``mean_radius_um``.

    Parameters
    ----------
    rng : numpy.random.Generator
    mean_radius_um : float
        Mean radius over all directions, µm.
    gamma : float
        Smoothness: degree power ``∝ l^(-gamma)``; larger is smoother (paper: 5).
    deformation : float
        Expected RMS of ``r / mean - 1`` (0 gives a sphere).
    lmax : int
        Highest SH degree.
    min_radius_fraction : float
        Lowest radius allowed anywhere, as a fraction of the mean; larger draws are damped.

    Returns
    -------
    SHShape
    """
    rng = np.random.default_rng(rng)
    coefficients = random_sh_coefficients(mean_radius_um, gamma=gamma, deformation=deformation, lmax=lmax, rng=rng)
    shape = SHShape.from_coefficients(coefficients)
    floor = min_radius_fraction * mean_radius_um
    lowest = float(shape.grid.min())
    if lowest < floor:
        # r = mean + s·deformation is linear in s: pick s so that the lowest point sits on the floor.
        scale = (mean_radius_um - floor) / (mean_radius_um - lowest)
        coefficients = coefficients * scale
        coefficients[0, 0, 0] = mean_radius_um
        shape = SHShape.from_coefficients(coefficients)
    return shape


def rotation_to(direction: np.ndarray) -> np.ndarray:
    """A rotation matrix whose first column is the unit vector ``direction`` (ZYX)."""
    first = np.asarray(direction, float)
    first = first / np.linalg.norm(first)
    helper = np.array([1.0, 0, 0]) if abs(first[0]) < 0.9 else np.array([0, 1.0, 0])
    second = np.cross(first, helper)
    second /= np.linalg.norm(second)
    return np.stack([first, second, np.cross(first, second)], axis=1)


def ellipsoid_shape(
    mean_radius_um: float, elongation: float = 1.0, axis: Sequence[float] = (1.0, 0.0, 0.0)
) -> EllipsoidShape:
    """An ellipsoid of revolution with the volume of a sphere of ``mean_radius_um``.

    ``elongation`` > 1 stretches it along ``axis`` (e.g. the organism's surface normal) and
    flattens it across; < 1 makes a disc across ``axis``.
    """
    mean_radius_um = _check_positive(mean_radius_um, "nucleus radius")
    elongation = _check_positive(elongation, "elongation")
    across = mean_radius_um / elongation ** (1 / 3)
    return EllipsoidShape((across * elongation, across, across), rotation_to(np.asarray(axis)))


def rasterize_shapes(
    volume_shape: Sequence[int],
    spacing: Sequence[float],
    centres_um: np.ndarray,
    shapes: Sequence[Shape],
    *,
    foreground: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Voxelise shapes at their centres into an instance label volume.

    Each shape is evaluated in its own bounding box only; cells are clipped (not shifted) at the
    volume border and, with ``foreground``, to the foreground. Contested voxels go to the cell in
    which they lie deepest (module docstring).

    Parameters
    ----------
    volume_shape : sequence of int
        ZYX shape of the output.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    centres_um : ndarray, shape (n, 3)
        Cell centres, ZYX µm, voxel (0, 0, 0) at the origin.
    shapes : sequence of Shape
        One per centre.
    foreground : ndarray of bool, optional
        Voxels cells may occupy.

    Returns
    -------
    labels : ndarray of uint16 or uint32
        Cell i is id i + 1 (a cell left with no voxel is simply absent).
    info : dict
        ``n_contested_voxels`` and ``n_empty_cells``.
    """
    spacing_arr = np.asarray(check_spacing(spacing))
    centres_um = np.asarray(centres_um, float).reshape(-1, 3)
    if len(shapes) != len(centres_um):
        raise InputError(f"got {len(centres_um)} centres but {len(shapes)} shapes")
    dtype = np.uint16 if len(shapes) < 2**16 else np.uint32
    labels = np.zeros(tuple(volume_shape), dtype)
    depth = np.full(tuple(volume_shape), np.inf, np.float32)
    contested = 0
    upper = np.asarray(volume_shape)
    for index, (centre, shape) in enumerate(zip(centres_um, shapes, strict=True)):
        centre_vox = centre / spacing_arr
        reach = shape.max_radius / spacing_arr
        low = np.maximum(np.floor(centre_vox - reach).astype(int), 0)
        high = np.minimum(np.ceil(centre_vox + reach).astype(int) + 1, upper)
        if np.any(high <= low):
            continue
        box = tuple(slice(a, b) for a, b in zip(low, high, strict=True))
        grids = np.meshgrid(*[((np.arange(a, b) - c) * s).astype(np.float32) for a, b, c, s in
                              zip(low, high, centre_vox, spacing_arr, strict=True)], indexing="ij")
        offsets = np.stack(grids, axis=-1)
        # only the ball of the largest radius can be inside: evaluate the shape there alone
        near = (offsets * offsets).sum(axis=-1) <= np.float32(shape.max_radius) ** 2
        q = np.full(near.shape, np.inf, np.float32)
        q[near] = shape.normalised_distance(offsets[near])
        inside = q <= 1
        if foreground is not None:
            inside &= foreground[box]
        box_depth, box_labels = depth[box], labels[box]
        contested += int(np.count_nonzero(inside & (box_labels > 0)))
        wins = inside & (q < box_depth)
        box_depth[wins] = q[wins]
        box_labels[wins] = index + 1
    present = np.unique(labels)
    empty = len(shapes) - (len(present) - (present[0] == 0))
    return labels, {"n_contested_voxels": contested, "n_empty_cells": int(empty)}


def simulate_nuclei(
    foreground: np.ndarray,
    spacing: Sequence[float],
    centres_um: np.ndarray,
    *,
    radius_um: float = 4.0,
    radius_std_um: float = 0.4,
    shape: str = "sh",
    gamma: float = 5.0,
    deformation: float = 0.15,
    lmax: int = DEFAULT_LMAX,
    elongation: float = 1.0,
    flattening: float = 1.0,
    flattening_axis: str = "z",
    ssm=None,
    ssm_modes: int | None = None,
    ssm_limit: float = 3.0,
    rng=None,
) -> tuple[np.ndarray, dict]:
    """Nuclei of random size and shape at given centres, clipped to the foreground.

    Parameters
    ----------
    foreground : ndarray of bool
        The organism; cells are clipped to it. Its ZYX shape is the output's.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    rng : numpy.random.Generator
    centres_um : ndarray, shape (n, 3)
        From :mod:`cellsynth.masks.placement`.
    radius_um, radius_std_um : float
        Mean radius of each nucleus ~ N(radius_um, radius_std_um), truncated to ≥ radius_um / 4
        (SH and ellipsoid nuclei; SSM nuclei have the sizes of the shapes they were fitted to).
    shape : {'sh', 'ellipsoid', 'ssm'}
        Spherical-harmonic nuclei; ellipsoids whose long axis follows the organism's surface
        normal (the gradient of the µm distance to its surface); or shapes drawn from ``ssm``.
    gamma, deformation, lmax
        SH smoothness, relative RMS deformation and degree (see :func:`random_sh_shape`).
    elongation : float
        Ellipsoids only: long / short axis ratio.
    flattening : float
        Any shape: minor / major axis ratio of the squeeze along ``flattening_axis`` (volume kept;
        1 = none, 0.56 for the oblate nuclei of a cells3d monolayer; :class:`FlattenedShape`).
    flattening_axis : {'z', 'random'}
        The optical axis (nuclei lying flat in a monolayer) or a random direction per nucleus.
    ssm : cellsynth.masks.ssm.StatisticalShapeModel, optional
        Required with ``shape='ssm'``.
    ssm_modes, ssm_limit
        SSM nuclei: how many modes vary (default all) and within how many standard deviations.

    Returns
    -------
    labels : ndarray of uint16 or uint32
        Instance ids 1..n in the order of ``centres_um`` (a cell with no voxel left is absent).
    info : dict
        Per-cell mean radii (µm), ``n_contested_voxels``, ``n_empty_cells``.

    Examples
    --------
    >>> centres_um = np.array([[6.0, 5.0, 5.0], [6.0, 14.0, 14.0]])
    >>> labels, drawn = simulate_nuclei(np.ones((12, 40, 40), bool), (1.0, 0.5, 0.5), centres_um, radius_um=3.0, rng=0)
    >>> labels.dtype, np.unique(labels).tolist(), drawn['n_empty_cells']
    (dtype('uint16'), [0, 1, 2], 0)
    """
    rng = np.random.default_rng(rng)
    spacing = check_spacing(spacing)
    radius_um = _check_positive(radius_um, "nucleus radius")
    if not np.isfinite(radius_std_um) or radius_std_um < 0:
        raise InputError(f"radius_std_um must be >= 0; got {radius_std_um!r}")
    if shape not in ("sh", "ellipsoid", "ssm"):
        raise InputError(f"unknown nucleus shape '{shape}'; accepted: sh, ellipsoid, ssm")
    if (shape == "ssm") != (ssm is not None):
        raise InputError("a statistical shape model is needed with shape='ssm', and only then")
    foreground = np.asarray(foreground, bool)
    centres_um = np.asarray(centres_um, float).reshape(-1, 3)
    if shape == "ssm":
        shapes = ssm.sample_shapes(len(centres_um), n_modes=ssm_modes, limit=ssm_limit, rng=rng)
        radii = np.array([s.mean_radius for s in shapes])
    else:
        radii = np.maximum(rng.normal(radius_um, radius_std_um, len(centres_um)), radius_um / 4)
    if shape == "sh":
        shapes = [random_sh_shape(r, gamma=gamma, deformation=deformation, lmax=lmax, rng=rng) for r in radii]
    elif shape == "ellipsoid":
        normals = surface_normals(foreground, spacing, centres_um)
        shapes = [ellipsoid_shape(r, elongation, n) for r, n in zip(radii, normals, strict=True)]
    if not np.isfinite(flattening) or flattening <= 0:
        raise InputError(f"flattening must be a minor/major axis ratio > 0; got {flattening!r}")
    if flattening_axis not in ("z", "random"):
        raise InputError(f"unknown flattening axis '{flattening_axis}'; accepted: z, random")
    if flattening != 1:
        if flattening_axis == "z":
            axes = np.tile([1.0, 0.0, 0.0], (len(shapes), 1))
        else:
            axes = rng.standard_normal((len(shapes), 3))
            axes /= np.linalg.norm(axes, axis=1, keepdims=True)
        shapes = [FlattenedShape(s, a, float(flattening)) for s, a in zip(shapes, axes, strict=True)]
    labels, info = rasterize_shapes(foreground.shape, spacing, centres_um, shapes, foreground=foreground)
    return labels, {"radii_um": [round(float(r), 4) for r in radii], **info}


def surface_normals(foreground: np.ndarray, spacing: Sequence[float], points_um: np.ndarray,
                    smoothing_um: float = 2.0) -> np.ndarray:
    """Unit vectors at ``points_um`` pointing out of the organism (gradient of the µm distance map).

    Without an organism surface (the foreground fills the volume: a field of view inside tissue,
    whose faces are a crop) every vector is the optical axis z; a flat axis (2D) has no component.
    """
    spacing_arr = np.asarray(check_spacing(spacing))
    fallback = np.array([1.0, 0.0, 0.0])  # at a symmetry centre the gradient vanishes
    foreground = np.asarray(foreground, bool)
    if foreground.all():
        return np.tile(fallback, (len(np.asarray(points_um).reshape(-1, 3)), 1))
    distance = ndimage.gaussian_filter(depth_below_surface_um(foreground, spacing_arr), smoothing_um / spacing_arr)
    index = np.clip(np.rint(np.asarray(points_um) / spacing_arr).astype(int), 0, np.asarray(foreground.shape) - 1)
    gradient = np.stack([-np.gradient(distance, s, axis=a)[tuple(index.T)] if distance.shape[a] > 1 else
                         np.zeros(len(index)) for a, s in enumerate(spacing_arr)], -1)
    norm = np.linalg.norm(gradient, axis=-1, keepdims=True)
    return np.where(norm > 1e-9, gradient / np.maximum(norm, 1e-12), fallback)
