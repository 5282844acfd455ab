"""Shared set-up of the usefulness benchmarks: the cells3d halves and a preset dataset, in a scratch folder.

The cells3d nuclei (``cellsynth[examples]``) are cut along x into a left half (to train or
calibrate on) and a right half (to judge on), spatially disjoint. Nothing here is committed: the
data's terms allow research use only.
"""

from __future__ import annotations

from pathlib import Path

from cellsynth.config import Config, load_preset, with_overrides
from cellsynth.dataset import Dataset, build_dataset
from cellsynth.dataset.split import split_dataset
from cellsynth.evaluate.segmentation import THRESHOLDS, score_at
from cellsynth.evaluate.syn2real import syn2real
from cellsynth.examples import cells3d_nuclei
from cellsynth.sample import Sample
from cellsynth.synthesis.pipeline import generate_dataset, load_renderer


def cells3d_halves(root: Path) -> tuple[Dataset, Dataset]:
    """``root/cells3d`` (the whole volume) cut into ``root/cells3d_left`` and ``root/cells3d_right``."""
    image, labels, spacing = cells3d_nuclei()
    whole = build_dataset(root / "cells3d", ["cells3d_nuclei"],
                          lambda index, rng: Sample(labels, image, spacing),
                          config={"example": "cells3d"}, seed=None, output=Config().dataset.output, progress=False)
    return split_dataset(whole.root, root / "cells3d_left", root / "cells3d_right", axis="x", fraction=0.5,
                         progress=False)


def preset_dataset(root: Path, preset: str | Config, n_samples: int, seed: int = 0, name: str | None = None) -> Dataset:
    """``n_samples`` samples of a shipped preset (or a config) rendered by its physics renderer, in ``root/NAME``."""
    config = load_preset(preset) if isinstance(preset, str) else preset
    config = with_overrides(config, {"dataset.n_samples": n_samples, "dataset.seed": seed})
    folder = root / (name or (preset if isinstance(preset, str) else "config"))
    return generate_dataset(config, folder, renderer=load_renderer(config), progress=False)


def calibrated_dataset(root: Path, left: Dataset, n_samples: int) -> Dataset:
    """``n_samples`` volumes of the physics renderer calibrated on the left half with its labels, in
    ``root/synthetic`` (a user who has labels calibrates with them)."""
    from cellsynth.dataset.samples import as_samples
    from cellsynth.synthesis.calibrate import calibrate

    train = as_samples(left.root, labels=True)[0]
    config = calibrate(train.image, train.spacing, train.labels, n_samples=n_samples).config
    return preset_dataset(root, config, n_samples, name="synthetic")


#: The default IoU thresholds 0.1…0.9 plus 0.75.
IOU = tuple(sorted({*THRESHOLDS, 0.75}))


def figures(report: dict) -> dict:
    """AP@0.5, AP@0.75, mean matched IoU and objects found at 0.5 of a baseline or syn2real report (+ training)."""
    pooled = report["pooled"]
    row = {"ap50": round(score_at(pooled, 0.5), 3), "ap75": round(score_at(pooled, 0.75), 3),
           "mean_matched_iou50": round(score_at(pooled, 0.5, "mean_matched_iou") or 0.0, 3),
           "correct50": score_at(pooled, 0.5, "correct")}
    if "training" in report:
        training = report["training"]
        row.update(steps=training["steps"], seconds=training["seconds"], selected_step=training["selected_step"],
                   validation_ap50=round(training["validation_ap50"], 3), thresholds=report["settings"]["thresholds"])
    if "repeats" in report:  # several seeds: the mean ± sd and every run (the figures above are the first run's)
        repeated = report["repeats"]
        row.update({f"{key}_{stat}": round(repeated[f"{key}_{stat}"], 3) for key in ("ap50", "ap75")
                    for stat in ("mean", "sd")},
                   runs=[{"seed": r["seed"], "ap50": round(r["ap50"], 3), "ap75": round(r["ap75"], 3)}
                         for r in repeated["runs"]])
    return row


def train_and_judge(train: Path, test: Path, out: Path, minutes: float | None = None, *, steps: int | None = None,
                    repeats: int = 1) -> dict:
    """Syn2Real (or Real2Real) on the CPU: :func:`figures` of its report. A ``steps`` budget gives the same
    figures on a quiet or a loaded machine; ``minutes`` alone follows the clock."""
    return figures(syn2real(train, test, out, steps=steps, minutes=minutes, thresholds=IOU, device="cpu",
                            repeats=repeats, progress=False))
