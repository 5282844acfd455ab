"""Read and write ZYX volumes together with their voxel spacing in µm.

Formats
-------
``.tif`` / ``.tiff``
    ImageJ hyperstack (axes ``ZYX``, ``spacing`` = z step, ``unit='um'``, X/Y resolution tags), so
    Fiji shows µm. ImageJ TIFF holds only uint8, uint16 and float32: a uint32 volume (labels with
    65 536 or more instances) is written as OME-TIFF content under the same name instead, with
    ``PhysicalSize{X,Y,Z}`` in µm; Fiji opens it through Bio-Formats.
``.ome.tif`` / ``.ome.tiff``
    Always OME-TIFF.
``.ome.zarr`` / ``.zarr``
    OME-Zarr (NGFF 0.4, zarr format 2): the image at ``/0`` with a ``scale`` coordinate
    transformation in µm, label images under ``labels/<name>/0``. Readable by ome-zarr-py and napari.
``.npy``
    Read only (it has no place for spacing): spacing comes from ``spacing=`` or a sidecar
    ``<stem>.json`` holding ``{"spacing": [z, y, x]}``.

A 2D image is a volume with Z = 1 everywhere in cellsynth. Every write goes to a temporary name in
the target folder and is moved into place with :func:`os.replace`, so a reader never sees a
partial file.
"""

from __future__ import annotations

import colorsys
import contextlib
import glob
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile
import zarr

from cellsynth.checks import Spacing, as_volume, check_output, check_regular_file, check_spacing
from cellsynth.errors import FileFormatError, InputError

#: dtypes a volume file may hold.
VOLUME_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.float32))
#: dtypes ImageJ hyperstacks can hold; anything else goes to OME-TIFF.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
TIFF_COMPRESSIONS = (None, "zlib")
PARTIAL_SUFFIX = ".partial"

_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
}
_NGFF_VERSION = "0.4"


# ----------------------------------------------------------------------------- atomic files


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; on success move it onto ``final``.

    The temporary name is hidden and ends in ``.partial``, so globs such as ``*.tif`` never see it
    and :func:`remove_partials` can sweep what a killed process left behind. Works for files and
    folders (a zarr store). On any exception the temporary is removed and ``final`` is untouched.
    Temporaries of ``final`` that a killed writer left (SIGKILL runs no cleanup) are removed first.
    """
    final = Path(final)
    for stale in final.parent.glob(f".{glob.escape(final.name)}.*{PARTIAL_SUFFIX}"):
        _remove(stale)
    tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}"
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir() and any(final.iterdir()):
            # os.replace cannot replace a non-empty folder: move the old one aside first.
            old = final.parent / f".{final.name}.{secrets.token_hex(4)}.old{PARTIAL_SUFFIX}"
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def remove_partials(folder: str | os.PathLike) -> int:
    """Delete the ``*.partial`` temporaries an interrupted writer left below ``folder``.

    Returns
    -------
    int
        How many were removed.
    """
    found = sorted(Path(folder).rglob(f".*{PARTIAL_SUFFIX}"), key=lambda p: -len(p.parts))
    for path in found:
        _remove(path)
    return len(found)


# ----------------------------------------------------------------------------- dispatch


#: The file names a volume may end in, longest first (:func:`volume_stem` strips ``.ome.tif`` whole);
#: what a folder given for import or training is searched for.
VOLUME_SUFFIXES = (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".npy")


def volume_stem(path: Path) -> str:
    """The file name without its volume suffix: ``t001.ome.tif`` → ``t001``.

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
        _write_tiff(tmp, data, spacing, ome=fmt == "ome-tiff", compression=compression)
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
    >>> image, spacing = read_volume("nuclei.tif")  # doctest: +SKIP
    >>> spacing  # doctest: +SKIP
    (0.29, 0.26, 0.26)
    """
    fmt = volume_format(path)
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"cannot read '{path}': no such file")
    if fmt != "ome-zarr":
        check_regular_file(path, "volume")
    reader = {"tiff": _read_tiff, "ome-tiff": _read_tiff, "ome-zarr": _read_ome_zarr, "npy": _read_npy}[fmt]
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


# ----------------------------------------------------------------------------- TIFF


def _write_tiff(path: Path, data: np.ndarray, spacing: Spacing, *, ome: bool, compression: str | None) -> None:
    z, y, x = spacing
    # zlib level 1 with horizontal differencing writes ~10x faster than the default level 6 and
    # compresses better (benchmarks/bench_io.py); the predictor is kept to integers, which every reader handles.
    codec = {} if compression is None else {
        "compression": compression, "compressionargs": {"level": 1}, "predictor": data.dtype.kind == "u"}
    if ome or data.dtype not in IMAGEJ_DTYPES:
        metadata = {
            "axes": "ZYX",
            "PhysicalSizeZ": z, "PhysicalSizeZUnit": "µm",
            "PhysicalSizeY": y, "PhysicalSizeYUnit": "µm",
            "PhysicalSizeX": x, "PhysicalSizeXUnit": "µm",
        }
        tifffile.imwrite(path, data, ome=True, metadata=metadata, photometric="minisblack", **codec,
                         resolution=(1 / x, 1 / y), resolutionunit="MICROMETER")
    else:
        tifffile.imwrite(path, data, imagej=True, photometric="minisblack", **codec,
                         resolution=(1 / x, 1 / y),
                         metadata={"axes": "ZYX", "spacing": z, "unit": "um"})


def _unit_factor(unit: object) -> float | None:
    return _UNIT_TO_UM.get(str(unit).strip().lower()) if unit is not None else None


def _tiff_axes_to_zyx(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Squeeze length-1 non-spatial axes; refuse real channels or time points."""
    keep = []
    for axis, size in zip(axes, data.shape, strict=True):
        if axis in "YX":
            keep.append(axis)
        elif axis in "ZQI":  # ImageJ/tifffile name unlabelled stacks Q or I
            keep.append("Z")
        elif size != 1:
            raise FileFormatError(
                f"'{path}' has axes {axes} with shape {data.shape}; cellsynth reads single-channel "
                "ZYX or YX volumes (split channels and time points first)"
            )
    data = data.reshape([s for a, s in zip(axes, data.shape, strict=True) if a in "ZQIYX"])
    if keep.count("Z") > 1:
        raise FileFormatError(f"'{path}' has axes {axes}; expected at most one stack axis")
    return data


