"""Shared set-up of the usefulness benchmarks: the cells3d halves and a preset dataset, in a scratch folder.

The cells3d nuclei (``cellsynth[examples]``) are cut along x into a left half (to train or
calibrate on) and a right half (to judge on), spatially disjoint. Nothing here is committed: the
data's terms allow research use only.
"""

from __future__ import annotations

from pathlib import Path

from cellsynth.config import Config, load_preset, with_overrides
from cellsynth.dataset import Dataset, Sample, build_dataset
from cellsynth.datasets import cells3d_nuclei
from cellsynth.evaluate.volumes import split_dataset
from cellsynth.synthesis.pipeline import generate_dataset, load_generator


def cells3d_halves(root: Path) -> tuple[Dataset, Dataset]:
    """``root/cells3d`` (the whole volume) cut into ``root/cells3d_left`` and ``root/cells3d_right``."""
    image, labels, spacing = cells3d_nuclei()
    whole = build_dataset(root / "cells3d", ["cells3d_nuclei"],
                          lambda index, rng: Sample(image=image, labels=labels, spacing=spacing),
                          config={"example": "cells3d"}, seed=None, output=Config().dataset.output, progress=False)
    return split_dataset(whole.root, root / "cells3d_left", root / "cells3d_right", axis="x", fraction=0.5,
                         progress=False)


def preset_dataset(root: Path, preset: str | Config, n_samples: int, seed: int = 0, name: str | None = None) -> Dataset:
    """``n_samples`` samples of a shipped preset (or a config) rendered by its physics renderer, in ``root/NAME``."""
    config = load_preset(preset) if isinstance(preset, str) else preset
    config = with_overrides(config, {"dataset.n_samples": n_samples, "dataset.seed": seed})
    folder = root / (name or (preset if isinstance(preset, str) else "config"))
    return generate_dataset(config, folder, generator=load_generator(config), progress=False)
