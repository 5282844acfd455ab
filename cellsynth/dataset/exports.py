"""Export a dataset folder to the layouts segmentation tools read unchanged.

================  =====================================================================================
format            layout
================  =====================================================================================
``stardist``      ``images/NAME.tif`` + ``masks/NAME.tif`` (identical names)
``cellpose``      one folder; ``slices`` (default, Cellpose trains in 2D): ``NAME_zNNN.tif`` +
                  ``NAME_zNNN_masks.tif`` for every z-plane holding an object; ``stacks``: ``NAME.tif`` +
                  ``NAME_masks.tif``
``ctc``           Cell Tracking Challenge, images and labels uint16: ``frames`` (default): the samples
                  are the frames of one sequence, ``01/tTTT.tif``, ``01_GT/SEG/man_segTTT.tif`` and the
                  tracking truth ``01_GT/TRA/man_trackTTT.tif`` + ``man_track.txt``, every object a
                  one-frame track with an id unique in the sequence (the CTC scorers need two or more
                  frames for DET and TRA); ``sequences``: one one-frame sequence per sample,
                  ``NN/t000.tif`` …, NN = 01, 02, ... (SEG scoring only).
``nnunet``        nnU-Net v2 raw dataset: ``imagesTr/NAME_0000.tif`` + ``imagesTr/NAME.json``
                  (spacing), ``labelsTr/NAME.tif`` + ``labelsTr/NAME.json``, ``dataset.json``; labels are
                  the semantic classes background 0, foreground 1, border 2 (nnU-Net is semantic). A 2D
                  dataset (all Z = 1) uses PNG and ``NaturalImage2DIO`` instead: float images are scaled
                  per image to uint16 (nnU-Net z-scores each image anyway).
``ome-zarr``      ``NAME.ome.zarr`` per sample, labels under ``labels/cells`` (+ ``labels/semantic``)
================  =====================================================================================

Every layout keeps the voxel spacing (TIFF metadata, OME ``scale`` or nnU-Net sidecars) and gets a
``cellsynth_export.json`` naming the source dataset and the sample behind each file. The export is
written to a temporary folder and moved into place at the end: a failed export leaves nothing.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from tqdm.auto import tqdm

from cellsynth.checks import check_output
from cellsynth.dataset.manifest import Dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import atomic_path, write_bytes_atomic, write_json_atomic, write_ome_zarr, write_volume
from cellsynth.locks import check_unlocked, folder_lock
from cellsynth.masks.derived import SEMANTIC_CLASSES, semantic_from_instances
from cellsynth.sample import Sample

EXPORT_FORMATS = ("stardist", "cellpose", "ctc", "nnunet", "ome-zarr")
#: The layouts of the formats that have several, the default first.
LAYOUTS = {"cellpose": ("slices", "stacks"), "ctc": ("frames", "sequences")}

Files = list[str]


def _samples(dataset: Dataset, progress: bool) -> Iterator[tuple[str, Sample]]:
    for index in tqdm(dataset.done(), desc="export", unit="sample", disable=True if not progress else None):
        yield dataset.name(index), dataset.read_sample(index, verify=False)  # verified once, up front


def _stardist(name: str, sample: Sample, out: Path, index: int) -> Files:
    files = [f"images/{name}.tif", f"masks/{name}.tif"]
    for relative, array in zip(files, (sample.image, sample.labels), strict=True):
        write_volume(out / relative, array, sample.spacing)
    return files


def _cellpose_slices(name: str, sample: Sample, out: Path, index: int) -> Files:
    digits = max(3, len(str(sample.image.shape[0] - 1)))
    files = []
    for z in np.flatnonzero(sample.labels.reshape(sample.labels.shape[0], -1).any(axis=1)):
        stem = f"{name}_z{z:0{digits}d}"
        write_volume(out / f"{stem}.tif", sample.image[z], sample.spacing)
        write_volume(out / f"{stem}_masks.tif", sample.labels[z], sample.spacing)
        files += [f"{stem}.tif", f"{stem}_masks.tif"]
    return files


def _cellpose_stacks(name: str, sample: Sample, out: Path, index: int) -> Files:
    write_volume(out / f"{name}.tif", sample.image, sample.spacing)
    write_volume(out / f"{name}_masks.tif", sample.labels, sample.spacing)
    return [f"{name}.tif", f"{name}_masks.tif"]


def _ctc_sequence(name: str, sample: Sample, out: Path, index: int, digits: int) -> Files:
    """One Cell Tracking Challenge sequence per sample: the samples are independent, not frames.

    ``NN/t000.tif``, ``NN_GT/SEG/man_seg000.tif`` and the tracking ground truth of a one-frame
    sequence: ``NN_GT/TRA/man_track000.tif`` (the instances as markers) and ``man_track.txt``
    (``id 0 0 0`` per instance: begins and ends at frame 0, no parent).
    """
    if sample.labels.dtype != np.uint16:
        raise DatasetError(
            f"sample '{name}' has ids beyond 65535; the Cell Tracking Challenge format needs uint16 labels"
        )
    sequence = f"{index + 1:0{digits}d}"
    frame = _CtcFrames(out, sequence, digits=3, renumber=False)
    files = frame(name, sample, out, 0)
    return [*files, frame.finish()]


class _CtcFrames:
    """The samples as the frames of one CTC sequence; each object a one-frame track (with ``renumber``, ids
    made unique in the sequence: 1, 2, … in frame order)."""

    def __init__(self, out: Path, sequence: str = "01", digits: int = 3, renumber: bool = True):
        self.out, self.sequence, self.digits, self.renumber, self.tracks = out, sequence, digits, renumber, []

    def __call__(self, name: str, sample: Sample, out: Path, frame: int) -> Files:
        ids = np.unique(sample.labels)
        ids = ids[ids > 0]
        labels = sample.labels
        if self.renumber:
            first = len(self.tracks) + 1
            if first - 1 + len(ids) > np.iinfo(np.uint16).max:
                raise DatasetError(f"sample '{name}' takes the sequence beyond 65535 objects; the Cell Tracking "
                                   "Challenge format needs uint16 labels: export fewer samples, or --layout "
                                   "sequences")
            lookup = np.zeros(int(labels.max()) + 1, np.uint16)
            lookup[ids] = np.arange(first, first + len(ids))
            labels, ids = lookup[labels], np.arange(first, first + len(ids))
        t = f"{frame:0{self.digits}d}"
        files = [f"{self.sequence}/t{t}.tif", f"{self.sequence}_GT/SEG/man_seg{t}.tif",
                 f"{self.sequence}_GT/TRA/man_track{t}.tif"]
        for relative, array in zip(files, (_as_uint16(sample.image), labels, labels), strict=True):
            (self.out / relative).parent.mkdir(parents=True, exist_ok=True)
            write_volume(self.out / relative, array, sample.spacing)
        self.tracks += [(int(i), frame) for i in ids]
        return files

    def finish(self) -> str:
        """Write ``man_track.txt`` (``id begin end parent``: each track one frame, no parent)."""
        track = f"{self.sequence}_GT/TRA/man_track.txt"
        write_bytes_atomic(self.out / track, "".join(f"{i} {t} {t} 0\n" for i, t in self.tracks).encode())
        return track


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    iio.imwrite(buffer, array, extension=".png")
    return buffer.getvalue()


def _as_uint16(image: np.ndarray) -> np.ndarray:
    """An image as uint16, linearly: integers as they are; floats in [0, 1] (a fraction of the camera's
    full scale) × 65535; whole floats within 0 … 65535 (camera units) as they are; other floats scaled
    per image to 0 … 65535.

    Examples
    --------
    >>> _as_uint16(np.array([0.0, 0.5, 1.0], np.float32)).tolist(), _as_uint16(np.array([3.0, 900.0])).tolist()
    ([0, 32768, 65535], [3, 900])
    """
    if image.dtype in (np.uint8, np.uint16):
        return image
    low, high = float(image.min()), float(image.max())
    if 0 <= low and high <= 1:
        return np.round(image * 65535.0).astype(np.uint16)
    if 0 <= low and high <= 65535 and np.array_equal(image, np.round(image)):
        return image.astype(np.uint16)
    return np.round((image - low) / max(high - low, 1e-12) * 65535).astype(np.uint16)


def _nnunet(name: str, sample: Sample, out: Path, index: int, two_d: bool) -> Files:
    semantic = semantic_from_instances(sample.labels) if sample.semantic is None else sample.semantic
    spacing = {"spacing": list(sample.spacing)}
    image_file, label_file = f"imagesTr/{name}_0000", f"labelsTr/{name}"
    if two_d:
        write_bytes_atomic(out / f"{image_file}.png", _png_bytes(_as_uint16(sample.image[0])))
        write_bytes_atomic(out / f"{label_file}.png", _png_bytes(semantic[0].astype(np.uint8)))
        return [f"{image_file}.png", f"{label_file}.png"]
    write_volume(out / f"{image_file}.tif", sample.image.astype(np.float32), sample.spacing)
    write_volume(out / f"{label_file}.tif", semantic.astype(np.uint8), sample.spacing)
    write_json_atomic(out / f"imagesTr/{name}.json", spacing)
    write_json_atomic(out / f"{label_file}.json", spacing)
    return [f"{image_file}.tif", f"imagesTr/{name}.json", f"{label_file}.tif", f"{label_file}.json"]


def _ome_zarr(name: str, sample: Sample, out: Path, index: int) -> Files:
    labels = {"cells": sample.labels}
    if sample.semantic is not None:
        labels["semantic"] = sample.semantic
    write_ome_zarr(out / f"{name}.ome.zarr", sample.image, sample.spacing, labels)
    return [f"{name}.ome.zarr"]


_FOLDERS = {
    "stardist": ("images", "masks"),
    "nnunet": ("imagesTr", "labelsTr"),
}


def check_layout(fmt: str, layout: str | None) -> str | None:
    """The format's layout (its default when None), checked; None for formats with one layout."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format '{fmt}'; accepted: {', '.join(EXPORT_FORMATS)}")
    if fmt not in LAYOUTS:
        if layout is not None:
            choices = " or ".join(f"{name} ({'|'.join(names)})" for name, names in LAYOUTS.items())
            raise InputError(f"the {fmt} export has one layout; --layout goes with {choices}")
        return None
    if layout is None:
        return LAYOUTS[fmt][0]
    if layout not in LAYOUTS[fmt]:
        raise InputError(f"unknown {fmt} layout '{layout}'; accepted: {', '.join(LAYOUTS[fmt])}")
    return layout


