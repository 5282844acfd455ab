"""Config-driven mask simulation, masks-only datasets and the `cellsynth masks` commands."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from cellsynth.cli import main
from cellsynth.config import validate_config
from cellsynth.dataset import Dataset
from cellsynth.dataset.exports import export_dataset
from cellsynth.errors import DatasetError, InputError
from cellsynth.masks.placement import CrowdedWarning
from cellsynth.masks.simulate import simulate_masks
from cellsynth.synthesis.pipeline import generate_dataset

SMALL = {"shape": [12, 48, 48], "spacing_um": [0.5, 0.3, 0.3]}  # 6 × 14.4 × 14.4 µm


def config(**masks):
    return validate_config({"volume": SMALL, "dataset": {"n_samples": 2, "seed": 5}, "masks": masks})


def simulate(cfg, seed=0):
    return simulate_masks(cfg.volume.shape, cfg.volume.spacing_um, cfg.masks, np.random.default_rng(seed))


def test_nuclei_are_deterministic_and_within_the_organism():
    cfg = config(organism={"kind": "ellipsoid"}, nuclei={"radius_um": 1.5, "radius_std_um": 0.1},
                 placement={"min_distance_um": 3.5})
    first, again, other = simulate(cfg, 1), simulate(cfg, 1), simulate(cfg, 2)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert not np.array_equal(first.labels, other.labels)
    assert first.labels.any() and not np.any(first.labels[~first.foreground])
    assert first.params["n_cells_placed"] == first.params["n_cells_requested"] >= 5
    assert len(np.unique(first.labels)) - 1 == first.params["n_cells_placed"] - first.params["n_empty_cells"]


def test_membranes_fill_the_organism_with_walls():
    cfg = config(kind="membranes", organism={"kind": "sh", "radius_um": 6.0},
                 placement={"method": "layers", "min_distance_um": 3.0})
    result = simulate(cfg)
    np.testing.assert_array_equal(result.labels > 0, result.foreground)  # space-filling
    assert result.membranes is not None and result.membranes.any()
    assert not np.any(result.membranes & ~result.foreground)
    assert result.params["n_layers"] >= 1


def test_more_cells_than_fit_warns_and_reports_the_count():
    cfg = config(nuclei={"radius_um": 1.5}, placement={"min_distance_um": 5.0, "n_cells": 500})
    with pytest.warns(CrowdedWarning, match="of 500 cells"):
        result = simulate(cfg)
    assert result.params["n_cells_requested"] == 500 and 0 < result.params["n_cells_placed"] < 500


def test_detections_place_cells_where_given(tmp_path):
    (tmp_path / "d.csv").write_text("z,y,x\n3.0,4.0,4.0\n3.0,10.0,10.0\n")
    cfg = config(placement={"method": "detections", "detections": str(tmp_path / "d.csv")},
                 nuclei={"radius_um": 1.5, "radius_std_um": 0})
    result = simulate(cfg)
    assert result.labels[6, round(4 / 0.3), round(4 / 0.3)] == 1
    assert result.labels[6, round(10 / 0.3), round(10 / 0.3)] == 2


def test_volume_smaller_than_one_cell_and_missing_model_are_clear_errors():
    with pytest.raises(InputError, match=r"smaller than one cell \(20 µm across\)"):
        simulate(config(nuclei={"radius_um": 10.0}))
    with pytest.raises(InputError, match="shape model 'nope.npz' not found"):
        simulate(config(nuclei={"shape": "ssm", "ssm_model": "nope.npz"}))
    with pytest.raises(InputError, match="ellipsoid organism foreground is empty"):
        simulate(config(organism={"kind": "ellipsoid", "semi_axes_um": [0.01, 0.01, 0.01]}))


def test_masks_only_dataset_has_labels_extras_and_refuses_export(tmp_path):
    cfg = config(kind="membranes", placement={"min_distance_um": 4.0})
    dataset = generate_dataset(cfg, tmp_path / "ds", progress=False)
    entry = dataset.samples[0]
    assert set(entry["files"]) == {"labels", "semantic", "centroids", "foreground", "membranes", "preview"}
    assert entry["image_dtype"] is None and dataset.pending() == []
    sample = dataset.read_sample(1)
    assert sample.image is None and sample.foreground.any() and sample.semantic is not None
    assert sample.membranes.dtype == bool and sample.membranes.any() and not sample.membranes.all()
    with pytest.raises(DatasetError, match="masks only"):
        export_dataset(dataset, "stardist", tmp_path / "out", progress=False)
    recipe = json.loads((tmp_path / "ds" / "manifest.json").read_text())["config"]
    assert recipe["masks"]["kind"] == "membranes" and recipe["renderer"] is None


def test_cli_masks_nuclei_with_flags_and_resume(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"volume: {json.dumps(SMALL)}\nmasks: {{nuclei: {{radius_um: 1.5}}, "
                    "placement: {min_distance_um: 3.5}}\n")
    out = tmp_path / "ds"
    assert main(["masks", "nuclei", str(path), "--out", str(out), "--n", "3", "--seed", "9", "-q"]) == 0
    assert "3 of 3 samples done" in capsys.readouterr().out
    first = (out / "labels" / "sample_0002.tif").read_bytes()
    (out / "labels" / "sample_0002.tif").unlink()
    assert main(["masks", "nuclei", str(path), "--out", str(out), "--n", "3", "--seed", "9", "-q", "--resume"]) == 0
    assert (out / "labels" / "sample_0002.tif").read_bytes() == first
    assert Dataset.open(out).manifest["seed"] == 9


def test_cli_crowding_is_a_one_line_warning(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(f"volume: {json.dumps(SMALL)}\nmasks: {{nuclei: {{radius_um: 1.5}}, "
                    "placement: {min_distance_um: 5.0, n_cells: 300}}\n")
    with warnings.catch_warnings():
        assert main(["masks", "nuclei", str(path), "--out", str(tmp_path / "ds"), "--n", "1", "-q"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cellsynth: warning: placed ") and "of 300 cells" in err[0]
    params = Dataset.open(tmp_path / "ds").samples[0]["params"]
    assert params["n_cells_requested"] == 300 and params["n_cells_placed"] < 300


def test_cli_fit_ssm_then_simulate_with_it(tmp_path, capsys):
    from test_ssm import SPACING, training_volume

    from cellsynth.io import write_volume

    write_volume(tmp_path / "labels.tif", training_volume(), SPACING)
    model = tmp_path / "model.npz"
    assert main(["masks", "fit-ssm", str(tmp_path / "labels.tif"), "--out", str(model), "--directions", "128"]) == 0
    assert "6 shapes, 5 modes" in capsys.readouterr().out
    path = tmp_path / "c.yaml"
    path.write_text(f"volume: {json.dumps(SMALL)}\nmasks: {{nuclei: {{shape: ssm, ssm_model: '{model}'}}, "
                    "placement: {min_distance_um: 6.0}}\n")
    assert main(["masks", "nuclei", str(path), "--out", str(tmp_path / "ds"), "--n", "1", "-q"]) == 0
    radii = [float(line.split(",")[-1]) for line in (tmp_path / "ds" / "centroids" / "sample_0000.csv")
             .read_text().splitlines()[1:]]
    assert radii and 1.0 < np.median(radii) < 3.5  # the training nuclei have mean radii 2.0 … 3.5 µm
