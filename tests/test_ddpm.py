"""The DDPM: schedulers on volumes, sketches, SDEdit sampling with per-step tile fusion, training, resume."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import write_renderer_images

from cellsynth.checkpoints import read_checkpoint, read_checkpoint_info
from cellsynth.config import TrainConfig
from cellsynth.errors import InputError
from cellsynth.models.diffusion import (
    fused_denoiser,
    make_scheduler,
    sampling_timesteps,
    sdedit,
    start_timestep,
    whole_denoiser,
)
from cellsynth.sample import Sample
from cellsynth.synthesis.conditioning import (
    SketchStatistics,
    fit_sketch_statistics,
    make_sketch,
    pooled_sketch_statistics,
)
from cellsynth.synthesis.learned import DiffusionRenderer
from cellsynth.synthesis.patching import PatchPlan
from cellsynth.training.loop import train_ddpm

SPACING = (0.29, 0.26, 0.26)


@pytest.fixture(scope="module")
def renderer_images(tmp_path_factory):
    """Two physics-renderer images (TIFF with spacing) and their labels."""
    return write_renderer_images(tmp_path_factory.mktemp("images"), (12, 48, 48), seed=7)


def tiny_config(folder, **top) -> TrainConfig:
    return TrainConfig.model_validate({
        "steps": 6, "log_every": 1, "preview_every": 0, "checkpoint_every": 3, "device": "cpu", "batch_size": 4,
        "data": {"images": [str(folder / "image*.tif")], "patch": [8, 16, 16]},
        "ddpm": {"widths": [8, 16], "attention": False, "learning_rate": 2e-3, "ema_decay": 0.99}, **top})


def log_rows(run) -> list[dict]:
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(renderer_images, tmp_path_factory):
    return train_ddpm(tiny_config(renderer_images, preview_every=6), tmp_path_factory.mktemp("run") / "ddpm",
                      progress=False)


def per_voxel_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A toy denoiser that looks at one voxel only (its ε̂ depends on t too)."""
    return 0.3 * x * (1 + t.float()[:, None, None, None, None] / 1000)


