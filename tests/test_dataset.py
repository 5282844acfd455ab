"""Dataset folders: manifest, checksums, atomic writes, interruption and resume."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import SPACING, boxes_labels, make_sample

from cellsynth.config import OutputConfig
from cellsynth.dataset import Dataset, build_dataset, sample_names, sample_rng
from cellsynth.dataset.manifest import sha256_file
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import read_volume
from cellsynth.masks.derived import SEMANTIC_CLASSES


def visible_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_dataset_layout_and_manifest(make_dataset):
    dataset = make_dataset(n=2)
    root = dataset.root
    assert visible_files(root) == [
        "centroids/sample_0000.csv", "centroids/sample_0001.csv",
        "images/sample_0000.tif", "images/sample_0001.tif", "labels/sample_0000.tif", "labels/sample_0001.tif",
        "manifest.json", "previews/sample_0000.png", "previews/sample_0001.png",
        "semantic/sample_0000.tif", "semantic/sample_0001.tif",
    ]
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["config"] == {"test": True, "shape": [4, 16, 20]}
    assert manifest["counts"] == {"done": 2, "pending": 0, "failed": 0}
    assert {"cellsynth", "numpy", "tifffile", "torch"} <= set(manifest["versions"])
    entry = manifest["samples"][1]
    assert entry["status"] == "done" and entry["name"] == "sample_0001"
    assert entry["shape"] == [4, 16, 20] and entry["spacing_um"] == list(SPACING) and entry["n_objects"] == 3
    assert entry["params"] == {"index": 1}
    for file in entry["files"].values():
        assert sha256_file(root / file["path"]) == file["sha256"]


def test_samples_read_back_exactly(make_dataset):
    dataset = make_dataset(n=2)
    for index in range(2):
        expected = make_sample(index, sample_rng(1, index))
        sample = dataset.read_sample(index)
        np.testing.assert_array_equal(sample.image, expected.image)
        np.testing.assert_array_equal(sample.labels, expected.labels)
        assert sample.labels.dtype == np.uint16 and sample.spacing == SPACING
        assert set(np.unique(sample.semantic)) == set(SEMANTIC_CLASSES.values())


def test_optional_outputs_can_be_switched_off(make_dataset):
    dataset = make_dataset(n=1, previews=False, semantic=False, centroids=False, tiff_compression="zlib")
    assert visible_files(dataset.root) == ["images/sample_0000.tif", "labels/sample_0000.tif", "manifest.json"]
    assert dataset.read_sample(0).semantic is None


def test_sample_rng_is_spawn_and_independent_of_count():
    spawned = np.random.SeedSequence(5).spawn(4)
    for index in range(4):
        assert sample_rng(5, index).random() == np.random.default_rng(spawned[index]).random()
    assert sample_rng(5, 0).random() != sample_rng(5, 1).random()


def test_same_seed_gives_identical_files(make_dataset, tmp_path):
    first, second = make_dataset(n=2, name="a"), make_dataset(n=2, name="b")
    for a, b in zip(first.samples, second.samples, strict=True):
        assert {k: v["sha256"] for k, v in a["files"].items() if k != "preview"} == \
               {k: v["sha256"] for k, v in b["files"].items() if k != "preview"}


def test_exception_mid_generation_leaves_complete_files_and_resume_finishes(tmp_path):
    names = sample_names("s", 4)

    def flaky(index, rng):
        if index == 2:
            raise RuntimeError("simulated crash")
        return make_sample(index, rng)

    kwargs = dict(config={"c": 1}, seed=3, output=OutputConfig(), progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_dataset(tmp_path / "ds", names, flaky, **kwargs)
    dataset = Dataset.open(tmp_path / "ds")
    assert [s["status"] for s in dataset.samples] == ["done", "done", "failed", "pending"]
    assert "simulated crash" in dataset.samples[2]["error"]
    assert not any("s_0002" in f or "s_0003" in f for f in visible_files(dataset.root))
    assert dataset.pending() == [2, 3]

    resumed = build_dataset(tmp_path / "ds", names, make_sample, resume=True, **kwargs)
    assert resumed.pending() == [] and resumed.manifest["counts"]["done"] == 4
    reference = build_dataset(tmp_path / "ref", names, make_sample, **kwargs)
    for a, b in zip(resumed.samples, reference.samples, strict=True):
        assert a["files"]["image"]["sha256"] == b["files"]["image"]["sha256"]


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import tifffile

    real_imwrite = tifffile.imwrite

    def dying_imwrite(path, data, **kwargs):
        if "labels" in str(path) and "s_0001" in str(path):
            with open(path, "wb") as handle:
                handle.write(b"II*\x00 half a tiff")
            raise OSError("disk full")
        return real_imwrite(path, data, **kwargs)

    monkeypatch.setattr(tifffile, "imwrite", dying_imwrite)
    with pytest.raises(OSError, match="disk full"):
        build_dataset(tmp_path / "ds", sample_names("s", 2), make_sample, config={}, seed=0,
                      output=OutputConfig(), progress=False)
    files = [p.name for p in (tmp_path / "ds").rglob("*")]
    assert not any(name.endswith(".partial") for name in files)
    assert "s_0001.tif" not in [p.name for p in (tmp_path / "ds" / "labels").iterdir()]


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import cellsynth.io
    from conftest import make_sample
    from cellsynth.config import OutputConfig
    from cellsynth.dataset import build_dataset, sample_names

    real_replace = os.replace
    def replace_then_die(src, dst):
        if str(dst).endswith("images/s_0002.tif"):
            os.kill(os.getpid(), signal.SIGKILL)  # killed between writing the data and renaming it
        return real_replace(src, dst)
    cellsynth.io.atomic.os.replace = replace_then_die
    build_dataset({root!r}, sample_names("s", 4), make_sample, config={{}}, seed=7, output=OutputConfig(),
                  progress=False)
    """
)


