"""Speed and memory of the mask simulators.

- ``sh_s_per_cell`` vs ``baseline_delaunay_s_per_cell`` on a 64×128×128 volume: ours voxelises each
  spherical-harmonic nucleus in its own bounding box; the baseline is the reference implementation's
  method (Delaunay of the surface points, then ``find_simplex`` over every voxel of the volume),
  measured here in the same run on the same shapes.
- ``nuclei_1000_s`` and ``nuclei_1000_peak_mb``: 1000 SH nuclei (radius ~ N(9, 1) µm at 1 µm voxels,
  the paper's setting) placed by Poisson-disk sampling in a 128×512×512 ellipsoidal organism.
- ``voronoi_1000_s`` and ``voronoi_1000_peak_mb``: 1000 weighted-Voronoi cells (γ ~ U(1, 1.25)) filling
  the same organism, plus their 2 µm membranes.

Run: ``python benchmarks/bench_masks.py``; prints one JSON line last.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import numpy as np
from scipy.spatial import Delaunay

from cellsynth.masks.membranes import membrane_mask, seed_weights, voronoi_cells
from cellsynth.masks.nuclei import random_sh_shape, rasterize_shapes, simulate_nuclei
from cellsynth.masks.organism import ellipsoid_organism
from cellsynth.masks.placement import poisson_disk_positions
from cellsynth.masks.ssm import MAX_DIRECTIONS, fibonacci_directions

SPACING = (1.0, 1.0, 1.0)


def delaunay_voxelise(volume_shape, centre, shape, directions) -> np.ndarray:
    """The reference's voxelisation: hull of surface points, tested against every voxel of the volume."""
    surface = centre + directions * shape.radius(directions)[:, None]
    voxels = np.indices(volume_shape).reshape(3, -1).T.astype(np.float64)
    return (Delaunay(surface).find_simplex(voxels) >= 0).reshape(volume_shape)


def bench_per_cell(n_ours: int = 100, n_baseline: int = 3) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    random_sh_shape(9.0, rng=rng)  # warm-up: pyshtools' one-off import is not a per-cell cost
    volume_shape = (64, 128, 128)
    centres = rng.uniform((16, 16, 16), (48, 112, 112), size=(n_ours, 3))
    start = time.perf_counter()
    shapes = [random_sh_shape(9.0, rng=rng) for _ in range(n_ours)]
    rasterize_shapes(volume_shape, SPACING, centres, shapes)
    ours = (time.perf_counter() - start) / n_ours
    directions = fibonacci_directions(MAX_DIRECTIONS)  # the reference samples 5000; a shape model takes 4096
    start = time.perf_counter()
    for centre, shape in zip(centres[:n_baseline], shapes[:n_baseline], strict=True):
        delaunay_voxelise(volume_shape, centre, shape, directions)
    baseline = (time.perf_counter() - start) / n_baseline
    return ours, baseline


def simulate_1000(foreground: np.ndarray) -> int:
    rng = np.random.default_rng(1)
    centres = poisson_disk_positions(foreground, SPACING, 18.0, n_cells=1000, rng=rng)
    labels, _ = simulate_nuclei(foreground, SPACING, centres, radius_um=9.0, radius_std_um=1.0, rng=rng)
    return int(labels.max())


def voronoi_1000(foreground: np.ndarray) -> int:
    rng = np.random.default_rng(2)
    seeds = poisson_disk_positions(foreground, SPACING, 12.0, n_cells=1000, rng=rng)
    labels = voronoi_cells(foreground, SPACING, seeds, seed_weights(len(seeds), rng=rng))
    membrane_mask(labels, SPACING, 2.0)
    return int(labels.max())


def timed_and_peak(function, foreground: np.ndarray) -> tuple[int, float, float]:
    start = time.perf_counter()
    count = function(foreground)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    function(foreground)
    peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return count, seconds, peak_mb


def main() -> None:
    ours, baseline = bench_per_cell()
    print(f"per cell on 64x128x128: ours {ours * 1e3:.2f} ms, reference Delaunay {baseline * 1e3:.0f} ms "
          f"({baseline / ours:.0f}x)")
    foreground = ellipsoid_organism((128, 512, 512), SPACING, (63.0, 255.0, 255.0))
    count, seconds, peak_mb = timed_and_peak(simulate_1000, foreground)
    print(f"1000 SH nuclei in 128x512x512: {seconds:.2f} s, peak {peak_mb:.0f} MB above the organism mask "
          f"({count} cells)")
    cells, voronoi_s, voronoi_mb = timed_and_peak(voronoi_1000, foreground)
    print(f"1000 Voronoi cells + membranes in 128x512x512: {voronoi_s:.2f} s, peak {voronoi_mb:.0f} MB "
          f"({cells} cells)")
    print(json.dumps({
        "benchmark": "masks",
        "sh_s_per_cell": round(ours, 5),
        "baseline_delaunay_s_per_cell": round(baseline, 4),
        "speedup": round(baseline / ours, 1),
        "nuclei_1000_s": round(seconds, 2),
        "nuclei_1000_peak_mb": round(peak_mb, 1),
        "nuclei_1000_cells": count,
        "voronoi_1000_s": round(voronoi_s, 2),
        "voronoi_1000_peak_mb": round(voronoi_mb, 1),
        "voronoi_1000_cells": cells,
    }))


if __name__ == "__main__":
    main()
