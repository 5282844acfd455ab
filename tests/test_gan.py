"""The cGAN: networks, positional conditioning, ADA, training, checkpoints, resume, generation."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_renderer_images

from cellsynth.checkpoints import read_checkpoint, read_checkpoint_info, write_checkpoint
from cellsynth.config import Config, TrainConfig, with_overrides
from cellsynth.dataset import Dataset
from cellsynth.errors import InputError
from cellsynth.models import gan
from cellsynth.models.discriminator import PatchDiscriminator
from cellsynth.models.gan import AdaController, augment
from cellsynth.models.unet3d import UNet3D, pixel_shuffle_3d, pixel_unshuffle_3d, seeded
from cellsynth.sample import Sample
from cellsynth.synthesis.conditioning import mask_channel, positional_map
from cellsynth.synthesis.learned import GanRenderer, load_network
from cellsynth.synthesis.pipeline import generate_dataset, load_renderer
from cellsynth.training.loop import train_gan

SPACING = (0.29, 0.26, 0.26)


@pytest.fixture(scope="module")
def renderer_images(tmp_path_factory):
    """Two physics-renderer images (TIFF with spacing) and their labels."""
    return write_renderer_images(tmp_path_factory.mktemp("images"), (16, 64, 64), seed=5)


def tiny_config(folder, **overrides) -> TrainConfig:
    data = {"images": [str(folder / "image*.tif")], "patch": [8, 32, 32], "simulated_volumes": 1}
    base = {"steps": 8, "log_every": 1, "preview_every": 0, "checkpoint_every": 4, "device": "cpu",
            "batch_size": 2, "data": data,
            "gan": {"widths": [4, 8], "discriminator_widths": [4, 8], "discriminator_strides": [2, 1],
                    "learning_rate": 3e-3}}
    for key, value in overrides.items():
        section = base
        *parents, last = key.split(".")
        for part in parents:
            section = section[part]
        section[last] = value
    return TrainConfig.model_validate(base)


def log_rows(run) -> list[dict]:
    with (run / "log.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(renderer_images, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "gan"
    return train_gan(tiny_config(renderer_images, preview_every=4), run, progress=False)


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("factor", [(2, 2, 2), (1, 2, 2), (3, 1, 2)])
def test_pixel_shuffle_is_the_exact_inverse_of_space_to_depth(factor):
    x = torch.randn(2, 3, 6, 8, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pixel_shuffle_3d(pixel_unshuffle_3d(x, factor), factor), x)
    y = torch.randn(1, 3 * int(np.prod(factor)), 2, 3, 4)
    assert torch.equal(pixel_unshuffle_3d(pixel_shuffle_3d(y, factor), factor), y)
    # depth-to-space places channel (c, i, j, k) at voxel offset (i, j, k) of each block
    shuffled = pixel_shuffle_3d(y, factor)
    fz, fy, fx = factor
    assert torch.equal(shuffled[0, 0, fz - 1, fy - 1, fx - 1], y[0, fz * fy * fx - 1, 0, 0, 0])


@pytest.mark.parametrize("size", [(7, 13, 21), (5, 9, 11), (8, 16, 16)])
def test_unet_keeps_odd_patch_sizes_and_the_output_range(size):
    network = seeded(lambda: UNet3D(2, 1, (4, 8, 16), out_activation="sigmoid"), torch.Generator().manual_seed(0))
    out = network(torch.rand(1, 2, *size)).detach()
    assert out.shape == (1, 1, *size) and 0 <= float(out.min()) and float(out.max()) <= 1
    with_time = seeded(lambda: UNet3D(1, 1, (4, 8), pools=[(1, 2, 2)], norm="group", time_embedding=True,
                                      attention=True, upsample="transpose"), torch.Generator().manual_seed(0))
    assert with_time(torch.rand(2, 1, *size), torch.tensor([0, 999])).shape == (2, 1, *size)
    with pytest.raises(ValueError, match="timesteps exactly when"):
        with_time(torch.rand(1, 1, *size))


def test_patch_discriminator_returns_logits_with_the_stated_receptive_field():
    reference = PatchDiscriminator(2, [2, 2, 2, 2, 2], [2, 2, 2, 2, 1])
    assert reference.receptive_field == (95, 95, 95)  # the reference's 64-128-256-512-512 layout
    assert reference(torch.rand(1, 2, 64, 128, 128)).shape == (1, 1, 4, 8, 8)
    small = seeded(lambda: PatchDiscriminator(1, [2, 2], [2, 1], norm="none"), torch.Generator().manual_seed(1))
    x = torch.rand(1, 1, 31, 31, 31, requires_grad=True)
    logits = small(x)
    logits[0, 0, 8, 8, 8].backward()  # centre logit: which input voxels does it see?
    seen = np.nonzero(x.grad[0, 0].abs().sum(dim=(1, 2)).numpy())[0]
    assert seen.max() - seen.min() + 1 == small.receptive_field[0] == 11
    assert not isinstance(small.layers[-1], torch.nn.Sigmoid)


# ----------------------------------------------------------------------------- conditioning


def test_positional_map_is_tanh_of_the_distance_in_um_inside_and_outside():
    specimen = np.zeros((40, 3, 3), bool)
    specimen[:20] = True  # surface between z = 19 and 20; z spacing 0.5 µm
    spacing = (0.5, 1.0, 1.0)
    position = positional_map(specimen, spacing, alpha_um=4.0, beta_um=2.0)
    depth_inside = (20 - np.arange(20)) * 0.5  # EDT to the nearest outside voxel, µm
    assert np.allclose(position[:20, 1, 1], np.tanh(depth_inside / 4.0), atol=1e-6)
    height_outside = (np.arange(20, 40) - 19) * 0.5
    assert np.allclose(position[20:, 1, 1], -np.tanh(height_outside / 2.0), atol=1e-6)
    assert position.dtype == np.float32
    assert np.all(positional_map(np.ones((2, 3, 3), bool), spacing) == 1)
    # a larger α (higher quality level) keeps deep voxels further from saturation
    assert positional_map(specimen, spacing, alpha_um=100)[0, 1, 1] < position[0, 1, 1]
    with pytest.raises(InputError, match="alpha and beta must be finite lengths > 0"):
        positional_map(specimen, spacing, alpha_um=0)


def test_mask_channel_marks_borders_of_touching_nuclei_and_membranes():
    labels = np.zeros((1, 4, 8), np.uint16)
    labels[0, :, :4], labels[0, :, 4:] = 1, 2
    nuclei = mask_channel(labels, "nuclei")
    assert nuclei[0, 1, 3] == nuclei[0, 1, 4] == 0.5 and nuclei[0, 1, 1] == 1
    membranes = mask_channel(labels, "membranes")
    assert set(np.unique(membranes)) == {0.0, 1.0} and membranes[0, 1, 3] == 1 and membranes[0, 1, 1] == 0
    with pytest.raises(InputError, match="unknown mask kind 'cells'"):
        mask_channel(labels, "cells")


# ----------------------------------------------------------------------------- ADA


def test_ada_p_rises_when_d_is_overconfident_on_reals_and_falls_otherwise():
    ada = AdaController(p=0.5, target=0.6, delta=0.05, interval=2)
    confident = torch.tensor([[3.0, 2.0, 1.0, 0.5]])  # r = 1 > 0.6
    ada.observe(confident)
    assert ada.p == 0.5  # adjusts only every 2 minibatches
    ada.observe(confident)
    assert ada.p == pytest.approx(0.55) and ada.r == 1.0
    unsure = torch.tensor([[1.0, -1.0, 1.0, -1.0]])  # r = 0 < 0.6
    for _ in range(4):
        ada.observe(unsure)
    assert ada.p == pytest.approx(0.45) and ada.r == 0.0
    for _ in range(40):
        ada.observe(unsure)
    assert ada.p == 0.0  # clipped
    copy = AdaController()
    copy.load_state_dict(ada.state_dict())
    assert copy.state_dict() == ada.state_dict()


def test_augment_is_seeded_leaves_its_input_alone_and_is_identity_at_p_zero():
    images = torch.rand(3, 1, 8, 32, 32, generator=torch.Generator().manual_seed(0))
    before = images.clone()
    assert torch.equal(augment(images, 0.0, torch.Generator()), images)
    first = augment(images, 1.0, torch.Generator().manual_seed(4))
    again = augment(images, 1.0, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and torch.equal(images, before) and not torch.equal(first, images)
    assert list(gan.AUGMENTATIONS) == ["scale", "noise", "shuffle", "inpaint", "decline"]


def test_each_augmentation_follows_the_paper():
    settings, generator = gan.AugmentSettings(), torch.Generator().manual_seed(2)
    factors = []
    for _ in range(200):
        sample = torch.ones(1, 2, 2, 2)
        gan.scale_intensity(sample, generator, settings)
        factors.append(float(sample[0, 0, 0, 0]))
    assert 0.6 <= min(factors) < 0.65 and 1.15 < max(factors) <= 1.2  # ×U(0.6, 1.2), not the reference's 1.8
    noisy = torch.zeros(1, 16, 64, 64)
    gan.add_noise(noisy, generator, settings)
    assert float(noisy.std()) == pytest.approx(0.1, rel=0.03)  # a std, not a variance (reference: 0.447)
    ramp = torch.arange(30 * 30 * 30, dtype=torch.float32).reshape(1, 30, 30, 30)
    shuffled = ramp.clone()
    gan.shuffle_voxels(shuffled, generator, settings)
    changed = (shuffled != ramp).nonzero()[:, 1:]
    assert (changed.max(0).values - changed.min(0).values < 25).all()  # within one 25³ box
    assert torch.equal(shuffled.flatten().sort().values, ramp.flatten())  # a permutation
    painted = torch.rand(1, 30, 30, 30, generator=generator)
    mean = painted.mean()
    gan.inpaint_box(painted, generator, settings)
    assert int((painted == mean).sum()) == 15**3
    declined = torch.ones(1, 8, 8, 8)
    gan.decline(declined, generator, settings)
    profiles = [declined[0].mean(dim=tuple(a for a in range(3) if a != axis)) for axis in range(3)]
    varying = [axis for axis, profile in enumerate(profiles) if float(profile.max() - profile.min()) > 1e-6]
    assert len(varying) == 1 and float(declined.max()) == 1.0  # one spatial axis, linear from 1


def test_real_and_fake_go_through_one_augmentation_call(monkeypatch):
    from cellsynth.training.runs import make_accelerator

    calls = []
    real_augment = gan.augment

    def spy(images, *args):
        calls.append(images.shape[0])
        return real_augment(images, *args)

    monkeypatch.setattr(gan, "augment", spy)
    g = seeded(lambda: UNet3D(2, 1, (4, 8), out_activation="sigmoid"), torch.Generator().manual_seed(0))
    d = seeded(lambda: PatchDiscriminator(2, [4, 8], [2, 1]), torch.Generator().manual_seed(1))
    trainer = gan.GanTrainer(g, d, make_accelerator("no", "cpu"), ada=AdaController(p=1.0))
    batch = {k: torch.rand(2, 1, 8, 16, 16) for k in ("mask", "mask_position", "image", "image_position")}
    losses = trainer.step(batch)
    assert calls == [4, 2]  # D: reals and fakes in one batch; G: its fakes
    assert all(np.isfinite(v) for k, v in losses.items() if k != "ada_r")


# ----------------------------------------------------------------------------- training


def test_tiny_gan_trained_on_renderer_images_lowers_its_identity_loss(renderer_images, tmp_path):
    train_gan(tiny_config(renderer_images, steps=40, checkpoint_every=40), tmp_path / "run", progress=False)
    identity = [float(row["loss_identity"]) for row in log_rows(tmp_path / "run")]
    assert len(identity) == 40
    assert np.mean(identity[-5:]) < 0.9 * np.mean(identity[:5])


def test_checkpoint_round_trip_and_generation(trained, renderer_images):
    tensors, info = read_checkpoint(trained, "gan")
    assert info["step"] == 8 and info["spacing_um"] == pytest.approx(SPACING)
    assert info["normalisation"]["percentiles"] == [0.1, 99.9] and info["normalisation"]["high"] > 0
    assert info["conditioning"] == {"kind": "nuclei", "alpha_um": 100.0, "beta_um": 100.0}
    network, _ = load_network(trained, "gan")
    stored = {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}
    assert all(torch.equal(network.state_dict()[k], v) for k, v in stored.items()) and stored
    assert (trained.parent / "previews" / "step_000004.png").is_file()
    labels = np.zeros((12, 40, 40), np.uint16)
    labels[3:9, 10:20, 10:20], labels[3:9, 22:30, 12:30] = 1, 2
    generator = GanRenderer(trained, device="cpu")
    image = generator.render(Sample(labels, spacing=SPACING)).image
    assert image.shape == labels.shape and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    assert np.array_equal(image, generator.render(Sample(labels, spacing=SPACING)).image)  # deterministic
    coarse = generator.render(Sample(labels, spacing=(0.58, 0.52, 0.52))).image  # resampled to training spacing
    assert coarse.shape == labels.shape


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(renderer_images, tmp_path):
    whole = tmp_path / "whole"
    train_gan(tiny_config(renderer_images, steps=8), whole, progress=False)
    split = tmp_path / "split"
    train_gan(tiny_config(renderer_images, steps=4), split, progress=False)
    train_gan(tiny_config(renderer_images, steps=8), split, resume=True, progress=False)
    assert log_rows(split) == log_rows(whole)
    first, _ = read_checkpoint(whole / "checkpoint.safetensors")
    second, _ = read_checkpoint(split / "checkpoint.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    with pytest.raises(InputError, match="cannot resume .* with a different gan"):
        train_gan(tiny_config(renderer_images, steps=12, **{"gan.identity_weight": 2.0}), split, resume=True)
    with pytest.raises(InputError, match="exists and is not empty; continue it with --resume"):
        train_gan(tiny_config(renderer_images, steps=12), split)


def test_pickles_and_other_model_checkpoints_are_refused(tmp_path):
    pickle = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, pickle)
    with pytest.raises(InputError, match="not a safetensors file; cellsynth never unpickles"):
        GanRenderer(pickle)
    other = tmp_path / "ddpm.safetensors"
    write_checkpoint(other, {"x": torch.zeros(1)}, {"model": "ddpm"})
    with pytest.raises(InputError, match="is a ddpm checkpoint; a gan checkpoint is needed here"):
        GanRenderer(other)


def test_quality_levels_share_masks_and_differ_in_image(trained, tmp_path):
    config = with_overrides(Config(), {
        "volume.shape": (8, 48, 48), "dataset.n_samples": 1, "renderer.name": "gan",
        "renderer.checkpoint": str(trained), "renderer.alpha_um": [10.0, 1000.0],
        "dataset.output.previews": False})
    dataset = generate_dataset(config, tmp_path / "levels", renderer=load_renderer(config), progress=False)
    assert [dataset.name(i) for i in range(len(dataset))] == ["sample_0000_alpha10", "sample_0000_alpha1000"]
    low, high = (Dataset.open(dataset.root).read_sample(i) for i in range(2))
    assert np.array_equal(low.labels, high.labels)
    assert not np.array_equal(low.image, high.image)


def test_cli_trains_resumes_generates_levels_and_synthesizes(renderer_images, tmp_path):
    from cellsynth.cli import main

    config = tmp_path / "train.yaml"
    config.write_text(f"steps: 2\npreview_every: 0\ndevice: cpu\ndata: {{images: ['{renderer_images}/image*.tif'], "
                      "patch: [8, 32, 32], simulated_volumes: 1}\n"
                      "gan: {widths: [4, 8], discriminator_widths: [4, 8], discriminator_strides: [2, 1]}\n")
    run = tmp_path / "run"
    assert main(["train", "gan", str(config), "--out", str(run), "-q"]) == 0
    assert main(["train", "gan", str(config), "--out", str(run), "--resume", "--steps", "3", "-q"]) == 0
    checkpoint = run / "checkpoint.safetensors"
    assert read_checkpoint(checkpoint)[1]["step"] == 3
    assert main(["generate", "--renderer", "gan", "--checkpoint", str(checkpoint), "--alpha", "10,100", "--n", "1",
                 "--out", str(tmp_path / "ds"), "-q"]) == 0
    assert len(Dataset.open(tmp_path / "ds")) == 2
    out = tmp_path / "synthetic.tif"
    assert main(["synthesize", str(renderer_images / "labels0.tif"), "--checkpoint", str(checkpoint),
                 "--out", str(out), "--alpha", "50", "--tile-batch", "3", "-q"]) == 0
    from cellsynth.io import read_volume

    image, spacing = read_volume(out)
    assert image.shape == (16, 64, 64) and spacing == pytest.approx(SPACING)


def test_training_crop_is_a_slice_inside_and_reflects_outside():
    from cellsynth.training.data import crop

    volume = np.arange(2 * 6 * 7 * 8, dtype=np.float32).reshape(2, 6, 7, 8)
    inside = crop(volume, (1, 2, 3), (4, 4, 4))
    assert np.array_equal(inside, volume[:, 1:5, 2:6, 3:7]) and inside.base is None  # a copy, not a view
    outside = crop(volume, (4, 5, 6), (4, 4, 4))  # reaches past every face: reflected
    assert outside.shape == (2, 4, 4, 4) and np.array_equal(outside[:, 0, 0, 0], volume[:, 4, 5, 6])


# ----------------------------------------------------------------------------- what the weak tests missed


def test_the_saved_generator_is_the_ema_not_the_raw_weights(trained):
    from cellsynth.training.runs import unpack_state

    tensors, info = read_checkpoint(trained, "gan")
    state = unpack_state(info["state"], tensors)["trainer"]
    network, _ = load_network(trained, "gan")
    names = [name for name, _ in network.named_parameters()]
    shadow = state["ema"]["shadow_params"]
    assert len(shadow) == len(names)
    assert all(torch.equal(network.state_dict()[name], ema.to(torch.float32)) for name, ema in zip(names, shadow,
                                                                                                  strict=True))
    assert any(not torch.equal(network.state_dict()[name], state["generator"][name]) for name in names)


def test_generation_never_calls_the_training_augmentation(trained, monkeypatch):
    import cellsynth.models.gan

    def forbidden(*args, **kwargs):
        raise AssertionError("ADA augmentation called at inference")

    monkeypatch.setattr(cellsynth.models.gan, "augment", forbidden)
    labels = np.zeros((8, 32, 32), np.uint16)
    labels[2:6, 8:20, 8:20] = 1
    image = GanRenderer(trained, device="cpu").render(Sample(labels, spacing=SPACING)).image
    assert np.isfinite(image).all()


def test_quality_levels_follow_alpha(trained, monkeypatch):
    import cellsynth.synthesis.conditioning

    conditions = []
    original = cellsynth.synthesis.conditioning.gan_condition

    def recorded(*args, **kwargs):
        conditions.append(original(*args, **kwargs))
        return conditions[-1]

    monkeypatch.setattr(cellsynth.synthesis.conditioning, "gan_condition", recorded)
    labels = np.zeros((8, 40, 40), np.uint16)
    labels[2:6, 5:15, 5:15], labels[2:6, 22:34, 20:32] = 1, 2
    generator = GanRenderer(trained, device="cpu")
    images = [generator.at_alpha(alpha).render(Sample(labels, spacing=SPACING)).image for alpha in (10, 100, 1000)]
    positional = [np.abs(condition[1]).mean() for condition in conditions]  # channel 1: tanh(distance / α)
    assert positional[0] > positional[1] > positional[2] > 0  # a larger α flattens the map
    assert np.array_equal(images[1], generator.render(Sample(labels, spacing=SPACING)).image)  # the trained α
    gaps = [np.abs(image - images[1]).mean() for image in (images[0], images[2])]
    assert min(gaps) > 0


def test_the_adversarial_path_alone_trains_the_generator(renderer_images, tmp_path):
    from cellsynth.training.loop import gan_architecture
    from cellsynth.training.runs import unpack_state

    config = tiny_config(renderer_images, steps=2, checkpoint_every=2, **{"gan.identity_weight": 0.0})
    checkpoint = train_gan(config, tmp_path / "run", progress=False)
    tensors, info = read_checkpoint(checkpoint, "gan")
    trained_weights = unpack_state(info["state"], tensors)["trainer"]["generator"]
    initial = seeded(lambda: UNet3D(**gan_architecture(config)), torch.Generator().manual_seed(config.seed))
    changed = [name for name, value in initial.state_dict().items() if not torch.equal(value,
                                                                                       trained_weights[name])]
    assert len(changed) > len(initial.state_dict()) // 2  # G moved on the adversarial loss alone
    rows = log_rows(tmp_path / "run")
    assert all(float(row["loss_identity"]) > 0 and float(row["loss_adv"]) > 0 for row in rows)


def checkerboard(upsample: str) -> float:
    """Parity difference of an untrained generator's output on a constant input, over its spread."""
    torch.manual_seed(0)
    network = UNet3D(2, 1, [8, 16, 32], upsample=upsample)
    with torch.no_grad():
        out = network(torch.full((1, 2, 8, 32, 32), 0.5))[0, 0, 2:6, 4:28, 4:28].numpy()
    return float(abs(out[:, ::2, ::2].mean() - out[:, 1::2, 1::2].mean()) / out.std())


