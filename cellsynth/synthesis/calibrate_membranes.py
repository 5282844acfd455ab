"""Calibrate on membrane-stained images: the cells, their membranes and the microscope that drew them.

:func:`calibrate_membranes` is :func:`~cellsynth.synthesis.calibrate.calibrate` for
``--kind membranes``. The camera (photon transfer, bit depth) is measured as for nuclei. Then, with
the cells given as labels or found by :func:`~cellsynth.masks.segment.segment_membranes`:

- **Membranes and PSF**: the image is fitted by ``a + b·G_σ ⊛ M_t + c·G_σ ⊛ F`` with ``M_t`` the
  renderer's own membrane mask of thickness ``t`` (:func:`~cellsynth.masks.membranes.membrane_mask`)
  and ``F`` the cells (dropped when they fill the volume), ``t``, σ_z and σ_lateral by coordinate
  search on grids. A membrane thinner than the PSF only fixes the blurred sheet's width: ``t`` and
  σ are then one consistent pair (the images they make are the same).
- **Brightness**: from the fit's coefficients in camera units, the membrane signal (→ photons), the
  cytoplasm relative to it and the light outside the specimen; haze as a wider blur of the
  membranes added to the fit (scale with the least residual).
- **Per-cell brightness** (each cell's voxels fitted against the blurred membranes: the std of the
  log of that scale) and depth attenuation (log-linear fit of it against the cell's depth).
- **Camera**: photon transfer on the image less that fitted model (a thin membrane leaves too few
  flat voxels at high intensities); when the cells fill the volume there is no dark region, and the
  offset is the fit's level without light (the read noise follows from the photon-transfer intercept).
- **Cells**: how many per volume (the Voronoi seeds), the least seed distance (10th percentile of
  the nearest-neighbour centroid distances), and the seed weights whose simulated cells show the
  measured spread of equivalent radii. The specimen is the whole volume when the cells cover more
  than 95 % of it, otherwise an axis-aligned ellipsoid with the cells' second moments, centred.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from cellsynth.checks import Spacing
from cellsynth.config import Config, with_overrides
from cellsynth.errors import InputError
from cellsynth.masks.membranes import membrane_mask
from cellsynth.masks.segment import equivalent_radii, segment_membranes
from cellsynth.progress import Phases
from cellsynth.synthesis.measure import (
    AXIAL_SIGMAS,
    HAZE_SCALES_UM,
    LATERAL_SIGMAS,
    camera_storage,
    coordinate_search,
    log_spread,
    measure_camera,
)
from cellsynth.synthesis.preset import Calibration, Measurements, check_calibration_inputs

#: Seed-weight ranges (1, high) tried to match the measured spread of cell sizes.
WEIGHT_HIGHS = (1.0, 1.1, 1.25, 1.5, 1.75, 2.0, 2.5)
#: Voxels the membrane and PSF fit looks at (a central crop of larger volumes).
FIT_VOXELS = 2_000_000


def thickness_grid(spacing: Spacing) -> np.ndarray:
    """Membrane thicknesses tried (µm): whole lateral voxels from one up to 3 µm."""
    lateral = min(spacing[1:])
    return np.round(lateral * np.arange(1, max(2, int(3.0 / lateral)) + 1), 4)


def central_crop(shape: Sequence[int], voxels: int = FIT_VOXELS) -> tuple[slice, ...]:
    """The central box of ``shape`` with at most ``voxels`` voxels (z kept whole where it fits)."""
    scale = min(1.0, math.sqrt(voxels / math.prod(shape)))
    sizes = [shape[0], max(1, int(shape[1] * scale)), max(1, int(shape[2] * scale))]
    if math.prod(sizes) > voxels:
        sizes[0] = max(1, voxels // (sizes[1] * sizes[2]))
    return tuple(slice((n - k) // 2, (n - k) // 2 + k) for n, k in zip(shape, sizes, strict=True))


def _blur(volume: np.ndarray, sigma_um: Sequence[float], spacing: Spacing) -> np.ndarray:
    return ndi.gaussian_filter(volume.astype(np.float32), [s / v for s, v in zip(sigma_um, spacing, strict=True)])


def _least_squares(columns: dict, target: np.ndarray, box: tuple) -> tuple[dict, float]:
    """Coefficients of ``target`` ≈ Σ coefficient·column over ``box`` (a constant term ``floor`` added)
    and the squared residual; a column the others already explain gets 0."""
    names = ["floor", *columns]
    matrix = np.stack([np.ones(target.size)] + [c[box].ravel() for c in columns.values()], 1).astype(np.float64)
    coefficients, _, rank, _ = np.linalg.lstsq(matrix, target, rcond=None)
    if rank < len(names):  # e.g. the cells fill the volume and all are equally bright: cells ≡ floor
        kept = [0, 1]
        coefficients = np.zeros(len(names))
        coefficients[kept], *_ = np.linalg.lstsq(matrix[:, kept], target, rcond=None)
    return dict(zip(names, coefficients.tolist(), strict=True)), float(np.sum((matrix @ coefficients - target) ** 2))


def fit_membranes(image: np.ndarray, labels: np.ndarray, spacing: Spacing, include_surface: bool,
                  iterations: int = 6) -> dict:
    """Membrane thickness, PSF σ (µm), each cell's brightness and the light of the best fit (module doc).

    The model is the renderer's: ``floor + membrane·G ⊛ (b·M) + cells·G ⊛ (b·F) + haze·G_s ⊛ (b·M)``
    with ``b`` each cell's brightness: 1 while the thickness and σ are searched, then per cell by
    least-squares steps, alternating with the coefficients and the haze scale.
    """
    box = central_crop(image.shape)
    image = image.astype(np.float64)
    target = image[box].ravel()
    cells = labels > 0
    walls_of: dict = {}

    def walls(thickness: float) -> np.ndarray:
        if thickness not in walls_of:
            walls_of[thickness] = membrane_mask(labels, spacing, thickness, include_surface=include_surface)
        return walls_of[thickness]

    def columns(thickness: float, psf: Sequence[float], brightness: np.ndarray, haze_um: float | None) -> dict:
        per_voxel = brightness[labels]
        found = {"membrane": _blur(walls(thickness) * per_voxel, psf, spacing),
                 "cells": _blur(cells * per_voxel, psf, spacing)}
        if haze_um is not None:
            found["haze"] = _blur(walls(thickness) * per_voxel, (haze_um,) * 3, spacing)
        return found

    uniform = np.ones(int(labels.max()) + 1)

    def error(thickness: float, axial: float, lateral: float) -> float:
        return _least_squares(columns(thickness, (axial, lateral, lateral), uniform, None), target, box)[1]

    grid = thickness_grid(spacing)
    _, point = coordinate_search(error, {"thickness": grid, "lateral": LATERAL_SIGMAS, "axial": AXIAL_SIGMAS},
                                 {"thickness": float(grid[min(1, len(grid) - 1)]), "axial": 0.5, "lateral": 0.2})
    thickness, psf = point["thickness"], (point["axial"], point["lateral"], point["lateral"])
    brightness, haze_um = uniform.copy(), None
    ids = np.arange(len(uniform))
    for _ in range(iterations):
        fits = [(*_least_squares(columns(thickness, psf, brightness, scale), target, box), scale)
                for scale in HAZE_SCALES_UM]
        fits = [f for f in fits if f[0]["haze"] > 0] or [(*_least_squares(
            columns(thickness, psf, brightness, None), target, box), None)]
        coefficients, residual, haze_um = min(fits, key=lambda f: f[1])
        # each cell's brightness: a least-squares step over its voxels on what the whole model leaves
        # (the neighbours' light included, so the joint solution is approached, not a blend of neighbours)
        found = columns(thickness, psf, brightness, haze_um)
        model = coefficients["floor"] + sum(coefficients[name] * column for name, column in found.items())
        unit = columns(thickness, psf, uniform, None)
        signal = coefficients["membrane"] * unit["membrane"] + coefficients["cells"] * unit["cells"]
        brightness = brightness + np.asarray(ndi.sum((image - model) * signal, labels, ids)) / np.maximum(
            np.asarray(ndi.sum(signal**2, labels, ids)), 1e-12)
        brightness[0] = 1.0
    final = columns(thickness, psf, brightness, haze_um)
    coefficients, residual = _least_squares(final, target, box)
    model = coefficients["floor"] + sum(coefficients[name] * column for name, column in final.items())
    return {"thickness_um": float(thickness), "axial": float(psf[0]), "lateral": float(psf[1]), "error": residual,
            "haze_scale_um": float(haze_um or 3.0), "brightness": brightness, "model": model,
            **{name: float(coefficients.get(name, 0.0)) for name in ("floor", "membrane", "cells", "haze")}}


def centroids_um(labels: np.ndarray, spacing: Spacing) -> np.ndarray:
    """Centroid (z, y, x µm) of each id 1…max present in ``labels``."""
    ids = np.flatnonzero(np.bincount(labels.ravel()))
    ids = ids[ids > 0]
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(labels.shape, spacing, strict=True)], indexing="ij",
                        sparse=True)
    return np.stack([np.asarray(ndi.mean(np.broadcast_to(g, labels.shape), labels, ids)) for g in grids], 1)


def size_spread(labels: np.ndarray, spacing: Spacing) -> float:
    """Coefficient of variation of the equivalent radii of the cells not cut by a face of the volume."""
    cut = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                    labels[:, :, [0, -1]].ravel()]))
    inner = labels.copy()
    inner[np.isin(inner, cut)] = 0
    radii = equivalent_radii(inner, spacing)
    if len(radii) < 3:
        radii = equivalent_radii(labels, spacing)
    return float(radii.std() / radii.mean()) if len(radii) >= 2 else 0.0


def weights_for(spread: float, config: Config) -> float:
    """The seed-weight range (1, high) whose simulated cells' size spread is closest to ``spread`` (seeded)."""
    from cellsynth.masks.simulate import simulate_masks

    def simulated(high: float) -> float:
        trial = with_overrides(config, {"masks.membranes.weights": [1.0, high]}, "calibration")
        masks = simulate_masks(trial.volume.shape, trial.volume.spacing_um, trial.masks, np.random.default_rng(12345))
        return size_spread(masks.labels, trial.volume.spacing_um)

    return min(WEIGHT_HIGHS, key=lambda high: abs(simulated(high) - spread))


