"""Statistical shape models: fit, reconstruct, sample within ±3σ, voxelise, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cellsynth.errors import FileFormatError, InputError
from cellsynth.masks.nuclei import random_sh_shape, rasterize_shapes
from cellsynth.masks.organism import ssm_organism
from cellsynth.masks.ssm import (
    RadialShape,
    StatisticalShapeModel,
    fibonacci_directions,
    fit_ssm,
    ray_radii,
    shape_radii,
)

SPACING = (0.5, 0.25, 0.25)  # anisotropic


def training_volume(n=6, seed=0, box=(30, 128, 128)):
    """``n`` SH nuclei of radius ≈ 3 µm well inside one volume, not touching each other or the border."""
    rng = np.random.default_rng(seed)
    extent = np.asarray(box) * SPACING
    centres = [np.array([extent[0] / 2, y, x]) for y in (6.0, 16.5) for x in (6.0, 16.5, 27.0)][:n]
    shapes = [random_sh_shape(2.0 + 0.3 * i, deformation=0.12, lmax=6, rng=rng) for i in range(n)]
    labels, info = rasterize_shapes(box, SPACING, np.array(centres), shapes)
    assert info["n_contested_voxels"] == 0
    return labels


def test_directions_are_unit_and_quasi_uniform():
    directions = fibonacci_directions(500)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1, atol=1e-12)
    assert np.abs(directions.mean(axis=0)).max() < 0.01  # balanced over the sphere
    nearest = np.sort(directions @ directions.T, axis=1)[:, -2]  # cosine to the nearest other direction
    assert np.arccos(nearest).max() < 2.0 * np.arccos(nearest).min()  # no clumps, no holes


def test_ray_radii_of_a_ball_in_anisotropic_voxels():
    z, y, x = np.mgrid[:41, :81, :81]
    ball = ((z - 20) * SPACING[0]) ** 2 + ((y - 40) * SPACING[1]) ** 2 + ((x - 40) * SPACING[2]) ** 2 <= 6.0**2
    radii = ray_radii(ball, SPACING, np.array([20, 40, 40]) * SPACING, fibonacci_directions(200))
    assert np.abs(radii - 6.0).max() < 0.5  # within the coarsest voxel
    assert abs(radii.mean() - 6.0) < 0.15


def test_all_modes_reconstruct_the_training_shapes():
    labels = training_volume()
    model = fit_ssm(labels, SPACING, n_directions=256)
    assert model.n_training == 6 and model.n_modes == 5  # k shapes span k − 1 modes
    assert np.all(np.diff(model.variances) <= 0) and np.all(model.variances > 0)
    np.testing.assert_allclose(model.modes.T @ model.modes, np.eye(5), atol=1e-10)
    radii = shape_radii(labels, SPACING, model.directions)
    np.testing.assert_allclose(model.reconstruct(model.project(radii)), radii, atol=1e-9)
    # and the voxelised reconstruction is the training object itself
    for label, row in zip(range(1, 7), model.reconstruct(model.project(radii)), strict=True):
        mask = labels == label
        centre = np.argwhere(mask).mean(axis=0) * SPACING
        redrawn, _ = rasterize_shapes(labels.shape, SPACING, centre[None], [model.shape(row)])
        dice = 2 * np.sum(mask & (redrawn > 0)) / (mask.sum() + (redrawn > 0).sum())
        assert dice > 0.95, (label, dice)


def test_fewer_modes_reconstruct_worse():
    labels = training_volume()
    model = fit_ssm(labels, SPACING, n_directions=256)
    radii = shape_radii(labels, SPACING, model.directions)
    errors = [np.abs(model.reconstruct(model.project(radii)[:, :m]) - radii).mean() for m in range(6)]
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:], strict=False)) and errors[0] > 10 * errors[-1] + 1e-6


def test_samples_stay_within_three_sigma_and_are_deterministic():
    model = fit_ssm(training_volume(), SPACING, n_directions=128)
    draws = model.sample_radii(2000, rng=np.random.default_rng(3))
    weights = model.project(draws) / np.sqrt(model.variances)
    assert np.abs(weights).max() <= 3 + 1e-6
    assert 0.8 < weights[:, 0].std() < 1.05  # truncated normal: nearly unit variance
    np.testing.assert_array_equal(draws[:5], model.sample_radii(2000, rng=np.random.default_rng(3))[:5])
    limited = model.sample_radii(500, n_modes=1, limit=1.0, rng=np.random.default_rng(3))
    assert np.abs(model.project(limited)[:, 0] / np.sqrt(model.variances[0])).max() <= 1 + 1e-6
    with pytest.raises(InputError, match="n_modes must be in 0..5"):
        model.sample_radii(1, n_modes=9, rng=np.random.default_rng(0))


def test_a_concave_shape_keeps_its_dent():
    directions = fibonacci_directions(2000)
    radii = np.where(directions[:, 2] > 0.8, 2.0, 4.0)  # a deep dent around +x
    labels, _ = rasterize_shapes((40, 60, 60), (0.25, 0.25, 0.25), np.array([[5.0, 7.5, 7.5]]),
                                 [RadialShape(directions, radii)])
    centre = (20, 30, 30)
    assert labels[centre[0], centre[1], centre[2] + 12] == 0  # 3 µm along +x: in the dent
    assert labels[centre[0], centre[1], centre[2] - 12] == 1  # 3 µm along −x: inside
    assert labels[centre[0] + 12, centre[1], centre[2]] == 1


def test_save_and_load_round_trip_without_pickle(tmp_path):
    model = fit_ssm(training_volume(), SPACING, n_directions=64)
    path = model.save(tmp_path / "model.npz")
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["cellsynth_ssm"] == 1 and meta["n_modes"] == 5 and abs(sum(meta["explained_variance"]) - 1) < 1e-5
    loaded = StatisticalShapeModel.load(path)
    for key in ("directions", "mean", "modes", "variances"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(model, key))
    (tmp_path / "model.json").write_text('{"something": "else"}')
    with pytest.raises(FileFormatError, match="not a cellsynth shape model"):
        StatisticalShapeModel.load(path)
    with pytest.raises(FileFormatError, match="not a cellsynth shape model"):
        StatisticalShapeModel.load(tmp_path / "missing.npz")
    with pytest.raises(InputError, match=r"saved as \.npz"):
        model.save(tmp_path / "model.pkl")


def test_fit_errors_and_border_objects():
    with pytest.raises(InputError, match="no instance inside the volume"):
        fit_ssm(np.zeros((8, 16, 16), np.uint16), SPACING)
    touching = np.zeros((8, 16, 16), np.uint16)
    touching[0:4, 2:8, 2:8] = 1  # cut by the volume border
    with pytest.raises(InputError, match="no instance inside the volume"):
        fit_ssm(touching, SPACING)
    assert fit_ssm(touching, SPACING, exclude_border=False, n_directions=32).n_training == 1
    with pytest.raises(InputError, match="accepted: instance, foreground"):
        fit_ssm(touching, SPACING, per="cell")


def test_specimen_model_makes_an_organism():
    specimens = []
    for semi in (6.0, 7.0, 8.0):
        z, y, x = np.mgrid[:40, :80, :80]
        specimens.append((((z - 20) * 0.5 / (semi * 0.8)) ** 2 + ((y - 40) * 0.25 / semi) ** 2
                          + ((x - 40) * 0.25 / (semi * 1.2)) ** 2 <= 1).astype(np.uint8))
    model = fit_ssm(specimens, SPACING, per="foreground", n_directions=128)
    assert model.n_training == 3 and model.n_modes == 2
    assert abs(model.mean.mean() - 7.0) < 0.6
    organism = ssm_organism((40, 80, 80), SPACING, model, rng=np.random.default_rng(0))
    assert organism.dtype == bool and 0.3 * specimens[0].sum() < organism.sum() < 3 * specimens[2].sum()


def test_cells3d_nuclei_model_simulates_nuclei_of_their_size():
    from cellsynth.examples import cells3d_nuclei

    _, labels, spacing = cells3d_nuclei()
    model = fit_ssm(labels, spacing, n_directions=256)
    assert model.n_training >= 8 and 4.5 < model.mean.mean() < 6.5  # µm: cells3d nuclei are ≈ 5.5 µm
    shapes = model.sample_shapes(4, rng=np.random.default_rng(0))
    simulated, info = rasterize_shapes((60, 128, 128), spacing, np.array([[8.7, 8, 8], [8.7, 8, 24],
                                                                           [8.7, 24, 8], [8.7, 24, 24]]), shapes)
    volumes = np.bincount(simulated.ravel())[1:] * np.prod(spacing)
    radii = (3 * volumes / (4 * np.pi)) ** (1 / 3)
    assert np.all(np.abs(radii - model.mean.mean()) < 1.5)


def test_a_hole_inside_a_nucleus_does_not_stop_its_rays():
    labels = training_volume(n=2)
    holed = labels.copy()
    for object_id in (1, 2):  # a dark 'nucleolus' left out of the segmentation, at each centroid
        centre = np.rint(np.argwhere(labels == object_id).mean(axis=0)).astype(int)
        holed[tuple(slice(c - 1, c + 2) for c in centre)] = 0
    directions = fibonacci_directions(128)
    np.testing.assert_allclose(shape_radii(holed, SPACING, directions), shape_radii(labels, SPACING, directions))


def test_mode_count_and_limit_are_config_options(tmp_path):
    from cellsynth.config import validate_config
    from cellsynth.masks.simulate import simulate_masks

    model_path = fit_ssm(training_volume(), SPACING, n_directions=128).save(tmp_path / "m.npz")
    config = validate_config({"volume": {"shape": [30, 96, 96], "spacing_um": list(SPACING)},
                              "masks": {"placement": {"min_distance_um": 8.0},
                                        "nuclei": {"shape": "ssm", "ssm_model": str(model_path), "ssm_modes": 0}}})
    labels = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=0).labels
    sizes = [np.count_nonzero(labels == i) for i in np.unique(labels)[1:] if not _touches_border(labels, i)]
    assert len(sizes) >= 2 and np.ptp(sizes) <= 0.02 * max(sizes)  # no mode varies: every nucleus is the mean
    with pytest.raises(Exception, match="ssm_limit"):
        validate_config({"masks": {"nuclei": {"ssm_limit": 0}}})


def _touches_border(labels, object_id):
    points = np.argwhere(labels == object_id)
    return bool(np.any(points.min(axis=0) == 0) or np.any(points.max(axis=0) == np.asarray(labels.shape) - 1))
