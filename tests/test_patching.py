"""Patch engine: exact reassembly, no seams, fused stepping, torch and zarr, geometry errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from scipy import ndimage

from cellsynth.errors import InputError
from cellsynth.evaluate.seams import seam_score
from cellsynth.synthesis.patching import (
    WINDOWS,
    PatchPlan,
    apply_patched,
    core_starts,
    fit_patch,
    reflect_indices,
    window,
)


def identity(batch):
    return batch


@pytest.mark.parametrize(("shape", "patch", "overlap", "crop"), [
    ((13, 37, 41), (8, 16, 16), 2, 1),    # odd sizes
    ((5, 9, 7), (16, 32, 32), 4, 2),      # smaller than one patch along every axis
    ((21, 50, 33), (6, 20, 12), (1, 4, 2), (1, 3, 2)),  # anisotropic patches, overlaps and crops
    ((1, 40, 40), (1, 16, 16), (0, 4, 4), (0, 2, 2)),   # 2D (Z = 1)
])
@pytest.mark.parametrize("kind", WINDOWS)
def test_identity_reproduces_the_input(shape, patch, overlap, crop, kind):
    volume = np.random.default_rng(0).random((2, *shape), np.float32)
    result, info = apply_patched(identity, volume, patch=patch, overlap=overlap, crop=crop, window=kind,
                                 multiple=None, batch_size=3)
    assert result.shape == volume.shape and result.dtype == np.float32
    assert np.abs(result - volume).max() < 1e-6
    assert info["n_tiles"] >= 1 and info["redundancy"] >= 1


def test_zyx_input_gives_zyx_output_and_channels_can_change():
    volume = np.random.default_rng(1).random((9, 20, 20), np.float32)
    same, _ = apply_patched(identity, volume, patch=8, overlap=2, crop=1, multiple=None)
    assert same.shape == volume.shape
    two, _ = apply_patched(lambda b: np.concatenate([b, 2 * b], axis=1), volume, patch=8, overlap=2, crop=1,
                           multiple=None)
    assert two.shape == (2, 9, 20, 20) and np.abs(two[1] - 2 * volume).max() < 1e-5


def test_per_tile_offsets_blend_without_a_seam():
    rng = np.random.default_rng(0)
    texture = ndimage.gaussian_filter(rng.standard_normal((40, 96, 96)), 2).astype(np.float32)
    texture /= texture.std()

    def offset(batch):  # a different constant per tile, like a generator's tile-wise brightness drift
        return batch + rng.uniform(-1.5, 1.5, (len(batch), 1, 1, 1, 1)).astype(np.float32)

    blended = PatchPlan((40, 96, 96), (24, 40, 40), 12, 2, "hann")
    hard = PatchPlan((40, 96, 96), (24, 40, 40), 0, 0, "constant")
    assert seam_score(texture, blended.seam_planes()) == pytest.approx(1, abs=0.1)
    assert seam_score(blended.apply(offset, texture), blended.seam_planes()) < 1.15
    assert seam_score(hard.apply(offset, texture), hard.seam_planes()) > 2.0


def test_fused_mode_equals_a_whole_volume_call_for_a_per_voxel_function():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 11, 30, 26, generator=generator)
    scale = torch.tensor([0.5, 2.0]).view(1, 2, 1, 1, 1)

    def step(batch):  # a per-voxel "denoiser": mixes channels, no spatial context
        return torch.tanh(batch * scale) + batch.flip(1)

    plan = PatchPlan((11, 30, 26), (8, 16, 16), (2, 4, 4), (1, 2, 2), "hann")
    fused = plan.apply(step, x, batch_size=4)
    whole = step(x[None])[0]
    assert isinstance(fused, torch.Tensor) and fused.device == x.device
    assert torch.abs(fused - whole).max() < 1e-5
    again = plan.apply(step, fused)  # the same plan serves every diffusion step
    assert torch.abs(again - step(whole[None])[0]).max() < 1e-5


def test_zarr_output_for_large_volumes(tmp_path):
    volume = np.random.default_rng(2).random((1, 20, 40, 40), np.float32)
    out = zarr.create_array(tmp_path / "out.zarr", shape=(1, 20, 40, 40), chunks=(1, 8, 40, 40), dtype="float32")
    result, _ = apply_patched(lambda b: b * 3, volume, patch=(8, 16, 16), overlap=2, crop=1, multiple=None, out=out)
    assert result is out
    assert np.abs(out[:] - 3 * volume).max() < 1e-5


def test_redundancy_of_the_defaults_on_a_large_volume():
    patch = fit_patch((180, 512, 512), (128, 256, 256), 8, 4, multiple=8)
    plan = PatchPlan((180, 512, 512), patch, 8, 4)
    assert plan.redundancy <= 1.6
    assert all(p % 8 == 0 for p in plan.patch)
    for axis, size in enumerate((180, 512, 512)):  # cores cover the axis and neighbours overlap ≥ 8
        spans = sorted({(t.core[axis].start, t.core[axis].stop) for t in plan.tiles})
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(a_stop - b_start >= 8 for (_, a_stop), (b_start, _) in zip(spans, spans[1:], strict=False))


def test_geometry_helpers():
    assert core_starts(10, 16, 4) == [0]
    assert core_starts(100, 40, 10) == [0, 30, 60]
    np.testing.assert_array_equal(reflect_indices(-3, 10, 4), [3, 2, 1, 0, 1, 2, 3, 2, 1, 0])
    np.testing.assert_array_equal(reflect_indices(-2, 4, 1), [0, 0, 0, 0])
    weights = window((8, 12, 12), "pyramid", floor=0.05)
    assert weights.min() >= 0.05 and weights.max() == pytest.approx(weights[4, 6, 6], abs=0.2)
    assert window((6, 6, 6), "hann").min() > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"patch": 16, "overlap": 8, "crop": 4}, "overlap + 2·crop must be smaller than the patch along z"),
    ({"patch": (0, 16, 16)}, "patch size must be > 0"),
    ({"patch": (8, -16, 16)}, "patch size must be > 0"),
    ({"patch": 8.5}, "whole numbers"),
    ({"patch": 16, "overlap": -1, "crop": 1}, "must be >= 0"),
    ({"patch": 16, "window": "triangle"}, "unknown window 'triangle'"),
    ({"patch": 16, "floor": 0.0}, "floor must be in (0, 1]"),
])
def test_bad_geometry_is_one_clear_error(kwargs, message):
    with pytest.raises(InputError) as caught:
        apply_patched(identity, np.zeros((4, 20, 20), np.float32), multiple=None,
                      **{"overlap": 2, "crop": 1, **kwargs})
    assert message in str(caught.value)
