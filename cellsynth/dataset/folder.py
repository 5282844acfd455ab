"""Dataset folders: images, labels, optional semantic maps and previews, and a manifest.

Layout::

    DATASET/
      manifest.json        config, base seed, package versions, per sample files + SHA-256 + status
      images/NAME.tif      float32 (or uint8/uint16 for imported real data), ImageJ TIFF, spacing in µm;
                           absent in a masks-only dataset (``cellsynth masks``)
      labels/NAME.tif      instance ids, uint16 (uint32 as OME-TIFF when ids reach 65 536)
      semantic/NAME.tif    optional: 0 background, 1 interior, 2 border (uint8)
      centroids/NAME.csv   optional: id, z, y, x (µm), volume (µm³), equivalent radius (µm)
      meshes/NAME/         optional: one surface per cell, cell_ID.ply|obj|stl (µm, XYZ)
      foreground/NAME.tif  simulated samples: the organism (uint8 0/1)
      membranes/NAME.tif   membrane simulations: the membrane voxels (uint8 0/1)
      previews/NAME.png    optional: orthogonal mid-slices with label outlines

Every file is written under a temporary name and moved into place, and the manifest is rewritten
(atomically) after each sample, so an interrupted run leaves complete files only. Resuming
re-verifies every sample's checksums and redoes those that are missing, failed or corrupt.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm.auto import tqdm

from cellsynth.checks import (
    MAX_VOXELS,
    as_volume,
    check_file_name,
    check_labels,
    check_output,
    check_pair,
    check_spacing,
)
from cellsynth.config import OutputConfig
from cellsynth.dataset.previews import write_preview
from cellsynth.errors import CellsynthError, DatasetError, FileFormatError, InputError
from cellsynth.io import read_volume, remove_partials, volume_files, write_json_atomic, write_volume
from cellsynth.locks import check_unlocked, folder_lock
from cellsynth.masks.derived import semantic_from_instances, write_cell_meshes, write_centroids_csv
from cellsynth.sample import Sample

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
#: Sub-folder of each kind of per-sample file.
FOLDERS = {"image": "images", "labels": "labels", "semantic": "semantic", "preview": "previews",
           "centroids": "centroids", "meshes": "meshes"}
#: The binary volumes of a :class:`~cellsynth.sample.Sample` written beside its labels (``<kind>/NAME.tif``, uint8).
EXTRA_KINDS = ("foreground", "membranes")
_VERSIONED_PACKAGES = ("cellsynth", "numpy", "scipy", "scikit-image", "tifffile", "zarr", "pyshtools", "torch")


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 of a file (or, for a folder such as a zarr store, of its files in sorted order)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk_bytes):
                digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a dataset's content (no imports needed)."""
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index``: ``SeedSequence(seed).spawn(...)[index]``.

    Built directly from the spawn key, so any sample can be regenerated alone, and serial and
    parallel runs draw the same numbers.

    Examples
    --------
    >>> int(sample_rng(0, 3).integers(100)) == int(sample_rng(0, 3).integers(100))  # sample 3, any run
    True
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_classes(semantic: np.ndarray, shape: tuple[int, ...], what: str = "semantic map") -> np.ndarray:
    semantic = as_volume(semantic, what)
    if semantic.shape != shape or not np.issubdtype(semantic.dtype, np.integer) or semantic.min() < 0 \
            or semantic.max() > 255:
        raise InputError(f"{what} must be integer classes 0..255 of the labels' shape {shape}; "
                         f"got dtype {semantic.dtype}, shape {semantic.shape}")
    return semantic.astype(np.uint8, copy=False)


