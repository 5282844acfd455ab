"""Input checks shared by every door: spacing, volumes, images, labels, output paths, memory.

Each check raises :class:`~cellsynth.errors.InputError` with one line that names the problem and
what is accepted, before any work is done or memory allocated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.errors import InputError

Spacing = tuple[float, float, float]

def check_spacing(spacing: Sequence[float] | None, what: str = "spacing") -> Spacing:
    """Validate a voxel spacing.

    Parameters
    ----------
    spacing : sequence of 3 float
        Voxel size ``(z, y, x)`` in µm.
    what : str
        Name used in the error message.

    Returns
    -------
    tuple of 3 float
        The spacing as plain floats.

    Raises
    ------
    InputError
        Unless ``spacing`` is three finite numbers > 0.
    """
    try:
        values = tuple(float(v) for v in spacing)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InputError(
            f"{what} must be three numbers (z, y, x) in µm; got {spacing!r}"
        ) from None
    if len(values) != 3 or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{what} must be three finite numbers > 0 (z, y, x) in µm; got {spacing!r}")
    return values  # type: ignore[return-value]


def as_volume(array: np.ndarray, what: str = "volume") -> np.ndarray:
    """Return ``array`` as a ZYX volume: a 2D ``YX`` image gains a leading Z axis of length 1.

    Raises
    ------
    InputError
        If the array is not 2D or 3D, or has an empty axis.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise InputError(
            f"{what} must be a 2D (YX) or 3D (ZYX) array; got {array.ndim}D with shape {array.shape}"
        )
    if 0 in array.shape:
        raise InputError(f"{what} has an empty axis: shape {array.shape}")
    return array


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate an intensity image and return it as a ZYX volume.

    Accepted: uint8, uint16 (kept as they are) or any floating dtype (cast to float32) with only
    finite values.

    Raises
    ------
    InputError
        On a wrong number of dimensions, a non-numeric or unsupported dtype, NaN or inf.
    """
    image = as_volume(image, what)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
            raise InputError(f"{what} contains {bad} NaN or inf values; only finite intensities are accepted")
        return image.astype(np.float32, copy=False)
    if image.dtype in (np.uint8, np.uint16):
        return image
    raise InputError(f"{what} has dtype {image.dtype}; accepted: uint8, uint16 or floating point")


def check_labels(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    """Validate an instance label volume and return it as uint16 or uint32 ZYX.

    0 is background, every other value one instance. The result is uint16 when the largest id is
    below 65 536, else uint32; ids are kept as they are.

    Raises
    ------
    InputError
        On a non-integer dtype (floats, bool), negative values or ids beyond uint32.
    """
    labels = as_volume(labels, what)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(
            f"{what} must hold integer instance ids (0 = background); got dtype {labels.dtype}"
            + (" (a binary mask? number its objects, e.g. skimage.measure.label)" if labels.dtype == bool else "")
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise InputError(f"{what} contain negative values (min {low}); ids must be >= 0, 0 = background")
    if high > np.iinfo(np.uint32).max:
        raise InputError(f"{what} max id {high} does not fit uint32")
    return labels.astype(np.uint16 if high < 2**16 else np.uint32, copy=False)


def check_pair(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (image, labels) pair: each on its own, and equal ZYX shapes."""
    image, labels = check_image(image), check_labels(labels)
    if image.shape != labels.shape:
        raise InputError(f"image shape {image.shape} and labels shape {labels.shape} differ; they must be equal")
    return image, labels


def check_output(path: str | os.PathLike, what: str, *, folder: bool, if_not_empty: str = "choose a new folder"
                 ) -> Path:
    """``path`` as a Path if ``what`` can be written there, checked before any work is done.

    Refuses, in one line each: a link to nothing, a missing parent folder, a parent that cannot be
    written (read-only file system, permissions), a folder where a file is wanted, and for
    ``folder=True`` a file, or a folder that is not empty (``if_not_empty`` says what to do).

    Examples
    --------
    >>> check_output("no-such-folder/out", "dataset", folder=True)
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: cannot write dataset 'no-such-folder/out': folder 'no-such-folder' does not exist
    """
    path = Path(path)
    start = f"cannot write {what} '{path}'"
    if path.is_symlink() and not path.exists():
        raise InputError(f"{start}: it is a link to '{os.readlink(path)}', which does not exist")
    if not path.parent.is_dir():
        raise InputError(f"{start}: folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{start}: folder '{path.parent}' is not writable (read-only or no permission)")
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{start}: it is a file, not a folder")
    if folder and path.is_dir() and any(path.iterdir()):
        raise InputError(f"{start}: folder exists and is not empty; {if_not_empty}")
    if not folder and path.is_dir():
        raise InputError(f"{start}: it is an existing folder; give a file name")
    return path


def check_memory(needed_bytes: float, what: str, advice: str) -> None:
    """Refuse, in one line with the estimate, work whose memory estimate exceeds what is free.

    Called before allocating, so an absurd size ends in a sentence instead of a MemoryError, a
    kernel kill or a swap storm.

    Examples
    --------
    >>> check_memory(2**60, "a 1 EiB volume", "make it smaller")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: a 1 EiB volume needs about 1073741824.0 GiB of memory, ... make it smaller
    """
    import psutil

    available = psutil.virtual_memory().available
    if needed_bytes > available:
        raise InputError(f"{what} needs about {needed_bytes / 2**30:.1f} GiB of memory, "
                         f"{available / 2**30:.1f} GiB are free; {advice}")
