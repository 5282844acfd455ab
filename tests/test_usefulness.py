"""Is the data useful? C2ST, the classical baseline, disjoint splits and the Syn2Real segmenter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SPACING
from scipy import ndimage as ndi

from cellsynth.cli import main
from cellsynth.dataset.split import split_dataset
from cellsynth.errors import InputError
from cellsynth.evaluate.baseline import baseline
from cellsynth.evaluate.c2st import c2st, roc_auc
from cellsynth.evaluate.segmentation import matching, score_at
from cellsynth.evaluate.segmenter import train_segmenter
from cellsynth.evaluate.volumes import resample
from cellsynth.io import read_volume, write_volume
from cellsynth.masks.derived import centreness
from cellsynth.masks.segment import classical_segmentation
from cellsynth.sample import Sample

ISO = (1.0, 1.0, 1.0)
TINY_C2ST = {"spacing": ISO, "patch_um": (4, 8, 8), "steps": 60, "batch_size": 16}


def smooth_noise(seed: int, shape=(8, 64, 64), sigma: float = 1.0) -> np.ndarray:
    return ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma).astype(np.float32)


def spheres(shape=(16, 64, 64), radius: float = 5.0, spacing=ISO) -> np.ndarray:
    """Well-separated spheres (ids 1…n) on a regular lateral grid, centred in z."""
    labels = np.zeros(shape, np.uint16)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)], indexing="ij")
    centres = [(shape[0] * spacing[0] / 2, y, x) for y in (12, 32, 52) for x in (12, 32, 52)]
    for index, (z, y, x) in enumerate(centres, start=1):
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = index
    return labels


def render(labels: np.ndarray, spacing, seed: int = 0) -> np.ndarray:
    from cellsynth.synthesis.optics import OpticsRenderer

    return OpticsRenderer().render(Sample(labels, spacing=spacing), np.random.default_rng(seed)).image


# ----------------------------------------------------------------------------- C2ST


def test_c2st_cannot_tell_two_draws_of_one_process_apart():
    result = c2st(smooth_noise(0), smooth_noise(1), **TINY_C2ST)
    assert result.ci95[0] <= 0.5 <= result.ci95[1]
    assert result.n_test == 2 * 2 * 8 * 4  # 2 z × 8 y × 4 x non-overlapping patches per class in the test halves


def test_c2st_tells_a_blurred_copy_apart_and_normalises_a_constant_shift_away():
    image = smooth_noise(0, sigma=0.5)
    assert c2st(image, ndi.gaussian_filter(image, 1.5), **TINY_C2ST).accuracy >= 0.95
    shifted = c2st(image, image + 100.0, **TINY_C2ST)  # each volume is normalised on its own
    assert shifted.ci95[0] <= 0.5 <= shifted.ci95[1]


def test_c2st_trains_and_tests_on_spatially_disjoint_regions():
    # real: fine noise before the cut, smooth noise after it; synthetic the other way round. A
    # classifier that never sees the test region learns "fine = real" and is wrong on every test patch.
    fine, smooth = smooth_noise(0, (8, 32, 64), 0.3), smooth_noise(1, (8, 32, 64), 1.5)
    real, synthetic = np.concatenate([fine, smooth], axis=2), np.concatenate([smooth, fine], axis=2)
    result = c2st(real, synthetic, **TINY_C2ST)
    assert result.accuracy <= 0.05 and result.auc <= 0.05


def test_c2st_is_reproducible_per_seed_and_resamples_to_a_common_spacing(tmp_path):
    a, b = smooth_noise(0), smooth_noise(1, sigma=0.7)
    first, second = c2st(a, b, **TINY_C2ST), c2st(a, b, **TINY_C2ST)
    assert (first.accuracy, first.auc) == (second.accuracy, second.auc)
    assert np.array_equal(first.scores, second.scores)
    assert c2st(a, b, **{**TINY_C2ST, "seed": 1}).scores.tolist() != first.scores.tolist()
    fine = resample(b, (1, 1, 1), (1, 0.5, 0.5))  # the same field of view at half the lateral voxel size
    mixed = c2st([Sample(image=a, spacing=ISO)], [Sample(image=fine, spacing=(1.0, 0.5, 0.5))], patch_um=(4, 8, 8),
                 steps=5)
    assert mixed.settings["spacing_um"] == [1.0, 1.0, 1.0] and mixed.settings["patch_voxels"] == [4, 8, 8]
    path = first.figure(tmp_path / "patches.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_c2st_with_a_step_budget_is_the_same_on_a_quiet_and_a_loaded_machine(monkeypatch):
    """Issue 28: a generous minutes budget beside the steps never changes what a C2ST run trains."""
    import subprocess
    import sys
    import time

    a, b = smooth_noise(0), smooth_noise(1, sigma=0.7)
    quiet = c2st(a, b, **{**TINY_C2ST, "minutes": 30})
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    ticks = iter(range(10**6))  # a stalled clock: every reading after the first at 60 % of the budget
    monkeypatch.setattr(time, "perf_counter", lambda: 0.0 if next(ticks) == 0 else 0.6 * 30 * 60)
    try:
        loaded = c2st(a, b, **{**TINY_C2ST, "minutes": 30})
    finally:
        busy.kill()
        busy.wait()
    assert np.array_equal(quiet.scores, loaded.scores) and quiet.accuracy == loaded.accuracy


def test_roc_auc_counts_ties_as_half():
    assert roc_auc(np.array([0, 1]), np.array([0.3, 0.3])) == 0.5
    assert roc_auc(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.9])) == 1.0


def test_c2st_refuses_what_it_cannot_judge():
    with pytest.raises(InputError, match="differ in dimensionality"):
        c2st(smooth_noise(0)[:1], smooth_noise(1), **TINY_C2ST)
    with pytest.raises(InputError, match="smaller than one patch"):
        c2st(smooth_noise(0, (2, 64, 64)), smooth_noise(1), **TINY_C2ST)
    with pytest.raises(InputError, match="budget"):
        c2st(smooth_noise(0), smooth_noise(1), **{**TINY_C2ST, "steps": 0})


def test_evaluate_realism_writes_the_figures_and_plots(tmp_path, capsys):
    for name, seed in (("real", 0), ("synthetic", 1)):
        write_volume(tmp_path / f"{name}.tif", smooth_noise(seed), ISO)
    out = tmp_path / "realism"
    assert main(["evaluate", "realism", "--real", str(tmp_path / "real.tif"), "--synthetic",
                 str(tmp_path / "synthetic.tif"), "--out", str(out), "--patch-um", "4", "8", "8", "--steps", "20",
                 "--device", "cpu", "-q"]) == 0
    report = json.loads((out / "realism.json").read_text())
    assert {"c2st_accuracy", "c2st_auc", "c2st_ci95", "n_test"} <= set(report)
    assert report["n_test"] == 128 and 0 <= report["c2st_ci95"][0] <= report["c2st_accuracy"] <= report["c2st_ci95"][1]
    assert {"histogram_wasserstein", "radial_spectrum", "spectrum_x"} <= set(report["unpaired"])
    assert {"c2st_patches.png", "spectra.png", "histogram.png"} <= {p.name for p in out.iterdir()}
    assert "C2ST accuracy" in capsys.readouterr().out


def test_evaluate_realism_takes_several_files_and_folders_of_images(tmp_path):
    for name, seed in (("real_a", 0), ("real_b", 2), ("synthetic/s", 1)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_volume(tmp_path / f"{name}.tif", smooth_noise(seed), ISO)
    out = tmp_path / "realism"
    assert main(["evaluate", "realism", "--real", str(tmp_path / "real_a.tif"), str(tmp_path / "real_b.tif"),
                 "--synthetic", str(tmp_path / "synthetic"), "--out", str(out), "--patch-um", "4", "8", "8",
                 "--steps", "5", "--device", "cpu", "-q"]) == 0
    report = json.loads((out / "realism.json").read_text())
    assert report["real"] == [str(tmp_path / "real_a.tif"), str(tmp_path / "real_b.tif")]
    assert report["c2st_settings"]["n_real_volumes"] == 2 and report["c2st_settings"]["n_synthetic_volumes"] == 1


# ----------------------------------------------------------------------------- baseline and split


def test_classical_baseline_finds_well_separated_rendered_spheres(tmp_path):
    spacing = (0.5, 0.5, 0.5)
    labels = spheres(spacing=spacing, radius=5.0)
    predicted = classical_segmentation(render(labels, spacing), spacing)
    assert score_at(matching(labels, predicted, (0.5,)), 0.5) > 0.9


def test_baseline_command_writes_a_syn2real_shaped_report(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    out = tmp_path / "base"
    assert main(["evaluate", "baseline", "--test", str(dataset.root), "--out", str(out), "--min-volume-um3", "0.5",
                 "--min-seed-distance-um", "1", "--smoothing-um", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {"settings", "pooled", "per_image"} <= set(report) and len(report["per_image"]) == 2
    assert report["pooled"][4]["n_true"] == 6 and report["settings"]["min_seed_distance_um"] == 1
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["test_0000.tif", "test_0001.tif"]
    assert baseline(dataset.root, min_volume_um3=0.5, min_seed_distance_um=1, smoothing_um=0)["pooled"] == \
        report["pooled"]


def test_split_gives_two_disjoint_parts_that_keep_spacing_and_ids(make_dataset, tmp_path):
    dataset = make_dataset(n=2)
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["dataset", "split", str(dataset.root), "--axis", "x", "--fraction", "0.4", "--out", str(first),
                 str(second), "-q"]) == 0
    for index in range(2):
        whole = dataset.read_sample(index)
        parts = [read_volume(root / "images" / f"sample_{index:04d}.tif") for root in (first, second)]
        labels = [read_volume(root / "labels" / f"sample_{index:04d}.tif")[0] for root in (first, second)]
        assert parts[0][0].shape == (4, 16, 8) and parts[1][0].shape == (4, 16, 12)
        assert all(spacing == SPACING for _, spacing in parts)
        assert np.array_equal(np.concatenate([p for p, _ in parts], axis=2), whole.image)  # no voxel lost or shared
        assert np.array_equal(np.concatenate(labels, axis=2), whole.labels)
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["samples"][0]["params"]["cut_voxel"] == 8 and manifest["samples"][0]["params"]["part"] == "second"
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        split_dataset(dataset.root, tmp_path / "c", tmp_path / "d", fraction=1.0)
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- the segmenter


def test_centreness_is_one_at_each_centre_and_zero_outside_even_where_objects_touch():
    labels = np.zeros((1, 5, 12), np.uint16)
    labels[0, :, 1:6], labels[0, :, 6:11] = 1, 2
    centre = centreness(labels, (1, 1, 1))
    assert centre[labels == 0].max() == 0 and centre.max() == 1
    assert centre[0, 2, 3] == 1 and centre[0, 2, 8] == 1
    assert centre[0, 2, 5] < 0.5 and centre[0, 2, 6] < 0.5  # the touching faces are borders of both


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_segmenter_trains_on_the_cpu_in_both_precisions(precision):
    spacing = (1.0, 1.0, 1.0)
    labels = spheres(spacing=spacing, radius=4.0)
    volume = Sample(labels, render(labels, spacing), spacing)
    segmenter = train_segmenter([volume], spacing_um=spacing, patch_um=(8, 16, 16), steps=4,
                                validation_fraction=0.3, precision=precision, progress=False)
    assert (segmenter.dtype is None) == (precision == "fp32")
    assert len(segmenter.history["losses"]) == 4 and all(np.isfinite(segmenter.history["losses"]))
    assert segmenter.segment(volume.image, spacing).shape == labels.shape


def test_segmenter_learns_rendered_spheres_and_is_reproducible_per_seed():
    spacing = (1.0, 1.0, 1.0)
    labels = spheres(spacing=spacing, radius=4.0)
    volume = Sample(labels, render(labels, spacing), spacing)
    test = Sample(labels, render(labels, spacing, seed=5), spacing)
    runs = [train_segmenter([volume], spacing_um=spacing, patch_um=(16, 32, 32), steps=60, validation_fraction=0.3,
                            precision="fp32", progress=False) for _ in range(2)]
    assert runs[0].history["losses"] == runs[1].history["losses"]
    predicted = runs[0].segment(test.image, spacing)
    assert score_at(matching(test.labels, predicted, (0.5,)), 0.5) >= 0.8
    assert runs[0].history["losses"][-1] < runs[0].history["losses"][0] / 2


def test_segmenter_refuses_a_zero_budget_and_labels_without_objects():
    volume = Sample(np.zeros((4, 16, 16), np.uint16), np.ones((4, 16, 16), np.float32), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="budget"):
        train_segmenter([volume], steps=0)
    with pytest.raises(InputError, match="no object"):
        train_segmenter([volume], steps=1)


def test_a_step_budget_gives_the_same_model_on_a_quiet_and_a_loaded_machine(monkeypatch):
    """Issue 28: with steps and minutes, only the steps may shape the schedule and the validation points."""
    import subprocess
    import sys
    import time

    import torch

    spacing = (1.0, 1.0, 1.0)
    labels = spheres(spacing=spacing, radius=4.0)
    volume = Sample(labels, render(labels, spacing), spacing)

    def weights():
        segmenter = train_segmenter([volume], spacing_um=spacing, patch_um=(8, 16, 16), steps=6, minutes=30,
                                    validation_fraction=0.3, precision="fp32", progress=False)
        return segmenter, {k: v.clone() for k, v in segmenter.model.state_dict().items()}

    quiet, quiet_weights = weights()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])]  # a loaded machine
    ticks = iter(range(10**6))  # and a stall: after the first reading the clock stands at 60 % of the budget
    monkeypatch.setattr(time, "perf_counter", lambda: 0.0 if next(ticks) == 0 else 0.6 * 30 * 60)
    try:
        loaded, loaded_weights = weights()
    finally:
        for process in busy:
            process.kill()
            process.wait()
    assert loaded.history["losses"] == quiet.history["losses"]
    assert [p["step"] for p in loaded.history["validation"]] == [p["step"] for p in quiet.history["validation"]]
    assert all(torch.equal(quiet_weights[k], loaded_weights[k]) for k in quiet_weights)
    assert quiet.history["stopped_by"] == loaded.history["stopped_by"] == "steps"
