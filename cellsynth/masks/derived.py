"""Maps derived from an instance label volume."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

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