def write_sample_files(root: str | os.PathLike, name: str, sample: Sample, output: OutputConfig) -> dict:
    """Validate one sample and write its files into the dataset folder ``root``.

    Nothing is written when validation fails. Safe to call from worker processes: it touches only
    this sample's files, never the manifest.

    Returns
    -------
    dict
        The manifest entry fields: shape, spacing, object count, files with their SHA-256.
    """
    if sample.image is None:
        image, labels = None, check_labels(as_volume(sample.labels, "labels"))
    else:
        image, labels = check_pair(sample.image, sample.labels)
    spacing = check_spacing(sample.spacing)
    root = Path(root)
    compression = None if output.tiff_compression == "none" else output.tiff_compression
    arrays = {"image": image, "labels": labels}
    if output.semantic:
        arrays["semantic"] = semantic_from_instances(labels) if sample.semantic is None else _check_classes(
            sample.semantic, labels.shape)
    for kind in EXTRA_KINDS:
        if getattr(sample, kind) is not None:
            arrays[kind] = _check_classes(np.asarray(getattr(sample, kind)).astype(np.uint8), labels.shape,
                                          f"{kind} volume")
    files = {}
    for kind, array in arrays.items():
        if array is None:
            continue
        relative = f"{FOLDERS.get(kind, kind)}/{name}.tif"
        (root / FOLDERS.get(kind, kind)).mkdir(exist_ok=True)
        write_volume(root / relative, array, spacing, compression=compression)
        files[kind] = relative
    if output.centroids:
        files["centroids"] = f"{FOLDERS['centroids']}/{name}.csv"
        (root / FOLDERS["centroids"]).mkdir(exist_ok=True)
        write_centroids_csv(root / files["centroids"], labels, spacing)
    if output.meshes != "none":
        files["meshes"] = f"{FOLDERS['meshes']}/{name}"
        (root / FOLDERS["meshes"]).mkdir(exist_ok=True)
        write_cell_meshes(root / files["meshes"], labels, spacing, file_format=output.meshes)
    if output.previews:
        files["preview"] = f"{FOLDERS['preview']}/{name}.png"
        (root / FOLDERS["preview"]).mkdir(exist_ok=True)
        shown = image if image is not None else arrays.get("membranes", labels > 0).astype(np.float32)
        write_preview(root / files["preview"], shown, labels, spacing)
    return {
        "shape": list(labels.shape),
        "spacing_um": list(spacing),
        "image_dtype": image.dtype.name if image is not None else None,
        "n_objects": int(np.count_nonzero(np.bincount(labels.ravel())[1:])),
        "files": {kind: {"path": rel, "sha256": sha256_file(root / rel)} for kind, rel in files.items()},
        "params": dict(sample.params),
    }


def check_new_dataset_folder(root: str | os.PathLike) -> Path:
    """``root`` as a Path if a new dataset can go there (absent or an empty folder, parent exists, no
    other process writing it)."""
    check_unlocked(root, "dataset")
    return check_output(root, "dataset", folder=True, if_not_empty="resume it (--resume) or choose a new folder")


def check_dataset_target(root: str | os.PathLike, resume: bool) -> Path:
    """``root`` as a Path if a dataset can be written there: a new one, or with ``resume`` an existing one.

    Refuses, in one line: a folder another process is writing (its lock), ``resume`` where no dataset
    is, and without ``resume`` anything :func:`check_new_dataset_folder` refuses.
    """
    root = Path(root)
    if not resume:
        return check_new_dataset_folder(root)
    if not (root / MANIFEST_NAME).is_file():
        raise DatasetError(f"nothing to resume in '{root}' (no {MANIFEST_NAME} there); drop --resume to start a "
                           "new dataset")
    check_unlocked(root, "dataset")
    return root