class _TiffComplaints(logging.Handler):
    """Collects what tifffile logs while reading: a truncated file is read as its first pages, with only a log line."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read_tiff(path: Path) -> tuple[np.ndarray, Spacing | None]:
    complaints = _TiffComplaints()
    logger = logging.getLogger("tifffile")
    logger.addHandler(complaints)
    try:
        return _read_tiff_checked(path, complaints)
    finally:
        logger.removeHandler(complaints)


def _read_tiff_checked(path: Path, complaints: _TiffComplaints) -> tuple[np.ndarray, Spacing | None]:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = _tiff_axes_to_zyx(series.asarray(), series.axes, path)
            if tif.is_ome:
                spacing = _ome_tiff_spacing(tif.ome_metadata)
            elif tif.is_imagej:
                spacing = _imagej_spacing(tif.pages[0], tif.imagej_metadata or {}, data.ndim)
            else:
                spacing = None
            broken = [m for m in complaints.messages if "corrupt" in m.lower() or "page offset" in m.lower()]
            if broken:
                raise FileFormatError(f"cannot read '{path}': the TIFF is truncated or corrupt "
                                      f"({broken[0].splitlines()[-1].strip()[:120]})")
    except FileFormatError:
        raise
    except Exception as err:  # tifffile raises many types on corrupt input
        raise FileFormatError(f"cannot read '{path}': not a readable TIFF ({type(err).__name__}: {err})") from None
    return data, spacing


def _rational(value: tuple[int, int]) -> float:
    # A spacing of 0.26 µm is stored as the resolution 50/13 px/µm: invert exactly.
    numerator, denominator = value
    return float(f"{denominator / numerator:.12g}")


def _imagej_spacing(page: tifffile.TiffPage, meta: Mapping, ndim: int) -> Spacing | None:
    factor = _unit_factor(meta.get("unit"))
    tags = page.tags
    if factor is None or "XResolution" not in tags or "YResolution" not in tags:
        return None
    x = _rational(tags["XResolution"].value) * factor
    y = _rational(tags["YResolution"].value) * factor
    if "spacing" in meta:
        z = float(meta["spacing"]) * factor
    elif ndim == 2:
        z = 1.0  # a single plane: ImageJ's default step, never used for geometry
    else:
        return None
    return z, y, x


def _ome_tiff_spacing(ome_xml: str | None) -> Spacing | None:
    if not ome_xml:
        return None
    pixels = tifffile.xml2dict(ome_xml)["OME"]["Image"]
    pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
    values = []
    for axis in "ZYX":
        size = pixels.get(f"PhysicalSize{axis}")
        factor = _unit_factor(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if size is None or factor is None:
            if axis == "Z" and int(pixels.get("SizeZ", 1)) == 1:
                values.append(1.0)
                continue
            return None
        values.append(float(size) * factor)
    return tuple(values)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- OME-Zarr


_CHUNKS = (64, 256, 256)


def _pyramid(data: np.ndarray, labels: bool) -> list[np.ndarray]:
    """Full resolution, then y and x halved per level until one chunk holds a level laterally.

    Images: 2×2 block means (edges replicated for odd sizes), cast back to the dtype. Labels:
    every second voxel, so ids are never mixed.
    """
    levels = [data]
    while max(levels[-1].shape[1:]) > _CHUNKS[1]:
        previous = levels[-1]
        if labels:
            levels.append(previous[:, ::2, ::2])
            continue
        pad = [(0, 0), (0, previous.shape[1] % 2), (0, previous.shape[2] % 2)]
        even = np.pad(previous.astype(np.float32), pad, mode="edge")
        z, y, x = even.shape
        mean = even.reshape(z, y // 2, 2, x // 2, 2).mean(axis=(2, 4))
        levels.append(np.round(mean).astype(data.dtype) if data.dtype.kind in "iu" else mean.astype(data.dtype))
    return levels


def _multiscales(spacing: Spacing, name: str, n_levels: int, labels: bool) -> dict:
    """NGFF 0.4 multiscales metadata with the strict schema's ``type`` and ``metadata``."""
    datasets = []
    for level in range(n_levels):
        factor = 2**level
        transforms = [{"type": "scale", "scale": [spacing[0], spacing[1] * factor, spacing[2] * factor]}]
        if level and not labels:  # a block mean's centre sits half a block in from the first voxel
            transforms.append({"type": "translation",
                               "translation": [0.0, (factor - 1) / 2 * spacing[1], (factor - 1) / 2 * spacing[2]]})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    method = "every second voxel in y and x" if labels else "2×2 block mean in y and x, edges replicated"
    return {
        "version": _NGFF_VERSION,
        "name": name,
        "type": "nearest" if labels else "mean",
        "metadata": {"description": f"each level halves y and x: {method}", "method": "cellsynth.io._pyramid"},
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": datasets,
    }


