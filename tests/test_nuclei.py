"""Spherical-harmonic and ellipsoidal nuclei: radii, smoothness, concavities, anisotropy, contacts."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import marching_cubes, mesh_surface_area

from cellsynth.errors import InputError
from cellsynth.masks.nuclei import (
    SHShape,
    ellipsoid_shape,
    random_sh_coefficients,
    random_sh_shape,
    rasterize_shapes,
    simulate_nuclei,
)

SPACING = (0.5, 0.25, 0.25)


def single(shape, spacing=SPACING, box_um=16.0):
    volume_shape = tuple(int(box_um / s) for s in spacing)
    centre = np.array([[box_um / 2] * 3])
    labels, info = rasterize_shapes(volume_shape, spacing, centre, [shape])
    return labels > 0, info


def equivalent_radius(mask, spacing=SPACING):
    return (3 * mask.sum() * np.prod(spacing) / (4 * np.pi)) ** (1 / 3)


def test_degree_one_is_zero_and_mean_radius_is_c00():
    coefficients = random_sh_coefficients(4.0, rng=np.random.default_rng(0))
    assert coefficients[0, 0, 0] == 4.0
    assert not coefficients[:, 1].any()
    shape = SHShape.from_coefficients(coefficients)
    nlat = shape.grid.shape[0]
    weights = np.sin(np.linspace(0, np.pi, nlat))[:, None] * np.ones(shape.grid.shape)
    weights[:, -1] = 0  # the 360° column repeats 0°
    assert (shape.grid * weights).sum() / weights.sum() == pytest.approx(4.0, rel=1e-3)


def test_radius_statistics_and_never_negative():
    rng = np.random.default_rng(1)
    for _ in range(20):
        radius = rng.normal(4.0, 0.5)
        shape = random_sh_shape(radius, deformation=0.4, rng=rng)  # strong: the floor must hold
        assert shape.grid.min() >= 0.3 * radius - 1e-9
        assert shape.mean_radius == pytest.approx(radius)
        mask, _ = single(shape)
        assert equivalent_radius(mask) == pytest.approx(radius, rel=0.05) or shape.grid.std() / radius > 0.2


def test_voxelised_radius_within_5_percent_at_paper_settings():
    rng = np.random.default_rng(2)
    ratios = [equivalent_radius(single(random_sh_shape(4.0, gamma=5, rng=rng))[0]) / 4.0 for _ in range(10)]
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.05)
    assert max(abs(r - 1) for r in ratios) < 0.08


def sphericity_excess(mask, spacing=SPACING):
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1).astype(np.float32), 0.5, spacing=spacing)
    sphere_area = 4 * np.pi * equivalent_radius(mask, spacing) ** 2
    return mesh_surface_area(verts, faces) / sphere_area - 1


def test_larger_gamma_gives_smoother_surfaces():
    spacing = (0.25, 0.25, 0.25)
    rng = np.random.default_rng(3)
    excess = {
        gamma: np.mean([sphericity_excess(single(random_sh_shape(4.0, gamma=gamma, deformation=0.15, rng=rng),
                                                 spacing, 12.0)[0], spacing) for _ in range(6)])
        for gamma in (1.0, 3.0, 8.0)
    }
    assert excess[1.0] > excess[3.0] > excess[8.0]


def test_concave_shape_survives_voxelisation():
    coefficients = np.zeros((2, 5, 5))
    coefficients[0, 0, 0] = 4.0
    coefficients[0, 2, 0] = -1.2  # r = 4 - 1.2·√5·P2(cosθ): pinched at the poles, a concave dimple
    shape = SHShape.from_coefficients(coefficients)
    spacing = (0.2, 0.2, 0.2)
    mask, _ = single(shape, spacing, 12.0)
    pole_radius = 4 - 1.2 * np.sqrt(5)
    centre = 30
    # along +z the surface is at ~1.3 µm, so the voxel 2 µm above the centre is outside ...
    assert not mask[centre + 10, centre, centre]
    assert mask[centre + int(pole_radius / 0.2) - 1, centre, centre]
    # ... while its convex hull would include it: the equator is at 4 + 0.6·√5 ≈ 5.3 µm
    from skimage.morphology import convex_hull_image

    assert convex_hull_image(mask[:, centre, :])[centre + 10, centre]


def test_anisotropic_spacing_gives_round_cells_in_um():
    shape = random_sh_shape(4.0, deformation=0.0, rng=np.random.default_rng(4))
    spacing = (1.0, 0.2, 0.2)
    mask, _ = single(shape, spacing, 12.0)
    zs, ys, xs = np.nonzero(mask)
    extents = [(np.ptp(a) + 1) * s for a, s in zip((zs, ys, xs), spacing, strict=True)]
    assert extents == pytest.approx([8.0, 8.0, 8.0], abs=1.01)
    assert equivalent_radius(mask, spacing) == pytest.approx(4.0, rel=0.05)


def test_ellipsoid_oriented_along_axis():
    shape = ellipsoid_shape(3.0, elongation=2.0, axis=(0, 1, 1))
    assert shape.mean_radius == pytest.approx(3.0)
    spacing = (0.25, 0.25, 0.25)
    mask, _ = single(shape, spacing, 16.0)
    points = np.argwhere(mask) * 0.25
    points -= points.mean(axis=0)
    major = np.linalg.eigh(np.cov(points.T))[1][:, -1]
    assert abs(major @ np.array([0, 1, 1]) / np.sqrt(2)) > 0.99
    assert equivalent_radius(mask, spacing) == pytest.approx(3.0, rel=0.05)


def test_touching_cells_never_overlap_and_contacts_go_to_the_deeper_cell():
    spacing = (0.25, 0.25, 0.25)
    spheres = [random_sh_shape(3.0, deformation=0.0, rng=np.random.default_rng(0))] * 2
    centres = np.array([[5.0, 5.0, 4.1], [5.0, 5.0, 8.1]])  # 4 µm apart, radius 3: they overlap
    labels, info = rasterize_shapes((40, 40, 48), spacing, centres, spheres)
    assert info["n_contested_voxels"] > 0 and set(np.unique(labels)) == {0, 1, 2}
    # the contact plane is half way, whichever cell was drawn first
    reversed_labels, _ = rasterize_shapes((40, 40, 48), spacing, centres[::-1], spheres)
    first_x = np.nonzero(labels[20, 20] == 1)[0]
    second_x = np.nonzero(reversed_labels[20, 20] == 2)[0]
    np.testing.assert_array_equal(first_x, second_x)
    assert first_x.max() * 0.25 == 6.0  # the last voxel before the mid-plane at x = 6.1 µm


def test_cells_clipped_at_the_border_and_to_the_foreground():
    spacing = (0.5, 0.5, 0.5)
    sphere = random_sh_shape(3.0, deformation=0.0, rng=np.random.default_rng(0))
    foreground = np.zeros((20, 20, 20), bool)
    foreground[:, :, :10] = True
    labels, info = rasterize_shapes((20, 20, 20), spacing, np.array([[0.0, 5.0, 5.0]]), [sphere],
                                    foreground=foreground)
    assert labels[0, 10, 5] == 1 and not labels[:, :, 10:].any()
    assert info["n_empty_cells"] == 0
    outside, info = rasterize_shapes((20, 20, 20), spacing, np.array([[50.0, 50.0, 50.0]]), [sphere])
    assert not outside.any() and info["n_empty_cells"] == 1


def test_same_seed_same_shape():
    a = random_sh_shape(3.0, rng=np.random.default_rng(9))
    b = random_sh_shape(3.0, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a.grid, b.grid)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_radius_um": 0.0}, "nucleus radius must be a finite number > 0"),
        ({"mean_radius_um": -2.0}, "nucleus radius"),
        ({"mean_radius_um": 2.0, "gamma": 0.0}, "gamma must be > 0"),
        ({"mean_radius_um": 2.0, "deformation": -0.1}, "deformation must be >= 0"),
        ({"mean_radius_um": 2.0, "lmax": 1}, "lmax must be >= 2"),
    ],
)
def test_bad_shape_parameters(kwargs, match):
    with pytest.raises(InputError, match=match):
        random_sh_coefficients(**kwargs, rng=np.random.default_rng(0))


def test_simulated_nuclei_in_an_organism():
    from scipy.spatial.distance import pdist

    from cellsynth.masks.derived import centroid_table
    from cellsynth.masks.organism import ellipsoid_organism
    from cellsynth.masks.placement import poisson_disk_positions

    spacing = (0.5, 0.25, 0.25)
    foreground = ellipsoid_organism((40, 120, 120), spacing, (9.0, 14.0, 14.0))
    rng = np.random.default_rng(5)
    centres = poisson_disk_positions(foreground, spacing, 5.0, n_cells=12, rng=rng)
    labels, info = simulate_nuclei(foreground, spacing, centres, radius_um=2.0, radius_std_um=0.2, rng=rng)
    assert set(np.unique(labels)) == set(range(13)) and info["n_empty_cells"] == 0
    assert not labels[~foreground].any()  # every cell inside the foreground
    table = centroid_table(labels, spacing)
    radii = np.array([row["equivalent_radius_um"] for row in table])
    assert np.median(radii) == pytest.approx(2.0, rel=0.08)
    centroids = np.array([[row["z_um"], row["y_um"], row["x_um"]] for row in table])
    assert np.abs(centroids - centres).max() < 1.0  # shapes sit on their placed centres
    assert pdist(centroids).min() > 3.5


def test_same_seed_same_nuclei_volume():
    from cellsynth.masks.organism import ellipsoid_organism
    from cellsynth.masks.placement import poisson_disk_positions

    spacing = (0.5, 0.25, 0.25)
    foreground = ellipsoid_organism((20, 60, 60), spacing, (4.0, 6.0, 6.0))

    def make(seed):
        rng = np.random.default_rng(seed)
        centres = poisson_disk_positions(foreground, spacing, 3.5, n_cells=4, rng=rng)
        return simulate_nuclei(foreground, spacing, centres, radius_um=1.5, rng=rng)[0]

    np.testing.assert_array_equal(make(3), make(3))
    assert not np.array_equal(make(3), make(4))


def test_ellipsoidal_nuclei_follow_the_surface_normal():
    from cellsynth.masks.organism import ellipsoid_organism

    spacing = (0.25, 0.25, 0.25)
    foreground = ellipsoid_organism((80, 80, 80), spacing, (9.0, 9.0, 9.0))
    centre = np.array([[10.0, 10.0, 17.0]])  # on the +x side: the normal points along x
    labels, _ = simulate_nuclei(foreground, spacing, centre, radius_um=1.5,
                                radius_std_um=0.0, shape="ellipsoid", elongation=2.0, rng=np.random.default_rng(0))
    points = np.argwhere(labels == 1) * 0.25
    major = np.linalg.eigh(np.cov((points - points.mean(axis=0)).T))[1][:, -1]
    assert abs(major[2]) > 0.95


def test_bad_shape_name():
    foreground = np.zeros((10, 10, 10), bool)
    foreground[2:8, 2:8, 2:8] = True
    with pytest.raises(InputError, match="accepted: sh, ellipsoid"):
        simulate_nuclei(foreground, (1, 1, 1), np.zeros((1, 3)), shape="cube", rng=np.random.default_rng(0))