class Dataset:
    """A dataset folder and its manifest.

    Create one with :meth:`create`, open an existing one with :meth:`open`. The manifest is the
    single record of what is in the folder; :meth:`record` updates it atomically.

    Examples
    --------
    >>> dataset = Dataset.open('data/nuclei')  # doctest: +SKIP
    >>> sample = dataset.read_sample(0)  # doctest: +SKIP
    >>> sample.image.shape, sample.labels.max(), sample.spacing  # doctest: +SKIP
    >>> dataset.pending()  # doctest: +SKIP
    """

    def __init__(self, root: Path, manifest: dict):
        self.root = root
        self.manifest = manifest

    # --------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        names: Sequence[str],
        *,
        config: Mapping,
        seed: int | None,
        output: OutputConfig,
    ) -> Dataset:
        """Start a new dataset in ``root`` (which must not exist, or be an empty folder).

        Parameters
        ----------
        root : path-like
            The dataset folder.
        names : sequence of str
            One unique file stem per sample.
        config : mapping
            JSON-able config that made the dataset, recorded verbatim.
        seed : int or None
            Base seed (None for data not drawn at random, e.g. imported real data).
        output : OutputConfig
            Which optional files to write and the TIFF compression.
        """
        root = check_new_dataset_folder(root)
        if len(set(names)) != len(names) or not names:
            raise DatasetError("a dataset needs at least one sample and unique sample names")
        for name in names:
            check_file_name(name, "sample name")
        manifest = {
            "cellsynth_manifest": MANIFEST_FORMAT,
            "created": _now(),
            "updated": _now(),
            "seed": seed,
            "config": json.loads(json.dumps(config)),
            "output": output.model_dump(),
            "versions": package_versions(),
            "samples": [{"index": i, "name": n, "status": "pending"} for i, n in enumerate(names)],
        }
        created = not root.exists()
        root.mkdir(exist_ok=True)
        dataset = cls(root, manifest)
        try:
            dataset.save()
        except BaseException:  # interrupted or refused before the first manifest: leave no empty folder
            if created:
                shutil.rmtree(root, ignore_errors=True)
            raise
        return dataset

    @classmethod
    def open(cls, root: str | os.PathLike) -> Dataset:
        """Open the dataset in ``root``; raise :class:`DatasetError` if it has no valid manifest."""
        root = Path(root)
        path = root / MANIFEST_NAME
        if not path.is_file():
            what = "no such folder" if not root.exists() else f"no {MANIFEST_NAME} in it"
            raise DatasetError(f"'{root}' is not a cellsynth dataset ({what})")
        try:
            manifest = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as err:
            why = "nested too deeply" if isinstance(err, RecursionError) else " ".join(str(err).split())[:120]
            raise DatasetError(f"'{path}' is not valid JSON ({why})") from None
        if not isinstance(manifest, dict) or manifest.get("cellsynth_manifest") != MANIFEST_FORMAT \
                or not isinstance(manifest.get("samples"), list):
            raise DatasetError(f"'{path}' is not a cellsynth manifest of format {MANIFEST_FORMAT}")
        names = set()
        for position, entry in enumerate(manifest["samples"]):
            _check_entry(root, path, position, entry)
            if entry["name"] in names:
                raise DatasetError(f"'{path}': sample {position} repeats the name '{entry['name']}'; sample names "
                                   "must be unique (the manifest is damaged: regenerate the dataset)")
            names.add(entry["name"])
        return cls(root, manifest)

    # --------------------------------------------------------------- manifest

    @property
    def samples(self) -> list[dict]:
        """Manifest entries, one per sample, in index order."""
        return self.manifest["samples"]

    def __len__(self) -> int:
        return len(self.samples)

    def save(self) -> None:
        """Write the manifest atomically, with per-status counts."""
        statuses = [s["status"] for s in self.samples]
        self.manifest["counts"] = {k: statuses.count(k) for k in ("done", "pending", "failed")}
        self.manifest["updated"] = _now()
        write_json_atomic(self.root / MANIFEST_NAME, self.manifest)

    def record(self, index: int, entry: Mapping | None = None, *, error: str | None = None) -> None:
        """Mark sample ``index`` done (with the entry from :func:`write_sample_files`) or failed."""
        base = {"index": index, "name": self.samples[index]["name"]}
        if error is None:
            self.samples[index] = {**base, "status": "done", **dict(entry or {})}
        else:
            self.samples[index] = {**base, "status": "failed", "error": error}
        self.save()

    # --------------------------------------------------------------- verification

    def verify(self, index: int) -> bool:
        """True when sample ``index`` is done and each of its files exists with its recorded SHA-256."""
        entry = self.samples[index]
        if entry["status"] != "done":
            return False
        return all(
            (self.root / f["path"]).exists() and sha256_file(self.root / f["path"]) == f["sha256"]
            for f in entry["files"].values()
        )

    def pending(self) -> list[int]:
        """Indices of samples that still need (re)generation: not done, missing or corrupt files."""
        return [i for i in range(len(self)) if not self.verify(i)]

    def done(self) -> list[int]:
        """Indices of samples marked done (not re-verified; see :meth:`verify`)."""
        return [i for i, s in enumerate(self.samples) if s["status"] == "done"]

    def finished(self, purpose: str, *, images: bool = False, allow_partial: bool = False) -> list[int]:
        """Indices of the done samples, checked before anything is read or written for ``purpose``.

        Refuses, in one line: a dataset with no finished sample; an unfinished one (some samples
        pending or failed) unless ``allow_partial``; with ``images``, one that holds masks only; and
        one whose finished samples fail their checksum. So a consumer never stops half-way through
        its output on a bad sample, nor silently uses part of a dataset.
        """
        done = self.done()
        if not done:
            raise DatasetError(f"dataset '{self.root}' has no finished sample to {purpose}")
        if len(done) < len(self) and not allow_partial:
            raise DatasetError(f"dataset '{self.root}' is unfinished ({len(done)} of {len(self)} samples done); "
                               f"complete it with --resume, or pass --allow-partial to {purpose} the finished ones")
        if images and any("image" not in self.samples[i]["files"] for i in done):
            raise DatasetError(f"dataset '{self.root}' holds masks only (no images); to {purpose} it needs images: "
                               "render them with `cellsynth generate` first")
        bad = [self.name(i) for i in done if not self.verify(i)]
        if bad:
            raise DatasetError(f"dataset '{self.root}': {len(bad)} sample(s) have a missing or changed file "
                               f"(first: '{bad[0]}'); regenerate them with --resume before you {purpose} it")
        return done

    # --------------------------------------------------------------- reading

    def read_sample(self, index: int, *, verify: bool = True) -> Sample:
        """Read sample ``index`` back; with ``verify``, refuse files whose checksum changed."""
        entry = self.samples[index]
        if entry["status"] != "done":
            raise DatasetError(f"sample '{entry['name']}' of '{self.root}' is {entry['status']}, not done")
        if verify and not self.verify(index):
            raise DatasetError(
                f"sample '{entry['name']}' of '{self.root}' is missing a file or fails its checksum; "
                "regenerate it with --resume"
            )
        files = entry["files"]
        labels, spacing = read_volume(self.root / files["labels"]["path"])
        if list(labels.shape) != entry["shape"] or not np.allclose(spacing, entry["spacing_um"], rtol=1e-6):
            raise DatasetError(f"sample '{entry['name']}' of '{self.root}': the manifest says shape {entry['shape']} "
                               f"at {entry['spacing_um']} µm, its labels file holds {list(labels.shape)} at "
                               f"{list(spacing)} µm; the manifest is damaged (regenerate the dataset)")
        volumes = {kind: read_volume(self.root / files[kind]["path"])[0]
                   for kind in ("image", "semantic", *EXTRA_KINDS) if kind in files}
        return Sample(labels, spacing=spacing, params=entry.get("params", {}), name=entry["name"], **volumes)

    def name(self, index: int) -> str:
        return self.samples[index]["name"]


