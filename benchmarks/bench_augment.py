"""Cost of diversification and the 3D augmentations (one core: torch and BLAS limited to one thread).

- ``local_std_64x256x256_s``: σ_x precompute (s_σ = 5) for a 64×256×256 volume, best of 3.
- ``local_std_speedup_vs_generic_filter``: the reference implementation's
  ``scipy.ndimage.generic_filter(np.std)`` on a 16×64×64 crop, per voxel, over ours per voxel.
- ``diversify_64x128x128_ms``: one appearance of a 64×128×128 patch with cached σ (w = (1.3, 2)),
  median of 50. Goal < 10 ms on one core.
- ``elastic_64x128x128_s``: :class:`~cellsynth.augment.Elastic` (α 1.5 µm, σ 6 µm, spacing
  1×0.5×0.5 µm) of image + labels, median of 5; the other transforms the same way under
  ``transforms_64x128x128_s``.

Run: ``python benchmarks/bench_augment.py``; one JSON line last.
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from cellsynth.augment import (  # noqa: E402
    BrightnessContrast,
    CopyPaste,
    CropResize,
    Elastic,
    Gamma,
    GaussianNoise,
    LateralStretch,
    PoissonNoise,
    RandomFlip,
    RandomRotate,
    RandomRotate90,
    diversify,
    local_std,
)
from cellsynth.sample import Sample  # noqa: E402

SPACING = (1.0, 0.5, 0.5)


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def patch_item(shape=(64, 128, 128)) -> Sample:
    rng = np.random.default_rng(0)
    labels = ndi.label(ndi.gaussian_filter(rng.random(shape), 4) > 0.52)[0].astype(np.uint16)
    image = (0.2 + 0.6 * (labels > 0) + 0.05 * rng.standard_normal(shape)).clip(0, 1).astype(np.float32)
    return Sample(labels, image, SPACING)


def main() -> dict:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    volume = rng.random((64, 256, 256), dtype=np.float32)
    std_s = min(timed(lambda: local_std(volume), 3))
    crop = volume[:16, :64, :64]
    brute_s = min(timed(lambda: ndi.generic_filter(crop, np.std, size=5, mode="reflect"), 1))
    speedup = (brute_s / crop.size) / (std_s / volume.size)

    item = patch_item()
    std = local_std(item.image)
    diversify_ms = 1000 * statistics.median(timed(lambda: diversify(item.image, std, 1.3, 2.0, rng), 50))

    transforms = {"elastic": Elastic(alpha_um=1.5, sigma_um=6.0), "rotate": RandomRotate(max_tilt_deg=20),
                  "crop_resize": CropResize(), "lateral_stretch": LateralStretch(), "flip": RandomFlip(),
                  "rotate90": RandomRotate90(), "brightness_contrast": BrightnessContrast(), "gamma": Gamma(),
                  "gaussian_noise": GaussianNoise(), "poisson_noise": PoissonNoise(),
                  "copy_paste": CopyPaste([patch_item()], p=0.25)}
    seconds = {name: round(statistics.median(timed(lambda t=t: t(item, rng), 5)), 4) for name, t in transforms.items()}
    for name, value in seconds.items():
        print(f"{name:>20}: {value * 1000:8.1f} ms")
    result = {
        "local_std_64x256x256_s": round(std_s, 4),
        "local_std_speedup_vs_generic_filter": round(speedup, 1),
        "diversify_64x128x128_ms": round(diversify_ms, 2),
        "elastic_64x128x128_s": seconds["elastic"],
        "transforms_64x128x128_s": seconds,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
