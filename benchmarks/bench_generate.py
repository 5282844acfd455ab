"""Throughput of the main job: samples per minute for the `nuclei` preset (60×256×256, physics renderer),
serially and on a 2-worker local dask cluster (cluster start-up included).

Run: ``python benchmarks/bench_generate.py [N]`` (default 6 samples); one JSON line last.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from cellsynth.config import load_preset, with_overrides
from cellsynth.synthesis.pipeline import generate_dataset, load_renderer


def run(n_samples: int, workers: int, folder: Path) -> float:
    config = with_overrides(load_preset("nuclei"), {"dataset.n_samples": n_samples})
    start = time.perf_counter()
    generate_dataset(config, folder, renderer=load_renderer(config), progress=False, workers=workers)
    return time.perf_counter() - start


def main(n_samples: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        serial = run(n_samples, 1, Path(tmp) / "serial")
        parallel = run(n_samples, 2, Path(tmp) / "parallel")
    print(f"nuclei preset, {n_samples} samples: serial {serial:.1f} s, 2 workers {parallel:.1f} s")
    return {
        "benchmark": "generate",
        "preset": "nuclei",
        "n_samples": n_samples,
        "serial_samples_per_min": round(60 * n_samples / serial, 2),
        "workers2_samples_per_min": round(60 * n_samples / parallel, 2),
        "serial_s": round(serial, 2),
        "workers2_s": round(parallel, 2),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6)))
