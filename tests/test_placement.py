"""Organism foregrounds and cell placement: distances in µm, layers, crowding, detections."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from cellsynth.errors import FileFormatError, InputError
from cellsynth.masks.organism import ellipsoid_organism, mask_organism, rotation_from_angles, sh_organism
from cellsynth.masks.placement import (
    CrowdedWarning,
    layered_positions,
    poisson_disk_positions,
    positions_from_detections,
)

SPACING = (1.0, 0.5, 0.5)


def organism():
    return ellipsoid_organism((40, 120, 120), SPACING, (15.0, 25.0, 25.0))


def inside(mask, points_um, spacing=SPACING):
    index = np.clip(np.rint(points_um / np.asarray(spacing)).astype(int), 0, np.asarray(mask.shape) - 1)
    return mask[tuple(index.T)]


def test_ellipsoid_organism_volume_and_rotation():
    mask = organism()
    volume = mask.sum() * np.prod(SPACING)
    assert volume == pytest.approx(4 / 3 * np.pi * 15 * 25 * 25, rel=0.02)
    rotated = ellipsoid_organism((60, 60, 60), (0.5, 0.5, 0.5), (12.0, 4.0, 4.0), angles_deg=(0, 90, 0))
    zs, ys, xs = np.nonzero(rotated)
    assert np.ptp(xs) > 2 * np.ptp(zs)  # the long z axis now lies along x
    assert np.allclose(rotation_from_angles((0, 0, 0)), np.eye(3))


def test_sh_organism_is_smooth_blob_of_requested_size():
    mask = sh_organism((60, 60, 60), (0.5, 0.5, 0.5), 10.0, rng=np.random.default_rng(0))
    radius = (3 * mask.sum() * 0.125 / (4 * np.pi)) ** (1 / 3)
    assert radius == pytest.approx(10.0, rel=0.05)


def test_empty_foregrounds_are_errors():
    with pytest.raises(InputError, match="foreground is empty"):
        ellipsoid_organism((10, 10, 10), (1, 1, 1), (3, 3, 3), centre_um=(100, 100, 100))
    with pytest.raises(InputError, match="foreground is empty"):
        mask_organism(np.zeros((4, 4, 4)))
    with pytest.raises(InputError, match="semi_axes_um"):
        ellipsoid_organism((10, 10, 10), (1, 1, 1), (3, -3, 3))


def test_poisson_disk_keeps_distance_stays_inside_and_fills():
    mask = organism()
    points = poisson_disk_positions(mask, SPACING, 6.0, rng=np.random.default_rng(0))
    assert pdist(points).min() >= 6.0
    assert inside(mask, points).all()
    # maximal packing: no room left means a fresh dart almost never lands clear of every point
    probes = np.random.default_rng(1).uniform(0, 1, (2000, 3)) * np.asarray(mask.shape) * SPACING
    probes = probes[inside(mask, probes)]
    assert (cdist(probes, points).min(axis=1) < 6.0).mean() > 0.97


def test_anisotropic_exclusion_is_ellipsoidal():
    mask = np.ones((30, 60, 60), bool)
    points = poisson_disk_positions(mask, (0.5, 0.5, 0.5), (8.0, 4.0, 4.0), rng=np.random.default_rng(0))
    scaled = points / np.array([8.0, 4.0, 4.0])
    assert pdist(scaled).min() >= 1.0
    assert pdist(points).min() < 8.0  # neighbours closer than the axial exclusion: not a ball of 8 µm


def test_more_cells_than_fit_warns_and_places_what_fits():
    mask = np.ones((10, 20, 20), bool)
    with pytest.warns(CrowdedWarning, match=r"placed \d+ of 500 cells"):
        points = poisson_disk_positions(mask, (1, 1, 1), 5.0, n_cells=500, rng=np.random.default_rng(0))
    assert 4 <= len(points) < 500 and pdist(points).min() >= 5.0


def test_exact_count_and_determinism():
    mask = organism()
    a = poisson_disk_positions(mask, SPACING, 4.0, n_cells=50, rng=np.random.default_rng(7))
    b = poisson_disk_positions(mask, SPACING, 4.0, n_cells=50, rng=np.random.default_rng(7))
    assert len(a) == 50
    np.testing.assert_array_equal(a, b)


def test_layers_follow_the_surface_inward_with_growing_spacing():
    mask = organism()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        points, layers = layered_positions(mask, SPACING, 5.0, decay=0.9, rng=np.random.default_rng(0))
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=SPACING)[1:-1, 1:-1, 1:-1]
    cell_depth = depth[tuple(np.rint(points / np.asarray(SPACING)).astype(int).T)]
    assert layers.max() >= 1 and (layers == 0).sum() > (layers == 1).sum()
    assert np.median(cell_depth[layers == 0]) == pytest.approx(2.5, abs=1.0)  # first layer along the surface
    assert np.median(cell_depth[layers == 1]) > np.median(cell_depth[layers == 0]) + 4
    assert pdist(points).min() >= 5.0
    assert pdist(points[layers == 1]).min() >= 5.0 / 0.9
    assert inside(mask, points).all()


def test_layers_stop_at_requested_count_or_warn():
    mask = organism()
    points, _ = layered_positions(mask, SPACING, 5.0, n_cells=30, rng=np.random.default_rng(0))
    assert len(points) == 30
    with pytest.warns(CrowdedWarning, match="of 100000 cells"):
        layered_positions(mask, SPACING, 5.0, n_cells=100_000, rng=np.random.default_rng(0))


def test_detections_from_array_and_csv(tmp_path):
    (tmp_path / "d.csv").write_text("id,z_um,y_um,x_um\n1,1.0,2.0,3.0\n2,4,5,6\n")
    np.testing.assert_array_equal(positions_from_detections(tmp_path / "d.csv"), [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(positions_from_detections(np.array([[1.0, 2, 3]])), [[1, 2, 3]])
    with pytest.raises(InputError, match="outside the volume"):
        positions_from_detections(np.array([[1.0, 2, 300]]), volume_shape=(10, 10, 10), spacing=(1, 1, 1))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileFormatError, match="columns z, y, x"):
        positions_from_detections(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="NaN"):
        positions_from_detections(np.array([[np.nan, 1, 1]]))
    (tmp_path / "empty.csv").write_text("z,y,x\n")
    with pytest.raises(FileFormatError, match="has a header but no detection rows"):
        positions_from_detections(tmp_path / "empty.csv")


@pytest.mark.parametrize("distance", [0.0, -1.0, (1.0, 0.0, 1.0)])
def test_bad_distances(distance):
    with pytest.raises(InputError, match="minimum distance must be > 0"):
        poisson_disk_positions(np.ones((4, 4, 4), bool), (1, 1, 1), distance, rng=np.random.default_rng(0))


def test_empty_region_is_an_error():
    with pytest.raises(InputError, match="no voxel is available"):
        poisson_disk_positions(np.zeros((4, 4, 4), bool), (1, 1, 1), 1.0, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="foreground is empty"):
        layered_positions(np.zeros((4, 4, 4), bool), (1, 1, 1), 1.0, rng=np.random.default_rng(0))


def test_a_2d_field_takes_layers_and_ellipsoid_nuclei():
    from cellsynth.config import validate_config
    from cellsynth.masks.simulate import simulate_masks

    for masks in ({"organism": {"kind": "ellipsoid"}, "placement": {"method": "layers", "min_distance_um": 9.0}},
                  {"organism": {"kind": "ellipsoid"}, "nuclei": {"shape": "ellipsoid", "elongation": 1.5}}):
        config = validate_config({"volume": {"shape": [1, 256, 256], "spacing_um": [1.0, 0.26, 0.26]},
                                  "masks": masks})
        simulated = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=0)
        assert simulated.params["n_cells_placed"] >= 10 and len(np.unique(simulated.labels)) > 10


def test_the_faces_of_a_field_of_view_are_not_a_surface():
    from cellsynth.masks.derived import specimen_mask
    from cellsynth.masks.nuclei import surface_normals

    inside = np.ones((20, 40, 40), bool)
    points = np.array([[0.5, 1.0, 1.0], [5.0, 9.5, 0.2]])
    np.testing.assert_array_equal(surface_normals(inside, (0.5, 0.25, 0.25), points), [[1, 0, 0], [1, 0, 0]])
    labels = np.zeros((20, 40, 40), np.uint16)
    labels[:, 5:15, 5:15], labels[:, 20:30, 5:15], labels[:, 5:15, 20:30] = 1, 2, 3  # nuclei cut by both z faces
    specimen = specimen_mask(labels, (0.5, 0.25, 0.25), closing_um=2.0)
    assert specimen[0].mean() == pytest.approx(specimen[10].mean())  # the top plane is not eroded by the crop
