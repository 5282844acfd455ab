"""Label-derived outputs: centroid table and CSV, per-cell meshes, signed distance."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import trimesh
from conftest import SPACING, boxes_labels

from cellsynth.errors import InputError
from cellsynth.masks.derived import (
    CENTROID_COLUMNS,
    cell_meshes,
    centroid_table,
    write_cell_meshes,
    write_centroids_csv,
)


def test_centroid_csv_in_micrometres(tmp_path):
    labels = boxes_labels()
    write_centroids_csv(tmp_path / "c.csv", labels, SPACING)
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert tuple(rows[0]) == CENTROID_COLUMNS and [r["id"] for r in rows] == ["1", "2", "7"]
    first = rows[0]  # voxels z 1..2, y 2..6, x 2..7
    assert float(first["z_um"]) == pytest.approx(1.5 * SPACING[0])
    assert float(first["y_um"]) == pytest.approx(4 * SPACING[1])
    assert float(first["x_um"]) == pytest.approx(4.5 * SPACING[2])
    assert float(first["volume_um3"]) == pytest.approx(2 * 5 * 6 * np.prod(SPACING), abs=1e-4)
    radius = (3 * float(first["volume_um3"]) / (4 * np.pi)) ** (1 / 3)
    assert float(first["equivalent_radius_um"]) == pytest.approx(radius, abs=1e-4)
    assert [r["id"] for r in centroid_table(labels, SPACING)] == [1, 2, 7]


def test_meshes_are_closed_outward_and_in_micrometres_xyz():
    labels = np.zeros((20, 30, 30), np.uint16)
    labels[5:15, 5:15, 5:15] = 3
    meshes = cell_meshes(labels, SPACING)
    mesh = meshes[3]
    assert mesh.is_watertight and mesh.volume > 0  # positive volume: normals point outward
    voxel_volume = 10 * 10 * 10 * np.prod(SPACING)
    assert 0.8 * voxel_volume < mesh.volume < 1.05 * voxel_volume  # marching cubes cuts the corners
    # XYZ order: x spans voxels 4.5..14.5 at 0.2 µm, z spans 4.5..14.5 at 0.5 µm (half-voxel surface)
    np.testing.assert_allclose(mesh.bounds[0], [5 * SPACING[2], 5 * SPACING[1], 4.5 * SPACING[0]], atol=0.26)
    np.testing.assert_allclose(mesh.bounds[1], [14 * SPACING[2], 14 * SPACING[1], 14.5 * SPACING[0]], atol=0.26)


@pytest.mark.parametrize("file_format", ["ply", "obj", "stl"])
def test_mesh_files_load_back(tmp_path, file_format):
    labels = boxes_labels((6, 16, 20))
    files = write_cell_meshes(tmp_path / "meshes", labels, SPACING, file_format=file_format)
    assert [f.name for f in files] == [f"cell_000{i}.{file_format}" for i in (1, 2, 7)]
    loaded = trimesh.load(files[0], force="mesh")
    assert loaded.is_watertight and loaded.volume == pytest.approx(cell_meshes(labels, SPACING)[1].volume, rel=1e-3)
    with pytest.raises(InputError, match="accepted: ply, obj, stl"):
        write_cell_meshes(tmp_path / "other", labels, SPACING, file_format="vtk")
    assert not (tmp_path / "other").exists()


