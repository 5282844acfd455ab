"""A dataset folder and its manifest: images, labels, optional semantic maps and previews.

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

Building one is :mod:`.build`; importing annotated files, :mod:`.importing`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

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
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import read_volume, write_json_atomic, write_volume
from cellsynth.locks import check_unlocked
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


class Dataset:
    """A dataset folder and its manifest.

    Create one with :meth:`create`, open an existing one with :meth:`open`. The manifest is the
    single record of what is in the folder; :meth:`record` updates it atomically.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.dataset import build_dataset
    >>> one = Sample(np.ones((2, 8, 8), np.uint16), np.zeros((2, 8, 8), np.float32), (1.0, 0.5, 0.5))
    >>> root = Path(tempfile.mkdtemp()) / "one"
    >>> _ = build_dataset(root, ["a"], lambda i, rng: one, config={}, seed=None, output=OutputConfig(), progress=False)
    >>> dataset = Dataset.open(root)
    >>> dataset.read_sample(0).spacing, dataset.name(0), dataset.pending()
    ((1.0, 0.5, 0.5), 'a', [])
    >>> print(dataset.summary())  # doctest: +ELLIPSIS
    /.../one: 1 of 1 samples done
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

    def summary(self) -> str:
        """What the folder holds, for a person: the samples done and, for a diversified dataset
        (:func:`~cellsynth.series.diversify_dataset`), the mean PSNR of each level."""
        lines = [f"{self.root}: {self.manifest['counts']['done']} of {len(self)} samples done"]
        for level in self.manifest.get("levels", []):
            psnr = level["mean_psnr_db"]
            lines.append(f"w_i {level['w_i']:g}, w_v {level['w_v']:g}: mean PSNR "
                         + ("inf (unchanged)" if psnr is None else f"{psnr:.2f} dB"))
        return "\n".join(lines)

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
