"""Maps derived from an instance label volume."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

from cellsynth.checks import check_spacing
from cellsynth.errors import InputError
from cellsynth.io import atomic_path, write_bytes_atomic

#: Columns of :func:`centroid_table` and of the centroid CSV files.
CENTROID_COLUMNS = ("id", "z_um", "y_um", "x_um", "volume_um3", "equivalent_radius_um")
#: Mesh file formats :func:`write_cell_meshes` writes (through trimesh).
MESH_FORMATS = ("ply", "obj", "stl")

#: Classes of :func:`semantic_from_instances`, as nnU-Net's ``dataset.json`` names them.
SEMANTIC_CLASSES = {"background": 0, "foreground": 1, "border": 2}


def instance_boundaries(labels: np.ndarray) -> np.ndarray:
    """Voxels of each instance that touch background or another instance.

    Parameters
    ----------
    labels : ndarray of int
        Instance labels (ZYX or YX), 0 = background.

    Returns
    -------
    ndarray of bool
        One voxel thick, inside the objects (skimage ``mode='inner'``), so touching cells stay
        separated in a semantic map.

    Examples
    --------
    >>> labels = np.zeros((1, 5, 6), np.uint16); labels[0, 1:4, 1:3] = 1; labels[0, 1:4, 3:5] = 2
    >>> instance_boundaries(labels)[0].astype(int)
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]])
    """
    return find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)


def semantic_from_instances(labels: np.ndarray) -> np.ndarray:
    """Three-class map: 0 background, 1 object interior, 2 object border (uint8).

    Parameters
    ----------
    labels : ndarray
        Instance labels.

    Returns
    -------
    ndarray
        uint8, the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((1, 5, 5), np.uint16); labels[0, 1:4, 1:4] = 7
    >>> semantic_from_instances(labels)[0]
    array([[0, 0, 0, 0, 0],
           [0, 2, 2, 2, 0],
           [0, 2, 1, 2, 0],
           [0, 2, 2, 2, 0],
           [0, 0, 0, 0, 0]], dtype=uint8)
    """
    semantic = (labels > 0).astype(np.uint8) * SEMANTIC_CLASSES["foreground"]
    semantic[instance_boundaries(labels)] = SEMANTIC_CLASSES["border"]
    return semantic


def centreness(labels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Each object's distance to its own surface (µm) over that object's largest one: 1 at its centre, 0 outside.

    Touching objects are kept apart: voxels of an instance that touch another instance or the
    background count as its surface (:func:`instance_boundaries`).

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    ndarray
        float32 in [0, 1], the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 7), np.uint16); labels[0, 0, 1:6] = 3
    >>> centreness(labels, (1, 1, 1))[0, 0].round(2)
    array([0.  , 0.33, 0.67, 1.  , 0.67, 0.33, 0.  ], dtype=float32)
    """
    labels = np.asarray(labels)
    inside = labels > 0
    if not inside.any():
        return np.zeros(labels.shape, np.float32)
    interior = inside & ~instance_boundaries(labels)
    distance = ndimage.distance_transform_edt(interior, sampling=spacing) + inside * min(spacing)
    largest = np.zeros(int(labels.max()) + 1)
    np.maximum.at(largest, labels[inside], distance[inside])  # 100× faster than ndimage.maximum's argsort
    return np.where(inside, distance / np.maximum(largest[labels], 1e-12), 0).astype(np.float32)


def depth_below_surface_um(foreground: np.ndarray, spacing) -> np.ndarray:
    """Euclidean distance (µm) from each foreground voxel to the nearest voxel outside it.

    The volume's border counts as outside, so an organism cut by the field of view still has a
    surface there; a flat axis (one plane: a 2D image) has no border along it. 0 outside the
    foreground.
    """
    foreground = np.asarray(foreground, bool)
    pad = [(1, 1) if n > 1 else (0, 0) for n in foreground.shape]
    depth = ndimage.distance_transform_edt(np.pad(foreground, pad), sampling=spacing)
    return depth[tuple(slice(a, a + n) for (a, _), n in zip(pad, foreground.shape, strict=True))]


def specimen_mask(labels: np.ndarray, spacing: Sequence[float], closing_um: float = 2.0) -> np.ndarray:
    """The specimen as the labelled objects closed by a ``closing_um`` ball and hole-filled (an organism proxy).

    The closing is done with two Euclidean distance transforms in µm (exact for a ball, and far
    faster than a morphological closing with a large structuring element). The specimen continues
    beyond the field of view's faces (a crop is not a surface).

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    closing_um : float
        Radius of the closing ball in µm.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> labels = np.zeros((6, 20, 20), np.uint16); labels[1:5, 4:10, 3:9] = 1; labels[1:5, 4:10, 10:16] = 2
    >>> specimen = specimen_mask(labels, (1, 1, 1), closing_um=2.0)
    >>> bool(specimen[3, 7, 9]), bool(labels[3, 7, 9])
    (True, False)
    """
    spacing = check_spacing(spacing)
    dilated = ndimage.distance_transform_edt(np.asarray(labels) == 0, sampling=spacing) <= closing_um
    # the field of view's faces are a crop, not the specimen's surface: the closing does not erode from them
    closed = ndimage.distance_transform_edt(np.pad(dilated, 1, constant_values=True),
                                           sampling=spacing)[1:-1, 1:-1, 1:-1] > closing_um
    return ndimage.binary_fill_holes(closed | (np.asarray(labels) > 0))


