"""DDPM sampling: fidelity and cost per sampler, and seams with and without per-step tile fusion.

A DDPM is trained for ``--steps`` on physics-renderer images (CPU: a tiny network, 16×32×32
patches; GPU: the default network, 32×128×128 patches). A held-out renderer image plays the real
image: its labels make the sketch (intensities fitted to the training images, blur 1 voxel), and
each sampler's output is compared with it (PSNR, ZNCC, as seed 003 Fig. 1c), with the wall time per
patch:

- ``ancestral_400``: DDPM ancestral, 400 steps from t_start = 400 (the reference's method);
- ``ddim_N`` / ``dpmsolver_N`` for N = 10, 25, 50 from the same t_start.

Goal: ≤ 25 steps within 0.5 dB PSNR and 0.01 ZNCC of the 400-step result. ``seams``: a volume of
3×3 tiles (in y, x) sampled with per-step fusion (one global noise, blended predictions) and with
tiles sampled independently then blended (the reference's way), scored by
:func:`cellsynth.evaluate.seams.seam_score` (≈ 1: no seam). ``fusion``: on the same volume, with the
generator's own tiles, how far the fused noise prediction is from one whole-volume call
(:func:`cellsynth.models.diffusion.fusion_error`) at t = 100 and 400. ``volume_180x512x512_s`` on a
GPU only.

Run: ``python benchmarks/bench_ddpm.py [--steps N]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cellsynth.config import TrainConfig, load_preset, with_overrides
from cellsynth.dataset import sample_rng
from cellsynth.evaluate.metrics import psnr, zncc
from cellsynth.evaluate.seams import seam_score
from cellsynth.io import write_volume
from cellsynth.masks.simulate import simulate_masks
from cellsynth.models.diffusion import fused_denoiser, fusion_error, sdedit, whole_denoiser
from cellsynth.synthesis.conditioning import make_sketch
from cellsynth.synthesis.learned import DiffusionRenderer
from cellsynth.synthesis.optics import OpticsRenderer
from cellsynth.synthesis.patching import PatchPlan, apply_patched
from cellsynth.training.loop import train_ddpm

SPACING = (0.29, 0.26, 0.26)
CPU = {"patch": [16, 32, 32], "ddpm": {"widths": [16, 32, 64], "attention": False, "learning_rate": 1e-3},
       "batch_size": 4}
GPU = {"patch": [32, 128, 128], "ddpm": {}, "batch_size": 4}


def whole_depth(shape) -> dict:
    """The nuclei preset's slab (cells3d's monolayer) spread over a volume too shallow to hold it."""
    return {"masks.placement.z_range_um": [0.0, shape[0] * load_preset("nuclei").volume.spacing_um[0]]}


def renderer_pairs(folder: Path, shape, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    config = with_overrides(load_preset("nuclei"), {"volume.shape": shape, **whole_depth(shape)})
    renderer = OpticsRenderer(config.optics, config.patching)
    pairs = []
    for index in range(n):
        masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, sample_rng(3, index))
        image = renderer.render(masks, sample_rng(4, index)).image
        if index < n - 1:  # the last one is held out
            write_volume(folder / f"train_{index}.tif", image, SPACING)
        pairs.append((image, masks.labels))
    return pairs


def normalised(image: np.ndarray, info) -> np.ndarray:
    low, high = info.normalisation.low, info.normalisation.high
    return np.clip((image - low) / (high - low), 0, 1).astype(np.float32)


def timed_sample(generator: DiffusionRenderer, sketch: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """One patch-sized sketch sampled by one network call per step (no tiling), and its wall time."""
    x0 = torch.from_numpy(sketch[None] * 2 - 1).to(generator.device)
    start = time.perf_counter()
    out = sdedit(whole_denoiser(generator.network), x0, generator.scheduler, t_start=generator.t_start,
                 steps=generator.steps, generator=torch.Generator().manual_seed(seed))
    out = ((out[0] + 1) / 2).clamp(0, 1).cpu().numpy()
    return out, time.perf_counter() - start


def seams(generator: DiffusionRenderer, sketch: np.ndarray, patch) -> dict:
    """Fused vs independent tiles on a 3×3-tile volume (in y, x)."""
    network, scheduler = generator.network, generator.scheduler
    plan = PatchPlan(sketch.shape, patch, overlap=(0, 8, 8), crop=(0, 2, 2))
    x0 = torch.from_numpy(sketch[None] * 2 - 1).to(generator.device)
    fused = sdedit(fused_denoiser(network, plan), x0, scheduler, t_start=generator.t_start, steps=generator.steps,
                   generator=torch.Generator().manual_seed(0))

    def independent(tiles: torch.Tensor) -> torch.Tensor:
        return torch.stack([sdedit(fused_denoiser(network, PatchPlan(tile.shape[1:], tile.shape[1:], 0, 0)), tile,
                                   scheduler, t_start=generator.t_start, steps=generator.steps,
                                   generator=torch.Generator().manual_seed(index))
                            for index, tile in enumerate(tiles)])

    separate, _ = apply_patched(independent, x0, patch=patch, overlap=(0, 8, 8), crop=(0, 2, 2), multiple=None)
    planes = plan.seam_planes()
    return {"tiles": len(plan.tiles), "fused": round(seam_score(fused[0].cpu().numpy(), planes), 3),
            "independent": round(seam_score(separate[0].cpu().numpy(), planes), 3)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, help="training steps (default 400 on the CPU, 20000 on a GPU)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available()
    sizes = GPU if gpu else CPU
    steps = args.steps or (20000 if gpu else 400)
    patch = sizes["patch"]
    result = {"device": torch.cuda.get_device_name() if gpu else "cpu", "patch": patch, "train_steps": steps}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = renderer_pairs(folder, [patch[0], 2 * patch[1], 2 * patch[2]], 4)
        config = TrainConfig.model_validate({
            "steps": steps, "log_every": 50, "preview_every": 0, "checkpoint_every": steps, "seed": 0,
            "batch_size": sizes["batch_size"], "data": {"images": [str(folder / "train_*.tif")], "patch": patch},
            "ddpm": sizes["ddpm"]})
        start = time.perf_counter()
        checkpoint = train_ddpm(config, folder / "run", progress=False)
        result["train_s"] = round(time.perf_counter() - start, 1)
        image, labels = pairs[-1]
        crop = np.s_[:patch[0], :patch[1], :patch[2]]
        base = DiffusionRenderer(checkpoint, device="cuda" if gpu else "cpu")
        real = normalised(image, base.info)[crop]
        sketch = make_sketch(labels[crop], SPACING, base.statistics, blur_um=base.blur_um, rng=np.random.default_rng(0))
        result["sketch"] = {"psnr_db": round(psnr(real, sketch), 3), "zncc": round(zncc(real, sketch), 4)}
        runs = [("ancestral_400", "ddpm", 400)] + [(f"{s}_{n}", s, n) for s in ("ddim", "dpmsolver")
                                                     for n in (10, 25, 50)]
        for name, sampler, n in runs:
            generator = DiffusionRenderer(checkpoint, sampler=sampler, steps=n, t_start=400,
                                          device="cuda" if gpu else "cpu")
            out, seconds = timed_sample(generator, sketch, 1)
            result[name] = {"psnr_db": round(psnr(real, out), 3), "zncc": round(zncc(real, out), 4),
                            "s_per_patch": round(seconds, 3)}
        dpm = DiffusionRenderer(checkpoint, sampler="dpmsolver", steps=25, t_start=400,
                                device="cuda" if gpu else "cpu")
        wide = [patch[0], 3 * (patch[1] - 4) - 2 * 8, 3 * (patch[2] - 4) - 2 * 8]  # 3×3 cores of the seam plan
        wide_config = with_overrides(load_preset("nuclei"), {"volume.shape": wide, **whole_depth(wide)})
        wide_labels = simulate_masks(wide, wide_config.volume.spacing_um, wide_config.masks, sample_rng(9, 0)).labels
        wide_sketch = make_sketch(wide_labels, SPACING, dpm.statistics, blur_um=dpm.blur_um,
                                  rng=np.random.default_rng(2))
        result["seams"] = seams(dpm, wide_sketch, patch)
        plan = PatchPlan(wide_sketch.shape, **dpm.tile_geometry())
        x0 = torch.from_numpy(wide_sketch[None] * 2 - 1).to(dpm.device)
        result["fusion"] = {"tiles": len(plan.tiles), **{f"t{t}": {k: round(v, 4) for k, v in fusion_error(
            dpm.network, plan, x0, t, dpm.scheduler, torch.Generator().manual_seed(t)).items()} for t in (100, 400)}}
        if gpu:
            big = make_sketch(np.zeros((180, 512, 512), np.uint16), SPACING, dpm.statistics,
                              blur_um=dpm.blur_um, rng=np.random.default_rng(3))
            start = time.perf_counter()
            dpm.sample(big, SPACING, np.random.default_rng(3))
            result["volume_180x512x512_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
