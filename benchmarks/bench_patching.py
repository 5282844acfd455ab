"""Cost of the patch engine.

- ``redundancy_default``: voxels run through the callable / voxels produced for a 180×512×512 volume
  with the default patching config (largest patch 128×256×256, overlap 8, crop 4, patch fitted to a
  multiple of 8). The reference's defaults cost ≈ 70×. Goal ≤ 1.6.
- ``ratio_vs_monai``: our engine's time / ``monai.inferers.sliding_window_inference`` (Gaussian mode)
  for the same small 3D conv net, patch (32×128×128), overlap (25 %, no crop), batch of 4 tiles, on a
  64×256×256 volume, in one run (torch on CPU, best of 5, runs interleaved). Goal ≤ 1.0.
- ``overhead``: our engine's time / the time of the bare network calls on the same number of tiles
  and batches. Goal ≤ 1.10.

Run: ``python benchmarks/bench_patching.py`` (needs ``cellsynth[bench]`` for MONAI); one JSON line last.
"""

from __future__ import annotations

import json
import time

import torch

from cellsynth.config import PatchingConfig
from cellsynth.synthesis.patching import PatchPlan, fit_patch

SHAPE = (64, 256, 256)
PATCH = (32, 128, 128)
OVERLAP_FRACTION = 0.25
BATCH = 4


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv3d(8, 1, 3, padding=1)).eval()


def best_of(functions: dict, repeats: int = 5) -> dict:
    """Best time of each function, the runs interleaved so that neither profits from running last."""
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> dict:
    config = PatchingConfig()
    patch = fit_patch((180, 512, 512), config.patch, config.overlap, config.crop, multiple=8)
    default = PatchPlan((180, 512, 512), patch, config.overlap, config.crop, config.window)
    print(f"default plan for 180x512x512: patch {patch}, {len(default.tiles)} tiles, "
          f"redundancy {default.redundancy:.3f}")

    from monai.inferers import sliding_window_inference

    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = network()
    volume = torch.rand((1, 1, *SHAPE), generator=torch.Generator().manual_seed(0))
    overlap = tuple(int(OVERLAP_FRACTION * p) for p in PATCH)
    plan = PatchPlan(SHAPE, PATCH, overlap, 0, "gaussian")
    n_tiles = len(plan.tiles)

    with torch.inference_mode():
        ours_result = plan.apply(net, volume[0], batch_size=BATCH)
        monai_result = sliding_window_inference(volume, PATCH, BATCH, net, overlap=OVERLAP_FRACTION, mode="gaussian")
        tiles = torch.rand((BATCH, 1, *PATCH))
        batches = [min(BATCH, n_tiles - i) for i in range(0, n_tiles, BATCH)]
        best = best_of({
            "ours": lambda: plan.apply(net, volume[0], batch_size=BATCH),
            "monai": lambda: sliding_window_inference(volume, PATCH, BATCH, net, overlap=OVERLAP_FRACTION,
                                                      mode="gaussian"),
            "bare": lambda: [net(tiles[:b]) for b in batches],
        })
        ours, monai, bare = best["ours"], best["monai"], best["bare"]
    difference = float((ours_result - monai_result[0]).abs().max())
    print(f"64x256x256, patch {PATCH}, {n_tiles} tiles: ours {ours:.3f} s, MONAI {monai:.3f} s, "
          f"bare network {bare:.3f} s; max |ours − MONAI| = {difference:.2e}")
    return {
        "benchmark": "patching",
        "redundancy_default": round(default.redundancy, 4),
        "default_patch": list(patch),
        "default_tiles": len(default.tiles),
        "ours_s": round(ours, 4),
        "monai_s": round(monai, 4),
        "bare_network_s": round(bare, 4),
        "ratio_vs_monai": round(ours / monai, 3),
        "overhead": round(ours / bare, 3),
        "tiles": n_tiles,
        "max_abs_difference_vs_monai": difference,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
