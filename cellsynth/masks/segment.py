"""Instances from an image without training: smoothing, Otsu's threshold and a distance-transform watershed.

Every parameter is a length or volume in µm, with defaults a user would pick for nuclei a few µm
across (not tuned on any test set):

1. Gaussian smoothing with σ = ``smoothing_um`` (per axis in voxels from the spacing);
2. Otsu's threshold of the smoothed image, holes of each object filled (dark nucleoli);
3. the Euclidean distance to the background in µm; its local maxima within a box of half-width
   ``min_seed_distance_um`` (per axis) are the seeds, one per plateau; an object with no seed of its
   own gets one;
4. a watershed of the negated distance from those seeds inside the mask; objects smaller than
   ``min_volume_um3`` are dropped and the rest numbered 1…n.

:func:`cellsynth.evaluate.baseline.baseline` scores it as the figure a trained segmenter must beat;
:func:`cellsynth.synthesis.calibrate.calibrate` uses it to find the objects of unlabelled images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from cellsynth.checks import MAX_LENGTH_UM, check_image, check_range, check_spacing
from cellsynth.errors import InputError

SMOOTHING_UM = 1.0
MIN_SEED_DISTANCE_UM = 5.0
MIN_VOLUME_UM3 = 50.0


def relabel_sequential_min_size(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """``labels`` without objects smaller than ``min_voxels``, renumbered 1…n (uint16, or uint32 if needed)."""
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(1, min_voxels)
    keep[0] = False
    numbering = np.zeros(len(sizes), np.int64)
    numbering[keep] = np.arange(1, keep.sum() + 1)
    labels = numbering[labels]
    return labels.astype(np.uint32 if labels.max() >= 2**16 else np.uint16)


def distance_watershed(mask: np.ndarray, spacing: Sequence[float], min_seed_distance_um: float,
                       min_volume_um3: float) -> np.ndarray:
    """Instances of a binary mask: seeds at the maxima of its distance map, a watershed from them.

    Parameters
    ----------
    mask : ndarray of bool
        ZYX foreground.
    spacing : 3 floats
        Voxel size in µm.
    min_seed_distance_um : float
        Seeds are the maxima of the distance to the background (µm) over a box of this half-width.
    min_volume_um3 : float
        Smaller objects are dropped.

    Returns
    -------
    ndarray of uint16 or uint32
        Instances numbered 1…n.

    Examples
    --------
    >>> mask = np.zeros((9, 9, 30), bool); mask[2:7, 2:7, 2:9] = mask[2:7, 2:7, 20:28] = True
    >>> int(distance_watershed(mask, (1, 1, 1), 3.0, 10.0).max())
    2
    """
    spacing = check_spacing(spacing)
    if not min_seed_distance_um > 0 or not min_volume_um3 >= 0:
        raise InputError(f"the least seed distance must be > 0 µm and the least volume >= 0 µm³; "
                         f"got {min_seed_distance_um!r} and {min_volume_um3!r}")
    mask = np.asarray(mask, bool)
    distance = ndi.distance_transform_edt(mask, sampling=spacing)
    window = [2 * int(round(min_seed_distance_um / s)) + 1 for s in spacing]
    peaks = mask & (distance == ndi.maximum_filter(distance, size=window))
    seeds, _ = ndi.label(peaks)
    return seeded_watershed(-distance, seeds, mask, spacing, min_volume_um3)


def seeded_watershed(surface: np.ndarray, seeds: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
                     min_volume_um3: float) -> np.ndarray:
    """A watershed of ``surface`` from ``seeds`` inside ``mask``; small objects dropped, the rest numbered 1…n.

    A connected part of the mask without a seed becomes one object of its own instead of being lost.

    Parameters
    ----------
    surface : ndarray
        Flooded from low to high.
    seeds : ndarray
        Labelled markers.
    mask : ndarray of bool
        Where objects may grow.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    min_volume_um3 : float
        Smaller objects are dropped.

    Returns
    -------
    ndarray
        uint16 (uint32 beyond 65 535 objects) instance labels.

    Examples
    --------
    >>> mask = np.zeros((4, 12, 20), bool); mask[:, 2:10, 2:18] = True
    >>> seeds = np.zeros(mask.shape, np.int32); seeds[2, 6, 5] = 1; seeds[2, 6, 14] = 2
    >>> labels = seeded_watershed(np.zeros(mask.shape), seeds, mask, (1, 1, 1), min_volume_um3=10)
    >>> np.unique(labels).tolist(), int((labels == 1).sum()) == int((labels == 2).sum())
    ([0, 1, 2], True)
    """
    seeds = np.where(mask, seeds, 0).astype(np.int64)
    objects, n_objects = ndi.label(mask)
    seeded = np.zeros(n_objects + 1, bool)
    seeded[objects[seeds > 0]] = True
    orphans = ~seeded[objects] & mask
    seeds[orphans] = objects[orphans] + seeds.max()
    labels = watershed(surface, seeds, mask=mask)
    return relabel_sequential_min_size(labels, int(np.ceil(min_volume_um3 / np.prod(spacing))))


def check_segmentation_settings(smoothing_um: float, min_seed_distance_um: float, min_volume_um3: float) -> None:
    """Refuse, in one line, a smoothing, seed distance or minimum volume that is not a finite length >= 0
    (at most a metre; a volume at most a cubic metre)."""
    check_range(smoothing_um, "smoothing (µm)", 0, MAX_LENGTH_UM)
    check_range(min_seed_distance_um, "minimum seed distance (µm)", 0, MAX_LENGTH_UM)
    check_range(min_volume_um3, "minimum volume (µm³)", 0, MAX_LENGTH_UM**3)


def classical_segmentation(image: np.ndarray, spacing: Sequence[float], *, smoothing_um: float = SMOOTHING_UM,
                           min_seed_distance_um: float = MIN_SEED_DISTANCE_UM,
                           min_volume_um3: float = MIN_VOLUME_UM3) -> np.ndarray:
    """Instances of a fluorescence image by smoothing, Otsu and a distance watershed (module doc).

    Parameters
    ----------
    image : ndarray
        ZYX intensities (any units; objects bright).
    spacing : 3 floats
        Voxel size in µm.
    smoothing_um : float
        Gaussian σ in µm (0: none).
    min_seed_distance_um, min_volume_um3 : float
        See :func:`distance_watershed`.

    Returns
    -------
    ndarray of uint16 or uint32
        Instance labels of the image's shape, numbered 1…n.

    Examples
    --------
    >>> image = np.zeros((12, 40, 40), np.float32); image[3:9, 5:15, 5:15] = image[3:9, 25:35, 22:32] = 1
    >>> labels = classical_segmentation(image, (1, 1, 1), smoothing_um=0.5)
    >>> int(labels.max())
    2
    """
    check_segmentation_settings(smoothing_um, min_seed_distance_um, min_volume_um3)
    image = check_image(image).astype(np.float32, copy=False)
    spacing = check_spacing(spacing)
    smooth = ndi.gaussian_filter(image, [smoothing_um / s for s in spacing]) if smoothing_um > 0 else image
    if smooth.min() == smooth.max():
        raise InputError("the image is constant: there is nothing to threshold")
    mask = smooth > threshold_otsu(smooth)
    mask = ndi.binary_fill_holes(mask)
    return distance_watershed(mask, spacing, min_seed_distance_um, min_volume_um3)


def equivalent_radii(labels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Radius (µm) of the sphere with each object's volume, in id order.

    Examples
    --------
    >>> labels = np.zeros((5, 5, 5), np.uint16); labels[1:4, 1:4, 1:4] = 2
    >>> equivalent_radii(labels, (1, 1, 1)).round(3)
    array([1.861])
    """
    counts = np.bincount(np.asarray(labels).ravel())[1:]
    volumes = counts[counts > 0] * float(np.prod(check_spacing(spacing)))
    return (3 * volumes / (4 * np.pi)) ** (1 / 3)


