"""Volumes for evaluation: read from files or dataset folders, put on one grid, cut into disjoint parts.

Everything that compares or trains on volumes from different sources (C2ST, the classical
baseline, Syn2Real) goes through these few functions, so that "the same spacing" and "spatially
disjoint" mean one thing everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.checks import Spacing, check_image, check_spacing
from cellsynth.dataset.manifest import MANIFEST_NAME, Dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import read_volume, volume_files
from cellsynth.sample import Sample

#: Axis names of a ZYX volume.


def read_volumes(source: str | os.PathLike | Sequence[str | os.PathLike], spacing: Sequence[float] | None = None,
                 *, labels: bool = False, what: str = "input") -> list[Sample]:
    """The images of image files, a folder of them, or a dataset folder's finished samples.

    Parameters
    ----------
    source : path-like or sequence of path-like
        An image file (TIFF, OME-Zarr, .npy), a folder of them, or a cellsynth dataset folder; or
        several of these (their volumes in the order given).
    spacing : 3 floats, optional
        Voxel size in µm for files that carry none (it overrides a file's own).
    labels : bool
        Require instance labels (only a dataset folder has them).
    what : str
        How error messages name the source (e.g. ``"--real"``).

    Returns
    -------
    list of Sample
        Each with its image, spacing and name (and its labels, from a dataset folder).

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.io import write_volume
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = write_volume(folder / "a.tif", np.ones((4, 8, 8), np.float32), (0.29, 0.26, 0.26))
    >>> volumes = read_volumes(folder)
    >>> volumes[0].image.shape, volumes[0].spacing, volumes[0].name
    ((4, 8, 8), (0.29, 0.26, 0.26), 'a.tif')
    """
    if not isinstance(source, (str, os.PathLike)):
        if not source:
            raise InputError(f"{what} names no file")
        return [volume for one in source for volume in read_volumes(one, spacing, labels=labels, what=what)]
    path = Path(source)
    if (path / MANIFEST_NAME).is_file():
        dataset = Dataset.open(path)
        done = dataset.finished(f"use as {what} data", images=True)
        volumes = []
        for index in done:
            sample = dataset.read_sample(index, verify=False)  # verified once, by finished()
            if sample.image is None:
                raise DatasetError(f"{what} dataset '{path}' holds masks only; it needs images")
            volumes.append(Sample(sample.labels, sample.image, sample.spacing, name=sample.name))  # what is judged
        return volumes
    if labels:
        raise InputError(f"{what} '{path}' must be a cellsynth dataset folder (images with labels); "
                         "make one with `cellsynth dataset import` or `cellsynth dataset example`")
    files = volume_files([path], what)[0] if path.is_dir() and not path.name.endswith(".zarr") else [path]
    volumes = []
    for file in files:  # a plain folder of images is read as its image files, in name order
        image, found = read_volume(file, spacing)
        volumes.append(Sample(image=check_image(image, f"{what} image '{file.name}'"), spacing=found, name=file.name))
    return volumes


def common_spacing(spacings: Sequence[Sequence[float]]) -> Spacing:
    """The coarsest voxel size per axis: every volume can be brought to it without inventing detail."""
    spacings = [check_spacing(s) for s in spacings]
    return tuple(float(max(s[axis] for s in spacings)) for axis in range(3))  # type: ignore[return-value]


def grid_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, int, int]:
    """The shape that covers the field of view of ``shape`` voxels of ``spacing`` with voxels of ``target`` µm.

    Examples
    --------
    >>> grid_shape((60, 256, 256), (0.29, 0.26, 0.26), (0.5, 0.5, 0.5))
    (35, 133, 133)
    """
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))  # type: ignore


def resample(volume: np.ndarray, spacing: Sequence[float], target: Sequence[float], *, order: int = 1,
             shape: Sequence[int] | None = None) -> np.ndarray:
    """``volume`` on a grid of voxel size ``target`` (µm), covering the same field of view.

    Parameters
    ----------
    volume : ndarray
        ZYX volume.
    spacing, target : 3 floats
        Its voxel size and the wanted one, in µm.
    order : int
        Interpolation order: 1 (linear, for images; low-pass filtered first when coarsening, so
        noise does not alias) or 0 (nearest, for labels).
    shape : 3 ints, optional
        The output shape (default ``round(n · spacing / target)``, at least 1).

    Returns
    -------
    ndarray
        float32 for order 1, the input dtype for order 0. Unchanged when the grids agree.

    Examples
    --------
    >>> resample(np.ones((10, 20, 20)), (0.5, 0.25, 0.25), (0.5, 0.5, 0.5)).shape
    (10, 10, 10)
    """
    from skimage.transform import resize

    spacing, target = check_spacing(spacing), check_spacing(target, "target spacing")
    shape = grid_shape(volume.shape, spacing, target) if shape is None else tuple(int(n) for n in shape)
    if shape == volume.shape:
        return volume.astype(np.float32, copy=False) if order else volume
    if order == 0:
        return resize(volume, shape, order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(
            volume.dtype)
    coarser = any(m < n for m, n in zip(shape, volume.shape, strict=True))
    return resize(volume.astype(np.float32, copy=False), shape, order=1, mode="edge", anti_aliasing=coarser,
                  preserve_range=True).astype(np.float32)


