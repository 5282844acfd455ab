"""Your own annotated volumes as a dataset folder: files paired by name in the field's layouts
(StarDist, Cell Tracking Challenge, Cellpose), checked before anything is written."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from cellsynth.checks import (
    check_pair,
)
from cellsynth.config import OutputConfig
from cellsynth.dataset.build import build_dataset
from cellsynth.dataset.manifest import Dataset
from cellsynth.errors import CellsynthError, FileFormatError, InputError
from cellsynth.io import read_volume, volume_files, volume_stem
from cellsynth.sample import Sample


def import_dataset(
    out: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    labels: Sequence[str | os.PathLike],
    *,
    spacing: Sequence[float] | None = None,
    output: OutputConfig | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Dataset:
    """Your own annotated volumes as a dataset folder (what ``cellsynth dataset import`` does).

    Every pair is read and checked before anything is written; labels that look semantic draw a
    warning (:func:`semantic_warning`).

    Parameters
    ----------
    out : path-like
        The new dataset folder (or the one to resume).
    images : sequence of path-like
        Image files, or one folder of them.
    labels : sequence of path-like
        Instance label files, one per image in the same order; or one folder, paired with the images'
        folder by name (:func:`paired_files`: StarDist, Cell Tracking Challenge and Cellpose layouts).
    spacing : 3 floats, optional
        Voxel size (z, y, x) in µm; required for files without one (``.npy``).
    output : OutputConfig, optional
        Which files to write per sample (default: images and labels).
    resume : bool
        Complete an interrupted run (same settings).
    progress : bool
        Show progress bars (only on a terminal).

    Returns
    -------
    Dataset

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.io import write_volume
    >>> root = Path(tempfile.mkdtemp()); (root / "images").mkdir(); (root / "masks").mkdir()
    >>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> _ = write_volume(root / "images" / "a.tif", labels * 100, (0.5, 0.2, 0.2))
    >>> _ = write_volume(root / "masks" / "a.tif", labels, (0.5, 0.2, 0.2))
    >>> dataset = import_dataset(root / "mine", [root / "images"], [root / "masks"], progress=False)
    >>> len(dataset), dataset.read_sample(0).spacing
    (1, (0.5, 0.2, 0.2))
    """
    images, images_folder = volume_files(images, "--images")
    labels, labels_folder = volume_files(labels, "--labels")
    if images_folder and labels_folder:
        pairs = paired_files(images, labels)
    elif len(images) != len(labels):
        raise InputError(f"got {len(images)} image files but {len(labels)} label files; give one label file per image")
    else:
        pairs = list(zip(images, labels, strict=True))
    names = [volume_stem(image) for image, _ in pairs]
    if len(set(names)) != len(names):
        raise InputError("image files must have distinct names (they become the sample names)")

    def load(index: int, rng: object = None) -> Sample:
        image_path, labels_path = pairs[index]
        image, found = read_volume(image_path, spacing)
        labels_array, _ = read_volume(labels_path, found)
        image, labels_array = check_pair(image, labels_array)
        return Sample(image=image, labels=labels_array, spacing=found,
                      params={"image": str(image_path), "labels": str(labels_path)})

    for index in range(len(pairs)):  # validate every pair before anything is written
        try:
            sample = load(index)
        except CellsynthError as err:
            raise type(err)(f"{pairs[index][0].name}: {err}") from None
        warning = semantic_warning(sample.labels, f"labels '{pairs[index][1].name}'")
        if warning:
            warnings.warn(warning, stacklevel=2)
    recipe = {"import": [[str(i), str(lab)] for i, lab in pairs], "spacing_um": list(spacing) if spacing else None}
    return build_dataset(out, names, load, config=recipe, seed=None, output=output or OutputConfig(), resume=resume,
                         progress=progress)


def semantic_warning(labels: np.ndarray, what: str) -> str | None:
    """A one-line warning when ``labels`` look like classes, not instances; else None.

    Few distinct ids (at most 3) that each fall apart into separate objects is what a binary or
    class mask looks like: every nucleus would become one instance with all the others.

    Examples
    --------
    >>> import numpy as np
    >>> binary = np.zeros((1, 8, 8), np.uint16)
    >>> binary[0, 1:3, 1:3] = binary[0, 5:7, 5:7] = binary[0, 1:3, 5:7] = 1
    >>> semantic_warning(binary, "labels")[:53]
    'labels look semantic (1 value(s), 3 separate objects)'
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not 0 < len(ids) <= 3:
        return None
    _, n_objects = ndimage.label(labels > 0)
    if n_objects <= 2 * len(ids):
        return None
    return (f"{what} look semantic ({len(ids)} value(s), {n_objects} separate objects): instance ids are "
            "expected; label the objects first (e.g. skimage.measure.label)")


