"""Input checks shared by every door: spacing, volumes, images, labels, output paths, memory.

Each check raises :class:`~cellsynth.errors.InputError` with one line that names the problem and
what is accepted, before any work is done or memory allocated.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.errors import InputError

Spacing = tuple[float, float, float]

#: Most voxels one volume may have (a config, a manifest): 2^34, about 17 billion; far beyond any machine's memory.
MAX_VOXELS = 2**34
#: Longest length or voxel size anything may state, in µm: one metre.
MAX_LENGTH_UM = 1e6

#: A plain file-name component: no separator, no control character, not hidden, not ``.`` or ``..``.
_PLAIN_NAME = re.compile(r"[^/\\\x00-\x1f.][^/\\\x00-\x1f]{0,199}")

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
    if len(values) != 3 or not all(math.isfinite(v) and 0 < v <= MAX_LENGTH_UM for v in values):
        raise InputError(f"{what} must be three finite numbers > 0 (z, y, x) in µm, at most a metre; got {spacing!r}")
    return values  # type: ignore[return-value]


def check_range(value: object, what: str, low: float, high: float) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]``; else one line saying so.

    Examples
    --------
    >>> check_range(float("inf"), "--min-volume-um3 (µm³)", 0, 1e18)
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: --min-volume-um3 (µm³) must be a finite number in [0, 1e+18]; got inf
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and low <= number <= high):
        raise InputError(f"{what} must be a finite number in [{low:g}, {high:g}]; got {value!r}")
    return number


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

    Accepted: uint8, uint16 (kept as they are), other integer types (int16 from some cameras: as
    uint16 when every value fits, else as float32, values kept) or any floating dtype (cast to
    float32) with only finite values.

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
    if np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize <= 4:
        fits = image.size and 0 <= int(image.min()) and int(image.max()) <= np.iinfo(np.uint16).max
        return image.astype(np.uint16 if fits else np.float32)
    raise InputError(f"{what} has dtype {image.dtype}; accepted: unsigned or signed integers up to 32 bits, or "
                     "floating point")


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


def check_file_name(name: object, what: str = "name") -> str:
    """``name`` if it is a plain file-name component (1-200 characters, no ``/`` or ``\\``, no control
    character, not starting with ``.``), so that it can become part of a path inside an output folder
    and never point outside it.

    Examples
    --------
    >>> check_file_name("sample_0001")
    'sample_0001'
    >>> check_file_name("../../evil", "sample name")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: sample name '../../evil' is not a plain file name (1-200 characters, ...)
    """
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        shown = repr(name) if not isinstance(name, str) else f"'{name[:80]}'"
        raise InputError(f"{what} {shown} is not a plain file name (1-200 characters, no / \\ or control "
                         "characters, not starting with '.')")
    return name


def check_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path if it is an existing regular file (or a link to one).

    A FIFO, a device such as ``/dev/zero``, a socket or a folder is refused in one line before
    it is opened: reading one would block forever or never end.

    Examples
    --------
    >>> check_regular_file("/dev/zero", "config")
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: config '/dev/zero' is a character device, not a regular file; give a file
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as err:
        why = "no such file" if isinstance(err, FileNotFoundError) else getattr(err, "strerror", None) or str(err)
        raise InputError(f"cannot read {what} '{path}': {why}") from None
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise InputError(f"{what} '{path}' is {kind}, not a regular file; give a file")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(path: str | os.PathLike, inputs: Sequence[str | os.PathLike], what: str) -> None:
    """Refuse an output ``path`` that is one of ``inputs`` (the same file after resolving links) or lies
    inside an input folder: writing it would destroy what is being read.

    Examples
    --------
    >>> check_not_input("data/ds/out", ["data/ds"], "export")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: cannot write export 'data/ds/out': it is inside the input folder 'data/ds'; ...
    """
    path = Path(path)
    for source in map(Path, inputs):
        if _same_file(path, source) or path.resolve() == source.resolve():
            raise InputError(f"cannot write {what} '{path}': it is also an input ('{source}'); choose another output")
        if not source.is_file() and path.resolve().is_relative_to(source.resolve()):
            raise InputError(f"cannot write {what} '{path}': it is inside the input folder '{source}'; write "
                             "outside it")


def check_output(path: str | os.PathLike, what: str, *, folder: bool, if_not_empty: str = "choose a new folder",
                 overwrite: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """``path`` as a Path if ``what`` can be written there, checked before any work is done.

    Refuses, in one line each: an empty path, a link to nothing, a missing parent folder, a parent
    that cannot be written (read-only file system, permissions), a folder where a file is wanted,
    one of ``inputs`` (the same file after resolving links, even with ``overwrite``), and for
    ``folder=True`` a file, or a folder that is not empty (``if_not_empty`` says what to do); for a
    file, an existing one unless ``overwrite`` (the command's ``--overwrite``).

    Examples
    --------
    >>> check_output("no-such-folder/out", "dataset", folder=True)
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: cannot write dataset 'no-such-folder/out': folder 'no-such-folder' does not exist
    """
    if not str(path).strip() or "\x00" in str(path):
        raise InputError(f"cannot write {what} {str(path)!r}: give a file or folder name")
    path = Path(path)
    start = f"cannot write {what} '{path}'"
    if path.is_symlink() and not path.exists():
        raise InputError(f"{start}: it is a link to '{os.readlink(path)}', which does not exist")
    if not path.parent.is_dir():
        raise InputError(f"{start}: folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{start}: folder '{path.parent}' is not writable (read-only or no permission)")
    check_not_input(path, inputs, what)
    if folder and path.exists() and not path.is_dir():
        raise InputError(f"{start}: it is a file, not a folder")
    if folder and path.is_dir() and any(path.iterdir()):
        raise InputError(f"{start}: folder exists and is not empty; {if_not_empty}")
    if not folder and path.is_dir() and not (overwrite and path.name.lower().endswith(".zarr")):
        raise InputError(f"{start}: it is an existing folder; "
                         + ("pass --overwrite to replace it" if path.name.lower().endswith(".zarr")
                            else "give a file name"))
    if not folder and path.exists() and not path.is_dir() and not overwrite:
        raise InputError(f"{start}: the file exists; pass --overwrite to replace it, or choose another name")
    return path



def check_output_folder(out: str | os.PathLike) -> Path:
    """``out`` as a Path if results can go there: absent or an empty folder, with a writable parent."""
    return check_output(out, "results", folder=True)

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
