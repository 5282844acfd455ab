"""Spatially disjoint parts of volumes and datasets: train on one part, judge on the other.

Examples
--------
>>> a, b = split_volume(np.zeros((4, 6, 10)), "x", 0.5)
>>> a.shape, b.shape
((4, 6, 5), (4, 6, 5))
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from cellsynth.checks import check_not_input
from cellsynth.config import OutputConfig
from cellsynth.dataset.build import build_dataset
from cellsynth.dataset.manifest import Dataset, check_new_dataset_folder
from cellsynth.errors import InputError
from cellsynth.sample import Sample

#: Axis names in array order.
AXES = "zyx"


def check_axis(axis: str | int) -> int:
    """An axis given as ``z|y|x`` or ``0|1|2``, as an index."""
    if isinstance(axis, str) and axis in AXES:
        return AXES.index(axis)
    if isinstance(axis, (int, np.integer)) and 0 <= axis < 3:
        return int(axis)
    raise InputError(f"axis must be one of z, y, x (or 0, 1, 2); got {axis!r}")


def split_index(size: int, fraction: float, what: str = "volume") -> int:
    """Where to cut an axis of ``size`` voxels so the first part holds ``fraction`` of it (both parts non-empty)."""
    if not 0 < fraction < 1:
        raise InputError(f"the split fraction must lie strictly between 0 and 1; got {fraction!r}")
    cut = int(round(size * fraction))
    if not 0 < cut < size:
        raise InputError(f"cannot cut a {what} of {size} voxels at fraction {fraction:g}: one part would be empty")
    return cut


def split_volume(volume: np.ndarray, axis: str | int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Two spatially disjoint parts of ``volume``: before and after the cut along ``axis``.

    Parameters
    ----------
    volume : ndarray
        ZYX.
    axis : {'z', 'y', 'x'} or int
        Where to cut.
    fraction : float
        The first part's share, in (0, 1).

    Returns
    -------
    (first, second) : ndarrays
        Views of ``volume``.

    Examples
    --------
    >>> a, b = split_volume(np.zeros((4, 6, 10)), "x", 0.5)
    >>> a.shape, b.shape
    ((4, 6, 5), (4, 6, 5))
    """
    axis = check_axis(axis)
    cut = split_index(volume.shape[axis], fraction)
    before = tuple(slice(0, cut) if a == axis else slice(None) for a in range(volume.ndim))
    after = tuple(slice(cut, None) if a == axis else slice(None) for a in range(volume.ndim))
    return volume[before], volume[after]


def split_dataset(source: str | os.PathLike, first: str | os.PathLike, second: str | os.PathLike, *,
                  axis: str | int = "x", fraction: float = 0.5, progress: bool = True) -> tuple:
    """Cut every sample of a dataset into two spatially disjoint datasets (e.g. train and test halves).

    Each sample is cut along ``axis`` where the first part holds ``fraction`` of it; images, labels
    and the optional volumes (semantic map, foreground, membranes) are cut alike, spacing and label
    ids are kept (an object crossing the cut appears in both parts, as a user's own crop would show
    it). Both folders are checked before anything is written; if the second cannot be finished, the
    first is removed again.

    Parameters
    ----------
    source : path-like
        Dataset folder (finished samples are used, checksums verified).
    first, second : path-like
        New dataset folders for the parts before and after the cut.
    axis : {"z", "y", "x"} or int
        The axis to cut along.
    fraction : float
        Share of the axis that goes to ``first``, strictly between 0 and 1.
    progress : bool
        Show progress bars on a terminal.

    Returns
    -------
    (Dataset, Dataset)

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.dataset import import_dataset
    >>> from cellsynth.io import write_volume
    >>> root = Path(tempfile.mkdtemp())
    >>> labels = np.zeros((4, 16, 32), np.uint16); labels[1:3, 4:12, 4:12], labels[1:3, 4:12, 20:28] = 1, 2
    >>> _ = write_volume(root / "image.tif", labels * 100, (1.0, 0.5, 0.5))
    >>> _ = write_volume(root / "labels.tif", labels, (1.0, 0.5, 0.5))
    >>> whole = import_dataset(root / "whole", [root / "image.tif"], [root / "labels.tif"], progress=False)
    >>> left, right = split_dataset(whole.root, root / "left", root / "right", progress=False)
    >>> left.read_sample(0).shape, right.read_sample(0).shape
    ((4, 16, 16), (4, 16, 16))
    """
    axis = check_axis(axis)
    source_dataset = Dataset.open(source)
    for part in (first, second):
        check_not_input(part, [source], "dataset")
    done = source_dataset.finished("split")
    if Path(first).resolve() == Path(second).resolve():
        raise InputError("the two parts need two different folders")
    for index in done:
        shape = source_dataset.samples[index].get("shape", [])
        split_index(shape[axis] if len(shape) == 3 else 0, fraction,
                    f"sample '{source_dataset.name(index)}' along {AXES[axis]}")
    folders = [check_new_dataset_folder(first), check_new_dataset_folder(second)]
    names = [source_dataset.name(i) for i in done]
    output = OutputConfig(**source_dataset.manifest.get("output", {}))

    def part(which: int):
        def make(position: int, rng=None) -> Sample:
            sample = source_dataset.read_sample(done[position], verify=False)  # verified by finished()
            cut = split_index(sample.labels.shape[axis], fraction)

            def take(volume):
                return None if volume is None else split_volume(volume, axis, fraction)[which]

            return sample.replace(**{name: take(volume) for name, volume in sample.volumes().items()},
                                  params={"source": str(source), "source_sample": names[position],
                                          "part": ("first", "second")[which], "axis": AXES[axis], "cut_voxel": cut})
        return make

    recipe = {"split": {"source": str(source), "axis": AXES[axis], "fraction": fraction}}
    parts = [build_dataset(folders[0], names, part(0), config={**recipe, "part": "first"}, seed=None,
                           output=output, progress=progress)]
    try:
        parts.append(build_dataset(folders[1], names, part(1), config={**recipe, "part": "second"}, seed=None,
                                   output=output, progress=progress))
    except BaseException:
        shutil.rmtree(folders[0], ignore_errors=True)
        raise
    return tuple(parts)
