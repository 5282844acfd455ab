"""How fast the judges train, before and after their speed-ups, side by side in one run on one machine.

- **C2ST** (:func:`~cellsynth.evaluate.c2st.c2st` at its defaults): the cells3d right half against
  (a) the ``nuclei`` preset's renderer drawing the right half's own labels and (b) the right half's
  binary mask blurred plus noise; each with the classifier's activations contiguous (before) and
  channels-last (after, :data:`~cellsynth.evaluate.c2st.MEMORY_FORMAT`), classifier seeds 0…K−1.
  Reported: seconds per training step and every run's accuracy (equal results: the accuracies agree
  within the seed-to-seed spread).
- **Syn2Real step** (:func:`~cellsynth.evaluate.segmenter.train_segmenter` on the cells3d left half, a
  fixed step budget, validation included): the centre-ness targets with ``ndimage.maximum`` (before)
  and ``np.maximum.at`` (after); the trained weights must be identical.

Run: ``python benchmarks/bench_judge_speed.py [--c2st-steps N] [--seeds K] [--segmenter-steps N]``;
needs ``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

import numpy as np
import torch
from scipy import ndimage as ndi

from cellsynth.config import load_preset
from cellsynth.evaluate.settings import C2ST_STEPS
from cellsynth.examples import cells3d_nuclei
from cellsynth.masks.derived import centreness, instance_boundaries
from cellsynth.sample import Sample
from cellsynth.synthesis.pipeline import load_renderer

# the modules themselves (``cellsynth.evaluate`` exports functions of the same names)
c2st_module = importlib.import_module("cellsynth.evaluate.c2st")
segmenter_module = importlib.import_module("cellsynth.evaluate.segmenter")


def centreness_before(labels: np.ndarray, spacing) -> np.ndarray:
    """:func:`centreness` as it was: the largest distance per object by ``ndimage.maximum`` (an argsort)."""
    inside = labels > 0
    if not inside.any():
        return np.zeros(labels.shape, np.float32)
    distance = ndi.distance_transform_edt(inside & ~instance_boundaries(labels), sampling=spacing) + inside * min(
        spacing)
    largest = np.zeros(int(labels.max()) + 1)
    ids = np.unique(labels[inside])
    largest[ids] = ndi.maximum(distance, labels, ids)
    return np.where(inside, distance / np.maximum(largest[labels], 1e-12), 0).astype(np.float32)


def c2st_arms(image: np.ndarray, labels: np.ndarray, spacing) -> dict[str, np.ndarray]:
    rendered = load_renderer(load_preset("nuclei")).render(Sample(labels, spacing=spacing),
                                                           np.random.default_rng(0)).image
    blurred = ndi.gaussian_filter((labels > 0).astype(np.float32), 1.5)
    blurred += 0.1 * np.random.default_rng(1).standard_normal(blurred.shape).astype(np.float32)
    return {"renderer_real_labels": rendered, "blurred_mask_noise": blurred}


def time_c2st(real, synthetic, spacing, steps: int, seeds: int) -> dict:
    out = {}
    for name, layout in (("before", torch.contiguous_format), ("after", torch.channels_last_3d)):
        c2st_module.MEMORY_FORMAT = layout
        runs = [c2st_module.c2st(real, synthetic, spacing=spacing, steps=steps, seed=seed) for seed in range(seeds)]
        seconds, steps_run = (sum(r.history[key] for r in runs) for key in ("seconds", "steps"))
        out[name] = {"s_per_step": round(seconds / steps_run, 4), "accuracies": [round(r.accuracy, 3) for r in runs]}
    c2st_module.MEMORY_FORMAT = torch.channels_last_3d
    out["speedup"] = round(out["before"]["s_per_step"] / out["after"]["s_per_step"], 2)
    out["accuracy_mean_difference"] = round(float(np.mean(out["after"]["accuracies"])
                                                  - np.mean(out["before"]["accuracies"])), 3)
    return out


def time_segmenter(left: Sample, steps: int) -> dict:
    out, weights = {}, {}
    for name, function in (("before", centreness_before), ("after", centreness)):
        segmenter_module.centreness = function
        start = time.perf_counter()
        segmenter = segmenter_module.train_segmenter([left], steps=steps, device="cpu", progress=False)
        out[name] = {"s_per_step": round((time.perf_counter() - start) / steps, 4)}
        weights[name] = segmenter.model.state_dict()
    segmenter_module.centreness = centreness
    out["speedup"] = round(out["before"]["s_per_step"] / out["after"]["s_per_step"], 2)
    out["identical_weights"] = all(torch.equal(weights["before"][k], weights["after"][k]) for k in weights["after"])
    return out


def main(c2st_steps: int = C2ST_STEPS, seeds: int = 2, segmenter_steps: int = 100) -> dict:
    image, labels, spacing = cells3d_nuclei()
    right = (image[:, :, 128:], labels[:, :, 128:])
    result = {"torch_threads": torch.get_num_threads(), "c2st_steps": c2st_steps, "seeds": seeds,
              "segmenter_steps": segmenter_steps}
    for name, synthetic in c2st_arms(*right, spacing).items():
        result[f"c2st_{name}"] = time_c2st(right[0], synthetic, spacing, c2st_steps, seeds)
        print(name, result[f"c2st_{name}"])
    result["syn2real_step"] = time_segmenter(Sample(labels[:, :, :128], image[:, :, :128], spacing), segmenter_steps)
    print("syn2real step", result["syn2real_step"])
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c2st-steps", type=int, default=C2ST_STEPS, help=f"C2ST steps (default {C2ST_STEPS})")
    parser.add_argument("--seeds", type=int, default=2, help="classifier seeds per arm and layout (default 2)")
    parser.add_argument("--segmenter-steps", type=int, default=100, help="segmenter steps per arm (default 100)")
    arguments = parser.parse_args()
    main(arguments.c2st_steps, arguments.seeds, arguments.segmenter_steps)
