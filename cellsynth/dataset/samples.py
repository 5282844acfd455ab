"""The one door between what a user hands cellsynth and :class:`~cellsynth.sample.Sample` objects.

- :func:`read_sample` / :func:`write_sample`: an image file with its labels and spacing (beside
  :func:`~cellsynth.io.read_volume`, which reads one array);
- :func:`as_samples`: an image file, a folder of them, a cellsynth dataset folder, arrays or Samples
  (or a list mixing them) as Samples. Every entry point that takes volumes (C2ST, the segmentation
  judges, calibration, the patch dataset) goes through it, so "a volume" means one thing
  everywhere. A voxel spacing is never assumed: where lengths in µm matter, a volume without one is
  refused in one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import check_image, check_output, check_spacing
from cellsynth.dataset.manifest import MANIFEST_NAME, Dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import read_volume, volume_files, volume_format, write_ome_zarr, write_volume
from cellsynth.io.omezarr import label_names
from cellsynth.sample import Sample

Source = str | os.PathLike | np.ndarray | Sample


def as_samples(source: Source | Sequence[Source], spacing: Sequence[float] | None = None, *, labels: bool = False,
               need_spacing: bool = True, what: str = "input") -> list[Sample]:
    """The volumes of ``source`` as Samples.

    Parameters
    ----------
    source : path-like, ndarray, Sample, or a sequence of them
        An image file (TIFF, OME-Zarr, .npy), a folder of them (read in name order), a cellsynth
        dataset folder (its finished samples, with labels), a ZYX array (an image), a Sample; or a
        list of these, their volumes in the order given.
    spacing : 3 floats, optional
        Voxel size in µm of arrays and of files that carry none (it overrides a file's own). Samples
        keep their own.
    labels : bool
        Require instance labels on every volume (a dataset folder, an OME-Zarr store with a label
        image, or Samples that carry them).
    need_spacing : bool
        Refuse a volume whose spacing is unknown (an array given without ``spacing``).
    what : str
        How error messages name the source (e.g. ``"--real"``).

    Returns
    -------
    list of Sample
        Each with its image, spacing and name, and its labels where the source has them.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.io import write_volume
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_volume(folder / "a.tif", np.ones((4, 8, 8), np.float32), (0.29, 0.26, 0.26))
    >>> volumes = as_samples([folder, np.zeros((4, 8, 8))], spacing=None, need_spacing=False)
    >>> [(v.shape, v.spacing, v.name) for v in volumes]
    [((4, 8, 8), (0.29, 0.26, 0.26), 'a.tif'), ((4, 8, 8), None, '')]
    >>> as_samples(np.zeros((4, 8, 8)), what="--real")
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: --real: an array has no voxel spacing; give spacing=(z, y, x) in µm (CLI: --spacing)
    """
    if spacing is not None:
        spacing = check_spacing(spacing)
    items = [source] if isinstance(source, (str, os.PathLike, np.ndarray, Sample)) else list(source)
    if not items:
        raise InputError(f"{what}: no volume given")
    volumes = [volume for item in items for volume in _one(item, spacing, labels, what)]
    if need_spacing and any(volume.spacing is None for volume in volumes):
        raise InputError(f"{what}: an array has no voxel spacing; give spacing=(z, y, x) in µm (CLI: --spacing)")
    if labels and any(volume.labels is None for volume in volumes):
        raise InputError(f"{what}: every volume needs its instance labels (a cellsynth dataset folder, an OME-Zarr "
                         "store with a label image, or Samples with labels)")
    return volumes


def _one(item: Source, spacing, labels: bool, what: str) -> list[Sample]:
    if isinstance(item, Sample):
        if item.image is None:
            raise InputError(f"{what}: a sample without an image (render it first)")
        return [item]
    if isinstance(item, np.ndarray):
        return [Sample(image=check_image(item, f"{what} image"), spacing=spacing)]
    if not isinstance(item, (str, os.PathLike)):
        raise InputError(f"{what}: expected a path, an array or a Sample; got {type(item).__name__}")
    path = Path(item)
    if (path / MANIFEST_NAME).is_file():
        dataset = Dataset.open(path)
        volumes = []
        for index in dataset.finished(f"use as {what} data", images=True):
            sample = dataset.read_sample(index, verify=False)  # verified once, by finished()
            if sample.image is None:
                raise DatasetError(f"{what} dataset '{path}' holds masks only; it needs images")
            volumes.append(Sample(sample.labels, sample.image, sample.spacing, name=sample.name))  # what is judged
        return volumes
    files = volume_files([path], what)[0] if path.is_dir() and not path.name.endswith(".zarr") else [path]
    if labels and not all(file.name.endswith(".zarr") for file in files):
        raise InputError(f"{what} '{path}' must be a cellsynth dataset folder (images with labels) or OME-Zarr stores "
                         "with label images; make a dataset with `cellsynth dataset import` or `cellsynth dataset "
                         "example`")
    return [read_sample(file, spacing, what=f"{what} image") for file in files]


def read_sample(path: str | os.PathLike, spacing: Sequence[float] | None = None, *,
                labels: str | os.PathLike | None = None, what: str = "image") -> Sample:
    """An image file and its labels as one :class:`~cellsynth.sample.Sample`.

    Parameters
    ----------
    path : path-like
        The image (any format of :func:`read_volume`).
    spacing : 3 floats, optional
        Voxel size in µm; overrides the file's own, required when it carries none.
    labels : path-like, optional
        The instance labels, a volume of the image's shape. Default: an OME-Zarr store's first label
        image (``labels/<name>``, as :func:`write_sample` writes it); none for other formats.
    what : str
        How an error about the image names it (followed by the file's name).

    Returns
    -------
    Sample
        Image, spacing, name (the file's) and labels when there are any.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:6, 2:6] = 1
    >>> store = Path(tempfile.mkdtemp()) / "nuclei.ome.zarr"
    >>> _ = write_sample(store, Sample(labels, labels * 100, (0.29, 0.26, 0.26)))
    >>> sample = read_sample(store)
    >>> sample.spacing, int(sample.labels.max()), sample.name
    ((0.29, 0.26, 0.26), 1, 'nuclei.ome.zarr')
    """
    image, found = read_volume(path, spacing)
    path = Path(path)
    if labels is None and volume_format(path) == "ome-zarr" and (names := label_names(path)):
        labels = path / "labels" / names[0]
    label_volume = None if labels is None else read_volume(labels, found)[0]
    if label_volume is not None and label_volume.shape != image.shape:
        raise InputError(f"labels '{labels}' of shape {label_volume.shape} do not match image '{path}' of shape "
                         f"{image.shape}; give labels of the image's shape")
    return Sample(label_volume, check_image(image, f"{what} '{path.name}'"), found, name=path.name)


def write_sample(path: str | os.PathLike, sample: Sample, *, labels: str | os.PathLike | None = None,
                 compression: str | None = None) -> Path:
    """Write a sample's image and labels with its spacing, atomically (:func:`read_sample` reads them back).

    Parameters
    ----------
    path : path-like
        The image file; an OME-Zarr store also holds the labels (``labels/cells``).
    sample : Sample
        With an image and a spacing.
    labels : path-like, optional
        Where the labels go for a TIFF image (required when the sample has labels and ``path`` is TIFF).
    compression : {None, 'zlib'}
        TIFF compression.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:6, 2:6] = 1
    >>> write_sample(folder / "nuclei.tif", Sample(labels, labels * 100, (0.29, 0.26, 0.26)),
    ...              labels=folder / "nuclei_labels.tif").name
    'nuclei.tif'
    >>> int(read_sample(folder / "nuclei.tif", labels=folder / "nuclei_labels.tif").labels.max())
    1
    """
    if sample.image is None:
        raise InputError("write_sample needs the sample's image (render it first; labels alone: write_volume)")
    spacing = sample.voxel_spacing()
    if volume_format(path) == "ome-zarr":
        if labels is not None:
            raise InputError("an OME-Zarr store holds its labels itself (labels/cells); give no separate labels path")
        if not Path(path).is_dir():
            check_output(Path(path), "volume", folder=False, overwrite=True)
        return write_ome_zarr(path, sample.image, spacing, None if sample.labels is None else {"cells": sample.labels})
    if sample.labels is not None and labels is None:
        raise InputError(f"'{path}' is a TIFF: give labels=<path> for the sample's labels, or write a .ome.zarr")
    if sample.labels is not None:  # both targets checked before either is written
        volume_format(labels)
        check_output(Path(labels), "labels", folder=False, overwrite=True, inputs=[path])
    written = write_volume(path, sample.image, spacing, compression=compression)
    if sample.labels is not None:
        write_volume(labels, sample.labels, spacing, compression=compression)
    return written
