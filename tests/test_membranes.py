"""Weighted-Voronoi cells: exact against brute force; membranes symmetric with a thickness in µm."""

from __future__ import annotations

import numpy as np
import pytest

from cellsynth.errors import InputError
from cellsynth.masks.membranes import membrane_mask, seed_weights, voronoi_cells


def brute_force(foreground, spacing, seeds, weights):
    points = np.argwhere(np.ones(foreground.shape, bool)) * np.asarray(spacing)
    distance = np.sqrt(((points[:, None, :] - seeds[None]) ** 2).sum(axis=-1))
    owner = np.argmin(distance / weights, axis=1).reshape(foreground.shape) + 1
    return np.where(foreground, owner, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("block", [4, 7, 16])
def test_weighted_voronoi_equals_brute_force(seed, block):
    rng = np.random.default_rng(seed)
    spacing = (1.0, 0.5, 0.4)
    shape = (14, 23, 31)
    foreground = rng.random(shape) > 0.2
    seeds = rng.uniform(0, 1, (25, 3)) * np.asarray(shape) * np.asarray(spacing)
    weights = seed_weights(25, 1.0, 1.6, rng=rng)
    labels = voronoi_cells(foreground, spacing, seeds, weights, block=block)
    np.testing.assert_array_equal(labels, brute_force(foreground, spacing, seeds, weights))


def test_heavier_seeds_grow_larger_cells():
    foreground = np.ones((20, 20, 40), bool)
    seeds = np.array([[10.0, 10.0, 9.5], [10.0, 10.0, 29.5]])  # wall half-way between voxels 19 and 20
    equal = voronoi_cells(foreground, (1, 1, 1), seeds)
    assert (equal == 1).sum() == (equal == 2).sum()
    heavy = voronoi_cells(foreground, (1, 1, 1), seeds, np.array([1.25, 1.0]))
    assert (heavy == 1).sum() > 1.15 * (heavy == 2).sum()
    # on the seed axis the wall moves to d1 / 1.25 = d2: x = 20 is cell 1 (10.5 / 1.25 < 9.5), x = 21 cell 2
    assert heavy[10, 10, 20] == 1 and heavy[10, 10, 21] == 2


def test_anisotropic_spacing_is_physical():
    foreground = np.ones((10, 40, 40), bool)
    seeds = np.array([[0.0, 10.0, 10.0], [20.0, 10.0, 10.0]])  # 20 µm apart along z
    labels = voronoi_cells(foreground, (2.0, 0.5, 0.5), seeds)
    # the wall sits at z = 10 µm, i.e. plane 5 with 2 µm spacing
    assert (labels[:5] == 1).all() and (labels[6:] == 2).all()


def test_membranes_are_symmetric_and_thickness_in_um():
    labels = np.zeros((4, 10, 40), np.uint16)
    labels[:, :, :20] = 1
    labels[:, :, 20:] = 2
    thin = membrane_mask(labels, (1.0, 1.0, 0.25), 0.5)  # 0.25 µm each side = 1 voxel of 0.25 µm
    assert thin[0, 0].nonzero()[0].tolist() == [19, 20]
    thick = membrane_mask(labels, (1.0, 1.0, 0.25), 2.0)  # 1 µm each side = 4 voxels each side
    assert thick[0, 0].nonzero()[0].tolist() == list(range(16, 24))
    assert not thick[:, :, :16].any() and not thick[:, :, 24:].any()


def test_membrane_along_the_organism_surface_is_optional():
    labels = np.zeros((1, 10, 10), np.uint16)
    labels[0, 2:8, 2:8] = 3
    assert not membrane_mask(labels, (1, 1, 1), 1.0).any()
    surface = membrane_mask(labels, (1, 1, 1), 1.0, include_surface=True)
    assert surface[0, 2, 2:8].all() and not surface[0, 4, 4]


def test_bad_inputs():
    with pytest.raises(InputError, match="at least one seed"):
        voronoi_cells(np.ones((2, 2, 2), bool), (1, 1, 1), np.empty((0, 3)))
    with pytest.raises(InputError, match="weights must be 1 finite numbers > 0"):
        voronoi_cells(np.ones((2, 2, 2), bool), (1, 1, 1), np.zeros((1, 3)), np.array([0.0]))
    with pytest.raises(InputError, match="thickness must be > 0"):
        membrane_mask(np.zeros((2, 2, 2), np.uint16), (1, 1, 1), 0.0)
    with pytest.raises(InputError, match="0 < low <= high"):
        seed_weights(3, 1.5, 1.0, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("spacing", "thickness_um", "expected_um"),
    [
        ((2.0, 0.26, 0.26), 1.0, (2.0, 1.04, 1.04)),  # z: one voxel at least; y/x: 4 voxels (was 0.52)
        ((2.0, 0.26, 0.26), 0.78, (2.0, 0.78, 0.78)),  # an odd count: 3 voxels, not 2 or 4
        ((0.5, 1.0, 0.2), 3.0, (3.0, 3.0, 3.0)),
        ((2.0, 0.5, 0.5), 0.5, (2.0, 0.5, 0.5)),  # was 4 µm along z
    ],
)
def test_measured_membrane_thickness_is_the_requested_um_rounded_to_a_voxel(spacing, thickness_um, expected_um):
    for axis in range(3):
        shape = [3, 3, 3]
        shape[axis] = 40
        labels = np.ones(shape, np.uint16)
        split = [slice(None)] * 3
        split[axis] = slice(20, None)
        labels[tuple(split)] = 2
        membrane = membrane_mask(labels, spacing, thickness_um)
        line = np.moveaxis(membrane, axis, 0)[:, 1, 1]
        measured = line.sum() * spacing[axis]
        assert measured == pytest.approx(expected_um[axis]), (axis, measured)
        assert abs(measured - thickness_um) <= spacing[axis] / 2 + 1e-9 or line.sum() == 1
        assert line[19] and line[20] or line.sum() == 1  # the wall itself is always marked
