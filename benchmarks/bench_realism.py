"""Can a classifier tell synthetic nuclei from the real cells3d nuclei? (C2ST, the project's realism figure)

Every arm is judged against the cells3d **right half** (60×256×128 voxels, spatially disjoint from
the left half the other benchmarks train or calibrate on) with ``cellsynth.evaluate.c2st`` at its
defaults (patches of 5×8×8 µm, 400 steps of 32 patches, seed 0, held-out tiles of the other half
of each volume):

- ``renderer_real_labels``: the ``nuclei`` preset's physics renderer drawing the right half's own labels;
- ``nuclei_preset``: a 2-sample ``nuclei`` preset dataset (simulated masks, rendered);
- ``blurred_mask_noise``: the right half's binary mask blurred with the renderer's PSF plus Gaussian
  noise (σ = 10 % of the object contrast): no generator at all;
- ``floor_poisson_redraw``: a second Poisson draw of the real image itself, which should score ≈ 0.5.

0.5 = cannot be told apart, 1.0 = trivially told apart. With ``--repeats K`` (default 2) every arm is
judged K classifier seeds × both orders of the parts (:func:`~cellsynth.evaluate.c2st.repeated_c2st`):
mean ± sd of the 2K runs and a pooled interval; ``--repeats 1`` gives one run with its exact 95 % interval.
Run: ``python benchmarks/bench_realism.py [--steps N] [--repeats K]``; needs ``cellsynth[examples]``; one
JSON line last.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _cells3d import cells3d_halves, preset_dataset
from scipy import ndimage as ndi

from cellsynth.config import load_preset
from cellsynth.dataset.samples import as_samples
from cellsynth.evaluate.c2st import c2st, repeated_c2st
from cellsynth.evaluate.settings import C2ST_STEPS
from cellsynth.sample import Sample
from cellsynth.synthesis.optics import psf_sigma_um
from cellsynth.synthesis.pipeline import load_renderer


def arms(root: Path) -> tuple[Sample, dict[str, list[Sample]]]:
    _, right = cells3d_halves(root)
    real = as_samples(right.root, labels=True)[0]
    config = load_preset("nuclei")
    rendered = load_renderer(config).render(Sample(real.labels, spacing=real.spacing), np.random.default_rng(0)).image
    scope = config.optics.microscope
    sigma = scope.psf_sigma_um or psf_sigma_um(scope.numerical_aperture, scope.wavelength_um, scope.refractive_index,
                                               scope.confocal)
    blurred = ndi.gaussian_filter((real.labels > 0).astype(np.float32), [s / d for s, d in zip(sigma, real.spacing,
                                                                                                 strict=True)])
    blurred += 0.1 * np.random.default_rng(1).standard_normal(blurred.shape).astype(np.float32)
    redraw = np.random.default_rng(2).poisson(real.image.astype(np.float64)).astype(np.float32)
    preset = as_samples(preset_dataset(root, "nuclei", 2).root)
    return real, {"renderer_real_labels": [Sample(image=rendered, spacing=real.spacing)], "nuclei_preset": preset,
                  "blurred_mask_noise": [Sample(image=blurred, spacing=real.spacing)],
                  "floor_poisson_redraw": [Sample(image=redraw, spacing=real.spacing)]}


def main(steps: int = C2ST_STEPS, repeats: int = 2) -> dict:
    result: dict = {"real": "cells3d right half (60x256x128)", "c2st_steps": steps, "repeats": repeats}
    with tempfile.TemporaryDirectory() as scratch:
        real, synthetic = arms(Path(scratch))
        for name, volumes in synthetic.items():
            start = time.perf_counter()
            if repeats > 1:
                figures = repeated_c2st([real], volumes, repeats=repeats, steps=steps)
                result[name] = {"mean": round(figures["c2st_mean"], 3), "sd": round(figures["c2st_sd"], 3),
                                "runs": [round(r["accuracy"], 3) for r in figures["c2st_runs"]],
                                "pooled_ci95": [round(c, 3) for c in figures["c2st_pooled_ci95"]],
                                "seconds": round(time.perf_counter() - start, 1)}
                print(f"{name:>22}: {figures['c2st_mean']:.3f} ± {figures['c2st_sd']:.3f} over "
                      f"{len(figures['c2st_runs'])} runs (pooled 95 % CI {figures['c2st_pooled_ci95'][0]:.3f}-"
                      f"{figures['c2st_pooled_ci95'][1]:.3f})")
                continue
            test = c2st([real], volumes, steps=steps)
            result[name] = {"accuracy": round(test.accuracy, 3), "ci95": [round(c, 3) for c in test.ci95],
                            "auc": round(test.auc, 3), "n_test": test.n_test,
                            "seconds": round(time.perf_counter() - start, 1)}
            print(f"{name:>22}: accuracy {test.accuracy:.3f} (95 % CI {test.ci95[0]:.3f}-{test.ci95[1]:.3f}), "
                  f"AUC {test.auc:.3f}, {test.n_test} test patches")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=C2ST_STEPS, help=f"C2ST training steps (default {C2ST_STEPS})")
    parser.add_argument("--repeats", type=int, default=2, help="classifier seeds, each in both orders (default 2)")
    arguments = parser.parse_args()
    main(arguments.steps, arguments.repeats)
