"""Weighted-Voronoi cells and their membranes (Eschweiler et al., data synthesis eq. 3).

Every foreground voxel ``x`` goes to the seed ``j`` with the smallest weighted distance
``‖x − x_j‖ / γ_j`` (µm): a multiplicatively weighted Voronoi tessellation, where heavier seeds grow
larger cells with curved walls. The assignment is exact: the volume is processed in blocks, and for
each block only the seeds that can win somewhere in it are compared. A seed ``j`` beats the nearest
seed ``1`` at ``x`` only if ``d_j(x) < d_1(x) · γ_max / γ_min``; with the block centre ``c`` and
half-diagonal ``h`` this means ``d_j(c) < (d_1(c) + h) · γ_max / γ_min + h``, a KD-tree ball query.
Memory stays bounded by the block size whatever the volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from cellsynth.checks import check_spacing
from cellsynth.errors import InputError

#: Block edge in voxels for the exact assignment (trades Python overhead against array sizes).
BLOCK = 16


def seed_weights(n_seeds: int, low: float = 1.0, high: float = 1.25, rng=None) -> np.ndarray:
    """Seed weights γ ~ U(low, high) (the reference draws them in 1…1.25).

    Parameters
    ----------
    n_seeds : int
    low, high : float
        The range of γ.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray
        float64, one weight per seed.

    Examples
    --------
    >>> seed_weights(3, 1.0, 1.25, rng=0).round(3)
    array([1.159, 1.067, 1.01 ])
    """
    rng = np.random.default_rng(rng)
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high):
        raise InputError(f"weights need 0 < low <= high; got low={low!r}, high={high!r}")
    return rng.uniform(low, high, n_seeds)


def voronoi_cells(
    foreground: np.ndarray,
    spacing: Sequence[float],
    seeds_um: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    block: int = BLOCK,
) -> np.ndarray:
    """Label every foreground voxel with its multiplicatively weighted Voronoi cell.

    Parameters
    ----------
    foreground : ndarray of bool
        Voxels to assign (the organism); the rest stay 0.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    seeds_um : ndarray, shape (n, 3)
        Seed positions, ZYX µm.
    weights : ndarray, shape (n,), optional
        γ_j > 0; default all 1 (plain Voronoi).
    block : int
        Edge of the processing blocks, voxels.

    Returns
    -------
    ndarray of uint16 or uint32
        Seed j owns id j + 1; ties go to the lower id.

    Examples
    --------
    >>> import numpy as np
    >>> foreground = np.ones((20, 40, 40), bool)
    >>> seeds = np.array([[10.0, 5.0, 10.0], [10.0, 15.0, 10.0]])  # µm
    >>> np.unique(voronoi_cells(foreground, (1.0, 0.5, 0.5), seeds)).tolist()
    [1, 2]
    """
    spacing_arr = np.asarray(check_spacing(spacing))
    foreground = np.asarray(foreground, bool)
    seeds = np.asarray(seeds_um, float).reshape(-1, 3)
    if len(seeds) == 0:
        raise InputError("at least one seed is needed for a Voronoi tessellation")
    weights = np.ones(len(seeds)) if weights is None else np.asarray(weights, float)
    if weights.shape != (len(seeds),) or not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise InputError(f"weights must be {len(seeds)} finite numbers > 0, one per seed")
    ratio = weights.max() / weights.min()
    tree = cKDTree(seeds)
    labels = np.zeros(foreground.shape, np.uint16 if len(seeds) < 2**16 else np.uint32)
    half_diagonal = 0.5 * np.linalg.norm((block - 1) * spacing_arr)
    for start in np.ndindex(*[int(np.ceil(n / block)) for n in foreground.shape]):
        box = tuple(slice(s * block, min((s + 1) * block, n)) for s, n in zip(start, foreground.shape, strict=True))
        inside = foreground[box]
        if not inside.any():
            continue
        offsets = [np.arange(b.start, b.stop) * s for b, s in zip(box, spacing_arr, strict=True)]
        centre = np.array([(o[0] + o[-1]) / 2 for o in offsets])
        nearest = tree.query(centre)[0]
        candidates = np.sort(tree.query_ball_point(centre, (nearest + half_diagonal) * ratio + half_diagonal))
        points = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1)[inside]
        if len(candidates) == 1:
            owner = np.full(len(points), candidates[0])
        else:
            distance = np.sqrt(((points[:, None, :] - seeds[candidates][None]) ** 2).sum(axis=-1))
            owner = candidates[np.argmin(distance / weights[candidates], axis=1)]
        labels[box][inside] = owner + 1
    return labels


def membrane_mask(
    labels: np.ndarray,
    spacing: Sequence[float],
    thickness_um: float,
    *,
    include_surface: bool = False,
) -> np.ndarray:
    """Voxels within ``thickness_um / 2`` of a wall between two cells, rounded to whole voxels.

    Along each axis a wall is ``m = max(1, round(thickness_um / spacing))`` voxels thick: ``ceil(m/2)``
    on the side of the lower label and ``floor(m/2)`` on the other, so an odd count stays odd and the
    measured thickness is within half a voxel of ``thickness_um`` (one voxel at the least, so a wall
    is closed along every axis: 0.5 µm at a 2 µm z-spacing is 2 µm thick along z). Oblique walls use
    the ellipsoid with those half-widths. With ``include_surface``, the ``ceil(m/2)`` cell voxels
    next to background (the organism surface) count too.

    Parameters
    ----------
    labels : ndarray of int
        Cell labels, 0 = background.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    thickness_um : float
        Membrane thickness in µm, > 0.
    include_surface : bool
        Also mark cell voxels that touch the background.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> labels = np.zeros((1, 1, 12), np.uint16); labels[..., :6] = 1; labels[..., 6:] = 2
    >>> membrane_mask(labels, (1.0, 1.0, 0.25), 0.75)[0, 0].nonzero()[0].tolist()
    [4, 5, 6]
    """
    spacing_arr = np.asarray(check_spacing(spacing))
    if not np.isfinite(thickness_um) or thickness_um <= 0:
        raise InputError(f"membrane thickness must be > 0 µm; got {thickness_um!r}")
    voxels = np.maximum(np.round(thickness_um / spacing_arr), 1).astype(int)
    near_lower_label = _ellipsoid_footprint(-(-voxels // 2))
    near_higher_label = _ellipsoid_footprint(voxels // 2)
    labels = np.asarray(labels)
    cells = labels > 0
    top = np.iinfo(labels.dtype).max
    higher = ndimage.maximum_filter(labels, footprint=near_lower_label, mode="nearest") > labels
    lower = ndimage.minimum_filter(np.where(cells, labels, top), footprint=near_higher_label, mode="nearest")
    membrane = cells & (higher | (lower < labels))
    if include_surface:
        membrane |= cells & (ndimage.minimum_filter(labels, footprint=near_lower_label, mode="nearest") == 0)
    return membrane


def _ellipsoid_footprint(half_widths: np.ndarray) -> np.ndarray:
    """Offsets within an ellipsoid of the given half-widths in voxels (0 = that axis not searched)."""
    grid = np.meshgrid(*[np.arange(-h, h + 1) / max(h, 1) for h in half_widths], indexing="ij")
    return sum(g * g for g in grid) <= 1 + 1e-9