def make_and_write_sample(root: str | os.PathLike, name: str, index: int, seed: int | None, output: OutputConfig,
                          make_sample: Callable[[int, np.random.Generator], Sample]) -> dict:
    """Make sample ``index`` from its own generator and write its files; returns its manifest entry.

    Module-level and free of shared state, so worker processes and dask workers can run it.
    """
    return write_sample_files(root, name, make_sample(index, sample_rng(seed or 0, index)), output)


def _completed(executor, futures):
    """Futures as they finish, for a ``concurrent.futures`` executor or a dask ``Client``."""
    if isinstance(executor, concurrent.futures.Executor):
        return concurrent.futures.as_completed(futures)
    from distributed import as_completed

    return as_completed(futures)


def _remove_fresh(root: Path, existed: bool) -> None:
    """Undo a dataset folder this run created and in which no sample finished."""
    if existed:
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    else:
        shutil.rmtree(root, ignore_errors=True)


def _check_entry(root: Path, path: Path, position: int, entry) -> None:
    """A manifest is input too: every sample entry well formed, every file path inside the dataset."""
    def bad(why: str) -> DatasetError:
        return DatasetError(f"'{path}': sample {position} {why}; the manifest is damaged (regenerate the dataset)")

    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or entry.get("index") != position:
        raise bad("is not an entry with its index and name")
    try:
        check_file_name(entry["name"], "name")
    except InputError as err:
        raise bad(str(err)) from None
    if entry.get("status") not in ("done", "pending", "failed"):
        raise bad(f"has status {entry.get('status')!r}; accepted: done, pending, failed")
    if entry["status"] != "done":
        return
    shape = entry.get("shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n >= 1 for n in shape)
            and math.prod(shape) <= MAX_VOXELS):
        raise bad(f"has shape {str(shape)[:80]}; a shape is three whole numbers >= 1 of at most {MAX_VOXELS} voxels")
    try:
        check_spacing(entry.get("spacing_um"), "spacing_um")
    except InputError as err:
        raise bad(str(err)) from None
    files = entry.get("files")
    if not isinstance(files, dict) or "labels" not in files:
        raise bad("is done but lists no files (at least its labels)")
    inside = root.resolve()
    for kind, record in files.items():
        if not isinstance(record, dict) or not isinstance(record.get("path"), str) or \
                not isinstance(record.get("sha256"), str):
            raise bad(f"has a '{kind}' file without a path and a SHA-256")
        relative = Path(record["path"])
        if "\x00" in record["path"] or relative.is_absolute() or \
                not (inside / relative).resolve().is_relative_to(inside):
            raise bad(f"names a file outside the dataset ({record['path'][:80]!r})")


