"""Maps derived from an instance label volume."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

from cellsynth.errors import InputError

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
    """
    return find_boundaries(labels, connectivity=1, mode="inner") & (labels > 0)


def semantic_from_instances(labels: np.ndarray) -> np.ndarray:
    """Three-class map: 0 background, 1 object interior, 2 object border (uint8).

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


def depth_below_surface_um(foreground: np.ndarray, spacing) -> np.ndarray:
    """Euclidean distance (µm) from each foreground voxel to the nearest voxel outside it.

    The volume's border counts as outside, so an organism cut by the field of view still has a
    surface there. 0 outside the foreground.
    """
    padded = np.pad(np.asarray(foreground, bool), 1)
    return ndimage.distance_transform_edt(padded, sampling=spacing)[1:-1, 1:-1, 1:-1]


def signed_distance_um(foreground: np.ndarray, spacing) -> np.ndarray:
    """Signed Euclidean distance to the organism surface in µm: positive inside, negative outside (float32).

    Raises
    ------
    InputError
        If the foreground is empty or fills the whole volume (then there is no surface).
    """
    foreground = np.asarray(foreground, bool)
    if foreground.all() or not foreground.any():
        raise InputError("the organism foreground must be neither empty nor the whole volume to have a surface")
    inside = ndimage.distance_transform_edt(foreground, sampling=spacing)
    outside = ndimage.distance_transform_edt(~foreground, sampling=spacing)
    return (inside - outside).astype(np.float32)


def centroid_table(labels: np.ndarray, spacing) -> list[dict]:
    """Per instance: id, centroid z, y, x (µm), volume (µm³) and equivalent-sphere radius (µm)."""
    rows = []
    for region in regionprops(np.asarray(labels).astype(np.int64, copy=False), spacing=tuple(spacing)):
        volume = float(region.area)  # with spacing, skimage gives µm³ and µm centroids
        rows.append({
            "id": int(region.label),
            "z_um": float(region.centroid[0]), "y_um": float(region.centroid[1]), "x_um": float(region.centroid[2]),
            "volume_um3": volume, "equivalent_radius_um": float((3 * volume / (4 * np.pi)) ** (1 / 3)),
        })
    return rows
