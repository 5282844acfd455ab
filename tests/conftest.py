"""Shared tiny fixtures: everything here is a few kilobytes and builds in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest

from cellsynth.config import OutputConfig
from cellsynth.dataset import build_dataset, sample_names
from cellsynth.sample import Sample

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


def write_renderer_images(folder, shape, seed: int, n: int = 2, spacing=(0.29, 0.26, 0.26)):
    """``n`` physics-renderer images ``imageI.tif`` (and their ``labelsI.tif``) of the default preset in ``folder``."""
    from cellsynth.config import Config, with_overrides
    from cellsynth.dataset import sample_rng
    from cellsynth.io import write_volume
    from cellsynth.masks.simulate import simulate_masks
    from cellsynth.synthesis.optics import OpticsRenderer

    config = with_overrides(Config(), {"volume.shape": shape})
    renderer = OpticsRenderer(config.optics, config.patching)
    for index in range(n):
        masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, sample_rng(seed, index))
        write_volume(folder / f"image{index}.tif", renderer.render(masks.replace(spacing=spacing),
                                                                  sample_rng(seed + 1, index)).image,
                     spacing)
        write_volume(folder / f"labels{index}.tif", masks.labels, spacing)
    return folder


def render_known(settings: dict, seed: int = 0):
    """A config of known parameters, its simulated masks and the physics renderer's image of them."""
    from cellsynth.config import validate_config
    from cellsynth.masks.simulate import simulate_masks
    from cellsynth.synthesis.optics import OpticsRenderer

    config = validate_config(settings)
    rng = np.random.default_rng(seed)
    masks = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng)
    return config, masks, OpticsRenderer(config.optics, config.patching).render(masks, rng).image