# ----------------------------------------------------------------------------- schedulers and sampling


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
def test_schedulers_work_on_5d_volumes(sampler):
    scheduler = make_scheduler(sampler)
    x0 = torch.rand(2, 1, 4, 8, 8) * 2 - 1
    noise = torch.randn(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    scheduler.set_timesteps(10)  # as sdedit does before noising (DPM-Solver indexes its own timesteps)
    timesteps = scheduler.timesteps[[1, 8]]
    noisy = scheduler.add_noise(x0, noise, timesteps)
    alphas = scheduler.alphas_cumprod[timesteps].reshape(2, 1, 1, 1, 1)
    assert torch.allclose(noisy, alphas.sqrt() * x0 + (1 - alphas).sqrt() * noise, atol=1e-5)
    step = scheduler.step(noise, scheduler.timesteps[1], noisy, generator=torch.Generator().manual_seed(1))
    assert step.prev_sample.shape == (2, 1, 4, 8, 8) and torch.isfinite(step.prev_sample).all()


def test_start_timestep_from_t_start_strength_or_snr_and_its_errors():
    scheduler = make_scheduler("ddpm")
    assert start_timestep(scheduler, t_start=400) == 400
    assert start_timestep(scheduler, strength=0.4) == 400
    assert start_timestep(scheduler, strength=0.9996) == 999  # rounds up to T, which does not exist
    t = start_timestep(scheduler, snr=1.0)  # ᾱ = ½ on the cosine schedule: half-way
    assert 0.45 < float(scheduler.alphas_cumprod[t]) < 0.55
    linear = make_scheduler("ddpm", beta_schedule="linear")
    assert start_timestep(linear, snr=1.0) != t  # same SNR, another timestep under another schedule
    with pytest.raises(ValueError, match=r"t_start must be in \[0, 1000\) for a 1000-step model; got 1000"):
        start_timestep(scheduler, t_start=1000)
    with pytest.raises(ValueError, match="exactly one of t_start, strength, snr"):
        start_timestep(scheduler, t_start=3, strength=0.1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sampling_timesteps(scheduler, 400, 0)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_scheduler("euler")
    steps = sampling_timesteps(make_scheduler("ddim"), 400, 25)
    assert len(steps) == 25 and int(steps[0]) == 400 and int(steps.min()) == 16


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
@pytest.mark.parametrize(("t_start", "steps"), [(400, 25), (400, 5), (999, 20), (7, 25), (1, 1)])
def test_sampling_starts_exactly_at_t_start_and_an_oracle_denoiser_recovers_x0(sampler, t_start, steps):
    scheduler = make_scheduler(sampler)
    timesteps = sampling_timesteps(scheduler, t_start, steps)
    assert int(timesteps[0]) == t_start and len(timesteps) == min(steps, t_start)
    assert torch.all(timesteps[:-1] > timesteps[1:])
    x0 = torch.rand(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.8 - 0.9
    alphas = scheduler.alphas_cumprod

    def oracle(x, t):  # the exact ε for x0: every sampler must land on x0
        alpha = alphas[int(t)]
        return (x - alpha.sqrt() * x0) / (1 - alpha).sqrt()

    out = sdedit(oracle, x0, make_scheduler(sampler), t_start=t_start, steps=steps,
                 generator=torch.Generator().manual_seed(1))
    assert torch.allclose(out, x0, atol=2e-3)


def test_t_start_zero_returns_the_sketch():
    sketch = torch.rand(1, 4, 8, 8) * 2 - 1
    out = sdedit(whole_denoiser(lambda x, t: x), sketch, make_scheduler("ddpm"), t_start=0, steps=5,
                 generator=torch.Generator())
    assert torch.equal(out, sketch)


@pytest.mark.parametrize("sampler", ["ddpm", "dpmsolver"])
def test_per_step_tile_fusion_equals_the_whole_volume_call_for_a_per_voxel_model(sampler):
    sketch = torch.rand(1, 12, 40, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    plan = PatchPlan((12, 40, 40), patch=(8, 16, 16), overlap=(2, 4, 4), crop=(1, 2, 2))
    assert len(plan.tiles) > 8
    results = [sdedit(denoise, sketch, make_scheduler(sampler), t_start=300, steps=8,
                      generator=torch.Generator().manual_seed(5))
               for denoise in (fused_denoiser(per_voxel_model, plan, batch_size=3), whole_denoiser(per_voxel_model))]
    assert torch.allclose(results[0], results[1], atol=1e-5)
    assert not torch.allclose(results[0], sketch, atol=1e-2)  # it did denoise something


# ----------------------------------------------------------------------------- sketches


def test_sketch_statistics_follow_the_fitted_distribution():
    rng = np.random.default_rng(0)
    labels = np.zeros((20, 60, 60), np.uint16)
    grid = np.arange(400).reshape(4, 10, 10) + 1
    labels[1:19:5, 1:59:6, 1:59:6] = 0
    for (z, y, x), value in np.ndenumerate(grid):  # 400 3×4×4 boxes
        labels[z * 5 + 1:z * 5 + 4, y * 6 + 1:y * 6 + 5, x * 6 + 1:x * 6 + 5] = value
    truth = rng.normal(0.55, 0.08, 401)
    image = np.where(labels > 0, truth[labels], rng.normal(0.1, 0.01, labels.shape)).astype(np.float32)
    fitted = fit_sketch_statistics(image, labels)
    assert fitted.object_mean == pytest.approx(0.55, abs=0.01) and fitted.object_std == pytest.approx(0.08, abs=0.01)
    assert fitted.background_mean == pytest.approx(0.1, abs=0.002)
    sketch = make_sketch(labels, SPACING, fitted, rng=np.random.default_rng(1))
    drawn = np.array([sketch[labels == i][0] for i in range(1, 401)])
    assert drawn.mean() == pytest.approx(fitted.object_mean, abs=0.012)
    assert drawn.std() == pytest.approx(fitted.object_std, rel=0.15)
    assert np.ptp(sketch[labels == 0]) == 0  # one background value per volume
    membranes = make_sketch(labels, SPACING, SketchStatistics(0.9, 0.0, 0.1, 0.0), membranes=labels == 0,
                            rng=np.random.default_rng(1))
    assert set(np.unique(membranes)) == {np.float32(0.1), np.float32(0.9)}
    blurred = make_sketch(labels, SPACING, fitted, blur_um=(0.29, 0.26, 0.26), rng=np.random.default_rng(1))
    assert blurred.std() < sketch.std() and blurred.mean() == pytest.approx(sketch.mean(), abs=1e-3)
    noisy = np.where(labels > 0, truth[labels], 0.1) + rng.normal(0, 0.12, labels.shape).astype(np.float32)
    unlabelled = fit_sketch_statistics(noisy, spacing=(1.0, 1.0, 1.0))  # classical segmentation stands in
    assert unlabelled.object_mean == pytest.approx(0.55, abs=0.03)  # raw Otsu voxels' speckle: about 0.43
    assert unlabelled.background_std == 0  # one volume: no spread between volumes
    pooled = pooled_sketch_statistics([SketchStatistics(0.5, 0.1, 0.1, 0.0), SketchStatistics(0.7, 0.1, 0.3, 0.0)])
    assert pooled.object_mean == pytest.approx(0.6) and pooled.background_std == pytest.approx(0.1)


# ----------------------------------------------------------------------------- training and generation


def test_tiny_ddpm_trained_a_few_hundred_cpu_steps_lowers_its_loss(renderer_images, tmp_path):
    train_ddpm(tiny_config(renderer_images, steps=200, checkpoint_every=200), tmp_path / "run", progress=False)
    loss = [float(row["loss"]) for row in log_rows(tmp_path / "run")]
    assert len(loss) == 200 and np.mean(loss[-20:]) < 0.5 * np.mean(loss[:20])


def test_checkpoint_round_trip_and_exact_resume(renderer_images, trained, tmp_path):
    _, info = read_checkpoint(trained, "ddpm")
    assert info["schedule"] == {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                                "prediction_type": "epsilon"}
    assert info["sketch"]["blur_um"] == pytest.approx(SPACING) and info["patch"] == [8, 16, 16]
    assert (trained.parent / "previews" / "step_000006.png").is_file()
    split = tmp_path / "split"
    train_ddpm(tiny_config(renderer_images, steps=3), split, progress=False)
    train_ddpm(tiny_config(renderer_images, steps=6), split, resume=True, progress=False)
    assert log_rows(split) == log_rows(trained.parent)
    first, _ = read_checkpoint(trained)
    second, _ = read_checkpoint(split / "checkpoint.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_same_seed_same_sample_and_the_sketch_at_t_start_zero(trained):
    labels = np.zeros((10, 40, 40), np.uint16)
    labels[2:8, 5:15, 5:15], labels[2:8, 20:34, 18:30] = 1, 2
    masks = Sample(labels, spacing=SPACING)
    generator = DiffusionRenderer(trained, sampler="ddim", steps=4, device="cpu")
    first = generator.render(masks, np.random.default_rng(1)).image
    assert first.shape == labels.shape and first.dtype == np.float32 and 0 <= first.min() and first.max() <= 1
    assert np.array_equal(first, generator.render(masks, np.random.default_rng(1)).image)
    assert not np.array_equal(first, generator.render(masks, np.random.default_rng(2)).image)
    still = DiffusionRenderer(trained, t_start=0, device="cpu")
    sketch = make_sketch(labels, SPACING, still.statistics, blur_um=still.blur_um, rng=np.random.default_rng(4))
    assert np.allclose(still.sample(sketch, SPACING, np.random.default_rng(5)), sketch, atol=1e-6)


def test_bad_sampling_settings_are_refused(trained):
    with pytest.raises(InputError, match=r"t_start must be in \[0, 1000\)"):
        DiffusionRenderer(trained, t_start=1000)
    with pytest.raises(InputError, match="steps must be between 1 and the checkpoint's 1000 training timesteps"):
        DiffusionRenderer(trained, steps=0)
    with pytest.raises(InputError, match="unknown sampler 'heun'"):
        DiffusionRenderer(trained, sampler="heun")
    generator = DiffusionRenderer(trained, device="cpu")
    with pytest.raises(InputError, match=r"the sketch must be in \[0, 1\]"):
        generator.sample(np.full((4, 16, 16), -0.5, np.float32), SPACING, np.random.default_rng(0))


def test_camera_units_map_the_output_back_through_the_training_normalisation(trained, renderer_images):
    from cellsynth.io import read_volume

    labels = np.zeros((8, 32, 32), np.uint16)
    labels[2:6, 5:15, 5:15] = 1
    masks = Sample(labels, spacing=SPACING)
    normalised = DiffusionRenderer(trained, sampler="ddim", steps=3, device="cpu")
    camera = DiffusionRenderer(trained, sampler="ddim", steps=3, device="cpu", units="camera")
    unit = normalised.render(masks, np.random.default_rng(1)).image
    adu = camera.render(masks, np.random.default_rng(1)).image
    mapping = read_checkpoint_info(trained)["normalisation"]
    assert mapping["percentiles"] == [0.1, 99.9]
    np.testing.assert_allclose(adu, mapping["low"] + unit * (mapping["high"] - mapping["low"]), rtol=1e-5)
    training = [read_volume(path)[0] for path in sorted(renderer_images.glob("image*.tif"))]
    assert mapping["high"] == pytest.approx(np.mean([np.percentile(t, 99.9) for t in training]), rel=1e-5)
    assert mapping["low"] - 1e-5 <= adu.min() and adu.max() <= mapping["high"] + 1e-5  # the training images' range
    assert adu.max() - adu.min() > 0.3 * (mapping["high"] - mapping["low"])
    assert camera.describe()["units"] == "camera"
    with pytest.raises(InputError, match="unknown units 'adu'; accepted: normalised, camera"):
        DiffusionRenderer(trained, units="adu")


def test_the_default_normalisation_saturates_at_most_a_tenth_of_a_percent(tmp_path):
    from cellsynth.config import TrainDataConfig
    from cellsynth.io import write_volume
    from cellsynth.training.data import load_training_images

    rng = np.random.default_rng(0)
    image = rng.gamma(4.0, 100.0, (16, 64, 64)).astype(np.float32)  # a long bright tail, like nuclei
    write_volume(tmp_path / "a.tif", image, SPACING)
    images, _, mapping = load_training_images(TrainDataConfig(images=[str(tmp_path / "a.tif")]))
    assert (images[0] >= 1).mean() <= 0.0011 and (images[0] <= 0).mean() <= 0.0011  # was 2 % each with 2/98


def test_a_sample_follows_its_sketch_not_another(trained):
    from cellsynth.evaluate.metrics import zncc

    generator = DiffusionRenderer(trained, sampler="ddim", steps=5, t_start=150, device="cpu")
    rng = np.random.default_rng(0)
    sketches = []
    for centre in (10, 30):  # two sketches whose objects do not overlap
        labels = np.zeros((8, 40, 40), np.uint16)
        labels[1:7, centre - 8:centre + 8, 4:36] = 1
        sketches.append(make_sketch(labels, SPACING, generator.statistics, blur_um=generator.blur_um, rng=rng))
    out = generator.sample(sketches[0], SPACING, np.random.default_rng(1))
    assert zncc(sketches[0], out) > 0.5
    assert zncc(sketches[1], out) < zncc(sketches[0], out) - 0.5


def test_fusion_is_exact_when_the_receptive_field_fits_the_crop_and_only_then():
    from cellsynth.models.diffusion import fusion_error

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 8, 3, padding=1, padding_mode="reflect"), torch.nn.ReLU(),
                              torch.nn.Conv3d(8, 1, 1))  # reach: one voxel
    model = lambda x, t: net(x)  # noqa: E731
    x0 = torch.rand(1, 12, 40, 44, generator=torch.Generator().manual_seed(1)) * 2 - 1
    errors = {crop: fusion_error(model, PatchPlan(x0.shape[1:], (8, 16, 16), overlap=2, crop=crop), x0, 300,
                                 make_scheduler("ddpm"), torch.Generator().manual_seed(2))
              for crop in (1, 0)}
    assert errors[1]["relative_difference"] < 1e-6
    assert errors[0]["relative_difference"] > 1e-3  # a crop short of the reach leaves tile borders in


def test_learned_tiles_are_the_training_patch_whatever_the_volume(trained):
    generator = DiffusionRenderer(trained, sampler="ddim", steps=2, device="cpu")
    patch = tuple(read_checkpoint_info(trained)["patch"])
    seen = set()
    generator.network.register_forward_hook(lambda module, args, out: seen.add(tuple(args[0].shape[-3:])))
    for shape in ((8, 14, 14), (5, 9, 30), (12, 40, 40)):  # 14 used to shrink the tiles to 14 (fit_patch)
        generator.sample(np.full(shape, 0.4, np.float32), SPACING, np.random.default_rng(0))
    assert seen == {patch}


def test_fusion_on_the_real_network_predicts_the_noise_as_well_as_a_whole_call(trained):
    from cellsynth.models.diffusion import fusion_error

    generator = DiffusionRenderer(trained, device="cpu")
    x0 = torch.from_numpy(np.full((1, 8, 48, 48), -0.4, np.float32))
    x0[:, 2:6, 10:30, 12:40] = 0.5
    plan = PatchPlan(x0.shape[1:], **generator.tile_geometry())
    error = fusion_error(generator.network, plan, x0, 400, generator.scheduler, torch.Generator().manual_seed(0))
    assert error["fused_error"] <= 1.1 * error["whole_error"]
    assert 0 < error["relative_difference"] < 1


def test_tile_batches_change_nothing_but_speed(trained):
    from cellsynth.config import PatchingConfig

    labels = np.zeros((8, 40, 40), np.uint16)
    labels[2:6, 5:30, 8:20] = 1
    masks = Sample(labels, spacing=SPACING)
    one, many = (DiffusionRenderer(trained, PatchingConfig(batch_size=b), sampler="ddim", steps=3, device="cpu")
                 for b in (1, 5))
    assert one.batch_size == 1 and many.batch_size == 5
    assert DiffusionRenderer(trained, device="cpu").batch_size == 1  # the CPU default
    np.testing.assert_allclose(one.render(masks, np.random.default_rng(0)).image,
                               many.render(masks, np.random.default_rng(0)).image, atol=1e-5)


def test_training_from_arrays_equals_training_from_the_same_files(renderer_images, tmp_path):
    from cellsynth.io import read_volume

    samples = [Sample(image=image, spacing=spacing) for image, spacing in
               (read_volume(renderer_images / f"image{i}.tif") for i in range(2))]
    config = tiny_config(renderer_images, steps=2, checkpoint_every=2)
    from_files = read_checkpoint(train_ddpm(config, tmp_path / "files", progress=False), "ddpm")
    in_memory = config.model_copy(update={"data": config.data.model_copy(update={"images": []})})
    from_arrays = read_checkpoint(train_ddpm(in_memory, tmp_path / "arrays", images=samples, progress=False), "ddpm")
    assert from_arrays[1]["normalisation"] == from_files[1]["normalisation"]
    for name, tensor in from_files[0].items():
        assert torch.equal(tensor, from_arrays[0][name]), name
    with pytest.raises(InputError, match="one of the two"):
        train_ddpm(config, tmp_path / "both", images=samples, progress=False)
    with pytest.raises(InputError, match="must be a cellsynth Sample"):
        train_ddpm(in_memory, tmp_path / "bare", images=[samples[0].image], progress=False)
