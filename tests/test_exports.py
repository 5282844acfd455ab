"""Exports: each layout read back and checked against the rules the target tool applies."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from conftest import SPACING

from cellsynth.dataset import Dataset
from cellsynth.dataset.exports import EXPORT_FORMATS, export_dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.io import read_volume
from cellsynth.masks.derived import SEMANTIC_CLASSES, semantic_from_instances


def samples_by_name(dataset: Dataset):
    return {dataset.name(i): dataset.read_sample(i) for i in range(len(dataset))}


def test_stardist_names_pair_up_and_spacing_is_kept(make_dataset, tmp_path):
    dataset = make_dataset(n=3)
    out = export_dataset(dataset.root, "stardist", tmp_path / "sd", progress=False)
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == sorted(p.name for p in (out / "masks").iterdir()) == [f"sample_000{i}.tif" for i in range(3)]
    for name, sample in samples_by_name(dataset).items():
        image, spacing = read_volume(out / "images" / f"{name}.tif")
        mask = tifffile.imread(out / "masks" / f"{name}.tif")  # how StarDist reads it
        np.testing.assert_array_equal(image, sample.image)
        np.testing.assert_array_equal(mask, sample.labels)
        assert spacing == SPACING and np.issubdtype(mask.dtype, np.integer)


def test_cellpose_slices_pair_up_and_skip_empty_planes(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    out = export_dataset(dataset, "cellpose", tmp_path / "cp", progress=False)
    masks = sorted(p.name for p in out.glob("*_masks.tif"))
    images = sorted(p.name for p in out.glob("*.tif") if not p.name.endswith("_masks.tif"))
    assert [m.replace("_masks", "") for m in masks] == images
    # every plane of the tiny sample holds an object; plane names carry the z index
    assert images[:4] == [
        "sample_0000_z000.tif",
        "sample_0000_z001.tif",
        "sample_0000_z002.tif",
        "sample_0000_z003.tif",
    ]
    sample = dataset.read_sample(0)
    for z in range(4):
        plane = tifffile.imread(out / f"sample_0000_z{z:03d}.tif")
        mask = tifffile.imread(out / f"sample_0000_z{z:03d}_masks.tif")
        assert plane.shape == mask.shape == (16, 20)  # 2D, as Cellpose trains
        np.testing.assert_array_equal(mask, sample.labels[z])
        np.testing.assert_array_equal(plane, sample.image[z])
        assert read_volume(out / f"sample_0000_z{z:03d}.tif")[1][1:] == SPACING[1:]


def test_cellpose_slices_without_objects_are_left_out(tmp_path):
    from conftest import make_sample

    from cellsynth.config import OutputConfig
    from cellsynth.dataset import build_dataset

    def sparse(index, rng):
        sample = make_sample(index, rng, shape=(6, 16, 20))
        sample.labels[4:] = 0
        return sample

    dataset = build_dataset(tmp_path / "ds", ["a"], sparse, config={}, seed=0, output=OutputConfig(), progress=False)
    out = export_dataset(dataset, "cellpose", tmp_path / "cp", progress=False)
    assert sorted(p.name for p in out.glob("*_masks.tif")) == [f"a_z00{z}_masks.tif" for z in range(4)]


def test_cellpose_stacks(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    out = export_dataset(dataset, "cellpose", tmp_path / "cp", layout="stacks", progress=False)
    assert sorted(p.name for p in out.glob("*.tif")) == [
        "sample_0000.tif",
        "sample_0000_masks.tif",
        "sample_0001.tif",
        "sample_0001_masks.tif",
    ]
    assert tifffile.imread(out / "sample_0001_masks.tif").shape == (4, 16, 20)


def test_ctc_sequences_layout_is_one_sequence_per_sample_with_tracking_truth(make_dataset, tmp_path):
    dataset = make_dataset(n=3)
    out = export_dataset(dataset, "ctc", tmp_path / "ctc", layout="sequences", progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["01", "01_GT", "02", "02_GT", "03", "03_GT"]
    for index, sequence in enumerate(["01", "02", "03"]):
        labels = dataset.read_sample(index).labels
        assert [p.name for p in (out / sequence).iterdir()] == ["t000.tif"]
        assert tifffile.imread(out / sequence / "t000.tif").dtype == np.uint16
        seg = tifffile.imread(out / f"{sequence}_GT/SEG/man_seg000.tif")
        track = tifffile.imread(out / f"{sequence}_GT/TRA/man_track000.tif")
        assert seg.dtype == track.dtype == np.uint16
        np.testing.assert_array_equal(seg, labels)  # ids 1 … n already: kept
        np.testing.assert_array_equal(track, labels)
        rows = [line.split() for line in (out / f"{sequence}_GT/TRA/man_track.txt").read_text().splitlines()]
        ids = sorted(set(np.unique(labels).tolist()) - {0})
        assert rows == [[str(i), "0", "0", "0"] for i in ids]  # each track: frame 0 to 0, no parent
    provenance = json.loads((out / "cellsynth_export.json").read_text())
    assert provenance["samples"][2] == {"sample": "sample_0002", "files": [
        "03/t000.tif", "03_GT/SEG/man_seg000.tif", "03_GT/TRA/man_track000.tif", "03_GT/TRA/man_track.txt"]}


def test_ctc_frames_layout_is_scored_by_the_challenge_metrics(make_dataset, tmp_path):
    """The default layout: one sequence of frames, one-frame tracks with unique ids; py-ctcmetrics (the
    challenge's own scorer) gives DET = SEG = TRA = 1 for the ground truth against itself."""
    import shutil

    from ctc_metrics.scripts.evaluate import evaluate_sequence

    dataset = make_dataset(n=3)
    out = export_dataset(dataset, "ctc", tmp_path / "ctc", progress=False)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["01", "01_GT"]
    assert sorted(p.name for p in (out / "01").iterdir()) == ["t000.tif", "t001.tif", "t002.tif"]
    rows = [[int(v) for v in line.split()] for line in (out / "01_GT/TRA/man_track.txt").read_text().splitlines()]
    first = 1
    for frame in range(3):
        labels = dataset.read_sample(frame).labels
        image = tifffile.imread(out / f"01/t{frame:03d}.tif")
        assert image.dtype == np.uint16 and image.shape == labels.shape
        track = tifffile.imread(out / f"01_GT/TRA/man_track{frame:03d}.tif")
        n = len(np.unique(labels)) - 1
        assert sorted(np.unique(track).tolist()) == [0, *range(first, first + n)]  # unique in the sequence
        np.testing.assert_array_equal(track > 0, labels > 0)
        assert [r for r in rows if r[1] == frame] == [[i, frame, frame, 0] for i in range(first, first + n)]
        first += n
    result = tmp_path / "01_RES"
    shutil.copytree(out / "01_GT/TRA", result)
    for file in result.glob("man_track*.tif"):
        file.rename(result / file.name.replace("man_track", "mask"))
    (result / "man_track.txt").rename(result / "res_track.txt")
    scores = evaluate_sequence(str(result), str(out / "01_GT"), metrics=["DET", "SEG", "TRA"], threads=1)
    assert (scores["DET"], scores["SEG"], scores["TRA"]) == (1.0, 1.0, 1.0)


def test_a_ctc_export_imports_back(make_dataset, tmp_path):
    from cellsynth.cli import main

    dataset = make_dataset(n=1)
    out = export_dataset(dataset, "ctc", tmp_path / "ctc", layout="sequences", progress=False)
    assert main(["-q", "dataset", "import", str(tmp_path / "back"), "--images", str(out / "01"),
                 "--labels", str(out / "01_GT" / "SEG")]) == 0
    back = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert [s["name"] for s in back["samples"]] == ["t000"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "back/labels/t000.tif"), dataset.read_sample(0).labels)