def centroid_table(labels: np.ndarray, spacing) -> list[dict]:
    """Per instance: id, centroid z, y, x (µm), volume (µm³) and equivalent-sphere radius (µm).

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.

    Returns
    -------
    list of dict
        One row per instance.

    Examples
    --------
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:4, 2:4] = 5
    >>> {key: round(value, 2) for key, value in centroid_table(labels, (1.0, 0.5, 0.5))[0].items()}
    {'id': 5, 'z_um': 1.5, 'y_um': 1.25, 'x_um': 1.25, 'volume_um3': 2.0, 'equivalent_radius_um': 0.78}
    """
    rows = []
    for region in regionprops(np.asarray(labels).astype(np.int64, copy=False), spacing=tuple(spacing)):
        volume = float(region.area)  # with spacing, skimage gives µm³ and µm centroids
        rows.append({  # keys in the order of CENTROID_COLUMNS
            "id": int(region.label),
            "z_um": float(region.centroid[0]), "y_um": float(region.centroid[1]), "x_um": float(region.centroid[2]),
            "volume_um3": volume, "equivalent_radius_um": float((3 * volume / (4 * np.pi)) ** (1 / 3)),
        })
    return rows


def centroid_csv_bytes(labels: np.ndarray, spacing) -> bytes:
    """:func:`centroid_table` as CSV (header ``id,z_um,y_um,x_um,volume_um3,equivalent_radius_um``)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CENTROID_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in centroid_table(labels, spacing):
        writer.writerow({key: (value if key == "id" else f"{value:.4f}") for key, value in row.items()})
    return text.getvalue().encode()


def write_centroids_csv(path: str | os.PathLike, labels: np.ndarray, spacing) -> None:
    """Write the centroid table of ``labels`` to ``path`` (CSV, µm and µm³), atomically.

    Parameters
    ----------
    path : path-like
        The CSV file.
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.

    Examples
    --------
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:4, 2:4] = 5
    >>> write_centroids_csv('centroids.csv', labels, (1.0, 0.5, 0.5))  # doctest: +SKIP
    >>> print(centroid_csv_bytes(labels, (1.0, 0.5, 0.5)).decode().strip())
    id,z_um,y_um,x_um,volume_um3,equivalent_radius_um
    5,1.5000,1.2500,1.2500,2.0000,0.7816
    """
    write_bytes_atomic(path, centroid_csv_bytes(labels, spacing))


def cell_meshes(labels: np.ndarray, spacing, *, step_size: int = 1) -> dict:
    """A closed triangle surface per instance (marching cubes at the 0.5 level of its mask).

    Parameters
    ----------
    labels : ndarray of int
        Instance labels, ZYX.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    step_size : int
        Marching-cubes step in voxels (larger: coarser, smaller files).

    Returns
    -------
    dict of int to trimesh.Trimesh
        Vertices in µm in **XYZ** order (what mesh viewers expect), in the volume's frame, normals
        pointing outward.
    """
    import trimesh  # heavy import, only where meshes are made
    from skimage.measure import marching_cubes

    spacing = np.asarray(spacing, float)
    meshes = {}
    for region in regionprops(np.asarray(labels).astype(np.int64, copy=False)):
        mask = np.pad(region.image, 1).astype(np.float32)  # padding closes the surface at the box border
        vertices, faces, _, _ = marching_cubes(mask, 0.5, spacing=tuple(spacing), step_size=step_size)
        vertices += (np.asarray(region.bbox[:3]) - 1) * spacing
        # skimage winds faces inward in ZYX; ZYX → XYZ mirrors the frame, which makes them outward
        meshes[int(region.label)] = trimesh.Trimesh(vertices[:, ::-1], faces, process=False)
    return meshes


def write_cell_meshes(folder: str | os.PathLike, labels: np.ndarray, spacing, *, file_format: str = "ply",
                      step_size: int = 1) -> list[Path]:
    """Write one mesh file per instance, ``cell_<id>.<format>``, into ``folder`` (created atomically).

    Parameters
    ----------
    folder : path-like
        A new folder.
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    file_format : {'ply', 'obj', 'stl'}
    step_size : int
        Marching-cubes step in voxels (larger: coarser, faster).

    Returns
    -------
    list of Path
        The files written, by instance id.

    Examples
    --------
    >>> labels = np.zeros((8, 8, 8), np.uint16); labels[2:6, 2:6, 2:6] = 1
    >>> write_cell_meshes('meshes', labels, (1, 1, 1))  # doctest: +SKIP
    >>> sorted(cell_meshes(labels, (1, 1, 1)))
    [1]
    """
    if file_format not in MESH_FORMATS:
        raise InputError(f"unknown mesh format '{file_format}'; accepted: {', '.join(MESH_FORMATS)}")
    folder = Path(folder)
    meshes = cell_meshes(labels, spacing, step_size=step_size)
    digits = max(4, len(str(max(meshes, default=0))))
    names = {label: f"cell_{label:0{digits}d}.{file_format}" for label in meshes}
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for label, mesh in meshes.items():
            data = mesh.export(file_type=file_format)
            (tmp / names[label]).write_bytes(data.encode() if isinstance(data, str) else data)
    return [folder / names[label] for label in meshes]
