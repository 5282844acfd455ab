"""One door for volume files: which format a path is, which files a folder holds, and
:func:`read_volume` / :func:`write_volume` over every format (``.npy`` read here)."""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import Spacing, as_volume, check_output, check_regular_file, check_spacing
from cellsynth.errors import FileFormatError, InputError
from cellsynth.io import tiff
from cellsynth.io.atomic import atomic_path
from cellsynth.io.omezarr import read_ome_zarr, write_ome_zarr
from cellsynth.io.tiff import TIFF_COMPRESSIONS

#: dtypes a volume file may hold.
VOLUME_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.float32))

#: The file names a volume may end in, longest first (:func:`volume_stem` strips ``.ome.tif`` whole);
#: what a folder given for import or training is searched for.
VOLUME_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".npy")


def volume_stem(path: Path) -> str:
    """The file name without its volume suffix: ``t001.ome.tif`` → ``t001``.

    Parameters
    ----------
    path : Path

    Returns
    -------
    str

    Examples
    --------
    >>> volume_stem(Path("t001.ome.tif"))
    't001'
    """
    name = path.name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def volume_files(paths: Sequence[str | os.PathLike], what: str) -> tuple[list[Path], bool]:
    """The volume files that ``paths`` name, and whether they came from listing one folder.

    One folder (not a ``.zarr`` store) gives its ``.tif``, ``.tiff``, ``.npy`` and ``.zarr``
    entries, sorted; otherwise every entry is a file or a glob pattern (``data/*.tif``, ``~``
    expanded), which must exist or match something.

    Parameters
    ----------
    paths : sequence of path-like
        Files, glob patterns, or one folder.
    what : str
        What the files are, for the error line (``--images``).

    Returns
    -------
    files : list of Path
    from_folder : bool
        Whether they came from listing one folder.

    Examples
    --------
    >>> volume_files(["no/such/*.tif"], "training image")
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: training image 'no/such/*.tif' matches no file
    """
    if len(paths) == 1 and Path(paths[0]).is_dir() and Path(paths[0]).suffix.lower() != ".zarr":
        files = sorted(p for p in Path(paths[0]).iterdir() if p.name.lower().endswith(VOLUME_SUFFIXES))
        if not files:
            raise InputError(f"{what} folder '{paths[0]}' holds no .tif, .tiff, .npy or .zarr file")
        return files, True
    files: list[Path] = []
    for entry in paths:
        path = Path(os.path.expanduser(entry))
        if path.exists():
            files.append(path)
            continue
        matches = sorted(glob.glob(str(path)))
        if not matches:
            raise InputError(f"{what} '{entry}' matches no file" if glob.has_magic(str(entry))
                             else f"{what} file '{entry}' does not exist")
        files += [Path(m) for m in matches]
    return files, False


def volume_format(path: str | os.PathLike) -> str:
    """Name the format of ``path`` from its suffix: ``'tiff'``, ``'ome-tiff'``, ``'ome-zarr'`` or ``'npy'``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    str
        ``tiff``, ``ome-tiff``, ``ome-zarr`` or ``npy``.

    Raises
    ------
    FileFormatError
        For any other suffix.
    """
    name = Path(path).name.lower()
    if any(part.lower().endswith(".zarr") for part in Path(path).parts):
        return "ome-zarr"  # a store, or a group inside one such as x.ome.zarr/labels/cells
    if name.endswith((".ome.tif", ".ome.tiff")):
        return "ome-tiff"
    if name.endswith((".tif", ".tiff")):
        return "tiff"
    if name.endswith(".npy"):
        return "npy"
    raise FileFormatError(
        f"'{path}': unsupported file type; accepted: .tif, .tiff, .ome.tif, .ome.zarr, .zarr, .npy (read only)"
    )


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    spacing: Sequence[float],
    *,
    compression: str | None = None,
) -> Path:
    """Write a ZYX volume with its spacing, atomically.

    Parameters
    ----------
    path : path-like
        Target file; its suffix picks the format (see the module docstring).
    data : ndarray
        2D (YX) or 3D (ZYX) array of dtype uint8, uint16, uint32 or float32.
    spacing : sequence of 3 float
        Voxel size ``(z, y, x)`` in µm.
    compression : {None, 'zlib'}
        TIFF compression. ImageJ reads compressed TIFF only through Bio-Formats. Ignored for
        OME-Zarr, which always uses the zarr default codec.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "vol.tif"
    >>> _ = write_volume(out, np.zeros((2, 4, 4), np.uint16), (0.5, 0.1, 0.1))
    >>> read_volume(out)[1]
    (0.5, 0.1, 0.1)
    """
    fmt = volume_format(path)
    data = as_volume(data, "volume")
    spacing = check_spacing(spacing)
    if data.dtype not in VOLUME_DTYPES:
        raise InputError(f"cannot write dtype {data.dtype}; accepted: {', '.join(d.name for d in VOLUME_DTYPES)}")
    if compression not in TIFF_COMPRESSIONS:
        raise InputError(f"unknown TIFF compression {compression!r}; accepted: none, zlib")
    path = Path(path)
    if fmt != "ome-zarr" or not path.is_dir():
        check_output(path, "volume", folder=False, overwrite=True)  # callers check the user's own --out
    if fmt == "npy":
        raise FileFormatError(f"cannot write '{path}': .npy has no place for spacing; use .tif or .ome.zarr")
    if fmt == "ome-zarr":
        return write_ome_zarr(path, data, spacing)
    with atomic_path(path) as tmp:
        tiff.write_tiff(tmp, data, spacing, ome=fmt == "ome-tiff", compression=compression)
    return path


