"""Calibration on images unlike cells3d: variants of it changed the way other microscopes and samples differ.

Each variant of the cells3d nuclei volume is cut along x into halves; ``calibrate`` runs on the
left half **without labels** (the classical segmentation first, as a user without annotations
would), ``--samples`` volumes are generated from the calibrated preset, and they are judged against
the variant's right half:

- C2ST (``repeated_c2st``: ``--repeats`` classifier seeds × both orders of the parts; mean ± sd);
- the generated masks against the classical segmentation of the right half: objects per volume
  (per the right half's field of view), mean equivalent radius (µm) and median minor/major axis
  ratio, each as a relative difference; the left (calibrated) half's figures beside them (the
  halves differ: cells3d's left half holds 9 nuclei by that segmentation, the right 12).

Variants: ``cells3d`` (as it is), ``binned2`` / ``binned4`` (2×2 / 4×4 lateral block means: nuclei
a few voxels across), ``axial2`` (every second plane: 0.58 µm steps), ``float01`` (float32 scaled
to 0–1), ``uint8`` (÷ 257), ``shot`` (heavy shot noise: 1/64 of the counts, Poisson, × 64) and
``dim`` (÷ 10: a tenth of the signal and of the levels).

Goal (issue 26): no variant's C2ST more than 0.10 above cells3d's own; count, size and shape of
the generated masks within 15 % of the variant's classical segmentation.
Run: ``python benchmarks/bench_calibrate_variants.py [--variants a,b] [--repeats K] [--samples N]``;
needs ``cellsynth[examples]``; one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from skimage.measure import regionprops

from cellsynth.config import with_overrides
from cellsynth.evaluate.c2st import repeated_c2st
from cellsynth.examples import cells3d_nuclei
from cellsynth.sample import Sample
from cellsynth.synthesis.calibrate import calibrate, segment_adaptively
from cellsynth.synthesis.pipeline import generate_dataset, load_renderer


def bin_lateral(image: np.ndarray, factor: int) -> np.ndarray:
    """Block means over ``factor`` × ``factor`` lateral pixels (edges cropped), in the input's type."""
    z, y, x = image.shape
    blocks = image[:, : y - y % factor, : x - x % factor].astype(np.float64)
    mean = blocks.reshape(z, y // factor, factor, x // factor, factor).mean(axis=(2, 4))
    return np.round(mean).astype(image.dtype)


def variants(image: np.ndarray, spacing: tuple) -> dict[str, tuple[np.ndarray, tuple]]:
    """Every variant's image and spacing (µm)."""
    rng = np.random.default_rng(0)
    z, y, x = spacing
    counts = image.astype(np.float64)
    return {
        "cells3d": (image, spacing),
        "binned2": (bin_lateral(image, 2), (z, 2 * y, 2 * x)),
        "binned4": (bin_lateral(image, 4), (z, 4 * y, 4 * x)),
        "axial2": (image[::2], (2 * z, y, x)),
        "float01": ((counts / 65535.0).astype(np.float32), spacing),
        "uint8": (np.round(counts / 257.0).astype(np.uint8), spacing),
        "shot": (np.clip(rng.poisson(counts / 64.0) * 64.0, 0, 65535).astype(np.uint16), spacing),
        "dim": (np.round(counts / 10.0).astype(np.uint16), spacing),
    }


def mask_statistics(labels: np.ndarray, spacing: tuple) -> dict:
    """Objects, mean equivalent radius (µm) and median minor/major axis ratio of the objects not cut by a face."""
    whole = [p for p in regionprops(labels, spacing=spacing)
             if all(b > 0 for b in p.bbox[:3]) and all(e < s for e, s in zip(p.bbox[3:], labels.shape, strict=True))]
    whole = whole or regionprops(labels, spacing=spacing)
    volumes = np.array([p.area for p in whole])
    ratios = [p.axis_minor_length / p.axis_major_length for p in whole if p.axis_major_length > 0]
    return {"objects": int(len(np.unique(labels)) - 1),
            "radius_um": float(np.mean((3 * volumes / (4 * np.pi)) ** (1 / 3))) if len(volumes) else 0.0,
            "axis_ratio": float(np.median(ratios)) if ratios else 0.0}


def judge_variant(name: str, image: np.ndarray, spacing: tuple, root: Path, n_samples: int, repeats: int) -> dict:
    half = image.shape[2] // 2
    left, right = image[:, :, :half], image[:, :, half:]
    start = time.perf_counter()
    calibration = calibrate(left, spacing, n_samples=n_samples)
    seconds = time.perf_counter() - start
    config = with_overrides(calibration.config, {"dataset.output.previews": False})
    dataset = generate_dataset(config, root / name, renderer=load_renderer(config), progress=False)
    generated = [dataset.read_sample(i) for i in dataset.done()]
    test = repeated_c2st([Sample(image=right, spacing=spacing)], generated, repeats=repeats)
    real = mask_statistics(segment_adaptively(right, spacing), spacing)
    calibrated_half = mask_statistics(segment_adaptively(left, spacing), spacing)
    made = [mask_statistics(sample.labels, spacing) for sample in generated]
    made_mean = {key: float(np.mean([m[key] for m in made])) for key in real}
    field = right.shape[2] / left.shape[2]  # objects per volume, per the right half's field of view
    made_mean["objects"] *= field
    return {"variant": name, "dtype": str(image.dtype), "shape": list(image.shape), "spacing_um": list(spacing),
            "calibrate_seconds": round(seconds, 1), "c2st_mean": round(test["c2st_mean"], 3),
            "c2st_sd": round(test["c2st_sd"], 3), "c2st_runs": len(test["c2st_runs"]),
            "c2st_pooled_ci95": [round(c, 3) for c in test["c2st_pooled_ci95"]],
            "masks_real": {k: round(v, 3) for k, v in real.items()},
            "masks_calibrated_half": {k: round(v, 3) for k, v in calibrated_half.items()},
            "masks_generated": {k: round(v, 3) for k, v in made_mean.items()},
            "masks_relative_difference": {k: round(made_mean[k] / real[k] - 1, 3) if real[k] else None for k in real},
            "output_dtype": calibration.config.optics.camera.output_dtype,
            "generated_dtype": str(generated[0].image.dtype)}


def main(names: list[str] | None = None, n_samples: int = 4, repeats: int = 2) -> dict:
    image, _, spacing = cells3d_nuclei()
    every = variants(image, tuple(spacing))
    names = names or list(every)
    unknown = set(names) - set(every)
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; accepted: {', '.join(every)}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            rows.append(judge_variant(name, *every[name], Path(scratch), n_samples, repeats))
            print(json.dumps(rows[-1]), flush=True)
    own = next((r["c2st_mean"] for r in rows if r["variant"] == "cells3d"), None)
    result = {"samples": n_samples, "c2st_repeats": repeats, "c2st_runs_each": 2 * repeats,
              "cells3d_c2st": own, "rows": rows,
              "worst_c2st_above_cells3d": None if own is None else round(max(r["c2st_mean"] - own for r in rows), 3),
              "worst_mask_difference": round(max(abs(v) for r in rows
                                                 for v in r["masks_relative_difference"].values() if v is not None), 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", help="comma-separated subset (default: all)")
    parser.add_argument("--samples", type=int, default=4, help="generated volumes per variant (default 4)")
    parser.add_argument("--repeats", type=int, default=2, help="C2ST classifier seeds (× 2 orders; default 2)")
    arguments = parser.parse_args()
    main(arguments.variants.split(",") if arguments.variants else None, arguments.samples, arguments.repeats)