def test_killed_process_leaves_no_partial_file_and_resume_completes(tmp_path):
    from pathlib import Path

    root = tmp_path / "ds"
    script = KILLER.format(tests=str(Path(__file__).parent), root=str(root))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()
    assert "images/s_0002.tif" not in visible_files(root)
    assert sorted(p.name for p in (root / "images").glob("*.tif")) == ["s_0000.tif", "s_0001.tif"]
    dataset = Dataset.open(root)
    assert dataset.pending() == [2, 3]
    assert any(p.name.endswith(".partial") for p in root.rglob("*"))  # the killed writer's temporary

    build_dataset(root, sample_names("s", 4), make_sample, config={}, seed=7, output=OutputConfig(),
                  resume=True, progress=False)
    dataset = Dataset.open(root)
    assert dataset.pending() == []
    assert not any(p.name.endswith(".partial") for p in root.rglob("*"))


def test_corrupt_file_is_detected_and_regenerated(make_dataset):
    dataset = make_dataset(n=3)
    image_path = dataset.root / dataset.samples[1]["files"]["image"]["path"]
    original = image_path.read_bytes()
    image_path.write_bytes(original[:-8] + b"garbage!")
    assert not dataset.verify(1) and dataset.pending() == [1]
    with pytest.raises(DatasetError, match="fails its checksum"):
        dataset.read_sample(1)
    (dataset.root / dataset.samples[2]["files"]["labels"]["path"]).unlink()
    assert dataset.pending() == [1, 2]

    resumed = build_dataset(dataset.root, sample_names("sample", 3), make_sample,
                            config={"test": True, "shape": [4, 16, 20]}, seed=1, output=OutputConfig(),
                            resume=True, progress=False)
    assert resumed.pending() == []
    assert image_path.read_bytes() == original


def test_resume_refuses_a_different_recipe(make_dataset):
    dataset = make_dataset(n=2)
    with pytest.raises(DatasetError, match="seed differ"):
        build_dataset(dataset.root, sample_names("sample", 2), make_sample,
                      config={"test": True, "shape": [4, 16, 20]}, seed=2, output=OutputConfig(), resume=True)
    with pytest.raises(DatasetError, match="config differ"):
        build_dataset(dataset.root, sample_names("sample", 2), make_sample, config={"other": 1}, seed=1,
                      output=OutputConfig(), resume=True)


def test_existing_folder_needs_resume(make_dataset):
    dataset = make_dataset(n=1)
    with pytest.raises(InputError, match="not empty; resume it"):
        make_dataset(n=1)
    assert dataset.pending() == []


