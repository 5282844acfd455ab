"""cGAN speed, and its realism on cells3d after a fixed training budget.

- ``train_steps_per_s``: optimiser steps (one D and one G update, batch 1) per second on random
  renderer-made patches, after 2 warm-up steps; CPU with a tiny network and 16×64×64 patches, GPU
  with the reference network (widths 16–128, D 64–512) and the paper's 64×128×128 patch.
- ``generate_voxels_per_s``: :class:`~cellsynth.synthesis.learned.GanRenderer` over a whole
  volume (tiles, blending, conditioning included); CPU 32×128×128, GPU 128×512×512.
- ``cells3d``: with ``--minutes M`` (default 20 on a GPU, 0 = skipped on the CPU), train unpaired
  on the cells3d nuclei image (x < 192) with simulated masks for M minutes, then compare the
  held-out crop (x ≥ 192) with G(its own labels): NRMSE / SSIM / ZNCC / PSNR as in seed 001
  Table 1 (there: NRMSE 0.12–0.13, SSIM 0.58–0.71, ZNCC 0.63–0.85). Weights stay in a temporary
  folder: never ship weights trained on cells3d.

Run: ``python benchmarks/bench_gan.py [--minutes M]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cellsynth.checkpoints import read_checkpoint_info
from cellsynth.config import TrainConfig, load_preset, with_overrides
from cellsynth.dataset import sample_rng
from cellsynth.io import write_volume
from cellsynth.masks.simulate import simulate_masks
from cellsynth.synthesis.learned import GanRenderer
from cellsynth.synthesis.optics import OpticsRenderer
from cellsynth.training.loop import build_gan_trainer, train_gan

SPACING = (0.29, 0.26, 0.26)
CPU = {"patch": [16, 64, 64], "gan": {"widths": [8, 16, 32], "discriminator_widths": [16, 32, 64],
                                      "discriminator_strides": [2, 2, 1]}, "volume": (32, 128, 128)}
GPU = {"patch": [64, 128, 128], "gan": {}, "volume": (128, 512, 512)}


def whole_depth(shape) -> dict:
    """The nuclei preset's slab (cells3d's monolayer) spread over a volume too shallow to hold it."""
    return {"masks.placement.z_range_um": [0.0, shape[0] * load_preset("nuclei").volume.spacing_um[0]]}


def renderer_volume(folder: Path, shape) -> Path:
    config = with_overrides(load_preset("nuclei"), {"volume.shape": shape, **whole_depth(shape)})
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, sample_rng(0, 0))
    image = OpticsRenderer(config.optics, config.patching).render(masks, sample_rng(1, 0)).image
    write_volume(folder / "image.tif", image, SPACING)
    write_volume(folder / "labels.tif", masks.labels, SPACING)
    return folder / "image.tif"


def config_for(images: str, sizes: dict, **top) -> TrainConfig:
    return TrainConfig.model_validate({"log_every": 10**6, "preview_every": 0, "checkpoint_every": 10**6,
                                       "data": {"images": [images], "patch": sizes["patch"], "simulated_volumes": 1},
                                       "masks": load_preset("nuclei").masks.model_dump(mode="json"),
                                       "gan": sizes["gan"], **top})


def training_speed(sizes: dict) -> float:
    trainer = build_gan_trainer(config_for("unused.tif", sizes, steps=1), steps_per_epoch=1)
    random = torch.Generator().manual_seed(0)
    batch = {key: torch.rand(1, 1, *sizes["patch"], generator=random)
             for key in ("mask", "mask_position", "image", "image_position")}
    for _ in range(2):
        trainer.step(batch)  # warm-up (its float() results synchronise the GPU)
    steps = 20 if torch.cuda.is_available() else 5
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(batch)
    return steps / (time.perf_counter() - start)


def generation_speed(checkpoint: Path, sizes: dict) -> float:
    config = with_overrides(load_preset("nuclei"), {"volume.shape": sizes["volume"], **whole_depth(sizes["volume"])})
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, sample_rng(0, 1))
    generator = GanRenderer(checkpoint)
    generator.render(masks)  # load and warm up
    start = time.perf_counter()
    generator.render(masks)
    return float(np.prod(sizes["volume"])) / (time.perf_counter() - start)


def cells3d(folder: Path, sizes: dict, minutes: float) -> dict:
    from cellsynth.evaluate.metrics import paired_metrics
    from cellsynth.examples import cells3d_nuclei
    from cellsynth.sample import Sample

    image, labels, spacing = cells3d_nuclei()
    write_volume(folder / "cells3d_train.tif", image[:, :, :192], spacing)
    config = config_for(str(folder / "cells3d_train.tif"), sizes, steps=10**7, max_minutes=minutes)
    checkpoint = train_gan(config, folder / "cells3d", progress=False)
    steps = read_checkpoint_info(checkpoint, "gan")["step"]
    generator = GanRenderer(checkpoint)
    held_out = np.s_[:, :, 192:]
    synthetic = generator.render(Sample(labels[held_out], spacing=spacing)).image
    metrics = paired_metrics(image[held_out], synthetic, labels[held_out])
    return {"minutes": minutes, "steps": steps,
            **{region: {k: round(v, 4) for k, v in metrics[region].items()} for region in ("whole", "foreground")}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, help="cells3d training budget (default 20 on a GPU, 0 on the CPU)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    sizes = GPU if gpu else CPU
    minutes = args.minutes if args.minutes is not None else (20.0 if gpu else 0.0)
    result = {"device": torch.cuda.get_device_name() if gpu else "cpu", "patch": sizes["patch"]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        result["train_steps_per_s"] = round(training_speed(sizes), 3)
        image = renderer_volume(folder, sizes["volume"])
        checkpoint = train_gan(config_for(str(image), sizes, steps=1), folder / "run", progress=False)
        result["generate_volume"] = list(sizes["volume"])
        result["generate_voxels_per_s"] = round(generation_speed(checkpoint, sizes))
        if minutes > 0:
            try:
                result["cells3d"] = cells3d(folder, sizes, minutes)
            except ImportError as error:  # cellsynth[examples] not installed
                result["cells3d"] = f"skipped: {error}"
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
