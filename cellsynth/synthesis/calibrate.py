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
from cellsynth.config import Config, NucleiConfig, with_overrides
from cellsynth.errors import InputError
from cellsynth.masks.derived import centreness
from cellsynth.masks.segment import classical_segmentation, equivalent_radii
from cellsynth.progress import Phases
from cellsynth.sample import Sample
from cellsynth.synthesis.calibrate_membranes import calibrate_membranes
from cellsynth.synthesis.fit import (
    MIN_INCLUSION_RADIUS_UM,
    ambient_model,
    deconvolved_profile,
    find_inclusions,
    fit_haze,
    fit_psf,
    flattening_for,
    object_levels,
    object_model,
    object_table,
)
from cellsynth.synthesis.measure import (
    camera_storage,
    dark_level_below,
    log_spread,
    measure_camera,
    texture_spectrum,
)
from cellsynth.synthesis.preset import Calibration, Measurement, Measurements, check_calibration_inputs


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


def calibrate(images, spacing: Sequence[float] | None = None, labels=None, *, kind: str = "nuclei", n_samples: int = 8,
              seed: int = 0, segmentation: dict | None = None, progress: bool = False) -> Calibration:
    """Measure real volume(s) and return the config that simulates and renders data like them.

    Parameters
    ----------
    images : Sample, ndarray, path-like, or a sequence of them
        Raw 3D images (ZYX, camera units) of one microscope setting, objects bright: Samples (with
        their spacing and, if they have them, their labels), arrays, or anything else
        :func:`~cellsynth.dataset.samples.as_samples` reads.
    spacing : 3 floats, optional
        Voxel size (z, y, x) in µm of arrays (Samples and files bring their own).
    labels : ndarray or sequence of ndarray, optional
        Instance labels of the images, one per image; default: the Samples' own labels, else the
        classical segmentation (:func:`segment_adaptively`).
    kind : {"nuclei", "membranes"}
        What is stained (membranes: :func:`~cellsynth.synthesis.calibrate_membranes.calibrate_membranes`).
    n_samples : int
        The dataset.n_samples of the config.
    seed : int
        The dataset.seed of the config.
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
    A camera of 2 ADU per photoelectron and nuclei of 5 µm radius come back:

    >>> from cellsynth.examples import toy_nuclei
    >>> image, labels, spacing = toy_nuclei(gain=2.0)
    >>> calibration = calibrate(Sample(labels, image, spacing))
    >>> config = calibration.config
    >>> round(config.optics.camera.gain, 1), round(config.masks.nuclei.radius_um, 1), config.volume.spacing_um
    (2.0, 5.0, (1.0, 0.5, 0.5))
    >>> print(next(line for line in calibration.yaml().splitlines() if "gain:" in line))  # doctest: +ELLIPSIS
        gain: 2.0...  # photon transfer slope over 24 intensity bins ...
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
    tables = [object_table(i.astype(np.float64), lab, spacing, centreness(lab, spacing) if k else depth)
              for k, (i, lab) in enumerate(zip(images, labels, strict=True))]
    table = {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}
    above = table["mean"] - background
    bright = above[above > 0]
    if bright.size == 0:
        raise InputError("the objects are not brighter than the background; are they bright objects on a dark "
                         "background?")
    gain = camera.gain
    first = tables[0]
    phase("levels and haze")
    haze = fit_haze(image.astype(np.float64), label, spacing, first["mean"], first["ids"], background)
    floor = haze.floor
    median_above = float(np.median(np.maximum(table["mean"] - floor, 1e-9)))
    photons = median_above / (gain * (1 + haze.haze * haze.inside))
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
        if ambient["amplitude"] ** 2 < 0.25 * max(gain * level + camera.intercept, 1e-9):
            ambient = None  # below a quarter of the noise variance: model misfit as much as texture
        else:
            camera = dark_level_below(camera, ambient["amplitude"], level)
            ambient["relative"] = ambient["amplitude"] / max(level - camera.offset, 1e-9)
    phase("texture")
    texture = texture_spectrum(image.astype(np.float64), depth > 0.15, spacing, expected, camera,
                               (psf_axial, psf_lateral), label)
    phase("inclusions")
    inclusions = find_inclusions(image.astype(np.float64), label, spacing, depth, expected, camera.offset)

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
    n_objects = len(table["ids"])
    found = Measurements.of_volume("nuclei", image.shape, spacing, n_samples, seed)
    found.set("masks.organism.kind", "none")
    found.set("masks.placement.method", "poisson")
    found.set("masks.placement.n_cells", max(1, n_cells), f"objects per volume in {source} ({n_objects} in "
              f"{len(images)})")
    found.set("masks.placement.min_distance_um", [round(min_distance, 3)] * 3,
              (f"10th percentile of the nearest-neighbour centroid distance (median {np.median(nn):.2f} µm)" +
               (f", {nearest:.2f} µm raised to the mean radius (closer nuclei would overlap into fragments)"
                if nearest < nuclei_radius else "")) if len(nn) else "2.2 × the mean radius (one object only)")
    found.set("masks.placement.z_range_um",
              [round(max(0.0, float(np.percentile(z, 5)) - 0.5), 3), round(float(np.percentile(z, 95)) + 0.5, 3)]
              if slab else None,
              f"5th-95th percentile of the centroid depth ± 0.5 µm: a slab (centroids span {np.ptp(z):.1f} of "
              f"{depth_um:.1f} µm)" if slab else
              f"none: centroids span {np.ptp(z):.1f} of {depth_um:.1f} µm, the whole depth")
    found.set("masks.nuclei.shape", "sh", "not measured: spherical harmonics, deformation and gamma at their "
              "defaults")
    found.set("masks.nuclei.radius_um", round(nuclei_radius, 3), f"mean equivalent radius of {int(shapes.sum())} "
              "objects not cut by a face, from their volume in µm³")
    found.set("masks.nuclei.radius_std_um", round(float(radii.std()), 3), "spread (std) of the same equivalent radii")
    found.set("masks.nuclei.flattening", round(flattening, 3), "simulated nuclei show the measured median "
              f"minor/major axis ratio of the inertia ellipsoids in µm ({ratio:.3f})")
    found.set("masks.nuclei.flattening_axis", "z" if along_z > 0.8 else "random",
              f"mean |cos| between the minor axis and z: {along_z:.2f} (> 0.8: z)")
    specimen = "optics.specimen."
    found.set(specimen + "brightness_sigma", round(log_spread(bright) if bright.size >= 3 else 0.0, 4),
              "robust std (1.4826 × MAD) of the log of each object's interior mean above the background")
    found.set(specimen + "texture", round(min(math.sqrt(math.log1p(texture["amplitude"] ** 2)), 5.0), 4),
              "log-normal σ whose relative RMS is that of the in-object residual before the PSF (camera noise "
              f"floor {texture['noise_floor']:.4f} removed; {texture['post_blur_amplitude']:.3f} after the PSF)")
    found.set(specimen + "texture_law", "lognormal")
    found.set(specimen + "texture_spectrum", texture["spectrum"], "amplitude spectrum (cycles/µm) of that "
              "residual, deconvolved by the PSF's transfer function")
    found.set(specimen + "texture_sigma", round(min(texture["spread"], 3.0), 4),
              "std of the log of the per-object texture RMS")
    found.set(specimen + "interior_profile", profile, "mean intensity above background over the object mean, "
              "against the normalised depth (0 surface, 1 centre), undone of the PSF's blur")
    found.note("seen_interior_profile", seen_profile, "the same in the image, after the blur")
    inclusion_entries = [{"per_object": round(min(k["per_object"], 50.0), 3), "radius_um": round(k["radius_um"], 3),
                          "radius_std_um": round(k["radius_std_um"], 3), "factor": round(k["factor"], 3)}
                         for k in inclusions]
    found.set(specimen + "inclusions", inclusion_entries, "; ".join(
        f"{k['n']} {'dark' if k['factor'] < 1 else 'bright'} (smoothed residual beyond {k['threshold']:+.2f}, "
        f"≥ {MIN_INCLUSION_RADIUS_UM} µm)" for k in inclusions) + f" inclusions over {n_objects} objects"
        if inclusions else f"none found (≥ {MIN_INCLUSION_RADIUS_UM} µm beyond 4 MADs of the in-object residual)")
    found.set(specimen + "background", round(max(floor - camera.offset, 0.0) / (gain * photons), 5),
              f"background without haze ({floor:.1f} camera units, median > 2 µm from objects {background:.1f}) "
              "above the offset, in units of the median object signal")
    found.set(specimen + "ambient_texture", 0.0 if ambient is None else round(min(ambient["relative"], 3.0), 4),
              "relative RMS of the residual > 1.5 µm from objects around floor + haze, before the PSF (camera "
              "noise removed)" if ambient is not None else "none: less than 5 % of the volume is > 1.5 µm from "
              "objects, or its variance there is below a quarter of the camera noise's")
    found.set(specimen + "ambient_spectrum", None if ambient is None else ambient["spectrum"],
              "amplitude spectrum of that residual, deconvolved by the PSF's transfer function")
    found.set(specimen + "attenuation_length_um", None if attenuation is None else round(attenuation, 2),
              "log-linear fit of object brightness against depth" if attenuation is not None else
              "none: objects span < 5 µm of depth or do not dim with depth")
    microscope = "optics.microscope."
    found.set(microscope + "haze", round(haze.haze, 4), "out-of-focus light: the image > 1 µm from objects "
              "fitted as floor + haze × (the objects' signal blurred by haze_scale_um)")
    found.set(microscope + "haze_scale_um", haze.scale_um, "the blur of that fit with the least residual")
    found.set(microscope + "psf_sigma_um", [psf_axial, psf_lateral, psf_lateral], "Gaussian σ fitted so that the "
              "objects, filled with their means and blurred, best match the image")
    detector = "optics.camera."
    found.set(detector + "noise_correlation_um", round(correlation["sigma_um"], 4), "lag-1 noise correlation "
              f"along y, x far from objects: {correlation['rho'][0]:.2f}, {correlation['rho'][1]:.2f}")
    found.set(detector + "photons", round(photons, 3), f"median object signal above the floor "
              f"({median_above:.1f}) / gain, less the haze inside objects")
    found.set_camera(camera, storage, gain_how=f" (fitted with a squared term for fine texture: "
                                               f"{camera.fine_texture:.3f} of the signal)")
    phase("closed loop")
    validated = closed_loop(found.preset(), image.astype(np.float64), label, spacing, found.found)
    return Calibration(validated, found.found, labels, stored)


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
        section, name = key.split(".")
        measured[f"optics.{key}"] = Measurement(getattr(getattr(config.optics, section), name), (
            f"{measured[f'optics.{key}'].how}; then corrected so that the calibrated renderer drawing the same "
            f"labels shows {what} of the image"))
    return config


def calibrate_files(images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike] | None = None,
                    spacing: Sequence[float] | None = None, **options) -> Calibration:
    """:func:`calibrate` on image files (and their label files), with the spacing the files carry or ``spacing``.

    ``images`` and ``labels`` may each be files, glob patterns or one folder (its volume files in name
    order); the n-th label file belongs to the n-th image.

    Parameters
    ----------
    images : sequence of path-like
        Image files, glob patterns or one folder.
    labels : sequence of path-like, optional
        Their label files, in the same order (default: the classical segmentation).
    spacing : 3 floats, optional
        Voxel size in µm, for files without one.
    **options
        Keywords of :func:`calibrate` (``kind``, ``n_samples``, ``seed``, ``progress``, …).

    Returns
    -------
    Calibration

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.io import write_volume
    >>> image, labels, spacing = toy_nuclei(gain=2.0)
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_volume(folder / "nuclei.tif", image, spacing), write_volume(folder / "labels.tif", labels, spacing)
    >>> calibration = calibrate_files([folder / "nuclei.tif"], [folder / "labels.tif"], n_samples=2)
    >>> calibration.config.dataset.n_samples, round(calibration.config.optics.camera.gain, 1)
    (2, 2.0)
    """
    from cellsynth.io import read_volume, volume_files

    images = volume_files(images, "calibration image")[0]
    labels = volume_files(labels, "calibration labels")[0] if labels else None  # counts: check_calibration_inputs
    samples = []
    for path in images:
        image, found = read_volume(path, spacing, min_planes=3)  # the PSF along z and the depth need a stack
        samples.append(Sample(image=image, spacing=found, name=path.name))
    label_volumes = [read_volume(path, samples[0].spacing)[0] for path in labels] if labels else None
    return calibrate(samples, labels=label_volumes, **options)
