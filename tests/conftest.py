"""Shared tiny fixtures: everything here is a few kilobytes and builds in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from cellsynth.config import OutputConfig
from cellsynth.dataset import Sample, build_dataset, sample_names

SPACING = (0.5, 0.25, 0.2)  # deliberately anisotropic, all three different


def boxes_labels(shape=(4, 16, 20)) -> np.ndarray:
    """Three rectangular instances (ids 1, 2, 7) on background; two of them touch."""
    labels = np.zeros(shape, np.uint16)
    labels[1:3, 2:7, 2:8] = 1
    labels[1:4, 2:7, 8:14] = 2
    labels[0:2, 10:15, 5:18] = 7
    return labels


def make_sample(index: int, rng: np.random.Generator, shape=(4, 16, 20)) -> Sample:
    """A deterministic synthetic sample: labelled boxes plus noise drawn from ``rng``."""
    labels = boxes_labels(shape)
    image = (0.2 + 0.6 * (labels > 0) + 0.05 * rng.standard_normal(shape)).clip(0, 1).astype(np.float32)
    return Sample(image=image, labels=labels, spacing=SPACING, params={"index": index})


@pytest.fixture
def tiny_pair():
    sample = make_sample(0, np.random.default_rng(0))
    return sample.image, sample.labels


@pytest.fixture
def make_dataset(tmp_path):
    """Build a small dataset in a fresh folder; returns the Dataset."""

    def build(n=3, shape=(4, 16, 20), name="ds", **output):
        return build_dataset(
            tmp_path / name,
            sample_names("sample", n),
            lambda i, rng: make_sample(i, rng, shape),
            config={"test": True, "shape": list(shape)},
            seed=1,
            output=OutputConfig(**output),
            progress=False,
        )

    return build
