"""Cell positions in µm: Poisson-disk (blue noise), layer-wise shells, or from detections.

All positions are ZYX in µm with voxel (0, 0, 0) at the origin, so anisotropic voxels need no
special case: minimum distances are physical. When fewer cells fit than were asked for, the
functions place as many as fit, warn, and report the count; they never fail for lack of room.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from cellsynth.checks import check_regular_file, check_spacing
from cellsynth.errors import FileFormatError, InputError
from cellsynth.masks.derived import depth_below_surface_um


class CrowdedWarning(UserWarning):
    """Fewer cells were placed than asked for, because no room was left.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     points = poisson_disk_positions(np.ones((4, 10, 10), bool), (1, 1, 1), 6.0, n_cells=20, rng=0)
    >>> caught[0].category.__name__, len(points) < 20
    ('CrowdedWarning', True)
    """


def _distance_scale(min_distance_um: float | Sequence[float]) -> tuple[float, np.ndarray]:
    """(d, scale): an ellipsoidal exclusion (z, y, x) becomes a sphere of radius d after ``p * scale``."""
    values = np.broadcast_to(np.asarray(min_distance_um, float), (3,))
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"minimum distance must be > 0 µm (one number or z, y, x); got {min_distance_um!r}")
    d = float(values.max())
    return d, d / values


class _DiskGrid:
    """Accepted points hashed into cubic cells of side d: any point closer than d is in the 27 cells around.

    Sparse (a dict), so memory grows with the points, not the volume.
    """

    def __init__(self, distance: float):
        self.distance = distance
        self.cells: dict[tuple[int, int, int], list[np.ndarray]] = {}
        self.points: list[np.ndarray] = []

    def _key(self, point: np.ndarray) -> tuple[int, int, int]:
        return tuple(np.floor(point / self.distance).astype(int).tolist())  # type: ignore[return-value]

    def clear_of(self, point: np.ndarray) -> bool:
        kz, ky, kx = self._key(point)
        near = [p for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                for p in self.cells.get((kz + dz, ky + dy, kx + dx), ())]
        return not near or bool(np.all(((np.asarray(near) - point) ** 2).sum(axis=1) >= self.distance**2))

    def add(self, point: np.ndarray) -> None:
        self.cells.setdefault(self._key(point), []).append(point)
        self.points.append(point)


def _candidate_sampler(mask: np.ndarray, spacing: np.ndarray, rng: np.random.Generator):
    """A function ``draw(count)`` giving up to ``count`` uniform random positions (µm) inside ``mask``."""
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    low = np.array([s.start for s in box])
    high = np.array([s.stop for s in box])
    fraction = float(mask[box].mean())
    upper = np.asarray(mask.shape) - 1

    def draw(count: int) -> np.ndarray:
        voxels = rng.uniform(low - 0.5, high - 0.5, size=(int(count / fraction * 1.2) + 16, 3))
        keep = mask[tuple(np.clip(np.rint(voxels).astype(int), 0, upper).T)]
        return voxels[keep][:count] * spacing

    return draw


def poisson_disk_positions(
    region: np.ndarray,
    spacing: Sequence[float],
    min_distance_um: float | Sequence[float],
    *,
    n_cells: int | None = None,
    existing_um: np.ndarray | None = None,
    patience: int = 3000,
    rng=None,
) -> np.ndarray:
    """Blue-noise positions inside ``region`` with a minimum distance between any two.

    Dart throwing: uniform candidates inside the region are accepted when no accepted point (nor
    any of ``existing_um``) is closer than the minimum distance. Stops when ``n_cells`` are
    placed or after ``patience`` candidates in a row were rejected (the region is full).

    Parameters
    ----------
    region : ndarray of bool
        Voxels where centres may lie.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    min_distance_um : float or sequence of 3 float
        Minimum centre distance in µm; three values give an ellipsoidal exclusion (z, y, x).
    rng : numpy.random.Generator
    n_cells : int, optional
        How many to place; default as many as fit.
    existing_um : ndarray, shape (m, 3), optional
        Points already placed (kept clear of, not returned).
    patience : int
        Consecutive rejections that mean "no room left".

    Returns
    -------
    ndarray, shape (k, 3)
        ZYX µm. With ``n_cells`` given and ``k < n_cells``, a :class:`CrowdedWarning` says so.

    Examples
    --------
    >>> from scipy.spatial.distance import pdist
    >>> points = poisson_disk_positions(np.ones((10, 40, 40), bool), (1.0, 0.5, 0.5), 6.0, rng=0)
    >>> points.shape[1], bool(pdist(points).min() >= 6.0)
    (3, True)
    """
    rng = np.random.default_rng(rng)
    spacing_arr = np.asarray(check_spacing(spacing))
    region = np.asarray(region, bool)
    if n_cells is not None and n_cells < 0:
        raise InputError(f"n_cells must be >= 0; got {n_cells}")
    if not region.any():
        raise InputError("no voxel is available for cell centres (empty region or foreground)")
    d, scale = _distance_scale(min_distance_um)
    _check_packing(region, spacing_arr, min_distance_um, n_cells)
    grid = _DiskGrid(d)
    existing = np.asarray(existing_um if existing_um is not None else np.empty((0, 3)), float).reshape(-1, 3)
    # earlier points may be closer to each other than d, so they live in a KD-tree, not the grid
    tree = cKDTree(existing * scale) if len(existing) else None
    target = n_cells if n_cells is not None else np.inf
    rejected = 0
    draw = _candidate_sampler(region, spacing_arr, rng)
    while len(grid.points) < target and rejected < patience:
        for candidate in draw(1024):
            scaled = candidate * scale
            if grid.clear_of(scaled) and (tree is None or tree.query(scaled)[0] >= d):
                grid.add(scaled)
                rejected = 0
                if len(grid.points) >= target:
                    break
            else:
                rejected += 1
                if rejected >= patience:
                    break
    placed = np.asarray(grid.points, float).reshape(-1, 3) / scale
    if n_cells is not None and len(placed) < n_cells:
        warnings.warn(f"placed {len(placed)} of {n_cells} cells: no room for more at a minimum distance of "
                      f"{min_distance_um} µm", CrowdedWarning, stacklevel=2)
    return placed


#: No placement makes more cells than this (bounds every loop; a dataset of this many cells per volume
#: would not fit in memory as meshes or tables anyway).
MAX_CELLS = 200_000


def _check_packing(region: np.ndarray, spacing: np.ndarray, min_distance_um, n_cells: int | None) -> None:
    """Refuse a minimum distance so small that the region would take more than :data:`MAX_CELLS` centres."""
    distances = np.broadcast_to(np.asarray(min_distance_um, float), (3,))
    voxel_um3 = float(np.prod(spacing))
    if region.shape[0] == 1:  # a 2D field: discs in the plane
        capacity = region.sum() * spacing[1] * spacing[2] / (np.pi * distances[1] * distances[2] / 4) / 0.9
    else:
        capacity = region.sum() * voxel_um3 / (np.pi / 6 * np.prod(distances)) / 0.74
    wanted = capacity if n_cells is None else min(capacity, n_cells)
    if wanted > MAX_CELLS:
        raise InputError(f"a minimum cell distance of {distances.tolist()} µm lets about {capacity:.3g} cells into "
                         f"this volume; at most {MAX_CELLS} are placed: raise min_distance_um or set n_cells")


def layered_positions(
    foreground: np.ndarray,
    spacing: Sequence[float],
    cell_spacing_um: float,
    *,
    decay: float = 0.9,
    n_cells: int | None = None,
    patience: int = 3000,
    rng=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Layer-wise assembly (Eschweiler et al., data synthesis): a first layer along the organism surface,
    then layers inward.

    Layer k lies at depth ``d_k`` below the surface (µm, from the Euclidean distance map with the
    true spacing); its cells are Poisson-disk distributed with minimum distance
    ``s_k = cell_spacing_um / decay**k``, and layers are ``(s_k + s_{k+1}) / 2`` apart, starting at
    ``d_0 = s_0 / 2``. ``decay`` < 1 makes inner cells larger and sparser (the reference: 0.9 per
    ring); 1 keeps them uniform. Every cell also keeps ``s_k`` from cells of earlier layers.

    Parameters
    ----------
    foreground : ndarray of bool
        The organism.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    cell_spacing_um : float
        Least distance of the outermost layer's cells, µm.
    decay : float
        Spacing factor per layer inward (< 1: sparser).
    n_cells : int, optional
        Stop after this many cells.
    patience : int
        Failed draws before a layer is full.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    positions : ndarray, shape (k, 3)
        ZYX µm.
    layers : ndarray of int, shape (k,)
        Layer index of each cell, 0 = outermost.

    Examples
    --------
    >>> sphere = np.linalg.norm(np.indices((30, 30, 30)) - 14.5, axis=0) < 14
    >>> points, layers = layered_positions(sphere, (1, 1, 1), 5.0, rng=0)
    >>> points.shape[1], int(layers.min()), bool(layers.max() >= 1)
    (3, 0, True)
    """
    rng = np.random.default_rng(rng)
    spacing_arr = np.asarray(check_spacing(spacing))
    foreground = np.asarray(foreground, bool)
    if not foreground.any():
        raise InputError("the organism foreground is empty: no room for any cell")
    if not np.isfinite(cell_spacing_um) or cell_spacing_um <= 0:
        raise InputError(f"cell spacing must be > 0 µm; got {cell_spacing_um!r}")
    if not 0 < decay <= 1:
        raise InputError(f"layer decay must be in (0, 1]; got {decay!r}")
    depth = depth_below_surface_um(foreground, spacing_arr)
    positions, layers = np.empty((0, 3)), np.empty(0, int)
    layer, layer_depth, layer_spacing = 0, cell_spacing_um / 2, cell_spacing_um
    band = 0.5 * max(spacing_arr.max(), cell_spacing_um / 4)
    while depth.max() >= layer_depth - band and (n_cells is None or len(positions) < n_cells):
        shell = foreground & (np.abs(depth - layer_depth) <= band)
        if shell.any():
            remaining = None if n_cells is None else n_cells - len(positions)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CrowdedWarning)
                new = poisson_disk_positions(shell, spacing_arr, layer_spacing, n_cells=remaining,
                                             existing_um=positions, patience=patience, rng=rng)
            positions = np.concatenate([positions, new])
            layers = np.concatenate([layers, np.full(len(new), layer)])
        next_spacing = layer_spacing / decay
        layer_depth += (layer_spacing + next_spacing) / 2
        layer_spacing = next_spacing
        layer += 1
    if n_cells is not None and len(positions) < n_cells:
        warnings.warn(f"placed {len(positions)} of {n_cells} cells in {layer} layers: no room for more",
                      CrowdedWarning, stacklevel=2)
    return positions, layers