def _write_multiscale(group: zarr.Group, data: np.ndarray, spacing: Spacing, name: str, labels: bool) -> None:
    levels = _pyramid(data, labels)
    for index, level in enumerate(levels):
        group.create_array(str(index), data=level, chunks=tuple(min(s, c) for s, c in zip(level.shape, _CHUNKS,
                                                                                         strict=True)),
                           chunk_key_encoding={"name": "v2", "separator": "/"})
    group.attrs["multiscales"] = [_multiscales(spacing, name, len(levels), labels)]


def _omero(image: np.ndarray, name: str) -> dict:
    """Display settings: a grey channel windowed on the 0.1–99.9 % percentiles."""
    low, high = (float(v) for v in np.percentile(image, (0.1, 99.9)))
    lowest, highest = ((float(np.iinfo(image.dtype).min), float(np.iinfo(image.dtype).max))
                       if image.dtype.kind in "iu" else (float(image.min()), float(image.max())))
    return {"name": name, "version": _NGFF_VERSION,
            "channels": [{"label": name, "color": "FFFFFF", "active": True, "coefficient": 1.0, "family": "linear",
                          "inverted": False, "window": {"min": lowest, "max": highest, "start": low, "end": high}}],
            "rdefs": {"model": "greyscale", "defaultT": 0, "defaultZ": image.shape[0] // 2}}


def _image_label(labels: np.ndarray) -> dict:
    """``image-label`` with one colour and one property (its voxel count) per id, background clear."""
    ids, counts = np.unique(labels, return_counts=True)
    colors = []
    for value in ids.tolist():
        red, green, blue = colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, 0.65, 1.0)
        colors.append({"label-value": value,
                       "rgba": [0, 0, 0, 0] if value == 0 else [round(red * 255), round(green * 255),
                                                                 round(blue * 255), 255]})
    return {"version": _NGFF_VERSION, "source": {"image": "../../"}, "colors": colors,
            "properties": [{"label-value": v, "voxels": c} for v, c in zip(ids.tolist(), counts.tolist(),
                                                                            strict=True)]}


def write_ome_zarr(
    path: str | os.PathLike,
    image: np.ndarray,
    spacing: Sequence[float],
    labels: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write an image and optional label images to one OME-Zarr (NGFF 0.4) store, atomically.

    The metadata passes the NGFF 0.4 strict schemas: ``multiscales`` with ``type`` and
    ``metadata``, an ``omero`` display block (grey, 0.1–99.9 % window), and for each label image
    ``image-label`` with a colour and a property (voxel count) per id. A volume wider than one chunk
    (256 voxels in y or x) gets a pyramid: levels ``1, 2, ...`` halve y and x (block means for the
    image, every second voxel for labels) until a level fits one chunk laterally.

    Parameters
    ----------
    path : path-like
        Target ``*.ome.zarr`` folder.
    image : ndarray
        2D or 3D image (uint8, uint16, uint32 or float32), full resolution at ``/0``.
    spacing : sequence of 3 float
        Voxel size ``(z, y, x)`` in µm, written as the ``scale`` transformation.
    labels : mapping of str to ndarray, optional
        Label images of the image's shape, each stored at ``labels/<name>/0`` with
        ``image-label`` metadata.

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((4, 32, 32), np.uint16)
    >>> write_ome_zarr("sample.ome.zarr", image, (0.5, 0.2, 0.2), {"cells": image})  # doctest: +SKIP
    PosixPath('sample.ome.zarr')
    """
    image = as_volume(image, "image")
    spacing = check_spacing(spacing)
    labels = {name: as_volume(lab, f"labels '{name}'") for name, lab in (labels or {}).items()}
    for name, lab in labels.items():
        if lab.shape != image.shape:
            raise InputError(f"labels '{name}' shape {lab.shape} differs from image shape {image.shape}")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise InputError(f"label name {name!r} must be letters, digits, '_' or '-'")
    path = Path(path)
    with atomic_path(path) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        name = Path(path).name.removesuffix(".zarr").removesuffix(".ome")
        _write_multiscale(root, image, spacing, name, labels=False)
        root.attrs["omero"] = _omero(image, name)
        if labels:
            group = root.create_group("labels")
            group.attrs["labels"] = list(labels)
            for name, lab in labels.items():
                sub = group.create_group(name)
                _write_multiscale(sub, lab, spacing, name, labels=True)
                sub.attrs["image-label"] = _image_label(lab)
    return path


def _read_ome_zarr(path: Path) -> tuple[np.ndarray, Spacing | None]:
    try:
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if not multiscales:
            raise FileFormatError(f"'{path}' is a zarr group without OME 'multiscales' metadata")
        first = multiscales[0]
        dataset = first["datasets"][0]
        data = np.asarray(group[dataset["path"]][...])
        axes = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", ["z", "y", "x"][-data.ndim:])]
        units = [a.get("unit") if isinstance(a, dict) else None for a in first.get("axes", [])]
        scale = next((t["scale"] for t in dataset.get("coordinateTransformations", []) if t["type"] == "scale"), None)
    except FileFormatError:
        raise
    except Exception as err:
        raise FileFormatError(f"cannot read '{path}' as OME-Zarr ({type(err).__name__}: {err})") from None
    spatial = [i for i, a in enumerate(axes) if a in ("z", "y", "x")]
    if any(data.shape[i] != 1 for i in range(data.ndim) if i not in spatial):
        raise FileFormatError(
            f"'{path}' has axes {axes} with shape {data.shape}; cellsynth reads single-channel volumes"
        )
    data = data.reshape([data.shape[i] for i in spatial])
    # NGFF allows axes without a unit; then the scale is taken as µm. A unit we cannot convert
    # (e.g. "pixel") means no physical spacing.
    factors = [_unit_factor(units[i]) if units and units[i] else 1.0 for i in spatial]
    if scale is None or None in factors:
        return data, None
    values = [float(scale[i]) * f for i, f in zip(spatial, factors, strict=True)]
    return data, tuple(([1.0] if len(values) == 2 else []) + values)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- npy


def _read_npy(path: Path) -> tuple[np.ndarray, Spacing | None]:
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
