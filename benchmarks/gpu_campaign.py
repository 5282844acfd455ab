"""The GPU campaign: one prepared command for the few minutes of GPU a session may be lent.

On one GPU, in at most 9 minutes of wall time (the device's start-up and transfers come on top):

1. trains the cGAN (unpaired, simulated nuclei-preset masks, the paper's 64×128×128 patches) and the
   DDPM (32×128×128) on the cells3d **left half**, each for a fixed wall budget (``--train-minutes``,
   default 3), bf16 where the GPU has it;
2. renders the cells3d **right half**'s real labels with each trained generator, with the physics
   renderer (nuclei preset) and with the refiner (that physics render finished by the DDPM from
   t_start = 100 in 5 steps), and scores each image against the real right half: paired metrics
   (:func:`cellsynth.evaluate.metrics.paired_metrics`) and the C2ST accuracy of ``cellsynth evaluate
   realism`` (0.5 = indistinguishable);
3. times one 180×512×512 volume per learned generator (DDPM: DPM-Solver++, 25 steps from
   t_start = 400) and reports peak GPU memory, training steps/s and tiles/s;
4. writes the checkpoints and mid-slice PNGs under ``--out`` (default ``data/gpu_campaign``,
   git-ignored: weights trained on cells3d must never be committed or shipped).

``--dry-run`` runs every step on the CPU with tiny networks, a few steps and a crop of the right
half; the test suite runs it. Run: ``python benchmarks/gpu_campaign.py [--dry-run] [--out DIR]``;
one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _cells3d import cells3d_halves

from cellsynth.checkpoints import read_checkpoint_info
from cellsynth.checks import check_output
from cellsynth.config import PatchingConfig, TrainConfig, load_preset, with_overrides
from cellsynth.dataset import sample_rng
from cellsynth.dataset.previews import write_preview
from cellsynth.dataset.samples import as_samples
from cellsynth.evaluate.c2st import c2st
from cellsynth.evaluate.metrics import paired_metrics
from cellsynth.evaluate.settings import C2ST_PATCH_UM
from cellsynth.io import write_volume
from cellsynth.masks.simulate import simulate_masks
from cellsynth.sample import Sample
from cellsynth.synthesis.learned import DiffusionRenderer, GanRenderer
from cellsynth.synthesis.patching import PatchPlan
from cellsynth.synthesis.pipeline import load_renderer
from cellsynth.synthesis.refine import RefineRenderer
from cellsynth.training.loop import train_ddpm, train_gan

#: Sizes on the GPU (the papers' patches and networks) and in the CPU dry run.
SIZES = {
    "gpu": {"gan": {"patch": [64, 128, 128], "gan": {}}, "ddpm": {"patch": [32, 128, 128], "ddpm": {}},
            "batch_size": 4, "tile_batch": None, "volume": (180, 512, 512), "c2st_steps": 400,
            "c2st_patch_um": C2ST_PATCH_UM, "judged": np.s_[:, :, :]},
    "dry": {"gan": {"patch": [8, 32, 32], "gan": {"widths": [4, 8], "discriminator_widths": [4, 8],
                                                  "discriminator_strides": [2, 1]}},
            "ddpm": {"patch": [8, 32, 32], "ddpm": {"widths": [8, 16], "attention": False}},
            "batch_size": 2, "tile_batch": 4, "volume": (8, 64, 64), "c2st_steps": 5, "c2st_patch_um": (2, 4, 4),
            "judged": np.s_[:24, :96, :96], "train_steps": 3, "sampling_steps": 2},
}


def whole_depth(shape) -> dict:
    """The nuclei preset's monolayer spread over the whole depth (a volume deeper or shallower than cells3d)."""
    return {"masks.placement.z_range_um": [0.0, shape[0] * load_preset("nuclei").volume.spacing_um[0]]}


def train(model: str, images: Path, out: Path, sizes: dict, minutes: float | None) -> dict:
    """Train one generator on ``images`` for ``minutes`` (or the dry run's steps); its checkpoint and speed."""
    peak_reset()
    steps = sizes.get("train_steps", 10**7)
    config = TrainConfig.model_validate({
        "steps": steps, "max_minutes": minutes, "log_every": 25, "preview_every": 0, "checkpoint_every": 10**7,
        "batch_size": sizes["batch_size"], "seed": 0,
        "data": {"images": [str(images)], "patch": sizes[model]["patch"], "simulated_volumes": 2},
        "masks": load_preset("nuclei").masks.model_dump(mode="json"), model: sizes[model][model]})
    start = time.perf_counter()
    checkpoint = (train_gan if model == "gan" else train_ddpm)(config, out / model, progress=False)
    seconds = time.perf_counter() - start
    done = read_checkpoint_info(checkpoint, model)["step"]
    return {"checkpoint": checkpoint, "seconds": round(seconds, 1), "steps": done,
            "steps_per_s": round(done / seconds, 3), "patch": sizes[model]["patch"], "peak_gib": peak_gib()}


