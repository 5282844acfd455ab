"""Robustness benchmark series: every sample of a labelled dataset at increasing diversification levels."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.augment.diversify import (
    NEIGHBOURHOOD,
    check_weights,
    diversify,
    local_std,
    neighbourhood_voxels,
    normalize_percentiles,
)
from cellsynth.checks import check_not_input
from cellsynth.config import OutputConfig
from cellsynth.dataset import Dataset, build_dataset, sample_rng
from cellsynth.errors import InputError
from cellsynth.evaluate.metrics import psnr
from cellsynth.sample import Sample


def level_name(sample: str, w_i: float, w_v: float) -> str:
    """File stem of ``sample`` at level ``(w_i, w_v)``, e.g. ``cells_wi1_wv2.5``."""
    return f"{sample}_wi{w_i:g}_wv{w_v:g}"


def diversify_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    w_v_levels: Sequence[float] = (0, 1, 2, 4, 8),
    w_i_levels: Sequence[float] = (1.0,),
    size: int | Sequence[int] | None = None,
    size_um: float | Sequence[float] | None = None,
    percentiles: Sequence[float] = (0.0, 100.0),
    seed: int = 0,
    resume: bool = False,
    allow_partial: bool = False,
    progress: bool = True,
) -> Dataset:
    """Write every sample of ``source`` at every ``(w_i, w_v)`` level, labels unchanged.

    Each image is normalised to [0, 1] (``percentiles``; the default min–max clips nothing), its
    ``σ_x`` computed once, and each level drawn with the *same* ``N(0, 1)`` field per source
    sample, so the levels of one sample differ only by their weights. The PSNR of each image
    against the normalised original (data range 1) is recorded in its manifest entry, and the
    mean per level in the manifest's ``levels`` table (``null`` = identical, infinite PSNR).

    Parameters
    ----------
    source : path-like
        A dataset folder with images (real or synthetic).
    out : path-like
        The new dataset folder.
    w_v_levels : sequence of float
        Variance weights ``w_v`` of the noise.
    w_i_levels : sequence of float
        Intensity weights ``w_i``; every combination with ``w_v`` is written, ``w_i`` outer, ``w_v`` inner.
    size : int or sequence of int, optional
        The neighbourhood ``s_σ`` of the local deviation ``σ_x``: an odd cube edge in voxels (default 5).
    size_um : float or sequence of float, optional
        ``s_σ`` in µm instead (an odd voxel count per axis).
    percentiles : 2 floats
        Each image is normalised to [0, 1] between these percentiles (0 100: min–max).
    seed : int
        Base seed of the noise fields (one per source sample).
    resume, progress
        See :func:`cellsynth.dataset.build_dataset`.
    allow_partial : bool
        Diversify the finished samples of an unfinished source (refused by default; see
        :meth:`cellsynth.dataset.Dataset.finished`).
    """
    source_dataset = Dataset.open(source)
    check_not_input(out, [source], "dataset")
    done = source_dataset.finished("diversify", images=True, allow_partial=allow_partial)
    levels = [check_weights(w_i, w_v) for w_i in _levels(w_i_levels, "w_i") for w_v in _levels(w_v_levels, "w_v")]
    if size is None and size_um is None:
        size = NEIGHBOURHOOD
    if size is not None:
        neighbourhood_voxels(size)
    jobs = [(index, w_i, w_v) for index in done for w_i, w_v in levels]
    names = [level_name(source_dataset.name(index), w_i, w_v) for index, w_i, w_v in jobs]
    recipe = {"diversify": {"source": str(Path(source).resolve()), "w_i_levels": [float(v) for v in w_i_levels],
                            "w_v_levels": [float(v) for v in w_v_levels], "size": size, "size_um": size_um,
                            "percentiles": [float(p) for p in percentiles]}}
    output = OutputConfig(**source_dataset.manifest.get("output", {}))

    @functools.lru_cache(maxsize=1)  # the levels of one source sample are made one after another
    def prepared(index: int) -> tuple[Sample, np.ndarray, np.ndarray]:
        sample = source_dataset.read_sample(index, verify=False)  # verified once, by finished()
        image = normalize_percentiles(sample.image, *percentiles)
        neighbourhood = neighbourhood_voxels(size, size_um=size_um, spacing=sample.spacing)
        return sample, image, local_std(image, neighbourhood)

    def make(job: int, rng: object = None) -> Sample:
        index, w_i, w_v = jobs[job]
        sample, image, std = prepared(index)
        altered = diversify(image, std, w_i, w_v, sample_rng(seed, index))
        score = psnr(image, altered)
        return sample.replace(image=altered, params={"source": source_dataset.name(index), "w_i": w_i, "w_v": w_v,
                                                     "psnr_db": score if math.isfinite(score) else None})

    dataset = build_dataset(out, names, make, config=recipe, seed=seed, output=output, resume=resume,
                            progress=progress)
    dataset.manifest["levels"] = _level_table(dataset, levels)
    dataset.save()
    return dataset


def _levels(values: Sequence[float], name: str) -> list[float]:
    values = [float(v) for v in values]
    if not values:
        raise InputError(f"give at least one {name} level")
    return values


def _level_table(dataset: Dataset, levels: list[tuple[float, float]]) -> list[dict]:
    table = []
    for w_i, w_v in levels:
        scores = [s["params"]["psnr_db"] for s in dataset.samples
                  if s["status"] == "done" and (s["params"]["w_i"], s["params"]["w_v"]) == (w_i, w_v)]
        finite = [s for s in scores if s is not None]
        table.append({"w_i": w_i, "w_v": w_v, "n_samples": len(scores),
                      "mean_psnr_db": float(np.mean(finite)) if finite else None})
    return table
