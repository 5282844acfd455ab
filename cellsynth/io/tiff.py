"""ImageJ hyperstacks and OME-TIFF with their voxel spacing in µm (see :mod:`cellsynth.io`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import tifffile

from cellsynth.checks import Spacing
from cellsynth.errors import FileFormatError

#: dtypes ImageJ hyperstacks can hold; anything else goes to OME-TIFF.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
TIFF_COMPRESSIONS = (None, "zlib")

_UNIT_TO_UM = {
    "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
}


def write_tiff(path: Path, data: np.ndarray, spacing: Spacing, *, ome: bool, compression: str | None) -> None:
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


def unit_factor(unit: object) -> float | None:
    """µm per ``unit`` (a TIFF or OME length unit: µm, um, micron, nm, mm, …); None when unknown."""
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


def read_tiff(path: Path) -> tuple[np.ndarray, Spacing | None]:
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
    factor = unit_factor(meta.get("unit"))
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
        factor = unit_factor(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if size is None or factor is None:
            if axis == "Z" and int(pixels.get("SizeZ", 1)) == 1:
                values.append(1.0)
                continue
            return None
        values.append(float(size) * factor)
    return tuple(values)  # type: ignore[return-value]