def build_dataset(
    root: str | os.PathLike,
    names: Sequence[str],
    make_sample: Callable[[int, np.random.Generator], Sample],
    *,
    config: Mapping,
    seed: int | None,
    output: OutputConfig,
    resume: bool = False,
    progress: bool = True,
    executor=None,
) -> Dataset:
    """Create (or resume) a dataset by calling ``make_sample`` for every sample still to do.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    names : sequence of str
        Sample names (file stems), one per sample.
    make_sample : callable ``(index, rng) -> Sample``
        Makes sample ``index`` from its own generator (:func:`sample_rng`; seed 0 when ``seed`` is
        None). Must pickle when an ``executor`` is given.
    config, seed, output
        Recorded in the manifest; see :meth:`Dataset.create`.
    resume : bool
        Continue an existing dataset made with the same config and seed: verified samples are
        skipped, missing, failed or corrupt ones redone, stale temporaries removed.
    progress : bool
        Show a progress bar (only on a terminal).
    executor : concurrent.futures.Executor or distributed.Client, optional
        Make and write samples there (each worker writes its own sample's files; only this
        process writes the manifest). Default: serially here. The files are identical either way.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        If ``root`` cannot be written (see :func:`cellsynth.checks.check_output`) or exists and
        ``resume`` is false.
    DatasetError
        If the folder was made with another config, seed or sample list. If ``make_sample``
        raises, the sample is recorded as failed and the exception propagates; the files of
        finished samples stay valid, and a folder this run created is removed again when no
        sample had finished.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.config import OutputConfig
    >>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> def make(index, rng):
    ...     return Sample(labels, rng.random(labels.shape).astype(np.float32), (1.0, 0.5, 0.5))
    >>> root = Path(tempfile.mkdtemp()) / 'toy'
    >>> dataset = build_dataset(root, ['a', 'b'], make, config={}, seed=0, output=OutputConfig(), progress=False)
    >>> dataset.manifest['counts']['done'], dataset.read_sample(1).name, dataset.read_sample(1).spacing
    (2, 'b', (1.0, 0.5, 0.5))
    """
    root = check_dataset_target(root, resume)
    with folder_lock(root, "dataset"):
        return _build(root, names, make_sample, config=config, seed=seed, output=output, resuming=resume,
                      progress=progress, executor=executor)


