"""Syn2Real: train the segmenter (:mod:`cellsynth.evaluate.segmenter`) on one dataset, test it on
another, report the matching scores.

Trained on synthetic data and tested on the user's real images it answers "is this synthetic
dataset worth training on?"; trained on a spatially disjoint part of the real data (see
:func:`cellsynth.dataset.split.split_dataset`) it gives Real2Real, and
:func:`cellsynth.evaluate.baseline.baseline` the untrained classical figure to beat; trained on
several sets (real + synthetic, :attr:`~cellsynth.evaluate.settings.SegmenterSettings.weights`) it answers "does adding
cellsynth data help my few annotated volumes?".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cellsynth.checks import check_output_folder
from cellsynth.dataset.samples import as_samples
from cellsynth.errors import InputError
from cellsynth.evaluate.baseline import write_segmentation_results
from cellsynth.evaluate.segmentation import (
    THRESHOLDS,
    bootstrap_ap,
    matching,
    matching_summary,
    pooled_scores,
    score_at,
)
from cellsynth.evaluate.segmenter import (
    PERCENTILES,
    TrainingSet,
    train_segmenter,
    training_sets,
    working_spacing,
)
from cellsynth.evaluate.settings import SegmenterSettings


def syn2real(
    train: TrainingSet | Sequence[TrainingSet],
    test: str | os.PathLike,
    out: str | os.PathLike,
    settings: SegmenterSettings | None = None,
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    repeats: int = 1,
    swap: bool = False,
    progress: bool = True,
    **changes,
) -> dict:
    """Train on ``train`` (:func:`~cellsynth.evaluate.segmenter.train_segmenter`), segment every image of
    ``test``, write the report into ``out``.

    ``out`` receives ``report.json`` (pooled and per-image matching at every IoU threshold, the
    settings, the loss curve and the validation points), ``segmenter.safetensors`` (weights;
    working spacing, patch and thresholds in its metadata) and ``predictions/test_NNNN.tif``.
    Both datasets and ``out`` are checked before training starts. The working spacing defaults to
    :func:`~cellsynth.evaluate.segmenter.working_spacing` of the training *and* test data.

    Parameters
    ----------
    train : path-like, sequence of Sample, or a sequence of them
        One training set, or several (real first: validation is taken from it) mixed by
        ``settings.weights``, with ``settings.fraction`` of the first kept.
    test : path-like
        A dataset folder with labels.
    out : path-like
        A new folder for the report, the weights and the predictions.
    settings : SegmenterSettings, optional
        How the segmenter trains (default :class:`~cellsynth.evaluate.segmenter.SegmenterSettings`).
    thresholds : sequence of float
        IoU thresholds of the matching scores.
    repeats : int
        With ``repeats`` above 1 the segmenter is trained with seeds ``seed … seed + repeats − 1`` and the
        report adds ``repeats``: every run's AP@0.5 and AP@0.75, their mean and standard deviation, and a
        bootstrap interval over test objects of each mean
        (:func:`~cellsynth.evaluate.segmentation.bootstrap_ap`); the files are the first run's.
    swap : bool
        Also train on ``test`` and test on ``train`` with each seed (the swapped split of a Real2Real: both
        parts of one labelled volume take each role); every run records its ``order``. One training set only.
    progress : bool
        Show progress bars.
    **changes
        Fields of ``settings`` to change (``steps=400``).

    Returns
    -------
    dict
        The report written to ``report.json``.

    Examples
    --------
    Train on one toy volume (a few steps), test on another recording of the same nuclei:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from cellsynth.dataset import import_dataset
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.io import write_volume
    >>> from cellsynth.sample import Sample
    >>> root = Path(tempfile.mkdtemp())
    >>> image, labels, spacing = toy_nuclei(seed=1)
    >>> _ = write_volume(root / "nuclei.tif", image, spacing), write_volume(root / "labels.tif", labels, spacing)
    >>> test = import_dataset(root / "test", [root / "nuclei.tif"], [root / "labels.tif"], progress=False)
    >>> image, labels, spacing = toy_nuclei(seed=0)
    >>> report = syn2real([Sample(labels, image, spacing)], test.root, root / "syn2real", steps=4,
    ...                   patch_um=(8, 16, 16), progress=False)
    >>> report["pooled"][4]["threshold"], report["pooled"][4]["correct"]  # AP at IoU 0.5
    (0.5, '4 of 4 objects')

    Mixing real and synthetic sets: ``syn2real(["data/cells3d_left", "data/nuclei"], "data/cells3d_right",
    "data/mix", weights=[1, 1], repeats=3)``.
    """
    if not isinstance(repeats, (int, np.integer)) or isinstance(repeats, bool) or not 1 <= repeats <= 100:
        raise InputError(f"--repeats must be a whole number in 1…100; got {repeats!r}")
    settings = (settings or SegmenterSettings()).replace(**changes)
    out = check_output_folder(out)
    test_volumes = as_samples(test, labels=True, what="--test")
    sets = training_sets(train)
    if settings.spacing_um is None:
        settings = settings.replace(spacing_um=working_spacing([v.spacing for volumes in sets for v in volumes] +
                                                               [v.spacing for v in test_volumes]))
    orders = [("given", sets, test_volumes)]
    if swap:
        if len(sets) > 1:
            raise InputError("--swap exchanges the training set with the test set; give one --train set")
        orders.append(("swapped", [test_volumes], sets[0]))
    runs, first = [], None
    for run in range(int(repeats)):
        for order, training, testing in orders:
            segmenter = train_segmenter(training, settings.replace(seed=settings.seed + run), progress=progress)
            predictions = [segmenter.segment(v.image, v.spacing) for v in
                           tqdm(testing, desc="testing", unit="image", disable=True if not progress else None)]
            pooled = pooled_scores([matching(v.labels, p, (0.5, 0.75)) for v, p in zip(testing, predictions,
                                                                                      strict=True)])
            runs.append({"seed": settings.seed + run, "order": order, "ap50": score_at(pooled, 0.5),
                         "ap75": score_at(pooled, 0.75),
                         "counts": {t: [row["tp"], row["fp"], row["fn"]] for t, row in zip(("ap50", "ap75"), pooled,
                                                                                             strict=True)},
                         "steps": segmenter.history["steps"], "stopped_by": segmenter.history["stopped_by"]})
            first = first or (segmenter, predictions)
    segmenter, predictions = first
    history = segmenter.history
    described = settings.describe()
    report_settings = {
        "method": "syn2real",
        "train": ([str(t) if isinstance(t, (str, os.PathLike)) else "volumes" for t in train] if len(sets) > 1
                  else str(train) if isinstance(train, (str, os.PathLike)) else "volumes"),
        "test": str(test), **{k: described[k] for k in ("weights", "fraction", "augment")},
        "working_spacing_um": list(segmenter.spacing), "patch_um": described["patch_um"],
        "patch_voxels": list(segmenter.patch), "budget_steps": settings.steps, "budget_minutes": settings.minutes,
        **{k: described[k] for k in ("batch_size", "learning_rate", "features", "validation_fraction", "seed")},
        "repeats": int(repeats), "swap": bool(swap), "device": segmenter.device,
        "precision": "bf16" if segmenter.dtype is not None else "fp32",
        "normalization_percentiles": list(PERCENTILES), "thresholds": segmenter.thresholds}
    out.mkdir(exist_ok=True)
    segmenter.save(out / "segmenter.safetensors", report_settings)
    losses = history["losses"]
    extra = {"repeats": repeated_figures(runs)} if len(runs) > 1 else {}
    return write_segmentation_results(
        Path(out), test_volumes, predictions, report_settings, thresholds,
        training={key: history[key] for key in ("steps", "stopped_by", "seconds", "selected_step", "validation_ap50",
                                                    "validation")},
        loss_first=losses[0], loss_last=float(np.mean(losses[-max(1, len(losses) // 10):])), losses=losses, **extra)


def repeated_figures(runs: Sequence[dict]) -> dict:
    """Mean, standard deviation (over runs, ddof 1) and bootstrap interval over test objects of AP@0.5 and AP@0.75.

    Examples
    --------
    >>> runs = [{"ap50": 0.8, "ap75": 0.5, "counts": {"ap50": [8, 1, 1], "ap75": [5, 4, 4]}},
    ...         {"ap50": 0.6, "ap75": 0.4, "counts": {"ap50": [6, 2, 2], "ap75": [4, 4, 4]}}]
    >>> figures = repeated_figures(runs)
    >>> figures["ap50_mean"], round(figures["ap50_sd"], 3), figures["n_runs"]
    (0.7, 0.141, 2)
    """
    figures: dict = {"runs": list(runs), "n_runs": len(runs)}
    for key in ("ap50", "ap75"):
        values = np.array([r[key] for r in runs], np.float64)
        figures[f"{key}_mean"] = round(float(values.mean()), 6)
        figures[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        figures[f"{key}_ci95"] = list(bootstrap_ap([tuple(r["counts"][key]) for r in runs]))
    return figures


def syn2real_summary(report: dict) -> str:
    """What a :func:`syn2real` report says, as the lines ``cellsynth evaluate syn2real`` prints.

    Parameters
    ----------
    report : dict
        The report of :func:`syn2real`.

    Returns
    -------
    str
        The training (steps, time, loss, selected weights and thresholds), the matching table
        (:func:`~cellsynth.evaluate.segmentation.matching_summary`), and with repeats the mean ± sd over runs.
    """
    training, settings = report["training"], report["settings"]
    lines = [f"trained {training['steps']} steps in {training['seconds']:.0f} s on {settings['device']} "
             f"({settings['precision']}, {settings['patch_voxels']} voxels at {settings['working_spacing_um']} µm); "
             f"loss {report['loss_first']:.4f} -> {report['loss_last']:.4f}; weights of step "
             f"{training['selected_step']} (validation AP@0.5 {training['validation_ap50']:.3f}), thresholds "
             f"{settings['thresholds']}", matching_summary(report)]
    if "repeats" in report:
        figures = report["repeats"]
        for key, name in (("ap50", "AP@0.5"), ("ap75", "AP@0.75")):
            low, high = figures[f"{key}_ci95"]
            lines.append(f"over {figures['n_runs']} runs: {name} {figures[f'{key}_mean']:.3f} ± "
                         f"{figures[f'{key}_sd']:.3f} (bootstrap 95 % CI over test objects {low:.3f}-{high:.3f}); "
                         "runs " + ", ".join(f"{run[key]:.3f}" for run in figures["runs"]))
    return "\n".join(lines)

