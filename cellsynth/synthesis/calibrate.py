"""Calibrate: measure a user's real volume(s) and write the config that makes images like them.

A biologist has one real volume of nuclei (with or without a segmentation) and wants thousands of
annotated volumes that look like it. :func:`calibrate` measures, from the real data, every value
the mask simulator and the physics renderer need, each with a sentence saying how it was measured,
and returns a validated :class:`~cellsynth.config.Config` that ``cellsynth generate`` accepts.

Without labels, the objects are found with the classical segmentation
(:func:`cellsynth.masks.segment.classical_segmentation`). Then:

- **Camera** (photon transfer): in flat regions the noise variance grows with the mean,
  ``var = g²·σ_read² + g·(mean − offset) + (k·(mean − offset))²`` (the last term: fine texture of the
  specimen that survives the high-pass). The noise variance is measured on a high-pass residual
  (each voxel minus the mean of its two neighbours along y and x, variance 1.5 σ² for white noise)
  in the 30 % flattest voxels of each mean-intensity bin; a weighted quadratic fit gives the gain
  ``g`` (a line when the curvature is not positive).
  Neighbouring voxels' noise may correlate (measured far from objects, :func:`noise_correlation`);
  the residual's variance is corrected for it. The offset is the dark level (0.5th percentile of the
  1 µm-smoothed image) and the read noise
  follows from the intercept: a single volume only fixes their combination, so the pair is one
  consistent choice (the images it makes have the measured variance at every level).
- **Background** (median far from objects), **depth attenuation** (per-object brightness against
  centroid depth, a log-linear fit; none when the objects span less than 5 µm or it does not fall),
  **bit depth** (from the data type and the largest value).
- **PSF** (Gaussian σ per axis): the image is fitted by ``a + b·G_σ ⊛ B`` with ``B`` each object
  filled with its mean, σ_lateral and σ_z by coordinate search on a grid.
- **Objects**: brightness spread (std of the log of the per-object mean above background), the mean
  profile against normalised depth inside the objects (:func:`~cellsynth.masks.derived.centreness`,
  a bright rim shows as a factor > 1 near 0), the texture (the residual inside objects relative to
  that model: its power spectrum minus the white-noise floor of the camera, divided by the PSF's
  squared transfer function → the spectrum and amplitude before the blur; its per-object spread),
  dark inclusions (connected parts of the smoothed residual below a robust threshold: count,
  radius, darkness).
- **Masks**: objects per volume, equivalent radius (mean, spread), flattening (minor/major axis of
  the inertia ellipsoid in µm) and whether the minor axis lies along z, the arrangement in z (a slab
  between two depths when the centroids span less than half the depth), nearest-neighbour distances
  (the least centre distance of the placement).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from cellsynth.checks import Spacing
from cellsynth.config import Config, NucleiConfig, validate_config, with_overrides
from cellsynth.errors import InputError
from cellsynth.masks.derived import centreness
from cellsynth.masks.segment import classical_segmentation, equivalent_radii
from cellsynth.progress import Phases
from cellsynth.synthesis.calibrate_membranes import calibrate_membranes
from cellsynth.synthesis.measure import (
    AXIAL_SIGMAS,
    HAZE_SCALES_UM,
    LATERAL_SIGMAS,
    camera_storage,
    coordinate_search,
    dark_level_below,
    log_spread,
    measure_camera,
    texture_spectrum,
)
from cellsynth.synthesis.preset import Calibration, check_calibration_inputs, config_key

#: Normalised-depth bins of the interior profile.
PROFILE_EDGES = np.linspace(0, 1, 9)
#: Inclusions smaller than a ball of this radius (µm) are texture, not nucleoli.
MIN_INCLUSION_RADIUS_UM = 0.3


# ----------------------------------------------------------------------------- measurements


def _object_table(image: np.ndarray, labels: np.ndarray, spacing: Spacing, depth: np.ndarray) -> dict:
    """Per-object mean (interior), volume, centroid (µm), inertia axes, border contact."""
    ids = np.flatnonzero(np.bincount(labels.ravel()))
    ids = ids[ids > 0]
    interior = np.where(depth > 0.25, labels, 0)
    means = np.asarray(ndi.mean(image, interior, ids))
    fallback = np.asarray(ndi.mean(image, labels, ids))
    means = np.where(np.isfinite(means), means, fallback)
    volumes = np.asarray(ndi.sum(np.ones(labels.shape), labels, ids)) * np.prod(spacing)
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(labels.shape, spacing, strict=True)], indexing="ij",
                        sparse=True)
    centroids = np.stack([np.asarray(ndi.mean(np.broadcast_to(g, labels.shape), labels, ids)) for g in grids], 1)
    ratios, along_z = [], []
    slices = ndi.find_objects(labels)
    touching = []
    for object_id in ids:
        box = slices[object_id - 1]
        touching.append(any(s.start == 0 or s.stop == n for s, n in zip(box, labels.shape, strict=True)))
        points = np.argwhere(labels[box] == object_id) * np.asarray(spacing)
        if len(points) < 10:
            ratios.append(np.nan)
            along_z.append(np.nan)
            continue
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(points.T))
        ratios.append(math.sqrt(max(eigenvalues[0], 0) / eigenvalues[-1]))
        along_z.append(abs(eigenvectors[0, 0]))
    return {"ids": ids, "mean": means, "volume": volumes, "centroid": centroids, "ratio": np.asarray(ratios),
            "minor_along_z": np.asarray(along_z), "touching": np.asarray(touching, bool)}


def edge_following(image: np.ndarray, labels: np.ndarray, spacing: Spacing, means: np.ndarray, ids: np.ndarray,
                   background: float, reach_um: float = 1.0) -> np.ndarray:
    """``labels`` moved onto the image's own edges: within ``reach_um`` of each object, the voxels brighter
    (after a 0.3 µm smoothing) than halfway between the object's mean and the background.

    Annotations rarely sit exactly on the half-maximum of a blurred edge; a PSF fitted to them would
    absorb the offset as blur.
    """
    distance, nearest = ndi.distance_transform_edt(labels == 0, sampling=spacing, return_indices=True)
    owner = labels[tuple(nearest)]
    owner[distance > reach_um] = 0
    lookup = np.full(int(labels.max()) + 1, background, np.float64)
    lookup[ids] = means
    smooth = ndi.gaussian_filter(image, [0.3 / s for s in spacing])
    return np.where((owner > 0) & (smooth > (lookup[owner] + background) / 2), owner, 0)


def fit_psf(image: np.ndarray, labels: np.ndarray, spacing: Spacing, means: np.ndarray, ids: np.ndarray,
            background: float) -> tuple[float, float]:
    """Gaussian PSF σ (axial, lateral) in µm: ``image ≈ a + b·G_σ ⊛ B`` by coordinate search (module doc).

    ``B`` fills the objects with their means, once as labelled and once moved onto the image's own
    edges (:func:`edge_following`); the outlines that explain the image better (smaller residual) win.
    """
    lookup = np.full(int(labels.max()) + 1, background, np.float64)
    lookup[ids] = means
    target = image.astype(np.float32).ravel().astype(np.float64)
    best = None
    for outlines in (labels, edge_following(image, labels, spacing, means, ids, background)):
        model = lookup[outlines].astype(np.float32)

        def error(axial: float, lateral: float, model=model) -> float:
            blurred = ndi.gaussian_filter(model, [axial / spacing[0], lateral / spacing[1], lateral / spacing[2]])
            design = np.stack([np.ones(blurred.size), blurred.ravel().astype(np.float64)], 1)
            coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
            return float(np.sum((design @ coefficients - target) ** 2))

        least, point = coordinate_search(error, {"lateral": LATERAL_SIGMAS, "axial": AXIAL_SIGMAS},
                                         {"axial": 0.5, "lateral": 0.2})
        fit = (least, float(point["axial"]), float(point["lateral"]))
        best = fit if best is None or fit[0] < best[0] else best
    return best[1], best[2]




def fit_haze(image: np.ndarray, labels: np.ndarray, spacing: Spacing, means: np.ndarray, ids: np.ndarray,
             background: float) -> dict:
    """Out-of-focus light: voxels > 1 µm from objects fitted as ``floor + haze·(G_s ⊛ M)``.

    ``M`` is each object's mean above ``background`` (camera units), ``s`` the haze scale (µm, the
    grid value with the least squared residual); ``haze`` is then the renderer's ``haze`` (light
    per unit of object signal). ``inside`` is the mean of ``G_s ⊛ M / M`` over object voxels (the
    haze the objects receive themselves). Without room around the objects, no haze.
    """
    lookup = np.zeros(int(labels.max()) + 1)
    lookup[ids] = np.maximum(means - background, 0)
    signal = lookup[labels]
    around = ndi.distance_transform_edt(labels == 0, sampling=spacing) > 1.0
    target = image[around]
    none = {"haze": 0.0, "scale_um": 3.0, "floor": background, "inside": 0.0}
    if target.size < 1000 or not signal.any():
        return none
    best = None
    for scale in HAZE_SCALES_UM:
        spread = ndi.gaussian_filter(signal, [scale / s for s in spacing])
        design = np.stack([np.ones(target.size), spread[around]], 1)
        coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
        error = float(np.sum((design @ coefficients - target) ** 2))
        if best is None or error < best[0]:
            best = (error, scale, coefficients, spread)
    _, scale, (floor, haze), spread = best
    if haze <= 0:
        return none
    inside = labels > 0
    return {"haze": float(haze), "scale_um": float(scale), "floor": float(floor),
            "inside": float(np.mean(spread[inside] / np.maximum(signal[inside], 1e-9)))}


def interior_profile(image: np.ndarray, labels: np.ndarray, depth: np.ndarray, means: np.ndarray, ids: np.ndarray,
                     background: float) -> list[list[float]]:
    """Mean intensity above background, relative to each object's mean, per normalised-depth bin (mean 1)."""
    inside = labels > 0
    lookup = np.ones(int(labels.max()) + 1)
    lookup[ids] = np.maximum(means - background, 1e-9)
    relative = (image[inside] - background) / lookup[labels[inside]]
    which = np.clip(np.digitize(depth[inside], PROFILE_EDGES) - 1, 0, len(PROFILE_EDGES) - 2)
    counts = np.bincount(which, minlength=len(PROFILE_EDGES) - 1)
    sums = np.bincount(which, relative, minlength=len(PROFILE_EDGES) - 1)
    values = np.divide(sums, counts, out=np.ones(len(counts)), where=counts > 0)
    values /= (values * counts).sum() / counts.sum()
    centres = (PROFILE_EDGES[:-1] + PROFILE_EDGES[1:]) / 2
    centres[0], centres[-1] = 0.0, 1.0
    return [[round(float(c), 3), round(float(v), 4)] for c, v in zip(centres, values, strict=True)]


