"""Does a segmenter trained on cellsynth data work on real nuclei? Syn2Real beside Real2Real and thresholding.

Test set: the cells3d **right half** (60×256×128 voxels, 14 labelled nuclei or parts of them).

- ``classical_baseline``: ``cellsynth evaluate baseline`` (1 µm smoothing, Otsu, holes filled,
  distance-transform watershed with seeds ≥ 5 µm apart, objects ≥ 50 µm³), no training;
- ``real2real``: ``cellsynth evaluate syn2real`` trained on the cells3d **left half**;
- ``syn2real_nuclei_preset``: the same, trained on an 8-sample ``nuclei`` preset dataset.

Both trained arms get the same step budget (``--steps``, default 2000: the same figures on a quiet or a
loaded machine), ``--repeats`` training seeds (default 2: AP as mean ± sd, every run), the same
defaults (0.5 µm working grid, 16×32×32 µm patches, batch 2) and select their weights and thresholds
on the held-out 20 % of their own training data, never on the test set. Figures: AP@0.5, AP@0.75
(TP/(TP+FP+FN), StarDist's definition) and the mean IoU of the matches at 0.5 (of the first seed).
Run: ``python benchmarks/bench_syn2real.py [--steps S] [--repeats K]``; needs ``cellsynth[examples]``;
one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _cells3d import IOU, cells3d_halves, figures, preset_dataset, train_and_judge

from cellsynth.evaluate.baseline import baseline


def main(steps: int = 2000, repeats: int = 2, n_samples: int = 8) -> dict:
    result: dict = {"test": "cells3d right half (60x256x128)", "budget_steps": steps, "repeats": repeats,
                    "device": "cpu", "nuclei_preset_samples": n_samples}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        result["classical_baseline"] = figures(baseline(right.root, root / "baseline", thresholds=IOU))
        print("classical baseline:", result["classical_baseline"])
        preset = preset_dataset(root, "nuclei", n_samples)
        for name, train in (("real2real", left.root), ("syn2real_nuclei_preset", preset.root)):
            result[name] = train_and_judge(train, right.root, root / name, steps=steps, repeats=repeats)
            print(f"{name}:", result[name])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each trained arm (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="training seeds of each trained arm (default 2)")
    parser.add_argument("--samples", type=int, default=8, help="nuclei preset samples to train Syn2Real on (default 8)")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.repeats, arguments.samples)
