"""Which augmentation makes a segmenter trained on cellsynth data transfer? (seed 002's strategies)

A segmenter is trained on ``--samples`` volumes calibrated on the cells3d left half (with its
labels) with each augmentation strategy (``none``, the fixed ``default`` stack, ``stacked``,
``random-choice`` and single transforms; :func:`cellsynth.augment.augmentation`), at one step
budget and ``--repeats`` seeds each, and judged on two test sets it never saw:

- ``right``: the cells3d right half as it is;
- ``shifted``: the right half as another microscope would record it, made with the project's own
  operations: resampled to 0.5 × 0.4 × 0.4 µm voxels (``evaluate.volumes.resample``; labels by
  nearest neighbour), blurred by a further 0.4 µm Gaussian (``GaussianBlur``), shot noise at 30
  photons per unit intensity (``PoissonNoise``) and stored as uint8. No strategy was tuned on it.

Reports AP@0.5 and AP@0.75 (mean ± sd over the seeds) per strategy and test set, and the winner on
the shifted set against the default stack. Goal (issue 28): a named strategy beats the fixed stack
by more than the spread. Run: ``python benchmarks/bench_transfer.py [--steps S] [--repeats K]
[--strategies a,b]``; needs ``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _cells3d import calibrated_dataset, cells3d_halves

from cellsynth.augment import GaussianBlur, PoissonNoise, normalize_percentiles
from cellsynth.dataset.samples import as_samples
from cellsynth.evaluate.segmentation import matching, pooled_scores, score_at
from cellsynth.evaluate.segmenter import train_segmenter
from cellsynth.evaluate.volumes import resample
from cellsynth.sample import Sample

STRATEGIES = ("none", "default", "stacked", "random-choice", "flip", "intensity", "blur", "diversify")
#: The other microscope of the shifted test set.
SHIFTED_SPACING_UM = (0.5, 0.4, 0.4)


def shifted(volume: Sample, seed: int = 0) -> Sample:
    """``volume`` as another microscope records it (module doc)."""
    image = resample(volume.image.astype(np.float32), volume.spacing, SHIFTED_SPACING_UM, order=1)
    labels = resample(volume.labels, volume.spacing, SHIFTED_SPACING_UM, order=0, shape=image.shape)
    item = Sample(labels, normalize_percentiles(image, 0.1, 99.9), SHIFTED_SPACING_UM)
    rng = np.random.default_rng(seed)
    noisy = PoissonNoise(photons=(30, 30)).apply(GaussianBlur(sigma_um=(0.4, 0.4)).apply(item, rng), rng)
    return Sample(labels, np.clip(np.round(noisy.image * 200), 0, 255).astype(np.uint8), SHIFTED_SPACING_UM,
                  name=f"{volume.name}_shifted")


def scores(segmenter, tests: list[Sample]) -> dict:
    pooled = pooled_scores([matching(t.labels, segmenter.segment(t.image, t.spacing), (0.5, 0.75)) for t in tests])
    return {"ap50": score_at(pooled, 0.5), "ap75": score_at(pooled, 0.75)}


def main(steps: int = 400, repeats: int = 1, n_samples: int = 8, strategies: list[str] | None = None) -> dict:
    strategies = strategies or list(STRATEGIES)
    result: dict = {"trained_on": f"{n_samples} volumes calibrated on the cells3d left half",
                    "tests": {"right": "cells3d right half", "shifted": "right half, another microscope (doc)"},
                    "budget_steps": steps, "repeats": repeats, "strategies": {}}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        synthetic = calibrated_dataset(root, left, n_samples)
        volumes = as_samples(synthetic.root, labels=True)
        tests = {"right": as_samples(right.root, labels=True)}
        tests["shifted"] = [shifted(v) for v in tests["right"]]
        for strategy in strategies:
            start, runs = time.perf_counter(), []
            for seed in range(repeats):
                segmenter = train_segmenter(volumes, steps=steps, augment=strategy, seed=seed,
                                            progress=False)
                runs.append({name: scores(segmenter, test) for name, test in tests.items()})
            row: dict = {"seconds": round(time.perf_counter() - start, 1)}
            for name in tests:
                for key in ("ap50", "ap75"):
                    values = np.array([run[name][key] for run in runs])
                    row[f"{name}_{key}_mean"] = round(float(values.mean()), 3)
                    row[f"{name}_{key}_sd"] = round(float(values.std(ddof=1)), 3) if repeats > 1 else None
                    row[f"{name}_{key}_runs"] = [round(float(v), 3) for v in values]
            result["strategies"][strategy] = row
            print(strategy, json.dumps(row), flush=True)
    rows = result["strategies"]
    if "default" in rows:
        best = max(rows, key=lambda s: rows[s]["shifted_ap50_mean"])
        result["best_on_shifted"] = best
        result["best_minus_default_shifted_ap50"] = round(rows[best]["shifted_ap50_mean"]
                                                          - rows["default"]["shifted_ap50_mean"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (default 400)")
    parser.add_argument("--repeats", type=int, default=1, help="training seeds per strategy (default 1)")
    parser.add_argument("--samples", type=int, default=8, help="synthetic training volumes (default 8)")
    parser.add_argument("--strategies", help=f"comma-separated (default {','.join(STRATEGIES)})")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.repeats, arguments.samples,
         arguments.strategies.split(",") if arguments.strategies else None)
