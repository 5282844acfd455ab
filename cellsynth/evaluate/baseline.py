"""The classical baseline: smoothing, Otsu threshold and a distance-transform watershed, no training.

A segmenter trained on cellsynth data has to beat this on the user's real images, or the data is
not worth training on. The segmentation itself is
:func:`cellsynth.masks.segment.classical_segmentation` (every parameter in µm).
:func:`baseline` runs it over a labelled test set and writes the same ``report.json`` as
:func:`cellsynth.evaluate.syn2real.syn2real`, so the figures sit side by side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import check_output_folder
from cellsynth.dataset.samples import as_samples
from cellsynth.evaluate.segmentation import THRESHOLDS, matching, pooled_scores
from cellsynth.io import jsonable, write_json_atomic, write_volume
from cellsynth.masks.segment import (
    MIN_SEED_DISTANCE_UM,
    MIN_VOLUME_UM3,
    SMOOTHING_UM,
    check_segmentation_settings,
    classical_segmentation,
)
from cellsynth.sample import Sample


def write_segmentation_results(out: Path, volumes: Sequence[Sample], predictions: Sequence[np.ndarray],
                               settings: dict, thresholds: Sequence[float] = THRESHOLDS, **extra) -> dict:
    """Score predicted instances against the test labels; write ``report.json`` and ``predictions/``.

    The report holds ``settings``, ``pooled`` (counts summed over the test images, per threshold),
    ``per_image`` (:func:`~cellsynth.evaluate.segmentation.matching` of each) and ``extra``.
    """
    per_image = [matching(v.labels, p, thresholds) for v, p in zip(volumes, predictions, strict=True)]
    report = jsonable({"settings": settings, "pooled": pooled_scores(per_image), "per_image": per_image,
                       "test_names": [v.name for v in volumes], **extra})
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    for index, (volume, predicted) in enumerate(zip(volumes, predictions, strict=True)):
        write_volume(out / "predictions" / f"test_{index:04d}.tif", predicted, volume.spacing)
    write_json_atomic(out / "report.json", report)
    return report


def baseline(test: str | os.PathLike | Sequence[Sample], out: str | os.PathLike | None = None, *,
             smoothing_um: float = SMOOTHING_UM, min_seed_distance_um: float = MIN_SEED_DISTANCE_UM,
             min_volume_um3: float = MIN_VOLUME_UM3, thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """Segment every image of a labelled test set with :func:`classical_segmentation` and score it.

    Parameters
    ----------
    test : path-like or sequence of Sample
        A dataset folder with labels (or volumes with labels).
    out : path-like, optional
        New folder for ``report.json`` and ``predictions/test_NNNN.tif``.
    smoothing_um : float
        Gaussian σ in µm.
    min_seed_distance_um : float
        Seeds are distance maxima within this half-width in µm.
    min_volume_um3 : float
        Smaller objects are dropped.
    thresholds : sequence of float
        IoU thresholds of the matching.

    Returns
    -------
    dict
        The report (see :func:`write_segmentation_results`).

    Examples
    --------
    >>> labels = np.zeros((12, 32, 32), np.uint16); labels[3:9, 4:14, 4:14], labels[3:9, 18:28, 16:26] = 1, 2
    >>> image = np.where(labels > 0, 200.0, 20.0) + np.random.default_rng(0).normal(0, 5, labels.shape)
    >>> report = baseline([Sample(labels, image, (1.0, 0.5, 0.5))], min_seed_distance_um=2, min_volume_um3=5)
    >>> report["pooled"][4]["threshold"], report["pooled"][4]["average_precision"]  # AP at IoU 0.5
    (0.5, 1.0)
    """
    check_segmentation_settings(smoothing_um, min_seed_distance_um, min_volume_um3)
    out = check_output_folder(out) if out is not None else None
    volumes = as_samples(test, labels=True, what="--test")
    settings = {"method": "classical", "test": str(test) if isinstance(test, (str, os.PathLike)) else "arrays",
                "smoothing_um": smoothing_um, "min_seed_distance_um": min_seed_distance_um,
                "min_volume_um3": min_volume_um3}
    predictions = [classical_segmentation(v.image, v.spacing, smoothing_um=smoothing_um,
                                          min_seed_distance_um=min_seed_distance_um, min_volume_um3=min_volume_um3)
                   for v in volumes]
    if out is None:
        per_image = [matching(v.labels, p, thresholds) for v, p in zip(volumes, predictions, strict=True)]
        return jsonable({"settings": settings, "pooled": pooled_scores(per_image), "per_image": per_image})
    return write_segmentation_results(out, volumes, predictions, settings, thresholds)