def peak_reset() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def judge(name: str, image: np.ndarray, real: Sample, out: Path, sizes: dict, device: str) -> dict:
    """Paired metrics and C2ST of ``image`` against the real right half; a mid-slice PNG."""
    write_preview(out / f"{name}.png", image, real.labels, real.spacing)
    metrics = paired_metrics(real.image, image, real.labels)
    test = c2st([real], [Sample(image=image, spacing=real.spacing)], steps=sizes["c2st_steps"],
                patch_um=sizes["c2st_patch_um"], device=device)
    return {"c2st_accuracy": round(test.accuracy, 3), "c2st_ci95": [round(c, 3) for c in test.ci95],
            **{region: {k: round(v, 4) for k, v in metrics[region].items()} for region in ("whole", "foreground")}}


def timed_volume(generator, shape, seed: int) -> dict:
    """Render one simulated nuclei volume of ``shape`` voxels; seconds, tiles/s and peak memory."""
    config = with_overrides(load_preset("nuclei"), {"volume.shape": list(shape), **whole_depth(shape)})
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, sample_rng(seed, 0))
    plan = PatchPlan(shape, **generator.tile_geometry())
    calls = len(plan.tiles) * (generator.steps if isinstance(generator, DiffusionRenderer) else 1)
    peak_reset()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    generator.render(masks, np.random.default_rng(seed))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"shape": list(shape), "seconds": round(seconds, 2), "tiles": len(plan.tiles),
            "tiles_per_s": round(calls / seconds, 1), "peak_gib": peak_gib()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="everything on the CPU, tiny and fast")
    parser.add_argument("--out", type=Path, default=Path("data/gpu_campaign"), help="checkpoints and PNGs")
    parser.add_argument("--train-minutes", type=float, default=3.0, help="wall budget per generator (GPU)")
    args = parser.parse_args(argv)
    gpu = torch.cuda.is_available() and not args.dry_run
    sizes = SIZES["gpu" if gpu else "dry"]
    device = "cuda" if gpu else "cpu"
    minutes = args.train_minutes if gpu else None
    check_output(args.out, "the campaign's results", folder=True)  # before any GPU second is spent
    args.out.mkdir(exist_ok=True)
    start = time.perf_counter()
    result: dict = {"device": torch.cuda.get_device_name() if gpu else "cpu (dry run)",
                    "date": time.strftime("%Y-%m-%d"), "train_minutes_each": minutes}
    with tempfile.TemporaryDirectory() as scratch:
        left, right = cells3d_halves(Path(scratch))
        train_image = as_samples(left.root)[0]
        write_volume(args.out / "cells3d_left.tif", train_image.image, train_image.spacing)
        whole_right = as_samples(right.root, labels=True)[0]
    judged = sizes["judged"]
    real = Sample(whole_right.labels[judged], whole_right.image[judged], whole_right.spacing, name="cells3d right half")
    result["judged_on"] = list(real.image.shape)
    trained = {model: train(model, args.out / "cells3d_left.tif", args.out, sizes, minutes)
               for model in ("gan", "ddpm")}
    (args.out / "cells3d_left.tif").unlink()  # the data's terms: keep no copy
    patching = PatchingConfig(batch_size=sizes["tile_batch"])
    sampling = {"steps": sizes.get("sampling_steps", 25)}
    generators = {
        "gan": GanRenderer(trained["gan"]["checkpoint"], patching, device=device),
        "ddpm": DiffusionRenderer(trained["ddpm"]["checkpoint"], patching, sampler="dpmsolver", t_start=400,
                                  device=device, **sampling),
        "physics": load_renderer(load_preset("nuclei")),
        "refine": RefineRenderer(load_preset("nuclei").optics, trained["ddpm"]["checkpoint"], patching,
                                 t_start=100, device=device, **{**sampling, "steps": 5}),
    }
    masks = Sample(real.labels, spacing=real.spacing)
    for name, generator in generators.items():
        image = generator.render(masks, np.random.default_rng(0)).image
        result[name] = judge(name, image, real, args.out, sizes, device)
        if name in trained:
            result[name]["training"] = {k: v for k, v in trained[name].items() if k != "checkpoint"}
            result[name]["volume"] = timed_volume(generator, sizes["volume"], seed=1)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    result["goals"] = {"ddpm_volume_under_60_s": result["ddpm"]["volume"]["seconds"] < 60,
                       "gan_volume_under_10_s": result["gan"]["volume"]["seconds"] < 10,
                       "gan_c2st_below_physics": result["gan"]["c2st_accuracy"] < result["physics"]["c2st_accuracy"],
                       "ddpm_c2st_below_physics": result["ddpm"]["c2st_accuracy"]
                       < result["physics"]["c2st_accuracy"],
                       "refine_c2st_below_physics": result["refine"]["c2st_accuracy"]
                       < result["physics"]["c2st_accuracy"]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