def check_export_target(fmt: str, out: str | os.PathLike, layout: str | None = None,
                        source: str | os.PathLike | None = None) -> Path:
    """Validate an export's format, layout and target folder before anything is read or written: a new or
    empty folder, outside the ``source`` dataset, that no other process is writing."""
    check_layout(fmt, layout)
    if fmt == "nnunet" and not re.fullmatch(r"Dataset\d{3}_\w+", Path(out).name):
        raise InputError(f"nnU-Net finds a raw dataset only in a folder named DatasetNNN_Name (three digits, e.g. "
                         f"Dataset501_Nuclei); got '{Path(out).name}'")
    check_unlocked(out, "export")
    return check_output(out, "export", folder=True, if_not_empty="give a new or empty folder",
                        inputs=[source] if source is not None else ())


def export_dataset(
    dataset: str | os.PathLike | Dataset,
    fmt: str,
    out: str | os.PathLike,
    *,
    layout: str | None = None,
    allow_partial: bool = False,
    progress: bool = True,
) -> Path:
    """Export every finished sample of a dataset to one of :data:`EXPORT_FORMATS`.

    Parameters
    ----------
    dataset : path-like or Dataset
        The dataset folder.
    fmt : str
        One of ``stardist``, ``cellpose``, ``ctc``, ``nnunet``, ``ome-zarr``.
    out : path-like
        New (or empty) folder to create.
    layout : str, optional
        Cellpose: ``slices`` (default, 2D training slices) or ``stacks``; CTC: ``frames`` (default, the
        samples as the frames of one sequence: what the CTC scorers accept) or ``sequences``.
    allow_partial : bool
        Export the finished samples of an unfinished dataset (refused by default).
    progress : bool
        Show a progress bar (only on a terminal).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        On an unknown format or layout, or an output path that is a file or a non-empty folder.
    DatasetError
        See :meth:`Dataset.finished`: no finished sample, unfinished, masks only, or a failed checksum.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.dataset import import_dataset
    >>> from cellsynth.io import write_volume
    >>> root = Path(tempfile.mkdtemp())
    >>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> _ = write_volume(root / "image.tif", labels * 100, (1.0, 0.5, 0.5))
    >>> _ = write_volume(root / "labels.tif", labels, (1.0, 0.5, 0.5))
    >>> dataset = import_dataset(root / "nuclei", [root / "image.tif"], [root / "labels.tif"], progress=False)
    >>> out = export_dataset(dataset.root, "stardist", root / "nuclei_stardist", progress=False)
    >>> sorted(path.name for path in out.iterdir())
    ['cellsynth_export.json', 'images', 'masks']
    """
    layout = check_layout(fmt, layout)
    dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    out = check_export_target(fmt, out, layout, dataset.root)
    with folder_lock(out, "export"):
        check_export_target(fmt, out, layout, dataset.root)  # a writer before us may have filled it
        return _export(dataset, fmt, out, layout=layout, allow_partial=allow_partial, progress=progress)


