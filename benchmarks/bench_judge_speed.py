"""How fast the judges train, before and after their speed-ups, side by side in one run on one machine.

- **C2ST** (:func:`~cellsynth.evaluate.c2st.c2st` at its defaults): the cells3d right half against
  (a) the ``nuclei`` preset's renderer drawing the right half's own labels and (b) the right half's
  binary mask blurred plus noise, classifier seeds 0…K−1. Before: contiguous activations and glibc's
  default malloc; after: channels-last activations (:data:`~cellsynth.evaluate.c2st.MEMORY_FORMAT`)
  and freed memory kept for reuse (:func:`~cellsynth.models.common.keep_freed_memory`). Reported:
  seconds per training step and every run's accuracy (equal results: identical scores for the
  allocator, accuracies within the seed-to-seed spread for the layout).
- **Syn2Real step** (:func:`~cellsynth.evaluate.segmenter.train_segmenter` on the cells3d left half, a
  fixed step budget, validation included): before, the centre-ness targets by ``ndimage.maximum`` and
  the default malloc; after, ``np.maximum.at`` and freed memory kept. The trained weights must be
  identical.

The malloc setting is process-wide, so every arm runs in a fresh process of its own.

Run: ``python benchmarks/bench_judge_speed.py [--c2st-steps N] [--seeds K] [--segmenter-steps N]``;
needs ``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import subprocess
import sys
import time

import numpy as np
import torch
from scipy import ndimage as ndi

from cellsynth.config import load_preset
from cellsynth.evaluate.settings import C2ST_STEPS
from cellsynth.examples import cells3d_nuclei
from cellsynth.masks.derived import instance_boundaries
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


def use_variant(variant: str) -> None:
    """Set this process up as it was (``before``) or as it is (``after``)."""
    if variant == "before":
        c2st_module.MEMORY_FORMAT = torch.contiguous_format
        segmenter_module.centreness = centreness_before
        c2st_module.keep_freed_memory = segmenter_module.keep_freed_memory = lambda: False


def run_part(part: str, variant: str, c2st_steps: int, seeds: int, segmenter_steps: int) -> dict:
    """One arm in this process: ``part`` is a C2ST arm's name or ``syn2real``."""
    use_variant(variant)
    image, labels, spacing = cells3d_nuclei()
    if part == "syn2real":
        start = time.perf_counter()
        segmenter = segmenter_module.train_segmenter([Sample(labels[:, :, :128], image[:, :, :128], spacing)],
                                                     steps=segmenter_steps, device="cpu", progress=False)
        digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in segmenter.model.state_dict().values()))
        return {"s_per_step": round((time.perf_counter() - start) / segmenter_steps, 4),
                "weights_sha256": digest.hexdigest()}
    real = image[:, :, 128:]
    synthetic = c2st_arms(real, labels[:, :, 128:], spacing)[part]
    runs = [c2st_module.c2st(real, synthetic, spacing=spacing, steps=c2st_steps, seed=seed) for seed in range(seeds)]
    seconds, steps_run = (sum(r.history[key] for r in runs) for key in ("seconds", "steps"))
    return {"s_per_step": round(seconds / steps_run, 4), "accuracies": [round(r.accuracy, 3) for r in runs]}


def in_own_process(part: str, variant: str, c2st_steps: int, seeds: int, segmenter_steps: int) -> dict:
    command = [sys.executable, __file__, "--part", part, "--variant", variant, "--c2st-steps", str(c2st_steps),
               "--seeds", str(seeds), "--segmenter-steps", str(segmenter_steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(c2st_steps: int = C2ST_STEPS, seeds: int = 2, segmenter_steps: int = 100) -> dict:
    result = {"torch_threads": torch.get_num_threads(), "c2st_steps": c2st_steps, "seeds": seeds,
              "segmenter_steps": segmenter_steps}
    for part in ("renderer_real_labels", "blurred_mask_noise", "syn2real"):
        arms = {variant: in_own_process(part, variant, c2st_steps, seeds, segmenter_steps)
                for variant in ("before", "after")}
        arms["speedup"] = round(arms["before"]["s_per_step"] / arms["after"]["s_per_step"], 2)
        if part == "syn2real":
            arms["identical_weights"] = arms["before"]["weights_sha256"] == arms["after"]["weights_sha256"]
        else:
            arms["accuracy_mean_difference"] = round(float(np.mean(arms["after"]["accuracies"])
                                                           - np.mean(arms["before"]["accuracies"])), 3)
        result["syn2real_step" if part == "syn2real" else f"c2st_{part}"] = arms
        print(part, arms, flush=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c2st-steps", type=int, default=C2ST_STEPS, help=f"C2ST steps (default {C2ST_STEPS})")
    parser.add_argument("--seeds", type=int, default=2, help="classifier seeds per arm and layout (default 2)")
    parser.add_argument("--segmenter-steps", type=int, default=100, help="segmenter steps per arm (default 100)")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # one arm, in the process main() starts for it
    parser.add_argument("--variant", choices=("before", "after"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.part:
        print(json.dumps(run_part(arguments.part, arguments.variant, arguments.c2st_steps, arguments.seeds,
                                  arguments.segmenter_steps)))
    else:
        main(arguments.c2st_steps, arguments.seeds, arguments.segmenter_steps)