#: The named phases of a membrane calibration, as its progress bar shows them.
PHASES = ("segmentation", "membranes and optics", "camera", "shapes")


def calibrate_membranes(images, spacing: Sequence[float] | None = None, labels=None, *, n_samples: int = 8,
                        seed: int = 0, segmentation: dict | None = None, progress: bool = False) -> Calibration:
    """Measure real membrane-stained volume(s) and return the config that simulates and renders data like them.

    Parameters
    ----------
    images : ndarray or sequence of ndarray
        Raw 3D images (ZYX, camera units) of one microscope setting, membranes bright: Samples,
        arrays or anything :func:`~cellsynth.dataset.samples.as_samples` reads.
    spacing : 3 floats, optional
        Voxel size (z, y, x) in µm of arrays (Samples and files bring their own).
    labels : ndarray or sequence of ndarray, optional
        Their cell labels (each cell including its half of the membrane); default: the Samples' own
        labels, else :func:`~cellsynth.masks.segment.segment_membranes`.
    n_samples, seed : int
        The dataset section of the config.
    segmentation : dict, optional
        Keyword arguments of :func:`~cellsynth.masks.segment.segment_membranes` (µm).
    progress : bool
        A progress bar of the named phases (:data:`PHASES`).

    Returns
    -------
    Calibration
        ``config`` (validated, ``masks.kind: membranes``), ``measured`` (value and method of each),
        ``labels`` used.

    Examples
    --------
    >>> calibration = calibrate_membranes(image, (0.5, 0.25, 0.25))       # doctest: +SKIP
    >>> calibration.config.masks.membranes.thickness_um                 # doctest: +SKIP
    0.75
    """
    with Phases("calibrate", PHASES, progress) as phase:
        return _calibrate_membranes(images, spacing, labels, n_samples, seed, segmentation, phase)