def test_invalid_sample_writes_nothing(tmp_path):
    def bad(index, rng):
        sample = make_sample(index, rng)
        sample.labels = sample.labels[:, :-1]
        return sample

    with pytest.raises(InputError, match="shape .* differ"):
        build_dataset(tmp_path / "ds", ["a"], bad, config={}, seed=0, output=OutputConfig(), progress=False)
    assert not (tmp_path / "ds").exists()  # the run made the folder and finished nothing: it is gone again


def test_given_semantic_map_is_validated(tmp_path):
    def bad(index, rng):
        sample = make_sample(index, rng)
        sample.semantic = np.full(sample.labels.shape, -1, np.int16)
        return sample

    (tmp_path / "ds").mkdir()  # an existing empty folder stays, empty
    with pytest.raises(InputError, match="semantic map must be integer classes 0..255"):
        build_dataset(tmp_path / "ds", ["a"], bad, config={}, seed=0, output=OutputConfig(), progress=False)
    assert (tmp_path / "ds").is_dir() and not any((tmp_path / "ds").iterdir())


def test_failure_after_finished_samples_keeps_them_for_resume(tmp_path):
    def fails_at_two(index, rng):
        if index == 2:
            raise RuntimeError("simulated crash")
        return make_sample(index, rng)

    with pytest.raises(RuntimeError, match="simulated crash"):
        build_dataset(tmp_path / "ds", sample_names("s", 4), fails_at_two, config={}, seed=0, output=OutputConfig(),
                      progress=False)
    dataset = Dataset.open(tmp_path / "ds")
    assert [s["status"] for s in dataset.samples] == ["done", "done", "failed", "pending"]
    assert "simulated crash" in dataset.samples[2]["error"]


def test_2d_samples(tmp_path):
    def plane(index, rng):
        sample = make_sample(index, rng, shape=(1, 16, 20))
        sample.image, sample.labels = sample.image[0], sample.labels[0]
        return sample

    dataset = build_dataset(tmp_path / "ds", ["a", "b"], plane, config={}, seed=0, output=OutputConfig(),
                            progress=False)
    sample = dataset.read_sample(1)
    assert sample.image.shape == (1, 16, 20) and sample.labels.max() == 7
    assert read_volume(dataset.root / "semantic" / "b.tif")[0].shape == (1, 16, 20)


def test_open_non_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a cellsynth dataset"):
        Dataset.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        Dataset.open(tmp_path)


def test_an_interrupted_first_manifest_leaves_no_empty_dataset_folder(tmp_path, monkeypatch):
    import cellsynth.dataset.manifest

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cellsynth.dataset.manifest, "write_json_atomic", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Dataset.create(tmp_path / "ds", ["a"], config={}, seed=0, output=OutputConfig())
    assert list(tmp_path.iterdir()) == []


def test_finished_refuses_an_unfinished_dataset_unless_partial_is_allowed(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", ["a", "b"], config={}, seed=0, output=OutputConfig())
    with pytest.raises(DatasetError, match="no finished sample to export"):
        dataset.finished("export")
    with pytest.raises(ZeroDivisionError):
        build_dataset(tmp_path / "ds2", ["a", "b"], lambda i, rng: make_sample(i, rng) if i == 0 else 1 / 0,
                      config={}, seed=0, output=OutputConfig(), progress=False)
    partial = Dataset.open(tmp_path / "ds2")
    with pytest.raises(DatasetError, match=r"unfinished \(1 of 2 samples done\)"):
        partial.finished("export")
    assert partial.finished("export", allow_partial=True) == [0]


def test_import_pairs_identical_ctc_like_names_first(tmp_path):
    """Issue 26 #4: A/t000.tif … with B/t000.tif … pair by their identical names."""
    from cellsynth.dataset import Dataset, import_dataset
    from cellsynth.io import write_volume

    for folder in ("A", "B"):
        (tmp_path / folder).mkdir()
    for index in range(3):
        labels = boxes_labels()
        write_volume(tmp_path / "A" / f"t{index:03d}.tif", (labels > 0).astype(np.float32) + index, SPACING)
        write_volume(tmp_path / "B" / f"t{index:03d}.tif", labels, SPACING)
    dataset = import_dataset(tmp_path / "ds", [tmp_path / "A"], [tmp_path / "B"], progress=False)
    assert [dataset.name(i) for i in range(3)] == ["t000", "t001", "t002"]
    assert [s["params"]["labels"] for s in Dataset.open(tmp_path / "ds").samples] == [
        str(tmp_path / "B" / f"t{i:03d}.tif") for i in range(3)]