def object_model(labels: np.ndarray, depth: np.ndarray, means: np.ndarray, ids: np.ndarray, background: float,
                 profile: Sequence[Sequence[float]], psf: tuple[float, float], spacing: Spacing) -> np.ndarray:
    """The noise- and texture-free image: background, each object at its mean times the profile, blurred by the PSF."""
    lookup = np.full(int(labels.max()) + 1, background, np.float64)
    lookup[ids] = means
    knots = np.asarray(profile)
    factor = np.where(labels > 0, np.interp(depth, knots[:, 0], knots[:, 1]), 1.0)
    model = background + (lookup[labels] - background) * factor
    axial, lateral = psf
    return ndi.gaussian_filter(model, [axial / spacing[0], lateral / spacing[1], lateral / spacing[2]])


def deconvolved_profile(image: np.ndarray, labels: np.ndarray, depth: np.ndarray, means: np.ndarray,
                        ids: np.ndarray, background: float, psf: tuple[float, float], spacing: Spacing,
                        iterations: int = 10) -> tuple[list, list]:
    """The in-object profile before the PSF: multiplicative updates until the blurred model shows the measured one.

    Returns the profile before the blur and the measured one (both as knots).
    """
    measured = interior_profile(image, labels, depth, means, ids, background)
    target = np.asarray(measured)[:, 1]
    current = target.copy()
    for _ in range(iterations):
        knots = [[d, float(v)] for (d, _), v in zip(measured, current, strict=True)]
        blurred = object_model(labels, depth, means, ids, background, knots, psf, spacing)
        shown = np.asarray(interior_profile(blurred, labels, depth, means, ids, background))[:, 1]
        current = np.clip(current * target / np.maximum(shown, 1e-6), 0.05, 20)
    current /= np.average(current, weights=np.bincount(np.clip(np.digitize(depth[labels > 0], PROFILE_EDGES) - 1, 0,
                                                                len(PROFILE_EDGES) - 2),
                                                        minlength=len(PROFILE_EDGES) - 1) + 1e-9)
    before = [[d, round(float(v), 4)] for (d, _), v in zip(measured, current, strict=True)]
    return before, measured


