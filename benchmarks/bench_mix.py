"""Does adding cellsynth data help a segmenter trained on a few real labels? (real + synthetic training)

On cells3d (left half to train, right half to judge, spatially disjoint), at one step budget and
``--repeats`` training seeds each (mean ± sd of AP@0.5 and AP@0.75, bootstrap interval over the
right half's test nuclei):

- ``real``: the left half alone (Real2Real);
- ``real+synthetic``: the left half + ``--samples`` volumes calibrated on it (with its labels: a
  user who has labels calibrates with them), patches drawn half from each set;
- ``quarter+synthetic``: a quarter of the left half's labelled volume + the same synthetic set;
- ``quarter``: that quarter alone (what the synthetic data is added to).

Validation (weights and thresholds) always comes from the real set's held-out part.
Goals (issue 28): real + synthetic ≥ Real2Real + 0.05 AP@0.5; a quarter + synthetic ≥ all real alone.
Run: ``python benchmarks/bench_mix.py [--steps S] [--repeats K] [--samples N]``; needs
``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _cells3d import calibrated_dataset, cells3d_halves

from cellsynth.evaluate.syn2real import syn2real


def summary(report: dict, seconds: float) -> dict:
    figures = report["repeats"] if "repeats" in report else None
    row = {"seconds": round(seconds, 1), "steps": report["training"]["steps"]}
    if figures is None:
        from cellsynth.evaluate.segmentation import score_at

        return {**row, "ap50_mean": score_at(report["pooled"], 0.5), "n_runs": 1}
    return {**row, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures.items() if k != "runs"},
            "ap50_ci95": [round(c, 3) for c in figures["ap50_ci95"]],
            "ap75_ci95": [round(c, 3) for c in figures["ap75_ci95"]],
            "runs": [{"seed": r["seed"], "ap50": round(r["ap50"], 3), "ap75": round(r["ap75"], 3)}
                     for r in figures["runs"]]}


def main(steps: int = 800, repeats: int = 2, n_samples: int = 8, arms: list[str] | None = None) -> dict:
    result: dict = {"trained_on": "cells3d left half (+ synthetic)", "judged_on": "cells3d right half",
                    "budget_steps": steps, "repeats": repeats, "synthetic_samples": n_samples}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        synthetic = calibrated_dataset(root, left, n_samples)
        plans = {"real": ([left.root], None, 1.0), "real+synthetic": ([left.root, synthetic.root], [1, 1], 1.0),
                 "quarter+synthetic": ([left.root, synthetic.root], [1, 1], 0.25), "quarter": ([left.root], None, 0.25)}
        for name in arms or list(plans):
            sets, weights, fraction = plans[name]
            start = time.perf_counter()
            report = syn2real(sets[0] if len(sets) == 1 else sets, right.root, root / f"out_{name}", steps=steps,
                              weights=weights, fraction=fraction, repeats=repeats, progress=False)
            result[name] = summary(report, time.perf_counter() - start)
            print(name, json.dumps(result[name]), flush=True)
    if "real" in result and "real+synthetic" in result:
        result["mixed_minus_real_ap50"] = round(result["real+synthetic"]["ap50_mean"] - result["real"]["ap50_mean"], 3)
    if "real" in result and "quarter+synthetic" in result:
        result["quarter_mixed_minus_real_ap50"] = round(result["quarter+synthetic"]["ap50_mean"]
                                                        - result["real"]["ap50_mean"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps per run (default 800)")
    parser.add_argument("--repeats", type=int, default=2, help="training seeds per arm (default 2)")
    parser.add_argument("--samples", type=int, default=8, help="synthetic volumes (default 8)")
    parser.add_argument("--arms", help="comma-separated subset of real, real+synthetic, quarter+synthetic, quarter")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.repeats, arguments.samples, arguments.arms.split(",") if arguments.arms else None)
