"""Segmentation accuracy: instance matching at IoU thresholds, semantic IoU/Dice, with tolerance.

Instance matching follows StarDist's ``matching``: the IoU of every (true, predicted) pair is
computed from one contingency table; at each threshold τ a one-to-one assignment (Hungarian,
``scipy.optimize.linear_sum_assignment``) maximises the number of pairs with IoU ≥ τ (ties broken
by larger IoU), and

- TP = matched pairs, FP = unmatched predictions, FN = unmatched true objects;
- precision TP/(TP+FP), recall TP/(TP+FN), F1 2TP/(2TP+FP+FN), and *average precision* as
  StarDist defines it, TP/(TP+FP+FN) — each 0 when TP = 0 (so two empty volumes score 0);
- mean matched IoU over the TP pairs (NaN without a match).

Label ids need not be consecutive (holes in the numbering are fine; ids are only names).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment

from cellsynth.checks import check_labels
from cellsynth.errors import InputError

THRESHOLDS = tuple(round(0.1 * k, 1) for k in range(1, 10))


def _labels_pair(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    true, pred = check_labels(true, "true labels"), check_labels(pred, "predicted labels")
    if true.shape != pred.shape:
        raise InputError(f"true labels shape {true.shape} and predicted shape {pred.shape} differ; they must be equal")
    return true, pred


def _ids_and_areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object ids (sorted, 0 excluded), their voxel counts, and a lookup id -> row."""
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts)
    ids = ids[ids != 0]
    lookup = np.zeros(len(counts), np.int64)
    lookup[ids] = np.arange(len(ids))
    return ids, counts[ids], lookup


def iou_matrix(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every (true, predicted) pair of objects.

    Returns
    -------
    iou : ndarray, shape (n_true, n_pred)
    true_ids, pred_ids : ndarray
        The object ids the rows and columns stand for (sorted, 0 excluded).
    """
    true, pred = _labels_pair(true, pred)
    true_ids, true_area, true_row = _ids_and_areas(true)
    pred_ids, pred_area, pred_column = _ids_and_areas(pred)
    both = (true > 0) & (pred > 0)
    pairs = true_row[true[both]] * len(pred_ids) + pred_column[pred[both]]
    overlap = np.bincount(pairs, minlength=len(true_ids) * len(pred_ids)).reshape(len(true_ids), len(pred_ids))
    union = true_area[:, None] + pred_area[None, :] - overlap
    return overlap / np.maximum(union, 1), true_ids, pred_ids


def _match(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the one-to-one pairs with IoU >= threshold, as many as possible."""
    if iou.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    eligible = iou >= threshold
    n_max = max(1, min(iou.shape))
    # one point per eligible pair dominates; the IoU term only breaks ties between equal counts
    rows, columns = linear_sum_assignment(-(eligible + iou / (2 * n_max)))
    keep = eligible[rows, columns]
    return rows[keep], columns[keep]


def matching(true: np.ndarray, pred: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> list[dict]:
    """Instance-matching scores at each IoU threshold (see the module doc).

    Parameters
    ----------
    true, pred : ndarray
        Instance labels of equal shape (0 = background).
    thresholds : sequence of float
        IoU thresholds in (0, 1] (default 0.1 … 0.9).

    Returns
    -------
    list of dict
        Per threshold: ``threshold, n_true, n_pred, tp, fp, fn, precision, recall, f1,
        average_precision, mean_matched_iou`` and ``correct`` ("n of m objects").

    Examples
    --------
    >>> import numpy as np
    >>> true = np.zeros((1, 8, 8), np.uint16)
    >>> true[0, 1:4, 1:4], true[0, 5:8, 5:8] = 1, 2
    >>> pred = np.where(true == 2, 0, true)  # the second object is missed
    >>> row = matching(true, pred, (0.5,))[0]
    >>> row["tp"], row["fn"], row["average_precision"]
    (1, 1, 0.5)
    """
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0 < t <= 1 for t in thresholds):
        raise InputError(f"IoU thresholds must lie in (0, 1]; got {thresholds}")
    iou, true_ids, pred_ids = iou_matrix(true, pred)
    results = []
    for threshold in thresholds:
        rows, columns = _match(iou, threshold)
        results.append(scores_from_counts(threshold, len(true_ids), len(pred_ids), len(rows),
                                          float(iou[rows, columns].sum())))
    return results


def scores_from_counts(threshold: float, n_true: int, n_pred: int, tp: int, matched_iou_sum: float) -> dict:
    """The matching scores of one threshold from its counts (also used to pool several images)."""
    fp, fn = n_pred - tp, n_true - tp
    return {
        "threshold": threshold, "n_true": n_true, "n_pred": n_pred, "tp": tp, "fp": fp, "fn": fn,
        "precision": tp / (tp + fp) if tp else 0.0,
        "recall": tp / (tp + fn) if tp else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "average_precision": tp / (tp + fp + fn) if tp else 0.0,
        "mean_matched_iou": matched_iou_sum / tp if tp else float("nan"),
        "correct": f"{tp} of {n_true} objects",
    }


def semantic_scores(true: np.ndarray, pred: np.ndarray, tolerance: float = 0) -> dict:
    """Foreground IoU and Dice of two masks (any label > 0 is foreground).

    With ``tolerance`` t > 0 (voxels; Eschweiler et al., data synthesis allows 1 for membranes and 5 for centroids), a
    predicted voxel counts as correct when a true one lies within t, and a true voxel as found
    when a predicted one lies within t: precision and recall from those, Dice = 2PR/(P + R),
    IoU = Dice/(2 − Dice). With t = 0 these are the plain overlap scores.

    Returns
    -------
    dict
        ``iou, dice, precision, recall, tolerance``; both masks empty gives 1 everywhere.
    """
    true, pred = np.asarray(true) > 0, np.asarray(pred) > 0
    if true.shape != pred.shape:
        raise InputError(f"true mask shape {true.shape} and predicted shape {pred.shape} differ; they must be equal")
    if not tolerance >= 0:
        raise InputError(f"tolerance must be >= 0 voxels; got {tolerance!r}")
    if not true.any() and not pred.any():
        return {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0, "tolerance": tolerance}
    if tolerance > 0:
        near_true = ndi.distance_transform_edt(~true) <= tolerance if true.any() else np.zeros_like(true)
        near_pred = ndi.distance_transform_edt(~pred) <= tolerance if pred.any() else np.zeros_like(pred)
        precision = float((pred & near_true).sum() / pred.sum()) if pred.any() else 0.0
        recall = float((true & near_pred).sum() / true.sum()) if true.any() else 0.0
    else:
        overlap = float((true & pred).sum())
        precision = overlap / pred.sum() if pred.any() else 0.0
        recall = overlap / true.sum() if true.any() else 0.0
    dice = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"iou": dice / (2 - dice), "dice": dice, "precision": precision, "recall": recall,
            "tolerance": tolerance}


