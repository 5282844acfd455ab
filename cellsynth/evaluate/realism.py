"""Unpaired realism: the statistics a synthetic image must share with real ones, no pixel pairing needed.

Each statistic is a small function of one image (profiles, spectra, histograms); :func:`compare`
puts two images side by side and reduces each pair of curves to one distance. Intensities are
normalised per image first (:func:`cellsynth.evaluate.metrics.normalize`, percentiles 1/99.8).
Frequencies are in cycles/µm and distances in µm, from the voxel spacing.

:func:`evaluate_realism` is the realism judge of ``cellsynth evaluate realism``: the classifier
two-sample test (:mod:`cellsynth.evaluate.c2st`, imported when called: it needs torch) and these
statistics, with their plots.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy import stats

from cellsynth.checks import check_output_folder, check_spacing
from cellsynth.dataset.samples import as_samples
from cellsynth.errors import InputError
from cellsynth.evaluate.metrics import normalize
from cellsynth.evaluate.settings import C2ST_PATCH_UM, C2ST_STEPS
from cellsynth.evaluate.volumes import resample
from cellsynth.io import jsonable, write_json_atomic
from cellsynth.masks.derived import specimen_mask
from cellsynth.progress import Phases
from cellsynth.sample import Sample
from cellsynth.synthesis.measure import radial_average

HISTOGRAM_SAMPLES = 200_000


def histogram_distance(a: np.ndarray, b: np.ndarray, rng: int = 0) -> float:
    """1D Wasserstein distance between the intensity distributions (same units as the intensities).

    Large volumes are compared on a fixed random sample of 200 000 voxels each.
    """
    generator = np.random.default_rng(rng)
    values = []
    for image in (np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()):
        values.append(generator.choice(image, HISTOGRAM_SAMPLES, replace=False) if image.size > HISTOGRAM_SAMPLES
                      else image)
    return float(stats.wasserstein_distance(*values))


def contrast(image: np.ndarray, labels: np.ndarray) -> dict:
    """Object vs background: mean intensities, their ratio and Michelson contrast (f − b)/(f + b)."""
    image, labels = np.asarray(image, np.float64), np.asarray(labels)
    if image.shape != labels.shape:
        raise InputError(f"image shape {image.shape} and labels shape {labels.shape} differ; they must be equal")
    inside = labels > 0
    if not inside.any() or inside.all():
        raise InputError("contrast needs both labelled objects and background in the labels")
    fg, bg = float(image[inside].mean()), float(image[~inside].mean())
    return {"foreground_mean": fg, "background_mean": bg, "ratio": fg / bg if bg else float("inf"),
            "michelson": (fg - bg) / (fg + bg) if fg + bg else 0.0}


def radial_spectrum(image: np.ndarray, spacing: Sequence[float], n_bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum (mean removed, Hann-windowed).

    Parameters
    ----------
    image : ndarray
        ZYX.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    n_bins : int
        Frequency bins.

    Returns
    -------
    frequency : ndarray
        Bin centres in cycles/µm, up to the coarsest axis' Nyquist frequency.
    power : ndarray
        Mean |FFT|² per bin, normalised to sum 1 (so images of different brightness compare).

    Examples
    --------
    >>> image = np.random.default_rng(0).random((8, 32, 32))
    >>> frequency, power = radial_spectrum(image, (1.0, 0.5, 0.5), n_bins=8)
    >>> frequency.shape, round(float(power.sum()), 6)
    ((8,), 1.0)
    """
    spacing = check_spacing(spacing)
    image = np.asarray(image, np.float64)
    window = np.ones(image.shape)
    for axis, n in enumerate(image.shape):
        if n > 1:
            window *= np.hanning(n).reshape([-1 if a == axis else 1 for a in range(3)])
    power = np.abs(np.fft.fftn((image - image.mean()) * window)) ** 2
    frequency, mean = radial_average(power, spacing, n_bins)
    return frequency, mean / max(mean.sum(), 1e-300)