def paired_files(images: Iterable[Path], labels: Iterable[Path]) -> list[tuple[Path, Path]]:
    """Pair image and label files by name: StarDist, Cell Tracking Challenge and Cellpose layouts.

    Identical names pair first, whatever they look like (StarDist: ``images/a.tif`` ↔ ``masks/a.tif``,
    also ``t000.tif`` ↔ ``t000.tif``); the others as ``tNNN`` ↔ ``man_segNNN`` (CTC: ``01/`` ↔
    ``01_GT/SEG/``) and ``NAME`` ↔ ``NAME_masks`` (Cellpose, both
    in one folder: the ``_masks`` files are the labels, the others the images).

    Parameters
    ----------
    images, labels : iterable of Path
        The files of the two folders.

    Returns
    -------
    list of (image, labels)
        In image-name order.

    Raises
    ------
    FileFormatError
        If a file has no partner, or two files claim the same partner.

    Examples
    --------
    >>> paired_files([Path("01/t000.tif")], [Path("01_GT/SEG/man_seg000.tif")])
    [(PosixPath('01/t000.tif'), PosixPath('01_GT/SEG/man_seg000.tif'))]
    >>> paired_files([Path("A/t001.tif"), Path("A/t000.tif")], [Path("B/t000.tif"), Path("B/t001.tif")])
    [(PosixPath('A/t000.tif'), PosixPath('B/t000.tif')), (PosixPath('A/t001.tif'), PosixPath('B/t001.tif'))]
    """
    images, labels = sorted(set(images)), sorted(set(labels))
    if set(images) & set(labels):  # one folder holds both (Cellpose): *_masks are the labels
        images = [p for p in images if not volume_stem(p).endswith("_masks")]
        labels = [p for p in labels if volume_stem(p).endswith("_masks")]
    by_stem = {volume_stem(p): p for p in labels}
    same = {image: by_stem[volume_stem(image)] for image in images if volume_stem(image) in by_stem}
    by_key: dict[str, Path] = {}
    for path in labels:
        if path in same.values():
            continue
        key = _pair_key(path, "labels")
        if key in by_key:
            raise FileFormatError(f"label files '{by_key[key].name}' and '{path.name}' both pair with one image")
        by_key[key] = path
    pairs, unpaired = [], []
    for image in images:
        if image in same:
            pairs.append((image, same[image]))
            continue
        key = _pair_key(image, "image")
        (pairs if key in by_key else unpaired).append((image, by_key.get(key)))
    orphans = sorted(set(by_key.values()) - {lab for _, lab in pairs})
    if unpaired or orphans:
        example = unpaired[0][0].name if unpaired else orphans[0].name
        raise FileFormatError(
            f"image and label files must pair up by name (a.tif ↔ a.tif, t000 ↔ man_seg000, a ↔ a_masks); "
            f"'{example}' has no partner ({len(unpaired)} images and {len(orphans)} labels unpaired)"
        )
    return pairs  # type: ignore[return-value]


def _pair_key(path: Path, role: str) -> str:
    """What an image and its labels share in the layouts of the field.

    StarDist: the same name. Cell Tracking Challenge: ``tNNN`` ↔ ``man_segNNN`` (any number of
    digits). Cellpose: ``NAME`` ↔ ``NAME_masks``.
    """
    stem = volume_stem(path)
    ctc = re.fullmatch(r"t(\d+)" if role == "image" else r"man_seg(\d+)", stem)
    if ctc:
        return f"ctc frame {int(ctc.group(1))}"
    if role == "labels" and stem.endswith("_masks"):
        return stem[: -len("_masks")]
    return stem