def ambient_model(labels: np.ndarray, spacing: Spacing, table: dict, haze: dict) -> np.ndarray:
    """The ambient light :func:`fit_haze` found (camera units): its floor plus the objects' signal blurred by
    the haze scale, times the haze."""
    lookup = np.zeros(int(labels.max()) + 1)
    lookup[table["ids"]] = np.maximum(table["mean"] - haze["floor"], 0)
    spread = ndi.gaussian_filter(lookup[labels], [haze["scale_um"] / s for s in spacing])
    return haze["floor"] + haze["haze"] * spread


def find_inclusions(image: np.ndarray, labels: np.ndarray, spacing: Spacing, depth: np.ndarray,
                    expected: np.ndarray, offset: float) -> list[dict]:
    """Dark (nucleoli) and bright (chromocenters) inclusions: connected parts of the smoothed in-object residual
    beyond a robust threshold (4 MADs, at least 20 %), each at least a ball of 0.3 µm.

    Returns one :class:`~cellsynth.config.InclusionConfig`-shaped dict per kind found (count per
    object, radius mean and spread, density factor), with ``n`` and ``threshold``.
    """
    interior = depth > 0.2
    relative = np.where(interior, (image - expected) / np.maximum(expected - offset, 1e-9), 0.0)
    sigma = [0.4 / s for s in spacing]
    weight = ndi.gaussian_filter(interior.astype(np.float64), sigma)
    usable = interior & (weight > 0.3)
    smooth = np.divide(ndi.gaussian_filter(relative, sigma), weight, out=np.zeros_like(relative), where=weight > 0.3)
    values = smooth[usable]
    if values.size == 0:
        return []
    spread = max(0.2, 4 * 1.4826 * float(np.median(np.abs(values - np.median(values)))))
    n_objects = max(1, len(np.unique(labels[labels > 0])))
    least = 4 / 3 * math.pi * MIN_INCLUSION_RADIUS_UM**3
    kinds = []
    for sign in (-1, 1):
        found, _ = ndi.label(usable & (sign * smooth > spread))
        sizes = np.bincount(found.ravel())[1:] * float(np.prod(spacing))
        keep = np.flatnonzero(sizes >= least) + 1
        if len(keep) == 0:
            continue
        radii = (3 * sizes[keep - 1] / (4 * math.pi)) ** (1 / 3)
        contrast = np.asarray(ndi.mean(relative, found, keep))
        kinds.append({"per_object": len(keep) / n_objects, "radius_um": float(radii.mean()),
                      "radius_std_um": float(radii.std()), "factor": float(np.clip(1 + contrast.mean(), 0.0, 20.0)),
                      "n": int(len(keep)), "threshold": sign * spread})
    return kinds