def _export(dataset: Dataset, fmt: str, out: Path, *, layout: str | None, allow_partial: bool,
            progress: bool) -> Path:
    indices = dataset.finished("export", images=True, allow_partial=allow_partial)
    two_d = all(dataset.samples[i]["shape"][0] == 1 for i in indices)
    with atomic_path(out) as staging:
        frames = _CtcFrames(staging, digits=max(3, len(str(len(indices) - 1))))
        writers: dict[str, Callable[[str, Sample, Path, int], Files]] = {
            "stardist": _stardist,
            "cellpose": _cellpose_slices if layout == "slices" else _cellpose_stacks,
            "ctc": frames if layout == "frames" else
            lambda n, s, o, i: _ctc_sequence(n, s, o, i, digits=max(2, len(str(len(indices))))),
            "nnunet": lambda n, s, o, i: _nnunet(n, s, o, i, two_d=two_d),
            "ome-zarr": _ome_zarr,
        }
        _write(dataset, fmt, staging, layout, writers[fmt], two_d, progress)
        if fmt == "ctc" and layout == "frames":
            frames.finish()
    return out


def _write(dataset: Dataset, fmt: str, staging: Path, layout: str | None, writer: Callable[..., Files], two_d: bool,
           progress: bool) -> None:
    """Every sample through ``writer`` into ``staging``, then the format's index files and the provenance."""
    staging.mkdir()
    for folder in _FOLDERS.get(fmt, ()):
        (staging / folder).mkdir(parents=True)
    provenance = []
    for position, (name, sample) in enumerate(_samples(dataset, progress)):
        if fmt == "nnunet" and (sample.image.shape[0] == 1) != two_d:
            raise DatasetError("nnU-Net needs all samples 2D (Z = 1) or all 3D; this dataset mixes both")
        provenance.append({"sample": name, "files": writer(name, sample, staging, position)})
    if fmt == "nnunet":
        write_json_atomic(staging / "dataset.json", {
            "channel_names": {"0": "fluorescence"},
            "labels": SEMANTIC_CLASSES,
            "numTraining": len(provenance),
            "file_ending": ".png" if two_d else ".tif",
            "overwrite_image_reader_writer": "NaturalImage2DIO" if two_d else "Tiff3DIO",
        })
    write_json_atomic(staging / "cellsynth_export.json", {
        "format": fmt if layout is None else f"{fmt}-{layout}",
        "source": str(Path(dataset.root).resolve()),
        "samples": provenance,
    })