def _build(root: Path, names: Sequence[str], make_sample: Callable[[int, np.random.Generator], Sample], *,
           config: Mapping, seed: int | None, output: OutputConfig, resuming: bool, progress: bool,
           executor) -> Dataset:
    existed = root.exists()
    if resuming:
        dataset, fresh = Dataset.open(root), False
        _check_same_recipe(dataset, names, config, seed, output)
        remove_partials(root)
    else:
        dataset, fresh = Dataset.create(root, names, config=config, seed=seed, output=output), True
    todo = dataset.pending()
    bar = tqdm(total=len(todo), desc="samples", unit="sample", disable=True if not progress else None)
    futures: dict = {}
    try:
        if executor is None:
            for index in todo:
                _run_one(dataset, index, lambda i=index: make_and_write_sample(
                    root, dataset.name(i), i, seed, output, make_sample))
                bar.update()
        else:
            futures = {executor.submit(make_and_write_sample, root, dataset.name(i), i, seed, output, make_sample): i
                       for i in todo}
            for future in _completed(executor, list(futures)):
                _run_one(dataset, futures[future], future.result)
                bar.update()
    except BaseException:
        for future in futures:
            future.cancel()
        if fresh and not dataset.done():
            _remove_fresh(root, existed)
        raise
    finally:
        bar.close()
    return dataset


def _run_one(dataset: Dataset, index: int, result: Callable[[], dict]) -> None:
    try:
        entry = result()
    except BaseException as err:
        dataset.record(index, error=f"{type(err).__name__}: {err}")
        raise
    dataset.record(index, entry)


def _check_same_recipe(dataset: Dataset, names: Sequence[str], config: Mapping, seed: int | None,
                       output: OutputConfig) -> None:
    recorded = dataset.manifest
    differences = [
        what
        for what, mine, theirs in (
            ("config", json.loads(json.dumps(config)), recorded["config"]),
            ("seed", seed, recorded["seed"]),
            ("output options", output.model_dump(), recorded["output"]),
            ("sample names", list(names), [s["name"] for s in dataset.samples]),
        )
        if mine != theirs
    ]
    if differences:
        raise DatasetError(
            f"cannot resume '{dataset.root}': its {', '.join(differences)} differ from this run's; "
            "resume with the same ones or choose a new folder"
        )


def sample_names(prefix: str, n_samples: int) -> list[str]:
    """``prefix_0000`` … with at least four digits.

    Examples
    --------
    >>> sample_names("sample", 3)
    ['sample_0000', 'sample_0001', 'sample_0002']
    """
    digits = max(4, len(str(n_samples - 1)))
    return [f"{prefix}_{i:0{digits}d}" for i in range(n_samples)]


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
    images, labels : sequences of path-like
        Files, one label file per image in the same order; or one folder each, paired by name
        (:func:`paired_files`: StarDist, Cell Tracking Challenge and Cellpose layouts).
    spacing : 3 floats, optional
        Voxel size (z, y, x) in µm; required for files without one (``.npy``).
    output, resume, progress
        See :func:`build_dataset`.

    Examples
    --------
    >>> import_dataset("data/mine", ["raw/images"], ["raw/masks"], spacing=(0.5, 0.2, 0.2))  # doctest: +SKIP
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


def paired_files(images: Iterable[Path], labels: Iterable[Path]) -> list[tuple[Path, Path]]:
    """Pair image and label files by name: StarDist, Cell Tracking Challenge and Cellpose layouts.

    Identical names pair first, whatever they look like (StarDist: ``images/a.tif`` ↔ ``masks/a.tif``,
    also ``t000.tif`` ↔ ``t000.tif``); the others as ``tNNN`` ↔ ``man_segNNN`` (CTC: ``01/`` ↔
    ``01_GT/SEG/``) and ``NAME`` ↔ ``NAME_masks`` (Cellpose, both
    in one folder: the ``_masks`` files are the labels, the others the images).

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


def example_dataset(out: str | os.PathLike, *, output: OutputConfig | None = None, resume: bool = False,
                    progress: bool = True) -> Dataset:
    """scikit-image's cells3d nuclei (the ``examples`` extra; research use only) as a one-sample dataset folder.

    Examples
    --------
    >>> dataset = example_dataset("data/cells3d")  # doctest: +SKIP
    >>> dataset.name(0)  # doctest: +SKIP
    'cells3d_nuclei'
    """
    from cellsynth.examples import cells3d_nuclei

    image, labels, spacing = cells3d_nuclei()
    sample = Sample(image=image, labels=labels, spacing=spacing, params={"source": "skimage cells3d nuclei"})
    return build_dataset(out, ["cells3d_nuclei"], lambda index, rng: sample, config={"example": "cells3d"},
                         seed=None, output=output or OutputConfig(), resume=resume, progress=progress)