# ----------------------------------------------------------------------------- calibrate


def simulated_axis_ratio(flattening: float, deformation: float, gamma: float, n_shapes: int = 24) -> float:
    """Median minor/major inertia axis ratio of simulated nuclei with this flattening along z (seeded, repeatable)."""
    from cellsynth.masks.nuclei import FlattenedShape, random_sh_shape, rasterize_shapes

    rng = np.random.default_rng(12345)
    ratios = []
    for _ in range(n_shapes):
        shape = FlattenedShape(random_sh_shape(8.0, gamma=gamma, deformation=deformation, rng=rng),
                               np.array([1.0, 0.0, 0.0]), flattening)
        labels, _ = rasterize_shapes((41, 41, 41), (1.0, 1.0, 1.0), np.array([[20.0, 20.0, 20.0]]), [shape])
        eigenvalues = np.linalg.eigvalsh(np.cov(np.argwhere(labels > 0).T.astype(np.float64)))
        ratios.append(math.sqrt(eigenvalues[0] / eigenvalues[-1]))
    return float(np.median(ratios))


def flattening_for(ratio: float, deformation: float, gamma: float) -> float:
    """The flattening whose simulated nuclei show the measured median axis ratio (bisection; random
    deformations alone already make nuclei look somewhat flattened)."""
    if ratio >= simulated_axis_ratio(1.0, deformation, gamma):
        return 1.0
    low, high = 0.1, 1.0
    for _ in range(10):
        middle = (low + high) / 2
        low, high = (middle, high) if simulated_axis_ratio(middle, deformation, gamma) < ratio else (low, middle)
    return (low + high) / 2


def segment_adaptively(image: np.ndarray, spacing: Spacing, settings: dict | None = None) -> np.ndarray:
    """The classical segmentation, run twice: with its nucleus defaults, then with the seed distance set to the
    median equivalent radius found and the least volume to a fifth of such an object (unless ``settings`` fix them).
    """
    settings = dict(settings or {})
    first = classical_segmentation(image, spacing, **settings)
    radii = equivalent_radii(first, spacing)
    if len(radii) == 0:
        return first
    radius = float(np.median(radii))
    adapted = {"min_seed_distance_um": radius, "min_volume_um3": 0.2 * 4 / 3 * math.pi * radius**3, **settings}
    return classical_segmentation(image, spacing, **adapted)


#: The named phases of a nuclei calibration, as its progress bar shows them.
PHASES = ("segmentation", "camera", "levels and haze", "PSF", "interior profile", "texture", "inclusions", "shapes",
          "closed loop")