def pooled_scores(per_image: Sequence[Sequence[dict]]) -> list[dict]:
    """Matching scores over several images: counts summed per threshold, then the ratios.

    Parameters
    ----------
    per_image : sequence of list of dict
        :func:`matching`'s rows of each image, at the same thresholds.

    Returns
    -------
    list of dict
        One row per threshold.

    Examples
    --------
    >>> a = np.zeros((1, 4, 8), np.uint16); a[0, :, :3] = 1; a[0, :, 5:] = 2
    >>> rows = pooled_scores([matching(a, a, (0.5,)), matching(a, np.zeros_like(a), (0.5,))])
    >>> rows[0]["tp"], rows[0]["n_true"], rows[0]["average_precision"]
    (2, 4, 0.5)
    """
    return [scores_from_counts(rows[0]["threshold"], *(sum(r[k] for r in rows) for k in ("n_true", "n_pred", "tp")),
                               sum(r["mean_matched_iou"] * r["tp"] for r in rows if r["tp"]))
            for rows in zip(*per_image, strict=True)]


def score_at(scores: Sequence[dict], threshold: float, key: str = "average_precision") -> float:
    """One figure (default the average precision) at one IoU threshold of :func:`matching`'s rows.

    Parameters
    ----------
    scores : sequence of dict
        :func:`matching`'s (or :func:`pooled_scores`') rows.
    threshold : float
        The IoU threshold.
    key : str
        The figure of the row.

    Returns
    -------
    float

    Examples
    --------
    >>> labels = np.zeros((1, 8, 8), np.uint16); labels[0, 1:4, 1:4] = 1; labels[0, 5:8, 5:8] = 2
    >>> score_at(matching(labels, labels), 0.5), score_at(matching(labels, labels), 0.5, 'f1')
    (1.0, 1.0)
    """
    for row in scores:
        if abs(row["threshold"] - threshold) < 1e-9:
            return row[key]
    raise InputError(f"no scores at IoU threshold {threshold:g}; have {[r['threshold'] for r in scores]}")


def bootstrap_ap(counts: Sequence[tuple[int, int, int]], n_draws: int = 2000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval over test objects of the mean average precision of one or more runs.

    Each run's matching at one IoU threshold is its ``(tp, fp, fn)``; a draw resamples that run's
    ``tp + fp + fn`` match events (matched pairs, unmatched predictions, missed objects) with
    replacement, which is a multinomial draw of the three counts, and takes ``tp / (tp + fp + fn)``;
    the runs' draws are averaged. Returns the central ``level`` interval of ``n_draws`` such means.

    Examples
    --------
    >>> low, high = bootstrap_ap([(12, 2, 2)])
    >>> bool(low < 12 / 16 < high), round(high - low, 2) < 0.5
    (True, True)
    """
    rng = np.random.default_rng(seed)
    draws = np.zeros(n_draws)
    for tp, fp, fn in counts:
        total = tp + fp + fn
        if total == 0:
            continue
        sampled = rng.multinomial(total, np.array([tp, fp, fn]) / total, size=n_draws)
        draws += sampled[:, 0] / total
    draws /= max(1, len(counts))
    tail = (1 - level) / 2
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))


def matching_summary(report: dict) -> str:
    """The pooled matching of a baseline or Syn2Real report as a table: one row per IoU threshold.

    Parameters
    ----------
    report : dict
        A report with ``pooled`` scores (:func:`pooled_scores`).

    Returns
    -------
    str
        A header line and one line per threshold: precision, recall, F1, AP, objects found.

    Examples
    --------
    >>> row = {"threshold": 0.5, "precision": 1.0, "recall": 0.5, "f1": 0.667, "average_precision": 0.5, "correct": 1}
    >>> print(matching_summary({"pooled": [row]}))
    IoU  precision  recall  F1     AP     objects
    0.5  1.000      0.500   0.667  0.500  1
    """
    rows = [f"{row['threshold']:.1f}  {row['precision']:.3f}      {row['recall']:.3f}   {row['f1']:.3f}  "
            f"{row['average_precision']:.3f}  {row['correct']}" for row in report["pooled"]]
    return "\n".join(["IoU  precision  recall  F1     AP     objects", *rows])

