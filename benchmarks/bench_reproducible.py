"""Same command, same seed, a quiet or a loaded machine: the same judges' figures? (full size, cells3d)

Runs each judge twice in one process, once on a quiet machine and once beside ``--load`` processes that
keep every core busy (numpy matrix products), and compares what came out:

- **C2ST** (:func:`~cellsynth.evaluate.c2st.c2st` at its defaults, seed 0): the cells3d right half
  against the ``nuclei`` preset's renderer drawing its labels; accuracy, AUC and every test score.
- **Syn2Real** (:func:`~cellsynth.evaluate.segmenter.train_segmenter`, a step budget, seed 0): trained
  on the cells3d left half (Real2Real), judged on the right half; the weights, the selected step and
  the thresholds, and AP@0.5 / AP@0.75.

Run: ``python benchmarks/bench_reproducible.py [--steps N] [--load K]``; needs ``cellsynth[examples]``;
one JSON line last (with the seconds of each run: the load is real when the loaded runs take longer).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np
import torch

from cellsynth.config import load_preset
from cellsynth.evaluate.c2st import c2st
from cellsynth.evaluate.segmentation import matching, pooled_scores, score_at
from cellsynth.evaluate.segmenter import train_segmenter
from cellsynth.examples import cells3d_nuclei
from cellsynth.sample import Sample
from cellsynth.synthesis.pipeline import load_renderer


def _burn(stop) -> None:
    a = np.random.default_rng(os.getpid()).random((400, 400))
    while not stop.is_set():
        a = np.tanh(a @ a)


class Load:
    """``n`` processes keeping the cores busy while the block runs."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.stop = multiprocessing.Event()
        self.workers = [multiprocessing.Process(target=_burn, args=(self.stop,), daemon=True) for _ in range(self.n)]
        for worker in self.workers:
            worker.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for worker in self.workers:
            worker.join()


def judge_twice(run, load: int) -> tuple:
    quiet_start = time.perf_counter()
    quiet = run()
    quiet_seconds = time.perf_counter() - quiet_start
    with Load(load):
        loaded_start = time.perf_counter()
        loaded = run()
        loaded_seconds = time.perf_counter() - loaded_start
    return quiet, loaded, round(quiet_seconds, 1), round(loaded_seconds, 1)


def main(steps: int = 300, load: int = 2) -> dict:
    image, labels, spacing = cells3d_nuclei()
    left = Sample(labels[:, :, :128], image[:, :, :128], spacing)
    right = Sample(labels[:, :, 128:], image[:, :, 128:], spacing)
    rendered = load_renderer(load_preset("nuclei")).render(Sample(right.labels, spacing=spacing), 0).image
    result = {"torch_threads": torch.get_num_threads(), "load_processes": load, "segmenter_steps": steps}

    quiet, loaded, quiet_s, loaded_s = judge_twice(lambda: c2st(right.image, rendered, spacing=spacing), load)
    result["c2st"] = {"accuracy": [quiet.accuracy, loaded.accuracy], "auc": [round(quiet.auc, 4), round(loaded.auc, 4)],
                      "identical_scores": bool(np.array_equal(quiet.scores, loaded.scores)),
                      "seconds": [quiet_s, loaded_s]}
    print("c2st", result["c2st"])

    def real2real():
        segmenter = train_segmenter([left], steps=steps, device="cpu", progress=False)
        pooled = pooled_scores([matching(right.labels, segmenter.segment(right.image, spacing), (0.5, 0.75))])
        return segmenter, score_at(pooled, 0.5), score_at(pooled, 0.75)

    (a, a50, a75), (b, b50, b75), quiet_s, loaded_s = judge_twice(real2real, load)
    same = all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    result["syn2real"] = {"ap50": [round(a50, 3), round(b50, 3)], "ap75": [round(a75, 3), round(b75, 3)],
                          "selected_step": [a.history["selected_step"], b.history["selected_step"]],
                          "thresholds": [a.thresholds, b.thresholds], "identical_weights": same,
                          "seconds": [quiet_s, loaded_s]}
    print("syn2real", result["syn2real"])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="segmenter steps (default 300)")
    parser.add_argument("--load", type=int, default=2, help="busy processes beside the loaded runs (default 2)")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.load)