def calibrate(images, spacing: Sequence[float], labels=None, *, kind: str = "nuclei", n_samples: int = 8,
              seed: int = 0, segmentation: dict | None = None, progress: bool = False) -> Calibration:
    """Measure real volume(s) and return the config that simulates and renders data like them.

    Parameters
    ----------
    images : ndarray or sequence of ndarray
        Raw 3D images (ZYX, camera units) of one microscope setting; objects bright.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    labels : ndarray or sequence of ndarray, optional
        Their instance labels; default: the classical segmentation (:func:`segment_adaptively`).
    kind : {"nuclei", "membranes"}
        What is stained: ``membranes`` is
        :func:`~cellsynth.synthesis.calibrate_membranes.calibrate_membranes`.
    n_samples, seed : int
        The dataset section of the config.
    segmentation : dict, optional
        Keyword arguments of the classical segmentation (µm) when labels are not given.
    progress : bool
        A progress bar of the named phases (:data:`PHASES`).

    Returns
    -------
    Calibration
        ``config`` (validated), ``measured`` (value and method of each), ``labels`` used.

    Examples
    --------
    >>> image, labels, spacing = cellsynth.cells3d_nuclei()          # doctest: +SKIP
    >>> calibration = calibrate(image, spacing)                       # doctest: +SKIP
    >>> Path("mine.yaml").write_text(calibration.yaml())              # doctest: +SKIP
    """
    if kind == "membranes":
        return calibrate_membranes(images, spacing, labels, n_samples=n_samples, seed=seed, segmentation=segmentation,
                                   progress=progress)
    if kind != "nuclei":
        raise InputError(f"calibration kind must be 'nuclei' or 'membranes'; got {kind!r}")
    with Phases("calibrate", PHASES, progress) as phase:
        return _calibrate_nuclei(images, spacing, labels, n_samples, seed, segmentation, phase)


