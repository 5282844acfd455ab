"""Fits of the physics model to a labelled image, for :func:`~cellsynth.synthesis.calibrate.calibrate`:
per-object tables, the PSF, the haze, the interior profile (seen and deconvolved), the ambient light,
inclusions, the flattening that simulated nuclei need, and the levels the closed loop matches. The
image statistics that need no model (camera, texture spectra) are in :mod:`.measure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from cellsynth.checks import Spacing
from cellsynth.masks.derived import centreness
from cellsynth.synthesis.measure import (
    AXIAL_SIGMAS,
    HAZE_SCALES_UM,
    LATERAL_SIGMAS,
    coordinate_search,
    log_spread,
)

#: Normalised-depth bins of the interior profile.
PROFILE_EDGES = np.linspace(0, 1, 9)
#: Inclusions smaller than a ball of this radius (µm) are texture, not nucleoli.
MIN_INCLUSION_RADIUS_UM = 0.3


def object_table(image: np.ndarray, labels: np.ndarray, spacing: Spacing, depth: np.ndarray) -> dict:
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




@dataclass(frozen=True)
class HazeFit:
    """Out-of-focus light as :func:`fit_haze` found it: ``floor + haze · (G_s ⊛ M)`` around the objects.

    Attributes
    ----------
    haze : float
        Light per unit of object signal (the renderer's ``optics.microscope.haze``); 0 for none.
    scale_um : float
        ``s``, the blur of the haze (µm).
    floor : float
        The background without haze (camera units).
    inside : float
        The haze the objects receive themselves, per unit of their own signal.

    Examples
    --------
    >>> HazeFit.none(100.0)
    HazeFit(haze=0.0, scale_um=3.0, floor=100.0, inside=0.0)
    """

    haze: float
    scale_um: float
    floor: float
    inside: float

    @classmethod
    def none(cls, background: float) -> HazeFit:
        """No haze over ``background`` (camera units)."""
        return cls(0.0, 3.0, background, 0.0)


def fit_haze(image: np.ndarray, labels: np.ndarray, spacing: Spacing, means: np.ndarray, ids: np.ndarray,
             background: float) -> HazeFit:
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
    if target.size < 1000 or not signal.any():
        return HazeFit.none(background)
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
        return HazeFit.none(background)
    inside = labels > 0
    return HazeFit(float(haze), float(scale), float(floor),
                   float(np.mean(spread[inside] / np.maximum(signal[inside], 1e-9))))


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


def ambient_model(labels: np.ndarray, spacing: Spacing, table: dict, haze: HazeFit) -> np.ndarray:
    """The ambient light :func:`fit_haze` found (camera units): its floor plus the objects' signal blurred by
    the haze scale, times the haze."""
    lookup = np.zeros(int(labels.max()) + 1)
    lookup[table["ids"]] = np.maximum(table["mean"] - haze.floor, 0)
    spread = ndi.gaussian_filter(lookup[labels], [haze.scale_um / s for s in spacing])
    return haze.floor + haze.haze * spread


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
    shapes = [FlattenedShape(random_sh_shape(8.0, gamma=gamma, deformation=deformation, rng=rng),
                             np.array([1.0, 0.0, 0.0]), flattening) for _ in range(n_shapes)]
    # side by side in one volume, each in a 41-voxel cube of its own (1 µm voxels, centred on a voxel)
    centres = np.array([[20.0, 20.0, 20.0 + 41 * k] for k in range(n_shapes)])
    labels, _ = rasterize_shapes((41, 41, 41 * n_shapes), (1.0, 1.0, 1.0), centres, shapes)
    ratios = []
    for k in range(n_shapes):
        eigenvalues = np.linalg.eigvalsh(np.cov(np.argwhere(labels[:, :, 41 * k:41 * (k + 1)] == k + 1).T
                                                .astype(np.float64)))
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