def axis_spectra(image: np.ndarray, spacing: Sequence[float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Power spectrum along each axis, averaged over all lines along it: ``{"z"|"y"|"x": (cycles/µm, power)}``."""
    spacing = check_spacing(spacing)
    image = np.asarray(image, np.float64)
    spectra = {}
    for axis, name in enumerate("zyx"):
        n = image.shape[axis]
        if n < 4:
            continue
        lines = np.moveaxis(image, axis, -1)
        lines = lines - lines.mean(axis=-1, keepdims=True)
        power = (np.abs(np.fft.rfft(lines * np.hanning(n), axis=-1)) ** 2).reshape(-1, n // 2 + 1).mean(0)
        spectra[name] = (np.fft.rfftfreq(n, spacing[axis]), power / max(power.sum(), 1e-300))
    return spectra


def spectrum_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean absolute difference of log10 power over the frequencies both spectra cover."""
    frequency = a[0][a[0] <= min(a[0].max(), b[0].max())]
    pa, pb = np.interp(frequency, *a), np.interp(frequency, *b)
    floor = 1e-12
    return float(np.mean(np.abs(np.log10(pa + floor) - np.log10(pb + floor))))


def depth_profile(image: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean intensity per z plane: ``(depth in µm, mean)``."""
    spacing = check_spacing(spacing)
    image = np.asarray(image, np.float64)
    return np.arange(image.shape[0]) * spacing[0], image.mean(axis=(1, 2))


def surface_profile(image: np.ndarray, specimen: np.ndarray, spacing: Sequence[float],
                    bin_um: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean intensity against signed distance to the specimen surface (µm, > 0 inside, < 0 outside)."""
    spacing = check_spacing(spacing)
    specimen = np.asarray(specimen, bool)
    if not specimen.any() or specimen.all():
        raise InputError("the specimen mask must have both inside and outside voxels")
    signed = ndi.distance_transform_edt(specimen, sampling=spacing) - ndi.distance_transform_edt(~specimen,
                                                                                                  sampling=spacing)
    which = np.floor(signed / bin_um).astype(np.int64).ravel()
    low = which.min()
    sums = np.bincount(which - low, np.asarray(image, np.float64).ravel())
    counts = np.bincount(which - low)
    keep = counts > 0
    return (np.arange(len(counts))[keep] + low + 0.5) * bin_um, sums[keep] / counts[keep]


def xz_profile(image: np.ndarray) -> np.ndarray:
    """Seed 001 Fig. 7: the centre xz-slice (y = Y/2) integrated over z, as a function of x."""
    image = np.asarray(image, np.float64)
    return image[:, image.shape[1] // 2, :].sum(axis=0)


def _curve_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean absolute difference of two curves over their common abscissa range."""
    low, high = max(a[0].min(), b[0].min()), min(a[0].max(), b[0].max())
    if high < low:
        return float("nan")
    grid = np.linspace(low, high, 64)
    return float(np.mean(np.abs(np.interp(grid, *a) - np.interp(grid, *b))))


def image_statistics(image: np.ndarray, spacing: Sequence[float], labels: np.ndarray | None = None,
                     normalization: str = "percentile", specimen: np.ndarray | None = None) -> dict:
    """Every unpaired statistic of one image (normalised first).

    ``specimen`` (default :func:`specimen_mask` of the labels) may be passed when already known.

    Parameters
    ----------
    image : ndarray
        ZYX.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    labels : ndarray, optional
        Instance labels (contrast).
    normalization : str
        Per-image normalisation.
    specimen : ndarray of bool, optional
        The specimen (default: from the labels or the image).

    Returns
    -------
    dict
        Histogram, spectra and profiles.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((8, 32, 32))
    >>> sorted(image_statistics(image, (1.0, 0.5, 0.5)))
    ['axis_spectra', 'depth_profile', 'radial_spectrum', 'xz_profile']
    """
    normalized = normalize(image, normalization)
    stats_: dict = {"radial_spectrum": radial_spectrum(normalized, spacing),
                    "axis_spectra": axis_spectra(normalized, spacing),
                    "depth_profile": depth_profile(normalized, spacing),
                    "xz_profile": xz_profile(normalized)}
    if labels is not None and np.any(labels):
        stats_["contrast"] = contrast(normalized, labels)
        specimen = specimen_mask(labels, spacing) if specimen is None else specimen
        if not specimen.all():
            stats_["surface_profile"] = surface_profile(normalized, specimen, spacing)
    return stats_


def compare(real: np.ndarray, synthetic: np.ndarray, spacing: Sequence[float], *,
            real_labels: np.ndarray | None = None, synthetic_labels: np.ndarray | None = None,
            normalization: str = "percentile") -> tuple[dict, dict, dict]:
    """Unpaired distances between a real and a synthetic image (shapes may differ).

    Parameters
    ----------
    real, synthetic : ndarray
        ZYX images (shapes may differ).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    real_labels, synthetic_labels : ndarray, optional
        Their labels (contrast statistics).
    normalization : str
        Per-image normalisation (:func:`~cellsynth.evaluate.metrics.normalize`).

    Returns
    -------
    distances : dict
        ``histogram_wasserstein``, ``radial_spectrum``, ``spectrum_z|y|x`` (mean |Δ log10 power|),
        ``depth_profile`` and ``surface_profile`` (mean |Δ normalised intensity|), and the two
        ``contrast`` dicts with labels.
    real_stats, synthetic_stats : dict
        The curves themselves (:func:`image_statistics`), for plots.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> distances, _, _ = compare(rng.random((8, 32, 32)), rng.random((8, 24, 24)), (1.0, 0.5, 0.5))
    >>> sorted(distances)
    ['depth_profile', 'histogram_wasserstein', 'radial_spectrum', 'spectrum_x', 'spectrum_y', 'spectrum_z']
    """
    real, synthetic = normalize(real, normalization), normalize(synthetic, normalization)
    shared = synthetic_labels is real_labels and real_labels is not None and np.any(real_labels)
    specimen = specimen_mask(real_labels, spacing) if shared else None  # one mask when both share labels
    a = image_statistics(real, spacing, real_labels, "none", specimen)
    b = image_statistics(synthetic, spacing, synthetic_labels, "none", specimen)
    distances = {
        "histogram_wasserstein": histogram_distance(real, synthetic),
        "radial_spectrum": spectrum_distance(a["radial_spectrum"], b["radial_spectrum"]),
        **{f"spectrum_{axis}": spectrum_distance(a["axis_spectra"][axis], b["axis_spectra"][axis])
           for axis in a["axis_spectra"] if axis in b["axis_spectra"]},
        "depth_profile": _curve_distance(a["depth_profile"], b["depth_profile"]),
    }
    if "surface_profile" in a and "surface_profile" in b:
        distances["surface_profile"] = _curve_distance(a["surface_profile"], b["surface_profile"])
    if "contrast" in a and "contrast" in b:
        distances["contrast"] = {"real": a["contrast"], "synthetic": b["contrast"]}
    return distances, a, b


def check_varies(volume: Sample, what: str) -> Sample:
    """``volume``, if its image is not constant (a classifier could tell it by its level alone)."""
    low, high = float(volume.image.min()), float(volume.image.max())
    if low == high:
        raise InputError(f"{what} image '{volume.name}' is constant (every voxel {low:g}); judging realism needs "
                         "intensity variation")
    return volume


def evaluate_realism(real: str | os.PathLike | Sequence[str | os.PathLike],
                     synthetic: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike, *,
                     spacing: Sequence[float] | None = None, patch_um: Sequence[float] = C2ST_PATCH_UM,
                     steps: int | None = C2ST_STEPS, minutes: float | None = None, seed: int = 0,
                     device: str = "auto", repeats: int = 1, progress: bool = False) -> dict:
    """``cellsynth evaluate realism``: C2ST plus the unpaired statistics, written into ``out``.

    With ``repeats`` above 1 the report adds :func:`repeated_c2st`'s figures (seeds 0 … repeats − 1,
    both orders of the parts): ``c2st_mean``, ``c2st_sd``, ``c2st_runs``, ``c2st_pooled_ci95``.

    ``out/realism.json`` holds ``c2st_accuracy``, ``c2st_auc``, ``c2st_ci95``, ``n_test``, the C2ST
    settings and ``unpaired``: histogram distance, spectra distances and contrast of the first real
    against the first synthetic volume (at the common spacing; contrast where labels exist).
    ``out/c2st_patches.png`` shows the most synthetic- and real-looking test patches;
    ``spectra.png``, ``histogram.png``, ``depth.png``, ``xz_profile.png`` and ``slices.png`` the curves.
    ``progress``: a bar of the named phases (reading, classifier, repeats, statistics, plots).

    Parameters
    ----------
    real, synthetic : path-like or sequence of path-like
        Image files, folders of them, or dataset folders.
    out : path-like
        A new folder for the report and plots.
    spacing : 3 floats, optional
        Voxel size in µm of files without one.
    patch_um : 3 floats
        The classifier's patch in µm.
    steps, minutes : int or float, optional
        The classifier's budget (:func:`~cellsynth.evaluate.c2st.c2st`).
    seed : int
        The classifier's seed.
    device : {'auto', 'cpu', 'cuda'}
        Where the classifier trains (auto: cuda when there is one).
    repeats : int
        Classifier seeds, each in both orders of the parts (1: one run).
    progress : bool
        A bar of the named phases.

    Returns
    -------
    dict
        What ``realism.json`` holds.

    Examples
    --------
    Two recordings of the same toy nuclei (another draw of the shot noise) cannot be told apart:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.io import write_volume
    >>> root = Path(tempfile.mkdtemp())
    >>> for seed in (0, 1):
    ...     image, labels, spacing = toy_nuclei(seed=seed)
    ...     _ = write_volume(root / f"nuclei{seed}.tif", image, spacing)
    >>> report = evaluate_realism(root / "nuclei0.tif", root / "nuclei1.tif", root / "realism", steps=4)
    >>> round(report["c2st_accuracy"], 1), report["n_test"]  # 0.5: chance
    (0.5, 48)
    >>> sorted(path.name for path in (root / "realism").iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['c2st_patches.png', 'depth.png', 'histogram.png', 'realism.json', 'slices.png', 'spectra.png',
     'xz_profile.png']
    """
    from cellsynth.evaluate.c2st import check_repeats

    check_repeats(repeats)
    out = check_output_folder(out)
    with Phases("realism", ["reading", "classifier", "repeats", "statistics", "plots"], progress) as phase:
        phase("reading")
        reals = [check_varies(v, "--real") for v in as_samples(real, spacing, what="--real")]
        synthetics = [check_varies(v, "--synthetic") for v in as_samples(synthetic, spacing, what="--synthetic")]
        phase("classifier")
        return _realism_report(reals, synthetics, real, synthetic, out, phase, patch_um=patch_um, steps=steps,
                               minutes=minutes, seed=seed, device=device, repeats=repeats)


def _realism_report(reals: list[Sample], synthetics: list[Sample], real, synthetic, out: Path, phase: Phases, *,
                    patch_um, steps, minutes, seed, device, repeats) -> dict:
    from cellsynth.evaluate.c2st import c2st, repeated_c2st
    from cellsynth.evaluate.plots import write_plots

    result = c2st(reals, synthetics, patch_um=patch_um, steps=steps, minutes=minutes, seed=seed, device=device)
    grid = tuple(result.settings["spacing_um"])
    first_real = resample(reals[0].image, reals[0].spacing, grid)
    first_synthetic = resample(synthetics[0].image, synthetics[0].spacing, grid)

    def labels_of(volume: Sample, shape) -> np.ndarray | None:
        if volume.labels is None or not volume.labels.any():
            return None
        return resample(volume.labels, volume.spacing, grid, order=0, shape=shape)

    phase("statistics")
    distances, real_stats, synthetic_stats = compare(first_real, first_synthetic, grid,
                                                     real_labels=labels_of(reals[0], first_real.shape),
                                                     synthetic_labels=labels_of(synthetics[0], first_synthetic.shape))
    def named(source) -> str | list[str]:
        return str(source) if isinstance(source, (str, os.PathLike)) else [str(s) for s in source]

    report = {**result.summary(), "real": named(real), "synthetic": named(synthetic), "unpaired": jsonable(distances),
              "unpaired_of": [reals[0].name, synthetics[0].name]}
    phase("repeats")
    if repeats > 1:
        report.update(repeated_c2st(reals, synthetics, repeats=repeats, patch_um=patch_um, steps=steps,
                                    minutes=minutes, device=device))
    phase("plots")
    out.mkdir(exist_ok=True)
    result.figure(out / "c2st_patches.png")
    plots = write_plots({"real": first_real, "synthetic": first_synthetic},
                        {"real": real_stats, "synthetic": synthetic_stats}, grid, out)
    report["plots"] = ["c2st_patches.png", *(p.name for p in plots)]
    write_json_atomic(out / "realism.json", report)
    return report


def realism_summary(report: dict) -> str:
    """What an :func:`evaluate_realism` report says about the C2ST, as ``cellsynth evaluate realism`` prints it.

    Parameters
    ----------
    report : dict
        The report of :func:`evaluate_realism`.

    Returns
    -------
    str
        The accuracy with its exact interval, the AUC and the test patches; with repeats the mean ± sd of
        every run and the pooled interval.
    """
    low, high = report["c2st_ci95"]
    lines = [f"C2ST accuracy {report['c2st_accuracy']:.3f} (95 % CI {low:.3f}-{high:.3f}), AUC "
             f"{report['c2st_auc']:.3f}, {report['n_test']} test patches (0.5 = cannot be told apart, 1.0 = trivially "
             "told apart)"]
    if len(report.get("c2st_runs", [])) > 1:
        low, high = report["c2st_pooled_ci95"]
        lines.append(f"over {len(report['c2st_runs'])} runs ({report['repeats']} seeds x both orders of the parts): "
                     f"{report['c2st_mean']:.3f} ± {report['c2st_sd']:.3f} (pooled 95 % CI {low:.3f}-{high:.3f}); "
                     "runs " + ", ".join(f"{run['accuracy']:.3f}" for run in report["c2st_runs"]))
    return "\n".join(lines)