def _calibrate_nuclei(images, spacing: Sequence[float], labels, n_samples: int, seed: int, segmentation: dict | None,
                      phase: Phases) -> Calibration:
    images, labels, spacing = check_calibration_inputs(images, labels, spacing)
    storage = camera_storage(images)
    stored, images = images, storage.to_camera(images)
    segmented = labels is None
    phase("segmentation")
    if segmented:
        labels = [segment_adaptively(image, spacing, segmentation) for image in images]
    if not any(lab.any() for lab in labels):
        raise InputError("no object was found in the image(s)" + (" by the classical segmentation (Otsu + "
                         "watershed); give --labels" if segmented else "; the labels are empty"))
    measured: dict = {}

    def note(key: str, value, how: str):
        measured[config_key(key)] = {"value": value, "how": how}
        return value

    # everything per volume, then pooled: the first volume carries the per-voxel fits
    image, label = images[0], labels[0]
    source = "the classical segmentation" if segmented else "the given labels"
    depth = centreness(label, spacing)
    phase("camera")
    correlation, camera = measure_camera(images, label, spacing, storage.saturation)
    outside = np.concatenate([i[ndi.distance_transform_edt(lab == 0, sampling=spacing) > 2.0]
                              for i, lab in zip(images, labels, strict=True)]).astype(np.float64)
    if outside.size == 0:
        outside = np.concatenate([i[lab == 0] for i, lab in zip(images, labels, strict=True)]).astype(np.float64)
    background = float(np.median(outside))
    tables = [_object_table(i.astype(np.float64), lab, spacing, centreness(lab, spacing) if k else depth)
              for k, (i, lab) in enumerate(zip(images, labels, strict=True))]
    table = {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}
    above = table["mean"] - background
    bright = above[above > 0]
    if bright.size == 0:
        raise InputError("the objects are not brighter than the background; are they bright objects on a dark "
                         "background?")
    gain = camera["gain"]
    first = tables[0]
    phase("levels and haze")
    haze = fit_haze(image.astype(np.float64), label, spacing, first["mean"], first["ids"], background)
    floor = haze["floor"]
    median_above = float(np.median(np.maximum(table["mean"] - floor, 1e-9)))
    photons = median_above / (gain * (1 + haze["haze"] * haze["inside"]))
    phase("PSF")
    psf_axial, psf_lateral = fit_psf(image.astype(np.float64), label, spacing, first["mean"], first["ids"],
                                     background)
    phase("interior profile")
    profile, seen_profile = deconvolved_profile(image.astype(np.float64), label, depth, first["mean"], first["ids"],
                                                background, (psf_axial, psf_lateral), spacing)
    expected = object_model(label, depth, first["mean"], first["ids"], background, profile, (psf_axial, psf_lateral),
                            spacing)
    far = ndi.distance_transform_edt(label == 0, sampling=spacing) > 1.5
    ambient = None
    if far.mean() > 0.05:
        light = ambient_model(label, spacing, first, haze) + (expected - background)  # + the objects' PSF tails
        level = float(np.median(light[far]))
        ambient = texture_spectrum(image.astype(np.float64), far, spacing, light, camera, (psf_axial, psf_lateral),
                                   unit=1.0)
        if ambient["amplitude"] ** 2 < 0.25 * max(gain * level + camera["intercept"], 1e-9):
            ambient = None  # below a quarter of the noise variance: model misfit as much as texture
        else:
            camera = dark_level_below(camera, ambient["amplitude"], level)
            ambient["relative"] = ambient["amplitude"] / max(level - camera["offset"], 1e-9)
    phase("texture")
    texture = texture_spectrum(image.astype(np.float64), depth > 0.15, spacing, expected, camera,
                               (psf_axial, psf_lateral), label)
    phase("inclusions")
    inclusions = find_inclusions(image.astype(np.float64), label, spacing, depth, expected, camera["offset"])

    phase("shapes")  # masks: shape statistics from objects not cut by the volume's faces
    whole = ~table["touching"]
    shapes = whole if whole.sum() >= 3 else np.ones_like(whole)
    radii = (3 * table["volume"][shapes] / (4 * math.pi)) ** (1 / 3)
    ratio = float(np.nanmedian(table["ratio"][shapes]))
    along_z = float(np.nanmean(table["minor_along_z"][shapes]))
    depth_um = image.shape[0] * spacing[0]
    z = table["centroid"][:, 0]
    nn = []
    for t in tables:
        if len(t["centroid"]) >= 2:
            distance, _ = cKDTree(t["centroid"]).query(t["centroid"], k=2)
            nn.extend(distance[:, 1])
    nn = np.asarray(nn)
    n_cells = round(len(table["ids"]) / len(images))
    slab = (np.percentile(z, 95) - np.percentile(z, 5)) < 0.5 * depth_um and len(z) >= 3

    # attenuation: per-object brightness against depth
    log_bright = np.log(np.maximum(above, 1e-9))
    attenuation = None
    if np.ptp(z) >= 5 and len(z) >= 5:
        slope = np.polyfit(z[above > 0], log_bright[above > 0], 1)[0]
        if slope < 0 and -1 / slope < 10 * depth_um:
            attenuation = float(-1 / slope)

    nuclei_radius = float(radii.mean())
    defaults = NucleiConfig()
    flattening = flattening_for(ratio, defaults.deformation, defaults.gamma)
    nearest = float(np.percentile(nn, 10)) if len(nn) else 2.2 * nuclei_radius
    min_distance = max(nearest, nuclei_radius)  # closer centroids are split nuclei: the simulator refuses them
    config = {
        "dataset": {"n_samples": n_samples, "seed": seed, "name_prefix": "calibrated"},
        "volume": {"shape": list(image.shape), "spacing_um": list(spacing)},
        "masks": {
            "kind": "nuclei",
            "organism": {"kind": "none"},
            "placement": {"method": "poisson", "n_cells": max(1, n_cells),
                          "min_distance_um": [round(min_distance, 3)] * 3,
                          "z_range_um": [round(max(0.0, float(np.percentile(z, 5)) - 0.5), 3),
                                         round(float(np.percentile(z, 95)) + 0.5, 3)] if slab else None},
            "nuclei": {"shape": "sh", "radius_um": round(nuclei_radius, 3),
                       "radius_std_um": round(float(radii.std()), 3), "flattening": round(flattening, 3),
                       "flattening_axis": "z" if along_z > 0.8 else "random"},
        },
        "renderer": {"name": "optics"},
        "optics": {
            "brightness_sigma": round(log_spread(bright) if bright.size >= 3 else 0.0, 4),
            "texture": round(min(math.sqrt(math.log1p(texture["amplitude"] ** 2)), 5.0), 4),
            "texture_law": "lognormal",
            "texture_spectrum": texture["spectrum"],
            "texture_sigma": round(min(texture["spread"], 3.0), 4),
            "interior_profile": profile,
            "inclusions": [{"per_object": round(min(k["per_object"], 50.0), 3), "radius_um": round(k["radius_um"], 3),
                            "radius_std_um": round(k["radius_std_um"], 3), "factor": round(k["factor"], 3)}
                           for k in inclusions],
            "noise_correlation_um": round(correlation["sigma_um"], 4),
            "background": round(max(floor - camera["offset"], 0.0) / (gain * photons), 5),
            "ambient_texture": 0.0 if ambient is None else round(min(ambient["relative"], 3.0), 4),
            "ambient_spectrum": None if ambient is None else ambient["spectrum"],
            "haze": round(haze["haze"], 4),
            "haze_scale_um": haze["scale_um"],
            "attenuation_length_um": None if attenuation is None else round(attenuation, 2),
            "psf_sigma_um": [psf_axial, psf_lateral, psf_lateral],
            "photons": round(photons, 3),
            "read_noise": round(camera["read_noise"], 4),
            "gain": round(gain, 4),
            "offset": round(camera["offset"], 3),
            **storage.camera_config(),
        },
    }
    n_objects = len(table["ids"])
    note("volume.shape", None, "the calibration image's own shape (voxels)")
    note("masks.placement.n_cells", n_cells, f"objects per volume in {source} ({n_objects} in {len(images)})")
    note("masks.placement.min_distance_um", min_distance,
         (f"10th percentile of the nearest-neighbour centroid distance (median {np.median(nn):.2f} µm)" +
          (f", {nearest:.2f} µm raised to the mean radius (closer nuclei would overlap into fragments)"
           if nearest < nuclei_radius else "")) if len(nn) else "2.2 × the mean radius (one object only)")
    note("masks.placement.z_range_um", config["masks"]["placement"]["z_range_um"],
         f"5th-95th percentile of the centroid depth ± 0.5 µm: a slab (centroids span "
         f"{np.ptp(z):.1f} of {depth_um:.1f} µm)" if slab else
         f"none: centroids span {np.ptp(z):.1f} of {depth_um:.1f} µm, the whole depth")
    note("masks.nuclei.radius_um", nuclei_radius, f"mean equivalent radius of {int(shapes.sum())} objects not cut "
         "by a face, from their volume in µm³")
    note("masks.nuclei.radius_std_um", float(radii.std()), "spread (std) of the same equivalent radii")
    note("masks.nuclei.flattening", flattening, f"simulated nuclei show the measured median minor/major axis ratio "
         f"of the inertia ellipsoids in µm ({ratio:.3f})")
    note("masks.nuclei.flattening_axis", along_z, f"mean |cos| between the minor axis and z: {along_z:.2f} "
         "(> 0.8: z)")
    note("masks.nuclei.shape", "sh", "not measured: spherical harmonics, deformation and gamma at their defaults")
    note("optics.brightness_sigma", config["optics"]["brightness_sigma"],
         "robust std (1.4826 × MAD) of the log of each object's interior mean above the background")
    note("optics.texture", texture["amplitude"], "log-normal σ whose relative RMS is that of the in-object residual "
         "before the PSF (camera noise floor "
         f"{texture['noise_floor']:.4f} removed; {texture['post_blur_amplitude']:.3f} after the PSF)")
    note("optics.texture_spectrum", texture["spectrum"], "amplitude spectrum (cycles/µm) of that residual, "
         "deconvolved by the PSF's transfer function")
    note("optics.ambient_texture", config["optics"]["ambient_texture"], "relative RMS of the residual > 1.5 µm "
         "from objects around floor + haze, before the PSF (camera noise removed)"
         if ambient is not None else "none: less than 5 % of the volume is > 1.5 µm from objects, or its variance "
         "there is below a quarter of the camera noise's")
    note("optics.ambient_spectrum", config["optics"]["ambient_spectrum"], "amplitude spectrum of that residual, "
         "deconvolved by the PSF's transfer function")
    note("optics.texture_sigma", texture["spread"], "std of the log of the per-object texture RMS")
    note("optics.interior_profile", profile, "mean intensity above background over the object mean, against "
         "the normalised depth (0 surface, 1 centre), undone of the PSF's blur")
    note("seen_interior_profile", seen_profile, "the same in the image, after the blur")
    note("optics.inclusions", config["optics"]["inclusions"], "; ".join(
        f"{k['n']} {'dark' if k['factor'] < 1 else 'bright'} (smoothed residual beyond {k['threshold']:+.2f}, "
        f"≥ {MIN_INCLUSION_RADIUS_UM} µm)" for k in inclusions) + f" inclusions over {n_objects} objects"
        if inclusions else f"none found (≥ {MIN_INCLUSION_RADIUS_UM} µm beyond 4 MADs of the in-object residual)")
    note("optics.noise_correlation_um", correlation["sigma_um"], "lag-1 noise correlation along y, x far from "
         f"objects: {correlation['rho'][0]:.2f}, {correlation['rho'][1]:.2f}")
    note("optics.background", config["optics"]["background"], f"background without haze ({floor:.1f} camera units, "
         f"median > 2 µm from objects {background:.1f}) above the offset, in units of the median object signal")
    note("optics.haze", haze["haze"], "out-of-focus light: the image > 1 µm from objects fitted as floor + haze × "
         "(the objects' signal blurred by haze_scale_um)")
    note("optics.haze_scale_um", haze["scale_um"], "the blur of that fit with the least residual")
    note("optics.attenuation_length_um", attenuation, "log-linear fit of object brightness against depth"
         if attenuation is not None else "none: objects span < 5 µm of depth or do not dim with depth")
    note("optics.psf_sigma_um", [psf_axial, psf_lateral, psf_lateral], "Gaussian σ fitted so that the objects, "
         "filled with their means and blurred, best match the image")
    note("optics.photons", photons, f"median object signal above the floor ({median_above:.1f}) / gain, less "
         "the haze inside objects")
    note("optics.gain", gain, f"photon transfer slope over {len(camera['points'])} intensity bins (fitted with a "
         f"squared term for fine texture: {camera['fine_texture']:.3f} of the signal)")
    note("optics.offset", camera["offset"], camera.get("offset_how", "dark level: 0.5th percentile of the 1 "
                                                                      "µm-smoothed image"))
    note("optics.read_noise", camera["read_noise"], "from the photon-transfer intercept at the offset (electrons)")
    for key, value in storage.camera_config().items():
        note(f"optics.{key}", value, storage.describe())
    note("camera_points", camera["points"], "photon transfer: (mean, noise variance) per bin")
    phase("closed loop")
    validated = closed_loop(validate_config(config, "calibration"), image.astype(np.float64), label, spacing,
                            measured)
    return Calibration(validated, measured, labels, stored)  # type: ignore[arg-type]


