"""Evaluation: image metrics against skimage and hand values, realism curves, instance matching."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SPACING, boxes_labels
from safetensors import safe_open
from skimage import metrics as skmetrics

from cellsynth.cli import main
from cellsynth.config import OutputConfig
from cellsynth.dataset import build_dataset
from cellsynth.errors import InputError
from cellsynth.evaluate.images import evaluate_images
from cellsynth.evaluate.metrics import nrmse, paired_metrics, psnr, ssim, zncc
from cellsynth.evaluate.realism import (
    axis_spectra,
    compare,
    contrast,
    histogram_distance,
    radial_spectrum,
    surface_profile,
    xz_profile,
)
from cellsynth.evaluate.report import write_report
from cellsynth.evaluate.segmentation import iou_matrix, matching, pooled_scores, semantic_scores
from cellsynth.evaluate.segmenter import instances_from_probabilities
from cellsynth.evaluate.syn2real import syn2real
from cellsynth.io import write_volume
from cellsynth.masks.derived import specimen_mask
from cellsynth.sample import Sample


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    real = rng.random((9, 20, 24))
    return real, np.clip(real + 0.1 * rng.standard_normal(real.shape), 0, 1)


@pytest.mark.parametrize("variant", ["euclidean", "min-max", "mean"])
def test_nrmse_equals_skimage(pair, variant):
    assert nrmse(*pair, variant=variant) == pytest.approx(skmetrics.normalized_root_mse(*pair, normalization=variant))


def test_psnr_and_ssim_equal_skimage(pair):
    assert psnr(*pair) == pytest.approx(skmetrics.peak_signal_noise_ratio(*pair, data_range=1.0))
    assert ssim(*pair) == pytest.approx(skmetrics.structural_similarity(*pair, data_range=1.0))
    assert ssim(pair[0][:1], pair[1][:1]) == pytest.approx(
        skmetrics.structural_similarity(pair[0][0], pair[1][0], data_range=1.0))


def test_hand_computed_values_on_tiny_volumes():
    real = np.array([[[0.0, 1.0, 2.0, 3.0]]])
    synthetic = np.array([[[0.0, 1.0, 2.0, 5.0]]])
    assert nrmse(real, synthetic) == pytest.approx(np.sqrt(4 / 4) / np.sqrt(14 / 4))
    assert psnr(real, synthetic, data_range=3.0) == pytest.approx(10 * np.log10(9 / 1))
    assert zncc(real, synthetic) == pytest.approx(np.corrcoef(real.ravel(), synthetic.ravel())[0, 1])
    mask = np.array([[[1, 1, 1, 0]]])
    assert nrmse(real, synthetic, mask) == 0.0 and psnr(real, synthetic, 3.0, mask) == float("inf")


def test_zncc_is_one_for_an_affine_intensity_change(pair):
    real = pair[0]
    assert zncc(real, 3.5 * real + 20) == pytest.approx(1.0)
    assert zncc(real, -real) == pytest.approx(-1.0)
    metrics = paired_metrics(real, 3.5 * real + 20, boxes_labels((9, 20, 24)))
    for region in ("whole", "foreground"):
        assert metrics[region]["zncc"] == pytest.approx(1.0)
        assert metrics[region]["nrmse"] == pytest.approx(0.0, abs=1e-9)
        assert metrics[region]["ssim"] == pytest.approx(1.0)


def test_foreground_metrics_use_only_labelled_voxels(pair):
    real, synthetic = pair
    labels = boxes_labels((9, 20, 24))
    damaged = synthetic.copy()
    damaged[labels == 0] = 0  # only the background changes
    a, b = paired_metrics(real, synthetic, labels), paired_metrics(real, damaged, labels)
    assert a["foreground"]["psnr_db"] == pytest.approx(b["foreground"]["psnr_db"], rel=0.05)
    assert a["whole"]["psnr_db"] > b["whole"]["psnr_db"] + 3


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda r: zncc(r, np.full(r.shape, 2.0)), "ZNCC is undefined: the synthetic image is constant"),
    (lambda r: paired_metrics(np.ones(r.shape), r), "cannot normalise a constant image"),
    (lambda r: paired_metrics(r, r[:, :-1]), "differ; paired metrics need the same grid"),
    (lambda r: paired_metrics(r, r, np.zeros(r.shape, np.uint16)), "the labels are empty"),
    (lambda r: paired_metrics(r, r, np.ones((2, 2, 2), np.uint16)), "labels shape (2, 2, 2) differs"),
    (lambda r: paired_metrics(r, r, normalization="robust"), "unknown normalisation 'robust'"),
    (lambda r: nrmse(r, r, variant="max"), "unknown NRMSE variant 'max'"),
    (lambda r: matching(np.zeros((2, 3, 3), np.uint16), np.zeros((2, 3, 4), np.uint16)), "differ; they must be equal"),
    (lambda r: matching(np.zeros((2, 3, 3), np.float32), np.zeros((2, 3, 3), np.uint16)), "integer instance ids"),
    (lambda r: matching(boxes_labels(), boxes_labels(), [0.0]), "IoU thresholds must lie in (0, 1]"),
])
def test_bad_evaluation_inputs(pair, call, fragment):
    with pytest.raises(InputError) as error:
        call(pair[0])
    assert fragment in str(error.value)


# ----------------------------------------------------------------------------- realism


def test_spectra_peak_at_the_frequency_of_a_sinusoid_in_cycles_per_um():
    spacing = (1.0, 0.25, 0.25)
    x = np.arange(64) * spacing[2]
    image = np.broadcast_to(np.sin(2 * np.pi * 0.25 * x), (8, 64, 64))  # 0.25 cycles/µm along x
    frequency, power = axis_spectra(image, spacing)["x"]
    assert frequency[np.argmax(power)] == pytest.approx(0.25, abs=1 / (64 * 0.25))
    radial_f, radial_p = radial_spectrum(image, spacing)  # up to the z axis' Nyquist, 0.5 cycles/µm
    assert radial_f[np.argmax(radial_p)] == pytest.approx(0.25, abs=0.02)
    assert radial_p.sum() == pytest.approx(1.0)


def test_histogram_distance_of_a_shift_is_the_shift():
    values = np.random.default_rng(0).random((4, 30, 30))
    assert histogram_distance(values, values + 0.25) == pytest.approx(0.25)


def test_contrast_profiles_and_surface():
    labels = boxes_labels((6, 16, 20))
    image = np.where(labels > 0, 0.8, 0.2)
    c = contrast(image, labels)
    assert c["ratio"] == pytest.approx(4.0) and c["michelson"] == pytest.approx(0.6)
    np.testing.assert_allclose(xz_profile(image), image[:, 8, :].sum(0))
    specimen = specimen_mask(labels, SPACING, closing_um=0.5)
    assert specimen[labels > 0].all()
    distance, mean = surface_profile(image, specimen, SPACING, bin_um=0.25)
    assert mean[distance > 0.3].min() > mean[distance < -0.3].max()


def test_compare_reports_every_distance_and_zero_for_identical_images(pair):
    real, _ = pair
    labels = boxes_labels((9, 20, 24))
    distances, a, _ = compare(real, real, SPACING, real_labels=labels, synthetic_labels=labels)
    assert distances["histogram_wasserstein"] == 0 and distances["radial_spectrum"] == 0
    assert {"spectrum_z", "spectrum_y", "spectrum_x", "depth_profile", "surface_profile", "contrast"} <= set(distances)
    different, _, _ = compare(real, real[:, :10], SPACING)  # unpaired: shapes may differ
    assert different["radial_spectrum"] > 0


def test_evaluate_images_command_writes_metrics_and_plots(pair, tmp_path, capsys):
    real, synthetic = pair
    write_volume(tmp_path / "real.tif", real.astype(np.float32), SPACING)
    write_volume(tmp_path / "synthetic.tif", synthetic.astype(np.float32), SPACING)
    write_volume(tmp_path / "labels.tif", boxes_labels((9, 20, 24)), SPACING)
    assert main(["evaluate", "images", "--real", str(tmp_path / "real.tif"), "--synthetic",
                 str(tmp_path / "synthetic.tif"), "--labels", str(tmp_path / "labels.tif"),
                 "--out", str(tmp_path / "ev")]) == 0
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(result["paired"]) >= {"whole", "foreground"}
    expected = paired_metrics(real.astype(np.float32), synthetic.astype(np.float32), boxes_labels((9, 20, 24)))
    assert result["paired"]["whole"]["ssim"] == pytest.approx(expected["whole"]["ssim"])
    for name in ("xz_profile.png", "spectra.png", "histogram.png", "depth.png", "slices.png"):
        assert (tmp_path / "ev" / name).read_bytes()[:4] == b"\x89PNG"
    assert "foreground: nrmse" in capsys.readouterr().out
    unpaired = evaluate_images(real, real[:, :12], SPACING)
    assert unpaired["paired"] is None and unpaired["unpaired"]["radial_spectrum"] is not None


# ----------------------------------------------------------------------------- segmentation


def _segmentation_case():
    true = np.zeros((1, 12, 30), np.uint16)
    true[0, 1:5, 1:5] = 1  # found exactly
    true[0, 1:5, 7:15] = 4  # split in two halves by the prediction
    true[0, 7:11, 1:5] = 6  # merged with 9 by the prediction
    true[0, 7:11, 6:10] = 9
    true[0, 7:11, 20:24] = 12  # missed
    pred = np.zeros_like(true)
    pred[0, 1:5, 1:5] = 30
    pred[0, 1:5, 7:11] = 2
    pred[0, 1:5, 11:15] = 3
    pred[0, 7:11, 1:10] = 5  # covers 6 and 9 plus the gap column
    pred[0, 1:4, 25:28] = 7  # spurious
    return true, pred


def test_matching_counts_split_merged_missed_and_spurious_objects():
    true, pred = _segmentation_case()
    iou, true_ids, pred_ids = iou_matrix(true, pred)
    assert list(true_ids) == [1, 4, 6, 9, 12] and list(pred_ids) == [2, 3, 5, 7, 30]
    assert iou[0, 4] == 1.0 and iou[1, 0] == pytest.approx(0.5) and iou[2, 2] == pytest.approx(16 / 36)
    by_threshold = {r["threshold"]: r for r in matching(true, pred)}
    low = by_threshold[0.3]  # 1, one half of the split, one of the merged
    assert (low["tp"], low["fp"], low["fn"]) == (3, 2, 2)
    half = by_threshold[0.5]  # 1 and the split half at exactly 0.5
    assert (half["tp"], half["fp"], half["fn"]) == (2, 3, 3)
    assert half["precision"] == pytest.approx(2 / 5) and half["recall"] == pytest.approx(2 / 5)
    assert half["average_precision"] == pytest.approx(2 / 8) and half["f1"] == pytest.approx(4 / 10)
    assert half["mean_matched_iou"] == pytest.approx(0.75) and half["correct"] == "2 of 5 objects"
    strict = by_threshold[0.9]
    assert (strict["tp"], strict["fp"], strict["fn"]) == (1, 4, 4)


def test_matching_ignores_holes_in_the_numbering_and_handles_empty_volumes():
    true, pred = _segmentation_case()
    renumbered = np.where(true > 0, true * 1000, 0).astype(np.uint32)
    assert matching(renumbered, pred) == matching(true, pred)
    empty = np.zeros_like(true)
    result = matching(empty, empty)[0]
    assert (result["tp"], result["fp"], result["fn"], result["precision"]) == (0, 0, 0, 0.0)
    missed = matching(true, empty, [0.5])[0]
    assert (missed["fn"], missed["recall"]) == (5, 0.0)


def test_hungarian_matching_beats_greedy():
    true = np.zeros((1, 4, 9), np.uint16)
    true[0, :, 0:4], true[0, :, 4:9] = 1, 2
    pred = np.zeros_like(true)
    pred[0, :, 0:3], pred[0, :, 3:9] = 1, 2  # pred 2 overlaps true 2 best, true 1 next
    result = matching(true, pred, [0.5])[0]
    assert result["tp"] == 2


def test_semantic_scores_and_tolerance():
    true = np.zeros((1, 10, 10), np.uint8)
    true[0, :, 4] = 1  # a thin membrane
    shifted = np.roll(true, 1, axis=2)
    exact = semantic_scores(true, shifted)
    assert exact["dice"] == 0 and exact["iou"] == 0
    tolerant = semantic_scores(true, shifted, tolerance=1)
    assert tolerant["dice"] == 1 and tolerant["iou"] == 1
    half = true.copy()
    half[0, :5, 4] = 0
    scores = semantic_scores(true, half)
    assert scores["dice"] == pytest.approx(2 * 5 / 15) and scores["iou"] == pytest.approx(0.5)


# ----------------------------------------------------------------------------- syn2real


def test_seeded_watershed_splits_touching_objects_at_their_centres():
    foreground = np.zeros((1, 8, 16))
    foreground[0, 1:7, 1:15] = 1
    centre = np.zeros_like(foreground)
    centre[0, 2:6, 3:6] = 0.9  # two centres; the objects touch where the centre-ness is lowest
    centre[0, 2:6, 10:13] = 0.9
    centre[0, 1:7, 6:10] = 0.1
    foreground[0, 7, 15] = 1  # a one-voxel speck
    labels = instances_from_probabilities(np.stack([foreground, centre]), (1, 1, 1), min_volume_um3=2)
    assert sorted(np.unique(labels)) == [0, 1, 2] and labels[0, 7, 15] == 0
    assert labels[0, 3, 3] != labels[0, 3, 12] and labels[0, 3, 8] > 0


def test_syn2real_runs_end_to_end_on_a_tiny_cpu_setup(make_dataset, tmp_path, capsys):
    train, test = make_dataset(n=2, name="train"), make_dataset(n=1, name="test")
    out = tmp_path / "s2r"
    tiny = ["--patch-um", "2", "4", "4", "--spacing", *map(str, SPACING), "--validation-fraction", "0.5"]
    assert main(["evaluate", "syn2real", "--train", str(train.root), "--test", str(test.root), "--out", str(out),
                 "--steps", "3", *tiny, "--device", "cpu", "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [row["threshold"] for row in report["pooled"]] == pytest.approx([0.1 * k for k in range(1, 10)])
    assert len(report["losses"]) == 3 and report["pooled"][0]["n_true"] == 3
    assert report["training"]["steps"] == 3 and report["training"]["validation"][-1]["step"] == 3
    assert report["settings"]["patch_voxels"] == [8, 16, 16] and report["settings"]["thresholds"]["seed"] > 0
    pooled = pooled_scores(report["per_image"])[4]
    assert all(report["pooled"][4][k] == pooled[k] for k in ("n_true", "n_pred", "tp", "average_precision"))
    assert (out / "predictions" / "test_0000.tif").exists()
    with safe_open(out / "segmenter.safetensors", "pt") as weights:
        assert weights.metadata()["cellsynth_checkpoint"] == "syn2real-segmenter"
        assert json.loads(weights.metadata()["settings"])["working_spacing_um"] == list(SPACING)
    assert "0.5  " in capsys.readouterr().out
    with pytest.raises(InputError, match="exists and is not empty"):
        syn2real(train.root, test.root, out, steps=1, patch_um=(2, 4, 4), progress=False)


def test_mixed_repeated_syn2real_keeps_every_run_and_its_settings(make_dataset, tmp_path, capsys):
    real, synthetic, test = (make_dataset(n=n, name=name) for n, name in ((1, "real"), (2, "synthetic"), (1, "test")))
    out = tmp_path / "mix"
    tiny = ["--patch-um", "2", "4", "4", "--spacing", *map(str, SPACING), "--validation-fraction", "0.5"]
    assert main(["evaluate", "syn2real", "--train", str(real.root), "--train", str(synthetic.root), "--weights", "1",
                 "3", "--fraction", "0.5", "--augment", "flip,blur", "--repeats", "2", "--test", str(test.root),
                 "--out", str(out), "--steps", "2", *tiny, "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    settings, figures = report["settings"], report["repeats"]
    assert settings["train"] == [str(real.root), str(synthetic.root)] and settings["weights"] == [1.0, 3.0]
    assert settings["fraction"] == 0.5 and settings["augment"] == "flip,blur" and settings["repeats"] == 2
    assert [run["seed"] for run in figures["runs"]] == [0, 1] and figures["n_runs"] == 2
    for key in ("ap50", "ap75"):
        values = [run[key] for run in figures["runs"]]
        assert figures[f"{key}_mean"] == pytest.approx(np.mean(values))
        assert figures[f"{key}_sd"] == pytest.approx(np.std(values, ddof=1))
        low, high = figures[f"{key}_ci95"]
        assert 0 <= low <= high <= 1
    assert report["pooled"][4]["average_precision"] == pytest.approx(figures["runs"][0]["ap50"])  # files: run 1
    assert "over 2 runs: AP@0.5" in capsys.readouterr().out


def test_swapped_syn2real_trains_on_each_part_and_tests_on_the_other(make_dataset, tmp_path):
    left, right = make_dataset(n=2, name="left"), make_dataset(n=1, name="right")
    tiny = {"patch_um": (2, 4, 4), "spacing_um": SPACING, "validation_fraction": 0.5, "steps": 2, "device": "cpu"}
    report = syn2real(left.root, right.root, tmp_path / "both", swap=True, progress=False, **tiny)
    runs = report["repeats"]["runs"]
    assert [(run["seed"], run["order"]) for run in runs] == [(0, "given"), (0, "swapped")]
    n_true = {run["order"]: run["counts"]["ap50"][0] + run["counts"]["ap50"][2] for run in runs}  # tp + fn
    assert n_true == {"given": 3, "swapped": 6}  # tested on the right's 3 objects, then on the left's 2 × 3
    assert report["settings"]["swap"] is True
    with pytest.raises(InputError, match="give one --train set"):
        syn2real([left.root, right.root], right.root, tmp_path / "no", swap=True, progress=False, **tiny)


def test_fraction_keeps_the_stated_share_and_weights_split_over_each_set():
    from cellsynth.evaluate.segmenter import _keep_fraction, _set_weights

    labels = np.zeros((4, 16, 40), np.uint16)
    labels[:, 4:12, :] = np.repeat(np.arange(1, 11, dtype=np.uint16), 4)  # ten objects side by side along x
    volume = Sample(labels, np.where(labels > 0, 1.0, 0.0).astype(np.float32), SPACING)
    kept = _keep_fraction([volume], 0.25)[0]
    assert kept.shape == (4, 16, 10) and np.count_nonzero(kept.labels) == np.count_nonzero(labels) // 4
    assert _keep_fraction([volume], 1.0)[0] is volume
    assert _set_weights([[volume], [volume, volume]], [1, 3]) == [1.0, 1.5, 1.5]
    assert _set_weights([[volume], [volume]], None) is None


def test_bootstrap_interval_narrows_with_more_test_objects():
    from cellsynth.evaluate.segmentation import bootstrap_ap

    few, many = bootstrap_ap([(8, 2, 2)]), bootstrap_ap([(80, 20, 20)])
    assert few[0] < 8 / 12 < few[1] and many[0] < 80 / 120 < many[1]
    assert many[1] - many[0] < 0.5 * (few[1] - few[0])
    assert bootstrap_ap([(8, 2, 2), (30, 9, 4)], seed=3) == bootstrap_ap([(8, 2, 2), (30, 9, 4)], seed=3)


def test_report_is_one_self_contained_html_page(make_dataset, tmp_path):
    dataset = make_dataset(n=2, previews=False)
    assert main(["report", str(dataset.root)]) == 0
    page = (dataset.root / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('<img src="data:image/png;base64,') >= 4
    assert "sample_0000" in page and "sample_0001" in page and 'src="http' not in page
    assert "Objects per sample: 3.0" in page and "&quot;test&quot;: true" in page
    masks = build_dataset(tmp_path / "masks", ["m"], lambda i, rng: Sample(boxes_labels(), spacing=SPACING),
                          config={}, seed=0, output=OutputConfig(), progress=False)
    assert "m</td>" in (write_report(masks.root, tmp_path / "m.html")).read_text()
    manifest = (dataset.root / "manifest.json").read_bytes()
    image = next((dataset.root / "images").iterdir())
    for target in (dataset.root / "manifest.json", image):  # a dataset's own file: refused even with --overwrite
        assert main(["report", str(dataset.root), "--out", str(target), "--overwrite"]) == 2
    assert (dataset.root / "manifest.json").read_bytes() == manifest and dataset.pending() == []


def test_segmenter_weights_are_reproducible_per_seed_without_the_global_rng():
    import torch

    from cellsynth.models.unet3d import UNet3D, seeded

    state = torch.random.get_rng_state()
    first, second, other = (seeded(lambda: UNet3D(1, 2, (4, 8, 16), attention=True, time_embedding=True),
                                   torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(torch.random.get_rng_state(), state)
    pairs = list(zip(first.state_dict().values(), second.state_dict().values(), other.state_dict().values(),
                     strict=True))
    assert all(torch.equal(a, b) for a, b, _ in pairs) and not all(torch.equal(a, c) for a, _, c in pairs)
    assert first(torch.zeros(1, 1, 8, 16, 16), torch.tensor([3])).shape == (1, 2, 8, 16, 16)


def test_keeping_freed_memory_is_asked_of_glibc_and_skipped_where_there_is_none(monkeypatch):
    import ctypes

    from cellsynth.models import common

    calls = []

    class Glibc:
        def mallopt(self, parameter, value):
            calls.append((parameter, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Glibc())
    assert common.keep_freed_memory() is True and dict(calls) == common.MALLOC_SETTINGS
    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # a C library without mallopt (macOS)
    assert common.keep_freed_memory() is False

    def no_handle(name):
        raise TypeError("no handle")

    monkeypatch.setattr(ctypes, "CDLL", no_handle)  # Windows
    assert common.keep_freed_memory() is False


def test_repeated_c2st_keeps_every_run_swaps_the_parts_and_refuses_bad_repeats():
    from cellsynth.evaluate.c2st import c2st, repeated_c2st

    rng = np.random.default_rng(0)
    real, fake = rng.random((8, 32, 32)), rng.random((8, 32, 32)) ** 3
    settings = {"spacing": (1, 1, 1), "patch_um": (4, 8, 8), "steps": 6}
    out = repeated_c2st(real, fake, repeats=2, **settings)
    assert [(r["seed"], r["test_part"]) for r in out["c2st_runs"]] == [(0, "last"), (0, "first"), (1, "last"),
                                                                        (1, "first")]
    accuracies = [r["accuracy"] for r in out["c2st_runs"]]
    assert out["c2st_mean"] == pytest.approx(np.mean(accuracies))
    assert out["c2st_sd"] == pytest.approx(np.std(accuracies, ddof=1))
    low, high = out["c2st_pooled_ci95"]
    assert low <= out["c2st_mean"] <= high
    assert accuracies[1] == c2st(real, fake, seed=0, swap=True, **settings).accuracy  # each run is its own c2st
    assert c2st(real, fake, seed=0, swap=True, **settings).settings["test_part"] == "first"
    for bad in (0, 101, 2.5, True):
        with pytest.raises(InputError, match="repeats must be a whole number"):
            repeated_c2st(real, fake, repeats=bad, **settings)
    with pytest.raises(InputError, match="chooses the seeds"):
        repeated_c2st(real, fake, repeats=2, seed=3, **settings)


def test_a_plain_folder_of_images_is_read_as_its_files(tmp_path):
    """Issue 26 #3: users keep their images in folders; every image input takes one."""
    from cellsynth.dataset.samples import as_samples
    from cellsynth.io import write_volume

    rng = np.random.default_rng(0)
    for name in ("b.tif", "a.tif"):
        write_volume(tmp_path / name, rng.random((4, 16, 20), dtype=np.float32), SPACING)
    (tmp_path / "notes.txt").write_text("not an image")
    volumes = as_samples(tmp_path, what="--real")
    assert [v.name for v in volumes] == ["a.tif", "b.tif"] and all(v.spacing == SPACING for v in volumes)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no .tif"):
        as_samples(tmp_path / "empty", what="--real")


def test_evaluate_realism_names_a_constant_image_file(tmp_path, capsys):
    write_volume(tmp_path / "blank.tif", np.full((8, 32, 32), 1.0, np.float32), SPACING)
    write_volume(tmp_path / "real.tif", np.random.default_rng(0).random((8, 32, 32)).astype(np.float32), SPACING)
    assert main(["evaluate", "realism", "--real", str(tmp_path / "real.tif"), "--synthetic",
                 str(tmp_path / "blank.tif"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "--synthetic image 'blank.tif' is constant (every voxel 1)" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()