def positions_from_detections(
    detections: np.ndarray | str | os.PathLike,
    *,
    volume_shape: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
) -> np.ndarray:
    """Centroids (ZYX µm) from an array or a CSV file with columns ``z, y, x`` in µm.

    With ``volume_shape`` and ``spacing``, points outside the volume are an error.

    Parameters
    ----------
    detections : ndarray or path-like
        An (n, 3) array or a CSV file, ZYX µm.
    volume_shape : 3 ints, optional
        With ``spacing``: detections outside the volume are refused.
    spacing : 3 floats, optional
        Voxel size in µm.

    Returns
    -------
    ndarray, shape (n, 3)
        ZYX µm.

    Examples
    --------
    >>> detections_um = np.array([[2.0, 5.0, 5.0], [3.0, 9.0, 1.0]])
    >>> positions_from_detections(detections_um, volume_shape=(10, 20, 20), spacing=(1, 1, 1))
    array([[2., 5., 5.],
           [3., 9., 1.]])
    """
    if isinstance(detections, str | os.PathLike):
        path = Path(detections)
        try:
            check_regular_file(path, "detections")
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                header = reader.fieldnames or []
        except (OSError, InputError) as err:
            raise FileFormatError(str(err) if isinstance(err, InputError) else
                                  f"cannot read detections '{path}': {err.strerror or err}") from None
        columns = {name.strip().lower().removesuffix("_um"): name for name in header}
        if not {"z", "y", "x"} <= set(columns):
            raise FileFormatError(f"'{path}' needs a header with columns z, y, x (µm); found {sorted(columns)}")
        if not rows:
            raise FileFormatError(f"'{path}' has a header but no detection rows; give one z, y, x row per cell (µm)")
        try:
            points = np.array([[float(row[columns[a]]) for a in "zyx"] for row in rows], float)
        except ValueError as err:
            raise FileFormatError(f"'{path}' has a non-numeric coordinate ({err})") from None
    else:
        points = np.asarray(detections, float)
    points = points.reshape(-1, 3) if points.size else np.empty((0, 3))
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"detections must be an (n, 3) array of z, y, x in µm; got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise InputError("detections contain NaN or inf coordinates")
    if volume_shape is not None and spacing is not None:
        upper = (np.asarray(volume_shape) - 1) * np.asarray(check_spacing(spacing))
        outside = np.any((points < 0) | (points > upper), axis=1)
        if outside.any():
            raise InputError(f"{int(outside.sum())} detection(s) lie outside the volume (0..{upper.tolist()} µm), "
                             f"first at {points[outside][0].tolist()}")
    return points
