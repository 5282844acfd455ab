"""One call from a validated config to a simulated annotation: organism → positions → cells."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import check_spacing
from cellsynth.config import MasksConfig, OrganismConfig, PlacementConfig, VolumeConfig, validate_config
from cellsynth.errors import InputError
from cellsynth.io import read_volume
from cellsynth.masks.membranes import membrane_mask, seed_weights, voronoi_cells
from cellsynth.masks.nuclei import simulate_nuclei
from cellsynth.masks.organism import ellipsoid_organism, mask_organism, sh_organism, ssm_organism
from cellsynth.masks.placement import (
    CrowdedWarning,
    layered_positions,
    poisson_disk_positions,
    positions_from_detections,
)
from cellsynth.masks.ssm import StatisticalShapeModel
from cellsynth.sample import Sample


def masks_from_labels(labels: np.ndarray, spacing: Sequence[float], config: MasksConfig | dict | None = None,
                      foreground: np.ndarray | None = None) -> Sample:
    """Given labels as a renderer's input: membranes drawn as a simulation of ``config`` would draw them.

    Parameters
    ----------
    labels : ndarray of int
        Instance labels (nuclei, or cells of a membrane stain), ZYX.
    spacing : 3 floats
        Voxel size in µm.
    config : MasksConfig or dict, optional
        ``kind: membranes`` draws each cell's membrane (``membranes.thickness_um``,
        ``include_surface``); nuclei (the default) need nothing more.
    foreground : ndarray of bool, optional
        The organism; None (the default) means the whole volume (a field of view inside the specimen).

    Returns
    -------
    Sample
        The labels with their spacing, foreground and (membranes) membrane mask.

    Examples
    --------
    >>> labels = np.ones((4, 8, 8), np.uint16); labels[:, :, 4:] = 2
    >>> masks = masks_from_labels(labels, (1, 1, 1), {"kind": "membranes"})
    >>> masks.membranes[0, 0].astype(int).tolist()
    [0, 0, 0, 1, 0, 0, 0, 0]
    """
    spacing, config = check_spacing(spacing), _masks_config(config)
    walls = None
    if config.kind == "membranes":
        walls = membrane_mask(labels, spacing, config.membranes.thickness_um,
                              include_surface=config.membranes.include_surface)
    return Sample(labels, spacing=spacing, foreground=foreground, membranes=walls)


def _masks_config(config: MasksConfig | dict | None) -> MasksConfig:
    """A validated ``masks`` section: the defaults, a dict (checked like a config file's), or itself."""
    if isinstance(config, MasksConfig):
        return config
    return validate_config({} if config is None else config, "masks config", MasksConfig)


def load_model(path: str) -> StatisticalShapeModel:
    """A shape model named in a config (a missing file is a one-line error)."""
    if not Path(path).exists():
        raise InputError(f"shape model '{path}' not found; make one with `cellsynth masks fit-ssm`")
    return StatisticalShapeModel.load(path)


def simulate_organism(config: OrganismConfig, volume: VolumeConfig, rng: np.random.Generator) -> np.ndarray:
    """The organism foreground of ``config`` in a volume of ``volume.shape`` voxels."""
    shape, spacing = volume.shape, volume.spacing_um
    extent = np.asarray(shape) * np.asarray(spacing)
    if config.kind == "none":
        return np.ones(shape, bool)
    if config.kind == "ellipsoid":
        axes = config.semi_axes_um or tuple(0.45 * extent)
        return ellipsoid_organism(shape, spacing, axes, angles_deg=config.angles_deg)
    if config.kind == "sh":
        radius = config.radius_um or 0.4 * float(np.median(extent))
        return sh_organism(shape, spacing, radius, gamma=config.gamma, deformation=config.deformation,
                           lmax=config.lmax, rng=rng)
    if config.kind == "ssm":
        return ssm_organism(shape, spacing, load_model(config.ssm_model), rng=rng)
    mask, _ = read_volume(config.mask, spacing)
    if mask.shape != tuple(shape):
        raise InputError(f"organism mask '{config.mask}' has shape {mask.shape}; the volume is {tuple(shape)}")
    return mask_organism(mask)


def place_cells(config: PlacementConfig, foreground: np.ndarray, spacing, rng: np.random.Generator) -> tuple:
    """Cell centres (ZYX µm) and a dict of counts; crowding warns and is counted, never fatal."""
    if config.method == "detections":
        points = positions_from_detections(config.detections, volume_shape=foreground.shape, spacing=spacing)
        return points, {"n_cells_requested": len(points), "n_cells_placed": len(points)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CrowdedWarning)
        if config.method == "layers":
            points, layers = layered_positions(foreground, spacing, config.min_distance_um[0], decay=config.decay,
                                               n_cells=config.n_cells, rng=rng)
            extra = {"n_layers": int(layers.max()) + 1 if len(layers) else 0}
        else:
            points = poisson_disk_positions(slab(foreground, spacing, config.z_range_um), spacing,
                                            config.min_distance_um, n_cells=config.n_cells, rng=rng)
            extra = {}
    for warning in caught:  # re-issue from here, once per sample
        warnings.warn(str(warning.message), warning.category, stacklevel=3)
    requested = config.n_cells if config.n_cells is not None else len(points)
    return points, {"n_cells_requested": requested, "n_cells_placed": len(points), **extra}


def slab(region: np.ndarray, spacing, z_range_um: tuple[float, float] | None) -> np.ndarray:
    """``region`` limited to the planes whose depth z (µm from the first plane) lies in ``z_range_um``."""
    if z_range_um is None:
        return region
    depth = np.arange(region.shape[0]) * spacing[0]
    inside = (depth >= z_range_um[0]) & (depth <= z_range_um[1])
    if not inside.any():
        depth_um = region.shape[0] * spacing[0]
        raise InputError(f"placement.z_range_um {list(z_range_um)} holds no plane of a volume {depth_um:.3g} µm deep; "
                         f"set masks.placement.z_range_um within [0, {depth_um:.3g}] µm")
    return region & inside[:, None, None]


def _check_nuclei(config: MasksConfig, volume: VolumeConfig) -> None:
    """Refuse nuclei that would vanish between voxels or overlap into fragments (one line each)."""
    radius, least, voxel = config.nuclei.radius_um, min(config.placement.min_distance_um), min(volume.spacing_um)
    if radius < voxel:
        raise InputError(f"masks.nuclei.radius_um {radius:g} µm is smaller than one voxel ({voxel:g} µm): the "
                         "nuclei would cover no voxel; make them larger or the voxels smaller")
    if config.placement.method != "detections" and least < radius:
        raise InputError(f"masks.placement.min_distance_um {least:g} µm is below the nucleus radius {radius:g} µm: "
                         f"neighbours would overlap into fragments; use about 2 × radius_um ({2 * radius:g} µm)")


def _check_room(config: MasksConfig, volume: VolumeConfig, cell_diameter_um: float) -> None:
    extent = np.asarray(volume.shape) * np.asarray(volume.spacing_um)
    if extent[1] < cell_diameter_um or extent[2] < cell_diameter_um:
        raise InputError(
            f"the volume ({extent[1]:.3g} × {extent[2]:.3g} µm in y, x) is smaller than one cell "
            f"({cell_diameter_um:.3g} µm across); enlarge volume.shape or volume.spacing_um, or make cells smaller"
        )


def simulate_masks(shape: Sequence[int], spacing: Sequence[float], config: MasksConfig | dict | None = None,
                   rng=None) -> Sample:
    """Simulate one annotation: organism, positions, then nuclei or weighted-Voronoi cells.

    Parameters
    ----------
    shape : 3 ints
        Volume size in voxels (z, y, x).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    config : MasksConfig or dict, optional
        The ``masks`` section of a config (organism, placement, nuclei or membranes); a dict is
        validated like a config file's section; default the built-in defaults (nuclei).
    rng : numpy.random.Generator, int or None
        The sample's randomness (a generator, a seed, or None for fresh entropy): same state, same
        masks.

    Returns
    -------
    Sample
        Labels, organism foreground, membranes (membrane simulations), the spacing, and in
        ``params`` the counts: cells requested and placed, layers, contested voxels, empty cells.

    Raises
    ------
    InputError
        If the volume is smaller than one cell in y or x, the organism is empty, or a file named in
        the config is missing or invalid.

    Examples
    --------
    >>> masks = simulate_masks((8, 48, 48), (0.29, 0.26, 0.26), {"nuclei": {"radius_um": 2.0}}, rng=0)
    >>> masks.labels.shape, masks.labels.dtype, masks.spacing
    ((8, 48, 48), dtype('uint16'), (0.29, 0.26, 0.26))
    """
    volume = _volume(shape, spacing)
    config, spacing = _masks_config(config), volume.spacing_um
    rng = np.random.default_rng(rng)
    model = None
    if config.kind == "nuclei":
        nuclei = config.nuclei
        model = load_model(nuclei.ssm_model) if nuclei.shape == "ssm" else None
        diameter = 2 * (model.mean.mean() if model is not None else nuclei.radius_um)
    else:
        diameter = min(config.placement.min_distance_um)
    _check_room(config, volume, diameter)
    if config.kind == "nuclei" and model is None:
        _check_nuclei(config, volume)
    foreground = simulate_organism(config.organism, volume, rng)
    positions, info = place_cells(config.placement, foreground, spacing, rng)
    if len(positions) == 0:
        raise InputError("no cell could be placed: the organism is smaller than the minimum cell distance")
    if config.kind == "nuclei":
        labels, drawn = simulate_nuclei(
            foreground, spacing, positions, radius_um=nuclei.radius_um, radius_std_um=nuclei.radius_std_um,
            shape=nuclei.shape, gamma=nuclei.gamma, deformation=nuclei.deformation, lmax=nuclei.lmax,
            elongation=nuclei.elongation, flattening=nuclei.flattening, flattening_axis=nuclei.flattening_axis,
            ssm=model, ssm_modes=nuclei.ssm_modes, ssm_limit=nuclei.ssm_limit, rng=rng
        )
        info |= {key: drawn[key] for key in ("n_contested_voxels", "n_empty_cells")}
        return Sample(labels, spacing=spacing, foreground=foreground, params=info)
    membranes = config.membranes
    weights = seed_weights(len(positions), *membranes.weights, rng=rng)
    labels = voronoi_cells(foreground, spacing, positions, weights)
    walls = membrane_mask(labels, spacing, membranes.thickness_um, include_surface=membranes.include_surface)
    return Sample(labels, spacing=spacing, foreground=foreground, membranes=walls, params=info)


def _volume(shape: Sequence[int], spacing: Sequence[float]) -> VolumeConfig:
    """Shape and spacing checked in one line each (before anything is allocated)."""
    spacing = check_spacing(spacing)
    try:
        shape = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape must be three voxel counts >= 1 (z, y, x); got {shape!r}")
    return VolumeConfig(shape=shape, spacing_um=spacing)
