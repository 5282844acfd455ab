"""OME-Zarr (NGFF 0.4, zarr format 2) images and label images with their voxel spacing in µm."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr

from cellsynth.checks import Spacing, as_volume, check_spacing
from cellsynth.errors import FileFormatError, InputError
from cellsynth.io.atomic import atomic_path
from cellsynth.io.tiff import unit_factor

_NGFF_VERSION = "0.4"
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
        "metadata": {"description": f"each level halves y and x: {method}", "method": "cellsynth.io.omezarr._pyramid"},
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


def read_ome_zarr(path: Path) -> tuple[np.ndarray, Spacing | None]:
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
    factors = [unit_factor(units[i]) if units and units[i] else 1.0 for i in spatial]
    if scale is None or None in factors:
        return data, None
    values = [float(scale[i]) * f for i, f in zip(spatial, factors, strict=True)]
    return data, tuple(([1.0] if len(values) == 2 else []) + values)  # type: ignore[return-value]


def label_names(path: str | os.PathLike) -> list[str]:
    """The names of an OME-Zarr store's label images (``labels/<name>``), in the order it lists them."""
    try:
        group = zarr.open_group(Path(path) / "labels", mode="r")
    except Exception:  # no labels group
        return []
    return [str(name) for name in group.attrs.get("labels", [])]
