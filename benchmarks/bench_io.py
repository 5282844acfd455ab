"""Write and read throughput of a 128×512×512 uint16 volume as TIFF, zlib TIFF and OME-Zarr.

Run: ``make bench`` (or ``python benchmarks/bench_io.py [--repeat N] [--shape Z Y X]``).
The volume looks like microscopy (smooth blobs + Poisson noise) so compression ratios are
realistic. Prints one line per format, then one JSON line last.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellsynth.io import read_volume, write_volume

SPACING = (0.29, 0.26, 0.26)
CASES = {"tiff": (".tif", None), "tiff_zlib": (".tif", "zlib"), "ome_zarr": (".ome.zarr", None)}


def microscopy_like(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blobs = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), sigma=(2, 6, 6))
    blobs = (blobs - blobs.min()) / (blobs.max() - blobs.min())
    photons = rng.poisson(100 + 2000 * blobs**4)
    return np.clip(photons, 0, 65535).astype(np.uint16)


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def best_time(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 512, 512))
    args = parser.parse_args()
    volume = microscopy_like(tuple(args.shape))
    megabytes = volume.nbytes / 1e6
    results = {}
    folder = Path(tempfile.mkdtemp(prefix="cellsynth-bench-"))
    try:
        for name, (suffix, compression) in CASES.items():
            path = folder / f"volume{suffix}"
            write = functools.partial(write_volume, path, volume, SPACING, compression=compression)
            write_s = best_time(write, args.repeat)
            read_s = best_time(functools.partial(read_volume, path), args.repeat)
            back, spacing = read_volume(path)
            assert np.array_equal(back, volume) and spacing == SPACING
            results[name] = {
                "write_MBps": round(megabytes / write_s, 1),
                "read_MBps": round(megabytes / read_s, 1),
                "size_ratio": round(disk_size(path) / volume.nbytes, 3),
            }
            row = results[name]
            print(f"{name:10s} write {row['write_MBps']:8.1f} MB/s   read {row['read_MBps']:8.1f} MB/s"
                  f"   size {row['size_ratio']:.3f} of raw")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({"benchmark": "io", "shape": list(args.shape), "dtype": "uint16", "MB": round(megabytes, 1),
                      "repeat": args.repeat, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                      "results": results}))


if __name__ == "__main__":
    main()
