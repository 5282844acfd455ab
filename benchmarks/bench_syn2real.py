"""Does a segmenter trained on cellsynth data work on real nuclei? Syn2Real beside Real2Real and thresholding.

Test set: the cells3d **right half** (60×256×128 voxels, 14 labelled nuclei or parts of them).

- ``classical_baseline``: ``cellsynth evaluate baseline`` (1 µm smoothing, Otsu, holes filled,
  distance-transform watershed with seeds ≥ 5 µm apart, objects ≥ 50 µm³), no training;
- ``real2real``: ``cellsynth evaluate syn2real`` trained on the cells3d **left half**;
- ``syn2real_nuclei_preset``: the same, trained on an 8-sample ``nuclei`` preset dataset.

Both trained arms get the same CPU budget (``--minutes``, default 15; the step count it allows is
reported), the same defaults (0.5 µm working grid, 16×32×32 µm patches, batch 2, seed 0) and select
their weights and thresholds on the held-out 20 % of their own training data, never on the test set.
Figures: AP@0.5, AP@0.75 (TP/(TP+FP+FN), StarDist's definition) and the mean IoU of the matches at 0.5.
Run: ``python benchmarks/bench_syn2real.py [--minutes M]``; needs ``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _cells3d import IOU, cells3d_halves, figures, preset_dataset, train_and_judge

from cellsynth.evaluate.baseline import baseline


def main(minutes: float = 15.0, n_samples: int = 8) -> dict:
    result: dict = {"test": "cells3d right half (60x256x128)", "budget_minutes": minutes,
                    "device": "cpu", "nuclei_preset_samples": n_samples}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        result["classical_baseline"] = figures(baseline(right.root, root / "baseline", thresholds=IOU))
        print("classical baseline:", result["classical_baseline"])
        preset = preset_dataset(root, "nuclei", n_samples)
        for name, train in (("real2real", left.root), ("syn2real_nuclei_preset", preset.root)):
            result[name] = train_and_judge(train, right.root, root / name, minutes)
            print(f"{name}:", result[name])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget of each trained arm (default 15)")
    parser.add_argument("--samples", type=int, default=8, help="nuclei preset samples to train Syn2Real on (default 8)")
    arguments = parser.parse_args()
    main(arguments.minutes, arguments.samples)