def segment_membranes(image: np.ndarray, spacing: Sequence[float], *, smoothing_um: float = 0.5,
                      min_seed_distance_um: float = 2.0, min_volume_um3: float = 20.0,
                      max_cell_radius_um: float = 8.0) -> np.ndarray:
    """Cells of a membrane-stained image: a watershed of the smoothed membrane signal from seeds deep inside cells.

    1. Gaussian smoothing with σ = ``smoothing_um``; Otsu's threshold of it marks the membranes;
    2. the specimen is every voxel within ``max_cell_radius_um`` of a membrane (farther is the dark
       space around the organism);
    3. seeds are the maxima of the distance (µm) to the nearest membrane over a box of half-width
       ``min_seed_distance_um``, at least 0.5 µm from a membrane; a watershed of the smoothed image
       grows them up to the membranes; cells smaller than ``min_volume_um3`` are dropped.

    Parameters
    ----------
    image : ndarray
        ZYX intensities, membranes bright.
    spacing : 3 floats
        Voxel size in µm.
    smoothing_um, min_seed_distance_um, min_volume_um3, max_cell_radius_um : float
        µm, µm, µm³ and µm.

    Returns
    -------
    ndarray of uint16 or uint32
        Cell labels numbered 1…n, membranes included in the cells on either side.

    Examples
    --------
    >>> image = np.zeros((10, 31, 31), np.float32)
    >>> image[:, [0, 15, 30]] = image[:, :, [0, 15, 30]] = 1  # four cells in a grid of walls
    >>> int(segment_membranes(image, (1, 1, 1), min_seed_distance_um=4).max())
    4
    """
    image = check_image(image).astype(np.float32, copy=False)
    spacing = check_spacing(spacing)
    if not smoothing_um > 0:
        raise InputError(f"membrane smoothing must be > 0 µm; got {smoothing_um!r}")
    smooth = ndi.gaussian_filter(image, [smoothing_um / s for s in spacing])
    if smooth.min() == smooth.max():
        raise InputError("the image is constant: there is nothing to threshold")
    walls = smooth > threshold_otsu(smooth)
    distance = ndi.distance_transform_edt(~walls, sampling=spacing)
    specimen = distance <= max_cell_radius_um
    window = [2 * int(round(min_seed_distance_um / s)) + 1 for s in spacing]
    peaks = specimen & (distance >= 0.5) & (distance == ndi.maximum_filter(distance, size=window))
    seeds, _ = ndi.label(peaks)
    return seeded_watershed(smooth, seeds, specimen, spacing, min_volume_um3)