def test_nnunet_3d_layout(make_dataset, tmp_path):
    dataset = make_dataset(n=2, semantic=False)
    out = export_dataset(dataset, "nnunet", tmp_path / "Dataset001_Cells", progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta == {
        "channel_names": {"0": "fluorescence"},
        "labels": SEMANTIC_CLASSES,
        "numTraining": 2,
        "file_ending": ".tif",
        "overwrite_image_reader_writer": "Tiff3DIO",
    }
    for name, sample in samples_by_name(dataset).items():
        image = tifffile.imread(out / "imagesTr" / f"{name}_0000.tif")
        seg = tifffile.imread(out / "labelsTr" / f"{name}.tif")
        assert image.ndim == seg.ndim == 3  # what Tiff3DIO insists on
        np.testing.assert_array_equal(seg, semantic_from_instances(sample.labels))
        assert set(np.unique(seg)) <= set(SEMANTIC_CLASSES.values())
        # Tiff3DIO looks for the spacing of case_0000.tif in case.json, and of labelsTr/case.tif in case.json
        for sidecar in (out / "imagesTr" / f"{name}.json", out / "labelsTr" / f"{name}.json"):
            assert json.loads(sidecar.read_text()) == {"spacing": list(SPACING)}


def test_nnunet_2d_uses_png(tmp_path):
    from conftest import make_sample

    from cellsynth.config import OutputConfig
    from cellsynth.dataset import build_dataset

    dataset = build_dataset(
        tmp_path / "ds",
        ["a", "b"],
        lambda i, rng: make_sample(i, rng, shape=(1, 16, 20)),
        config={},
        seed=0,
        output=OutputConfig(),
        progress=False,
    )
    with pytest.raises(InputError, match="named DatasetNNN_Name"):
        export_dataset(dataset, "nnunet", tmp_path / "nn", progress=False)
    out = export_dataset(dataset, "nnunet", tmp_path / "Dataset002_Flat", progress=False)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["file_ending"] == ".png" and meta["overwrite_image_reader_writer"] == "NaturalImage2DIO"
    image = iio.imread(out / "imagesTr" / "a_0000.png")
    seg = iio.imread(out / "labelsTr" / "a.png")
    assert image.dtype == np.uint16 and image.shape == seg.shape == (16, 20)
    original = dataset.read_sample(0).image[0]
    assert np.corrcoef(image.ravel(), original.ravel())[0, 1] > 0.9999  # min-max scaled, not clipped
    np.testing.assert_array_equal(seg, dataset.read_sample(0).semantic[0])


def test_ome_zarr_export(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    out = export_dataset(dataset, "ome-zarr", tmp_path / "oz", progress=False)
    for name, sample in samples_by_name(dataset).items():
        image, spacing = read_volume(out / f"{name}.ome.zarr")
        labels = {kind: read_volume(out / f"{name}.ome.zarr" / "labels" / kind)[0] for kind in ("cells", "semantic")}
        np.testing.assert_array_equal(image, sample.image)
        np.testing.assert_array_equal(labels["cells"], sample.labels)
        np.testing.assert_array_equal(labels["semantic"], sample.semantic)
        assert spacing == SPACING


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_every_format_exports_2d_datasets(tmp_path, fmt):
    from conftest import make_sample

    from cellsynth.config import OutputConfig
    from cellsynth.dataset import build_dataset

    dataset = build_dataset(
        tmp_path / "ds",
        ["a"],
        lambda i, rng: make_sample(i, rng, shape=(1, 16, 20)),
        config={},
        seed=0,
        output=OutputConfig(),
        progress=False,
    )
    out = export_dataset(dataset, fmt, tmp_path / "Dataset003_Out", progress=False)
    assert len(json.loads((out / "cellsynth_export.json").read_text())["samples"][0]["files"]) >= 1


def test_export_into_empty_folder_is_allowed(make_dataset, tmp_path):
    dataset = make_dataset(n=1)
    (tmp_path / "empty").mkdir()
    export_dataset(dataset, "stardist", tmp_path / "empty", progress=False)
    assert (tmp_path / "empty" / "masks" / "sample_0000.tif").exists()


def test_export_of_corrupt_dataset_fails_and_writes_nothing(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    (dataset.root / "labels" / "sample_0001.tif").write_bytes(b"broken")
    with pytest.raises(DatasetError, match="have a missing or changed file"):
        export_dataset(dataset.root, "stardist", tmp_path / "sd", progress=False)
    assert not (tmp_path / "sd").exists()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_export_failure_midway_leaves_nothing(make_dataset, tmp_path, monkeypatch):
    import cellsynth.dataset.exports as exports

    dataset = make_dataset(n=3)
    calls = []

    def failing(name, sample, out, index):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return exports._stardist(name, sample, out, index)

    monkeypatch.setattr(exports, "_stardist", failing)
    with pytest.raises(OSError, match="disk full"):
        export_dataset(dataset, "stardist", tmp_path / "sd", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_export_refuses_unknown_format_and_file_target(make_dataset, tmp_path):
    dataset = make_dataset(n=1)
    with pytest.raises(InputError, match="accepted: stardist, cellpose, ctc, nnunet, ome-zarr"):
        export_dataset(dataset, "hdf5", tmp_path / "x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        export_dataset(dataset, "stardist", tmp_path / "file")
    with pytest.raises(InputError, match="unknown cellpose layout 'volumes'; accepted: slices, stacks"):
        export_dataset(dataset, "cellpose", tmp_path / "cp", layout="volumes")
    with pytest.raises(InputError, match="the stardist export has one layout"):
        export_dataset(dataset, "stardist", tmp_path / "sd", layout="frames")
