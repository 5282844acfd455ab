"""Probabilistic diversification (seed 000): formula, local statistics, weight strategies, series."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from scipy import stats

from cellsynth.augment import (
    curriculum_limits,
    diversified_stack,
    diversify,
    local_std,
    neighbourhood_voxels,
    normalize_percentiles,
    predict_with_tta,
    random_weights,
    robustness_loss,
    single_weights,
    structured_weights,
    truncated_normal,
)
from cellsynth.cli import main
from cellsynth.dataset import Dataset
from cellsynth.errors import InputError
from cellsynth.evaluate.metrics import psnr
from cellsynth.series import diversify_dataset


@pytest.fixture
def image():
    return np.random.default_rng(0).random((6, 9, 11), dtype=np.float32)


@pytest.mark.parametrize("size", [5, (3, 5, 7)])
def test_local_std_equals_brute_force(image, size):
    brute = ndi.generic_filter(image.astype(np.float64), np.std, size=size, mode="reflect")
    np.testing.assert_allclose(local_std(image, size), brute, atol=2e-6)


def test_local_std_is_precise_far_from_zero():
    image = 1000 + np.random.default_rng(1).random((5, 6, 7))
    brute = ndi.generic_filter(image, np.std, size=3, mode="reflect")
    np.testing.assert_allclose(local_std(image, 3), brute, atol=1e-4)


def test_neighbourhood_in_um_rounds_to_odd_voxels_per_axis():
    assert neighbourhood_voxels(size_um=2.5, spacing=(2.0, 0.5, 0.5)) == (1, 5, 5)
    assert neighbourhood_voxels(size_um=(6.0, 1.5, 1.5), spacing=(2.0, 0.5, 0.5)) == (3, 3, 3)
    assert neighbourhood_voxels() == (5, 5, 5)
    assert neighbourhood_voxels((1, 5, 5)) == (1, 5, 5)  # what a µm size gives a coarse z: local_std takes it
    image = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    assert local_std(image, (1, 5, 5)).shape == image.shape


def test_diversify_matches_equation_1_for_a_fixed_rng(image):
    std = local_std(image)
    result = diversify(image, std, 1.3, 2.0, np.random.default_rng(3))
    seed = int(np.random.default_rng(3).integers(2**63))  # the documented draw: torch's N(0, 1) from that seed
    noise = torch.empty(image.shape).normal_(generator=torch.Generator().manual_seed(seed)).numpy()
    expected = np.clip(noise * 2.0 * std + 1.3 * image, 0, 1)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)


def test_diversify_noise_is_standard_normal_scaled_by_sigma():
    flat = np.full((20, 50, 50), 0.5, np.float32)
    result = diversify(flat, np.full(flat.shape, 0.02, np.float32), 0.5, 1.5, np.random.default_rng(0))
    assert result.mean() == pytest.approx(0.25, abs=1e-3)
    assert result.std() == pytest.approx(0.03, rel=0.02)
    assert stats.normaltest(result.ravel()[:5000]).pvalue > 1e-3


def test_neutral_element_returns_the_input_exactly(image):
    result = diversify(image, local_std(image), 1.0, 0.0, np.random.default_rng(0))
    assert np.array_equal(result, image) and result is not image


def test_diversify_clips_to_unit_range(image):
    result = diversify(image, local_std(image), 1.8, 8.0, np.random.default_rng(0))
    assert result.min() == 0.0 and result.max() == 1.0


def test_same_seed_same_appearance(image):
    std = local_std(image)
    first, second = (diversify(image, std, 0.7, 3.0, np.random.default_rng(5)) for _ in range(2))
    assert np.array_equal(first, second)
    assert not np.array_equal(first, diversify(image, std, 0.7, 3.0, np.random.default_rng(6)))


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda im: diversify(im, local_std(im), -0.1, 1, np.random.default_rng()), "w_i must be a finite number from 0"),
    (lambda im: diversify(im, local_std(im), 1, -1, np.random.default_rng()), "w_v must be a finite number from 0"),
    (lambda im: local_std(im, 4), "must be odd voxel counts from 3 to 1001"),
    (lambda im: local_std(im, 1), "must be odd voxel counts from 3 to 1001"),
    (lambda im: random_weights(2, w_i=(1.8, 0.2), rng=np.random.default_rng()), "w_i limits are reversed"),
    (lambda im: single_weights(w_v=(8, 0), rng=np.random.default_rng()), "w_v limits are reversed"),
    (lambda im: diversify(im, local_std(im)[1:], 1, 1, np.random.default_rng()), "differs from the image shape"),
    (lambda im: diversify(im * 3, local_std(im), 1, 1, np.random.default_rng()), "must be normalised to [0, 1]"),
    (lambda im: neighbourhood_voxels(size_um=3.0), "needs the voxel spacing"),
    (lambda im: robustness_loss(torch.zeros(1, 4)), "at least 2 predictions"),
])
def test_bad_diversification_inputs(image, call, fragment):
    with pytest.raises(InputError, match=None) as error:
        call(image)
    assert fragment in str(error.value)


def test_truncated_normal_bounds_and_three_sigma_scaling():
    rng = np.random.default_rng(0)
    symmetric = truncated_normal((0.2, 1.8), 1.0, size=40_000, rng=rng)
    assert symmetric.min() >= 0.2 and symmetric.max() <= 1.8
    assert symmetric.std() == pytest.approx(stats.truncnorm(-3, 3, scale=0.8 / 3).std(), rel=0.02)
    one_sided = truncated_normal((0.0, 8.0), 0.0, size=40_000, rng=rng)  # neutral at the lower limit
    assert one_sided.min() >= 0 and one_sided.max() <= 8
    assert one_sided.mean() == pytest.approx(stats.truncnorm(0, 3, scale=8 / 3).mean(), rel=0.02)
    asymmetric = truncated_normal((0.4, 1.2), 1.0, size=40_000, rng=rng)  # the far limit (0.4) sits at 3σ
    assert asymmetric.min() >= 0.4 and asymmetric.max() <= 1.2
    assert asymmetric.mean() == pytest.approx(stats.truncnorm(-3, 1, loc=1, scale=0.2).mean(), abs=0.005)
    assert truncated_normal((2.0, 2.0), 1.0, rng=rng) == 2.0


def test_single_weights_stay_in_limits():
    rng = np.random.default_rng(1)
    weights = np.array([single_weights((0.5, 1.5), (0, 4), rng=rng) for _ in range(500)])
    assert weights[:, 0].min() >= 0.5 and weights[:, 0].max() <= 1.5
    assert weights[:, 1].min() >= 0 and weights[:, 1].max() <= 4


def test_structured_strategy_hits_both_limits_evenly():
    np.testing.assert_allclose(structured_weights(5), [(0.2, 0), (0.6, 2), (1.0, 4), (1.4, 6), (1.8, 8)])
    assert structured_weights(1) == [(1.0, 1.0)]  # b = 2: the paper's default appearance


def test_random_strategy_is_uniform_in_limits_and_reproducible():
    weights = np.array(random_weights(4000, rng=np.random.default_rng(2)))
    assert weights[:, 0].min() >= 0.2 and weights[:, 0].max() <= 1.8
    assert weights[:, 1].mean() == pytest.approx(4.0, abs=0.15)
    assert random_weights(3, rng=np.random.default_rng(2)) == random_weights(3, rng=np.random.default_rng(2))


def test_curriculum_grows_from_neutral_to_limits():
    assert curriculum_limits((0.2, 1.8), 1.0, 0, 10) == (1.0, 1.0)
    assert curriculum_limits((0.2, 1.8), 1.0, 5, 10) == pytest.approx((0.6, 1.4))
    assert curriculum_limits((0.0, 8.0), 0.0, 5, 10) == (0.0, 4.0)
    assert curriculum_limits((0.0, 8.0), 0.0, 50, 10) == (0.0, 8.0)
    assert curriculum_limits((0.2, 1.8), 1.0, 0, 0) == pytest.approx((0.2, 1.8))


def test_stack_starts_with_the_original_and_robustness_loss_compares_neighbours(image):
    stack = diversified_stack(image, local_std(image), structured_weights(3), np.random.default_rng(0))
    assert stack.shape == (4, *image.shape) and np.array_equal(stack[0], image)
    predictions = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]], requires_grad=True)
    loss = robustness_loss(predictions)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert predictions.grad is not None
    assert robustness_loss(np.array([[1.0], [2.0]]), loss=lambda a, b: abs(a - b).sum()) == 1.0


def test_tta_averages_raw_outputs_over_structured_appearances(image):
    calls = []
    mean = predict_with_tta(lambda x: calls.append(x) or x.mean(), image, n_tta=4, rng=0)
    assert len(calls) == 4 and mean == pytest.approx(np.mean([c.mean() for c in calls]))
    identity = predict_with_tta(lambda x: x, image, n_tta=3, w_i=(1, 1), w_v=(0, 0))
    np.testing.assert_allclose(identity, image, rtol=1e-6)


def test_normalize_percentiles():
    volume = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 3 + 7
    result = normalize_percentiles(volume)
    assert result.min() == 0 and result.max() == 1
    assert np.all(normalize_percentiles(np.full((2, 2, 2), 5.0)) == 0)
    clipped = normalize_percentiles(volume, 10, 90)
    assert (clipped == 0).sum() >= 2 and (clipped == 1).sum() >= 2


# ----------------------------------------------------------------------------- benchmark series


def test_series_keeps_labels_and_psnr_falls_with_w_v(make_dataset, tmp_path):
    source = make_dataset(n=2)
    series = diversify_dataset(source.root, tmp_path / "series", w_v_levels=[0, 1, 4], size=3, progress=False)
    assert [s["name"] for s in series.samples][:3] == [f"sample_0000_wi1_wv{v}" for v in (0, 1, 4)]
    original = source.read_sample(0)
    neutral, low, high = (series.read_sample(i) for i in range(3))
    for level in (neutral, low, high):
        np.testing.assert_array_equal(level.labels, original.labels)
        assert level.spacing == original.spacing
    np.testing.assert_array_equal(neutral.image, normalize_percentiles(original.image))
    scores = [s["params"]["psnr_db"] for s in series.samples[:3]]
    assert scores[0] is None and scores[1] > scores[2] > 0
    assert scores[2] == pytest.approx(psnr(normalize_percentiles(original.image), high.image))
    table = json.loads((series.root / "manifest.json").read_text())["levels"]
    assert [(row["w_v"], row["n_samples"]) for row in table] == [(0, 2), (1, 2), (4, 2)]


def test_series_is_deterministic_and_resumable(make_dataset, tmp_path):
    source = make_dataset(n=1)
    first = diversify_dataset(source.root, tmp_path / "a", w_v_levels=[2], w_i_levels=[0.5, 1.5], seed=3,
                              progress=False)
    second = diversify_dataset(source.root, tmp_path / "b", w_v_levels=[2], w_i_levels=[0.5, 1.5], seed=3,
                               progress=False)
    for i in range(2):
        np.testing.assert_array_equal(first.read_sample(i).image, second.read_sample(i).image)
    (first.root / first.samples[1]["files"]["image"]["path"]).unlink()
    resumed = diversify_dataset(source.root, tmp_path / "a", w_v_levels=[2], w_i_levels=[0.5, 1.5], seed=3,
                                resume=True, progress=False)
    np.testing.assert_array_equal(resumed.read_sample(1).image, second.read_sample(1).image)


def test_cli_diversify_prints_the_psnr_per_level(make_dataset, tmp_path, capsys):
    source = make_dataset(n=1)
    assert main(["diversify", str(source.root), "--out", str(tmp_path / "s"), "--levels", "0", "2", "-q",
                 "--neighbourhood", "3"]) == 0
    out = capsys.readouterr().out
    assert "w_i 1, w_v 0: mean PSNR inf (unchanged)" in out and "w_i 1, w_v 2: mean PSNR" in out
    assert len(Dataset.open(tmp_path / "s")) == 2
