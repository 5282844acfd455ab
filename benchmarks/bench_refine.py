"""Does a DDPM trained on the user's own images make the calibrated physics render more real? (the refiner)

cells3d left half → right half, spatially disjoint: the physics renderer is calibrated on the left half
*without* labels, a small DDPM is trained on the left half's image for a fixed CPU budget, and every arm
draws the right half's own labels, judged by C2ST against the real right half (``c2st`` defaults:
5×8×8 µm patches, 400 steps) with several classifier seeds:

- ``physics``: the calibrated physics render;
- ``refined_tT``: the same render, refined from t_start = T in 5 DPM-Solver++ steps;
- ``untrained_t100``: the same refinement with a DDPM trained one step (control: the gain is learned);
- ``smoothed``: the physics render smoothed by a Gaussian of one voxel (control: plain denoising).

Run: ``python benchmarks/bench_refine.py [--minutes M] [--seeds K] [--t-start 50 100 ...]``; needs
``cellsynth[examples]``; one JSON line last (training budget, seconds per refined volume, mean ± sd).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _cells3d import cells3d_halves
from scipy import ndimage as ndi

from cellsynth.config import TrainConfig
from cellsynth.evaluate.c2st import c2st
from cellsynth.evaluate.volumes import read_volumes
from cellsynth.io import write_volume
from cellsynth.sample import Sample
from cellsynth.synthesis.calibrate import calibrate_files
from cellsynth.synthesis.refine import RefineRenderer
from cellsynth.training.loop import train_ddpm

#: The CPU size of the probe that showed the lever (issue 25): 16×64×64 patches, widths 16-32-64, no attention.
CPU_DDPM = {"patch": [16, 64, 64], "widths": [16, 32, 64], "learning_rate": 3e-4}


def train(image: Path, out: Path, minutes: float, steps: int) -> Path:
    config = TrainConfig.model_validate({
        "steps": steps, "max_minutes": minutes, "batch_size": 2, "device": "cpu", "log_every": 25,
        "preview_every": 0, "checkpoint_every": 100, "data": {"images": [str(image)], "patch": CPU_DDPM["patch"]},
        "ddpm": {"widths": CPU_DDPM["widths"], "attention": False, "learning_rate": CPU_DDPM["learning_rate"],
                 "ema_decay": 0.995}})
    return train_ddpm(config, out, progress=False)


def main(minutes: float, seeds: int, t_starts: list[int]) -> dict:
    result: dict = {"real": "cells3d right half (60x256x128)", "training_minutes": minutes, "ddpm": CPU_DDPM,
                    "classifier_seeds": seeds, "device": "cpu"}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        left, right = cells3d_halves(root)
        real = read_volumes(right.root, labels=True)[0]
        left_image = root / "left.tif"
        left_volume = read_volumes(left.root)[0]
        write_volume(left_image, left_volume.image, left_volume.spacing)
        calibration = calibrate_files([left_image])  # without labels: the classical segmentation
        start = time.perf_counter()
        checkpoint = train(left_image, root / "ddpm", minutes, steps=100_000)
        result["training_seconds"] = round(time.perf_counter() - start, 1)
        untrained = train(left_image, root / "ddpm_untrained", minutes, steps=1)
        labels = Sample(real.labels, spacing=real.spacing)
        images: dict[str, np.ndarray] = {}
        physics = RefineRenderer(calibration.config.optics, checkpoint, device="cpu").physics
        images["physics"] = physics.render(labels, rng=0).image
        images["smoothed"] = ndi.gaussian_filter(images["physics"], 1.0)
        for name, weights, t_start in [*((f"refined_t{t}", checkpoint, t) for t in t_starts),
                                       ("untrained_t100", untrained, 100)]:
            renderer = RefineRenderer(calibration.config.optics, weights, t_start=t_start, steps=5, device="cpu")
            start = time.perf_counter()
            images[name] = renderer.render(labels, rng=0).image
            result[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
        for name, image in images.items():
            runs = [c2st([real], [Sample(image=image, spacing=real.spacing)], seed=seed).accuracy
                    for seed in range(seeds)]
            result[name] = {"c2st_mean": round(float(np.mean(runs)), 3), "c2st_sd": round(float(np.std(runs)), 3),
                            "runs": [round(r, 3) for r in runs]}
            print(name, result[name], flush=True)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="DDPM training budget (CPU minutes)")
    parser.add_argument("--seeds", type=int, default=3, help="C2ST classifier seeds per arm")
    parser.add_argument("--t-start", type=int, nargs="+", default=[50, 100, 200, 400], dest="t_start")
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.minutes, arguments.seeds, arguments.t_start)))
