"""``cellsynth evaluate images``: paired and unpaired realism of a synthetic image against a real one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import check_image, check_labels, check_spacing
from cellsynth.errors import InputError
from cellsynth.evaluate.metrics import paired_metrics
from cellsynth.evaluate.plots import write_plots
from cellsynth.evaluate.realism import compare
from cellsynth.io import jsonable, write_json_atomic


def evaluate_images(
    real: np.ndarray,
    synthetic: np.ndarray,
    spacing: Sequence[float],
    *,
    labels: np.ndarray | None = None,
    out: str | os.PathLike | None = None,
    normalization: str = "percentile",
) -> dict:
    """Compare a synthetic image with a real one; optionally write ``metrics.json`` and PNG plots.

    Parameters
    ----------
    real, synthetic : ndarray
        ZYX images. Of equal shape, they are also compared voxel by voxel
        (:func:`~cellsynth.evaluate.metrics.paired_metrics`): the synthetic image should then be
        made from the real image's own labels.
    spacing : 3 floats
        Voxel size in µm (both images).
    labels : ndarray, optional
        The real image's labels (foreground metrics, contrast, intensity vs the specimen surface).
    out : path-like, optional
        Folder for ``metrics.json`` and the plots (created; existing files replaced atomically).
    normalization : str
        See :func:`cellsynth.evaluate.metrics.normalize`.

    Returns
    -------
    dict
        ``paired`` (None for different shapes), ``unpaired`` distances, and the inputs' description.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.random((8, 32, 32)); labels = np.zeros(real.shape, np.uint16); labels[2:6, 8:24, 8:24] = 1
    >>> result = evaluate_images(real, real + rng.normal(0, 0.05, real.shape), (1.0, 0.5, 0.5), labels=labels)
    >>> sorted(result)
    ['normalization', 'paired', 'real_shape', 'spacing_um', 'synthetic_shape', 'unpaired']
    """
    real, synthetic = check_image(real, "real image"), check_image(synthetic, "synthetic image")
    spacing = check_spacing(spacing)
    if labels is not None:
        labels = check_labels(labels)
        if labels.shape != real.shape:
            raise InputError(f"labels shape {labels.shape} differs from the real image's {real.shape}")
    paired = real.shape == synthetic.shape
    result = {
        "real_shape": list(real.shape), "synthetic_shape": list(synthetic.shape), "spacing_um": list(spacing),
        "normalization": normalization,
        "paired": paired_metrics(real, synthetic, labels, normalization=normalization) if paired else None,
    }
    distances, real_stats, synthetic_stats = compare(real, synthetic, spacing, real_labels=labels,
                                                     synthetic_labels=labels if paired else None,
                                                     normalization=normalization)
    result["unpaired"] = distances
    result = jsonable(result)
    if out is not None:
        out = Path(out)
        plots = write_plots({"real": real, "synthetic": synthetic},
                            {"real": real_stats, "synthetic": synthetic_stats}, spacing, out, normalization)
        result["plots"] = [p.name for p in plots]
        write_json_atomic(out / "metrics.json", result)
    return result


def evaluate_image_files(real: str | os.PathLike, synthetic: str | os.PathLike, out: str | os.PathLike, *,
                         labels: str | os.PathLike | None = None, spacing: Sequence[float] | None = None,
                         normalization: str = "percentile") -> dict:
    """:func:`evaluate_images` on image files (spacing from the real image's file, or ``spacing`` in µm).

    Parameters
    ----------
    real : path-like
        The real image file.
    synthetic : path-like
        The synthetic image file; made from the real image's labels (same shape) for the paired metrics.
    out : path-like
        A new folder for ``metrics.json`` and the plots.
    labels : path-like, optional
        The real image's labels (foreground metrics).
    spacing : 3 floats, optional
        Voxel size in µm (default: the real file's).
    normalization : {"percentile", "min-max", "zscore", "none"}
        Per-image intensity normalisation (:func:`~cellsynth.evaluate.metrics.normalize`): between the
        1st and 99.8th percentiles, min–max, z-score, or none.

    Returns
    -------
    dict
        What ``metrics.json`` holds.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.io import write_volume
    >>> root = Path(tempfile.mkdtemp())
    >>> real = np.random.default_rng(0).poisson(50, (8, 32, 32)).astype(np.uint16)
    >>> _ = write_volume(root / "real.tif", real, (1.0, 0.5, 0.5))
    >>> _ = write_volume(root / "synthetic.tif", real + 5, (1.0, 0.5, 0.5))
    >>> result = evaluate_image_files(root / "real.tif", root / "synthetic.tif", root / "metrics")
    >>> round(result["paired"]["whole"]["zncc"], 3)
    1.0
    >>> print(paired_summary(result))
         whole: nrmse 0, ssim 1, zncc 1, psnr_db inf
    """
    from cellsynth.io import read_volume

    real_image, spacing = read_volume(real, spacing)
    synthetic_image, _ = read_volume(synthetic, spacing)
    label_volume = read_volume(labels, spacing)[0] if labels else None
    return evaluate_images(real_image, synthetic_image, spacing, labels=label_volume, out=out,
                           normalization=normalization)


def paired_summary(result: dict) -> str:
    """The paired metrics of an :func:`evaluate_images` result, for a person: one line per region (nothing
    for images of different shapes)."""
    return "\n".join(f"{region:>10}: " + ", ".join(f"{key} {value:.4g}" if value is not None else f"{key} inf"
                                                  for key, value in values.items())
                     for region, values in (result["paired"] or {}).items() if isinstance(values, dict))
