"""Calibrate on the cells3d left half, generate, and judge against the right half (C2ST and Syn2Real).

1. ``cellsynth calibrate`` on the cells3d **left half** with its labels (and, as a second arm,
   without them: classical segmentation first);
2. 8 samples generated from the calibrated preset (same shape as the left half, 60×256×128);
3. against the cells3d **right half**: C2ST accuracy (``evaluate realism`` defaults: 5×8×8 µm
   patches, 400 steps) and Syn2Real AP@0.5 with the same CPU budget as Real2Real (``--minutes``,
   default 15), next to the classical baseline (the shipped ``nuclei`` preset's C2ST here; its
   Syn2Real and Real2Real in ``bench_syn2real.py``, or ``--real2real`` here). About 35 minutes.

Goals (issue "Calibrate"): C2ST ≤ 0.70; Syn2Real AP@0.5 ≥ the classical baseline and ≥ 90 % of Real2Real.
Run: ``python benchmarks/bench_calibrate.py [--minutes M] [--c2st-only]``; needs ``cellsynth[examples]``;
one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _cells3d import IOU, cells3d_halves, figures, preset_dataset, train_and_judge

from cellsynth.dataset.samples import as_samples
from cellsynth.evaluate.baseline import baseline
from cellsynth.evaluate.c2st import c2st
from cellsynth.synthesis.calibrate import calibrate
from cellsynth.synthesis.preset import write_calibration


def main(minutes: float = 15.0, n_samples: int = 8, c2st_only: bool = False, out: Path | None = None,
         real2real: bool = False) -> dict:
    result: dict = {"calibrated_on": "cells3d left half", "judged_on": "cells3d right half (60x256x128)",
                    "budget_minutes": minutes, "samples": n_samples}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        real = as_samples(right.root, labels=True)
        train = as_samples(left.root, labels=True)[0]
        arms = {}
        for name, labels in (("calibrated_with_labels", train.labels), ("calibrated_without_labels", None)):
            start = time.perf_counter()
            calibration = calibrate(train.image, train.spacing, labels, n_samples=n_samples)
            result[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                write_calibration(calibration, out / f"{name}.yaml", sources=["cells3d left half"])
            arms[name] = preset_dataset(root, calibration.config, n_samples, name=name)
        arms["nuclei_preset"] = preset_dataset(root, "nuclei", n_samples)
        for name, dataset in arms.items():
            test = c2st(real, as_samples(dataset.root))
            result[name] = {"c2st_accuracy": round(test.accuracy, 3), "c2st_ci95": [round(c, 3) for c in test.ci95],
                            "c2st_auc": round(test.auc, 3), "n_test": test.n_test}
            if out is not None:
                test.figure(out / f"c2st_{name}.png")
            print(name, result[name])
        if not c2st_only:
            result["classical_baseline"] = figures(baseline(right.root, thresholds=IOU))
            trained = {name: dataset.root for name, dataset in arms.items()
                       if name != "nuclei_preset"}  # the preset's Syn2Real: bench_syn2real.py
            if real2real:  # bench_syn2real.py measures it too
                trained = {"real2real": left.root, **trained}
            for name, train_root in trained.items():
                result.setdefault(name, {}).update(train_and_judge(train_root, right.root, root / f"s2r_{name}",
                                                                   minutes))
                print(name, result[name])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="Syn2Real/Real2Real budget each (default 15)")
    parser.add_argument("--samples", type=int, default=8, help="generated samples per arm (default 8)")
    parser.add_argument("--c2st-only", action="store_true", help="skip the Syn2Real training")
    parser.add_argument("--out", type=Path, help="also keep the calibrated presets and C2ST figures here")
    parser.add_argument("--real2real", action="store_true", help="also train Real2Real here (+ one budget)")
    arguments = parser.parse_args()
    main(arguments.minutes, arguments.samples, arguments.c2st_only, arguments.out, arguments.real2real)