def test_the_cgan_upsamples_by_resize_convolution_without_a_checkerboard():
    from cellsynth.training.loop import gan_architecture

    assert gan_architecture(tiny_config(Path(".")))["upsample"] == "resize"
    assert checkerboard("resize") < 0.05 < checkerboard("pixelshuffle")


def test_ada_adjusts_once_per_64_patches_seen_even_with_one_training_image(renderer_images, tmp_path):
    single = tmp_path / "one"
    single.mkdir()
    (single / "image0.tif").write_bytes((renderer_images / "image0.tif").read_bytes())
    run = train_gan(tiny_config(single, steps=9, log_every=1, batch_size=8, **{"gan.ada": {"p_start": 0.5}}),
                    tmp_path / "run", progress=False)
    ps = [float(row["ada_p"]) for row in log_rows(run.parent)]
    assert ps[:7] == [0.5] * 7 and ps[8] != 0.5  # 64 patches = 8 steps of 8, then one adjustment


def test_pseudo_labels_pair_each_image_with_its_classical_segmentation(renderer_images, tmp_path):
    from cellsynth.training.data import mask_volumes

    config = tiny_config(renderer_images, **{"data.masks": "pseudo"})
    image = np.zeros((12, 40, 40), np.float32)
    image[3:9, 5:15, 5:15] = image[3:9, 22:34, 20:32] = 1
    conditions, labels = mask_volumes(config, (1.0, 1.0, 1.0), [image])
    assert len(conditions) == 1 and conditions[0].shape == (2, *image.shape) and labels[0].max() == 2
    run = train_gan(tiny_config(renderer_images, steps=2, **{"data.masks": "pseudo"}), tmp_path / "p",
                    progress=False)
    assert read_checkpoint_info(run, "gan")["config"]["data"]["masks"] == "pseudo"


def test_the_cpu_training_preset_trains_paired_on_pseudo_labels_from_the_command_line(tmp_path):
    from cellsynth.cli import main

    write_renderer_images(tmp_path, (16, 64, 64), seed=3, n=1)
    run = tmp_path / "run"
    assert main(["train", "gan", "gan-cpu", "--images", str(tmp_path / "image0.tif"), "--out", str(run), "--steps",
                 "1", "--device", "cpu", "-q"]) == 0
    info = read_checkpoint_info(run / "checkpoint.safetensors", "gan")
    assert info["step"] == 1 and info["patch"] == [16, 64, 64] and info["config"]["data"]["masks"] == "pseudo"
    assert info["architecture"]["widths"] == [8, 16, 32] and info["config"]["max_minutes"] == 20.0