def object_levels(image: np.ndarray, labels: np.ndarray, spacing: Spacing) -> dict:
    """The median > 2 µm from objects (``floor``), and the median and robust log-spread of the objects'
    interior means above it (:func:`closed_loop` matches the first two)."""
    far = ndi.distance_transform_edt(labels == 0, sampling=spacing) > 2.0
    floor = float(np.median(image[far])) if far.any() else float(np.percentile(image, 5))
    ids = np.flatnonzero(np.bincount(labels.ravel()))
    ids = ids[ids > 0]
    above = np.asarray(ndi.mean(image, np.where(centreness(labels, spacing) > 0.25, labels, 0), ids)) - floor
    above = above[np.isfinite(above) & (above > 0)]
    return {"floor": floor, "median": float(np.median(above)) if above.size else 0.0,
            "spread": log_spread(above) if above.size >= 3 else 0.0}


def closed_loop(config: Config, image: np.ndarray, labels: np.ndarray, spacing: Spacing, measured: dict,
                rounds: int = 2) -> Config:
    """Render the calibration labels with ``config`` and correct photons and background until the
    rendering shows the image's own median object signal and floor.

    Each measurement above is a model of one effect; together (haze, profile, texture, inclusions,
    the PSF) they shift these two levels, the first things a reader of an image sees. (The spread of
    object brightness is not corrected this way: one draw of a few objects is too noisy a target.)
    """
    from cellsynth.masks.simulate import masks_from_labels
    from cellsynth.synthesis.optics import OpticsRenderer

    target = object_levels(image, labels, spacing)
    masks = masks_from_labels(labels, spacing)
    if target["median"] <= 0:
        return config
    for _ in range(rounds):  # every object at the median brightness: one draw of a few would be the target's noise
        steady = with_overrides(config, {"optics.specimen.brightness_sigma": 0.0})
        renderer = OpticsRenderer(steady.optics, config.patching)
        shown = object_levels(renderer.to_adu(renderer.render(masks, np.random.default_rng(0)).image), labels, spacing)
        if shown["median"] <= 0:
            break
        scale = target["median"] / shown["median"]
        specimen, detector = config.optics.specimen, config.optics.camera
        adu_per_density = detector.gain * detector.photons
        config = with_overrides(config, {
            "optics.camera.photons": round(detector.photons * scale, 3),
            "optics.specimen.background": round(max(specimen.background + (target["floor"] - shown["floor"])
                                                    / adu_per_density, 0.0) / scale, 5)})
    for key, what in (("camera.photons", "the median object signal above the floor"),
                      ("specimen.background", "the floor")):
        entry = measured[f"optics.{key}"]
        entry["value"] = getattr(getattr(config.optics, key.split(".")[0]), key.split(".")[1])
        entry["how"] += (f"; then corrected so that the calibrated renderer drawing the same labels shows "
                         f"{what} of the image")
    return config


def calibrate_files(images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike] | None = None,
                    spacing: Sequence[float] | None = None, **options) -> Calibration:
    """:func:`calibrate` on image files (and their label files), with the spacing the files carry or ``spacing``.

    ``images`` and ``labels`` may each be files, glob patterns or one folder (its volume files in name
    order); the n-th label file belongs to the n-th image.

    Examples
    --------
    >>> calibration = calibrate_files(["my_nuclei.tif"], ["my_labels.tif"], kind="nuclei")  # doctest: +SKIP
    >>> calibration = calibrate_files(["stacks/"], ["stacks_labels/"])                       # doctest: +SKIP
    """
    from cellsynth.io import read_volume, volume_files

    images = volume_files(images, "calibration image")[0]
    labels = volume_files(labels, "calibration labels")[0] if labels else None  # counts: check_calibration_inputs
    volumes = []
    for path in images:
        image, spacing = read_volume(path, spacing, min_planes=3)  # the PSF along z and the depth need a stack
        volumes.append(image)
    label_volumes = [read_volume(path, spacing)[0] for path in labels] if labels else None
    return calibrate(volumes, spacing, label_volumes, **options)
