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
partial file (:mod:`.atomic`).

One module per format (:mod:`.tiff`, :mod:`.omezarr`; ``.npy`` in :mod:`.volumes`), and
:mod:`.volumes` the door over all of them.
"""

from cellsynth.io.atomic import (
    PARTIAL_SUFFIX,
    atomic_path,
    jsonable,
    remove_partials,
    write_bytes_atomic,
    write_json_atomic,
)
from cellsynth.io.omezarr import write_ome_zarr
from cellsynth.io.tiff import IMAGEJ_DTYPES, TIFF_COMPRESSIONS
from cellsynth.io.volumes import (
    SPACING_HINT,
    VOLUME_DTYPES,
    VOLUME_SUFFIXES,
    read_volume,
    volume_files,
    volume_format,
    volume_stem,
    write_volume,
)

__all__ = [
    "IMAGEJ_DTYPES",
    "PARTIAL_SUFFIX",
    "SPACING_HINT",
    "TIFF_COMPRESSIONS",
    "VOLUME_DTYPES",
    "VOLUME_SUFFIXES",
    "atomic_path",
    "jsonable",
    "read_volume",
    "remove_partials",
    "volume_files",
    "volume_format",
    "volume_stem",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_ome_zarr",
    "write_volume",
]
