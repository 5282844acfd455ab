"""Cost of the evaluation, and the physics renderer's realism on the cells3d nuclei.

- ``paired_metrics_64x256x256_s``: NRMSE, SSIM (3D), ZNCC and PSNR, whole volume and foreground,
  for a 64×256×256 pair, best of 3.
- ``matching_1000_128x512x512_s``: instance matching of 1000 vs 1000 objects in 128×512×512 at the
  nine IoU thresholds 0.1…0.9 (IoU table + nine Hungarian assignments), best of 3.
- ``renderer_cells3d``: the ``nuclei`` preset's renderer given the real cells3d labels, compared with
  the real image (percentile normalisation; NRMSE both euclidean and min-max), whole volume and
  nuclei only; needs ``cellsynth[examples]``.

Run: ``python benchmarks/bench_evaluate.py``; one JSON line last.
"""

from __future__ import annotations

import json
import time

import numpy as np

from cellsynth.evaluate.metrics import normalize, nrmse, paired_metrics
from cellsynth.evaluate.segmentation import matching


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def grid_instances(shape=(128, 512, 512), grid=(10, 10, 10)) -> np.ndarray:
    """``prod(grid)`` box-shaped instances filling the volume, ids shuffled."""
    cells = [np.minimum(np.arange(n) * g // n, g - 1) for n, g in zip(shape, grid, strict=True)]
    index = (cells[0][:, None, None] * grid[1] + cells[1][None, :, None]) * grid[2] + cells[2][None, None, :]
    ids = np.random.default_rng(0).permutation(np.prod(grid)) + 1
    return ids[index].astype(np.uint16)


def renderer_on_cells3d() -> dict:
    from cellsynth.config import load_preset
    from cellsynth.examples import cells3d_nuclei
    from cellsynth.sample import Sample
    from cellsynth.synthesis.pipeline import load_renderer

    image, labels, spacing = cells3d_nuclei()
    generator = load_renderer(load_preset("nuclei"))
    synthetic = generator.render(Sample(labels, spacing=spacing), np.random.default_rng(0)).image
    result = paired_metrics(image, synthetic, labels)
    a, b = normalize(image), normalize(synthetic)
    for region, mask in (("whole", None), ("foreground", labels)):
        result[region]["nrmse_min_max"] = nrmse(a, b, mask, "min-max")
    return {region: {k: round(v, 4) for k, v in result[region].items()} for region in ("whole", "foreground")}


def main() -> dict:
    rng = np.random.default_rng(0)
    labels = grid_instances((64, 256, 256), (4, 8, 8))
    real = (0.2 + 0.6 * (labels % 2) + 0.05 * rng.standard_normal(labels.shape)).astype(np.float32)
    synthetic = (real + 0.1 * rng.standard_normal(labels.shape)).astype(np.float32)
    paired_s = best_of(lambda: paired_metrics(real, synthetic, labels))

    true = grid_instances()
    pred = np.roll(true, (2, 5, 5), axis=(0, 1, 2))  # every object shifted: IoU ≈ 0.7
    relabel = np.concatenate([[0], np.random.default_rng(1).permutation(1000) + 1]).astype(np.uint16)
    pred = relabel[pred]  # other ids, same objects
    scores = matching(true, pred)
    matching_s = best_of(lambda: matching(true, pred))
    print(f"matching 1000 vs 1000: tp at 0.5 = {scores[4]['tp']}, at 0.9 = {scores[8]['tp']}")

    result = {"paired_metrics_64x256x256_s": round(paired_s, 3), "matching_1000_128x512x512_s": round(matching_s, 3)}
    try:
        result["renderer_cells3d"] = renderer_on_cells3d()
    except ImportError as error:  # cellsynth[examples] not installed
        result["renderer_cells3d"] = f"skipped: {error}"
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