def _calibrate_membranes(images, spacing: Sequence[float], labels, n_samples: int, seed: int,
                         segmentation: dict | None, phase: Phases) -> Calibration:
    images, labels, spacing = check_calibration_inputs(images, labels, spacing)
    storage = camera_storage(images)
    stored, images = images, storage.to_camera(images)
    segmented = labels is None
    phase("segmentation")
    if segmented:
        labels = [segment_membranes(image, spacing, **(segmentation or {})) for image in images]
    if not any(lab.max() >= 2 for lab in labels):
        raise InputError("fewer than two cells were found" + (" by the membrane watershed; give --labels"
                                                                 if segmented else " in the labels"))
    image, label = images[0].astype(np.float64), labels[0]
    source = "the membrane watershed" if segmented else "the given labels"
    cells = label > 0
    coverage = float(cells.mean())
    organism = {"kind": "none"}
    if coverage <= 0.95:
        centred = np.argwhere(cells) * np.asarray(spacing)
        organism = {"kind": "ellipsoid", "semi_axes_um": [round(float(math.sqrt(5 * v)), 3)
                                                          for v in centred.var(axis=0)]}
    phase("membranes and optics")
    fits = [fit_membranes(image, label, spacing, surface) for surface in ((False, True) if coverage <= 0.95
                                                                          else (False,))]
    fit = min(fits, key=lambda f: f["error"])
    surface = fits.index(fit) == 1
    walls = membrane_mask(label, spacing, fit["thickness_um"], include_surface=surface)
    phase("camera")
    correlation, camera = measure_camera(images, walls.astype(np.uint8), spacing, storage.saturation, fit["model"])
    if coverage > 0.95 and 0 <= fit["floor"] < camera.offset:  # no dark region in view: the level without light
        camera = camera.with_offset(fit["floor"], "the fitted level without light (the cells fill the view: there "
                                                  "is no dark region)")
    gain, offset = camera.gain, camera.offset
    # the renderer's light in camera units: offset + gain·photons·(b·((1 − c)·M + c·F) + outside·(1 − F))
    light = fit["membrane"] + fit["cells"]  # gain·photons
    if not (fit["membrane"] > 0 and light > 0):
        raise InputError("the membranes are not brighter than the cells' interiors; is this a membrane stain "
                         "(bright membranes on a dark cytoplasm)?")
    cytoplasm = max(fit["cells"], 0.0) / light
    floor = (fit["floor"] - offset) / light  # light everywhere above the offset, in units of the membrane's
    if coverage <= 0.95:  # the floor is the light outside the specimen
        outside = max(floor, 0.0)
    else:  # cells fill the view: the offset is only known with the read noise, the floor joins the cytoplasm
        cytoplasm, outside = min(max(cytoplasm + floor, 0.0), 1.0), 0.0
    membrane_signal = light
    photons = membrane_signal / gain
    ids = np.flatnonzero(np.bincount(label.ravel()))
    ids = ids[ids > 0]
    scale = fit["brightness"][ids]
    positive = scale > 0
    brightness_sigma = log_spread(scale[positive]) if positive.sum() >= 3 else 0.0
    z = centroids_um(label, spacing)[:, 0]
    depth_um = image.shape[0] * spacing[0]
    attenuation = None
    if np.ptp(z) >= 5 and positive.sum() >= 5:
        slope = np.polyfit(z[positive], np.log(scale[positive]), 1)[0]
        if slope < 0 and -1 / slope < 10 * depth_um:
            attenuation = float(-1 / slope)
    phase("shapes")
    nn = []
    for lab in labels:
        centres = centroids_um(lab, spacing)
        if len(centres) >= 2:
            nn.extend(cKDTree(centres).query(centres, k=2)[0][:, 1])
    min_distance = float(np.percentile(nn, 10))
    n_cells = round(sum(np.count_nonzero(np.bincount(lab.ravel())[1:]) for lab in labels) / len(labels))
    spread = size_spread(label, spacing)
    found = Measurements.of_volume("membranes", image.shape, spacing, n_samples, seed)
    if "semi_axes_um" in organism:
        found.set("masks.organism.semi_axes_um", organism["semi_axes_um"])
    found.set("masks.organism.kind", organism["kind"], f"the cells cover {100 * coverage:.0f} % of the volume"
              + ("" if coverage > 0.95 else ": an axis-aligned ellipsoid with their second moments, centred"))
    found.set("masks.placement.method", "poisson")
    found.set("masks.placement.n_cells", max(2, n_cells), f"cells per volume in {source}")
    found.set("masks.placement.min_distance_um", [round(min_distance, 3)] * 3, "10th percentile of the "
              f"nearest-neighbour centroid distance (median {np.median(nn):.2f} µm)")
    found.set("masks.membranes.thickness_um", fit["thickness_um"], "the renderer's membrane mask of this thickness, "
              "blurred by the PSF, fits the image best (whole voxels; with the PSF, one consistent pair when thinner "
              "than it)")
    found.set("masks.membranes.include_surface", surface, "a membrane along the specimen's surface fits better"
              if surface else "no membrane along the specimen's surface (or no surface in view)")
    specimen, microscope, detector = "optics.specimen.", "optics.microscope.", "optics.camera."
    found.set(specimen + "brightness_sigma", round(brightness_sigma, 4), "robust std of the log of each cell's "
              "membrane brightness (least squares of its voxels against the fitted, blurred membranes)")
    found.set(specimen + "texture", 0.0)
    found.set(specimen + "cytoplasm", round(min(cytoplasm, 1.0), 4), "the cells' interior signal above the offset "
              "over the membrane's (autofluorescence inside cells counted here)")
    found.set(specimen + "background", 0.0)
    found.set(specimen + "background_outside", round(outside, 5), "light outside the cells above the offset over "
              "the membrane signal")
    found.set(specimen + "attenuation_length_um", None if attenuation is None else round(attenuation, 2),
              "log-linear fit of that brightness against depth" if attenuation is not None else
              "none: cells span < 5 µm of depth or do not dim with depth")
    found.set(microscope + "haze", round(max(fit["haze"], 0.0) / light, 4), "the membranes blurred by "
              "haze_scale_um, added to the fit")
    found.set(microscope + "haze_scale_um", fit["haze_scale_um"], "the haze blur with the least residual")
    found.set(microscope + "psf_sigma_um", [fit["axial"], fit["lateral"], fit["lateral"]],
              "Gaussian σ fitted with the membrane thickness")
    found.set(detector + "noise_correlation_um", round(correlation["sigma_um"], 4), "lag-1 noise correlation "
              f"along y, x far from membranes: {correlation['rho'][0]:.2f}, {correlation['rho'][1]:.2f}")
    found.set(detector + "photons", round(photons, 3), f"membrane signal above the offset ({membrane_signal:.1f}) "
              "/ gain")
    found.set_camera(camera, storage)
    high = weights_for(spread, found.preset())
    found.set("masks.membranes.weights", [1.0, high], "seed weights whose simulated cells show the measured spread "
              f"of equivalent radii (coefficient of variation {spread:.3f})")
    return Calibration(found.preset(), found.found, labels, stored)