#: What a user who reads a file without a spacing is told to do (callers with another door say theirs).
SPACING_HINT = "pass spacing=(z, y, x) in µm (CLI: --spacing Z Y X)"


def read_volume(path: str | os.PathLike, spacing: Sequence[float] | None = None, *,
                spacing_hint: str = SPACING_HINT, min_planes: int = 1) -> tuple[np.ndarray, Spacing]:
    """Read a ZYX volume and its spacing.

    Parameters
    ----------
    path : path-like
        A TIFF, OME-TIFF, OME-Zarr group (the image, or a label group such as
        ``sample.ome.zarr/labels/cells``) or ``.npy`` file.
    spacing : sequence of 3 float, optional
        Voxel size ``(z, y, x)`` in µm. Overrides what the file says; required when the file
        carries none (``.npy`` without sidecar, plain TIFF).
    spacing_hint : str
        How the error for a file without spacing tells the user to give one.
    min_planes : int
        The fewest Z planes accepted (3 where µm along z are measured); checked before the spacing.

    Returns
    -------
    data : ndarray
        ZYX array, dtype as stored; a 2D image comes back with Z = 1.
    spacing : tuple of 3 float
        Voxel size in µm.

    Raises
    ------
    FileFormatError
        If the file is missing, unreadable, corrupt, not single-channel, or carries no spacing and
        none was given.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "nuclei.tif"
    >>> _ = write_volume(path, np.ones((4, 8, 8), np.uint16), (0.29, 0.26, 0.26))
    >>> image, spacing = read_volume(path)
    >>> image.shape, image.dtype, spacing
    ((4, 8, 8), dtype('uint16'), (0.29, 0.26, 0.26))
    """
    fmt = volume_format(path)
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"cannot read '{path}': no such file")
    if fmt != "ome-zarr":
        check_regular_file(path, "volume")
    reader = {"tiff": tiff.read_tiff, "ome-tiff": tiff.read_tiff, "ome-zarr": read_ome_zarr, "npy": read_npy}[fmt]
    data, found = reader(path)
    data = as_volume(data, f"'{path}'")
    if data.shape[0] < min_planes:
        kind = "a 2D image" if data.shape[0] == 1 else "a thin stack"
        raise FileFormatError(f"'{path}' has {data.shape[0]} plane(s) ({kind}); this needs a 3D stack of at least "
                              f"{min_planes} planes")
    if spacing is not None:
        found = check_spacing(spacing)
    if found is None:
        raise FileFormatError(f"'{path}' carries no voxel spacing; {spacing_hint}")
    return data, found


def read_npy(path: Path) -> tuple[np.ndarray, Spacing | None]:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise FileFormatError(f"cannot read '{path}': not a readable .npy array ({err})") from None
    sidecar = path.with_suffix(".json")
    if not sidecar.exists():
        return data, None
    check_regular_file(sidecar, "spacing sidecar")
    try:
        spacing = json.loads(sidecar.read_text())["spacing"]
    except (ValueError, KeyError, TypeError) as err:
        raise FileFormatError(f"'{sidecar}' must be JSON with a 'spacing' list [z, y, x] in µm ({err})") from None
    return data, check_spacing(spacing, f"'spacing' in {sidecar}")
