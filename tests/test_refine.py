"""The refiner: physics render finished by a DDPM trained on the same images (SDEdit from the physics image)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cellsynth.checkpoints import read_checkpoint_info
from cellsynth.cli import main
from cellsynth.config import TrainConfig, load_preset, resolve_training_config, with_overrides
from cellsynth.errors import InputError
from cellsynth.io import read_volume, write_volume
from cellsynth.sample import Sample
from cellsynth.synthesis.pipeline import load_renderer
from cellsynth.synthesis.refine import RefineRenderer
from cellsynth.training.loop import train_ddpm

SPACING = (0.29, 0.26, 0.26)


def physics_config(output_dtype="uint16", output_scale=None):
    """The nuclei preset on a small volume, its camera writing ``output_dtype`` (float32: × ``output_scale``)."""
    return with_overrides(load_preset("nuclei"), {"volume.shape": [12, 48, 48], "volume.spacing_um": list(SPACING),
                                                  "optics.camera.output_dtype": output_dtype,
                                                  "optics.camera.output_scale": output_scale})


def blobs(shape=(12, 48, 48)) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    zz, yy, xx = np.indices(shape)
    for index, (y, x) in enumerate([(12, 12), (12, 34), (34, 20)], start=1):
        labels[((zz - 6) / 4.0) ** 2 + ((yy - y) / 8.0) ** 2 + ((xx - x) / 8.0) ** 2 <= 1] = index
    return labels


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny DDPM trained (a few CPU steps) on two uint16 physics images: camera units, as a user's own."""
    folder = tmp_path_factory.mktemp("real")
    renderer = load_renderer(physics_config())
    for index in range(2):
        image = renderer.render(Sample(blobs(), spacing=SPACING), rng=index).image
        write_volume(folder / f"image{index}.tif", image, SPACING)
    config = TrainConfig.model_validate({
        "steps": 8, "log_every": 4, "preview_every": 0, "checkpoint_every": 4, "device": "cpu", "batch_size": 2,
        "data": {"images": [str(folder / "image*.tif")], "patch": [8, 16, 16]},
        "ddpm": {"widths": [8, 16], "attention": False, "learning_rate": 2e-3, "ema_decay": 0.9}})
    return train_ddpm(config, tmp_path_factory.mktemp("run") / "ddpm", progress=False)


def refiner(checkpoint, output_dtype="uint16", output_scale=None, **settings):
    return RefineRenderer(physics_config(output_dtype, output_scale).optics, checkpoint, device="cpu", **settings)


def test_the_range_mapping_round_trips_in_every_output_type(checkpoint):
    # uint16 ADU, float32 as a fraction of the full scale, float32 in camera units (a float calibration image)
    for dtype, scale in (("uint16", None), ("float32", None), ("float32", 1.0)):
        renderer = refiner(checkpoint, dtype, scale)
        image = renderer.physics.render(Sample(blobs(), spacing=SPACING), rng=0).image
        mapped = renderer.to_model(image)
        assert 0.0 < float(np.median(mapped)) < 1.0  # the physics image lands in the checkpoint's range
        back = renderer.from_model(mapped)
        assert back.dtype == image.dtype
        np.testing.assert_allclose(back.astype(np.float64), image.astype(np.float64),
                                   atol=0.51 if dtype == "uint16" else 1e-6 * float(image.max()))


def test_refined_images_are_deterministic_in_the_physics_units_and_differ_from_physics(checkpoint):
    sample = Sample(blobs()[2:10, 8:40, 8:40], spacing=SPACING)
    renderer = refiner(checkpoint, t_start=50, steps=2)
    first = renderer.render(sample, rng=3)
    assert first.image.dtype == np.uint16 and first.image.shape == sample.shape
    assert np.array_equal(first.image, renderer.render(sample, rng=3).image)
    assert not np.array_equal(first.image, renderer.render(sample, rng=4).image)
    physics = renderer.physics.render(sample, rng=3).image
    assert not np.array_equal(first.image, physics)
    assert np.array_equal(first.labels, sample.labels)
    assert renderer.describe()["refiner"]["t_start"] == 50 and renderer.describe()["name"] == "refine"


def test_the_refiner_does_not_move_an_object(checkpoint):
    """A classical segmentation of the refined image overlaps the labels as well as one of the physics image."""
    from cellsynth.evaluate.segmentation import matching
    from cellsynth.masks.segment import classical_segmentation

    sample = Sample(blobs(), spacing=SPACING)
    renderer = refiner(checkpoint, "float32", t_start=30, steps=3)
    refined = renderer.render(sample, rng=0).image
    physics = renderer.physics.render(sample, rng=0).image
    scores = [matching(sample.labels, classical_segmentation(image, SPACING, smoothing_um=0.5,
                                                             min_seed_distance_um=2.0, min_volume_um3=5.0))
              for image in (physics, refined)]
    found = [{row["threshold"]: row["f1"] for row in score}[0.5] for score in scores]
    assert found[0] == 1.0 and found[1] == 1.0, scores  # every nucleus found where it is, at IoU 0.5


def test_config_and_cli_paths(checkpoint, tmp_path, capsys):
    config = with_overrides(physics_config(), {"renderer.name": "refine", "renderer.checkpoint": str(checkpoint),
                                               "renderer.t_start": 40, "renderer.steps": 2,
                                               "dataset.n_samples": 1})
    assert load_renderer(config, device="cpu").name == "refine"
    labels = tmp_path / "labels.tif"
    write_volume(labels, blobs(), SPACING)
    preset = tmp_path / "physics.yaml"
    preset.write_text(yaml.safe_dump(physics_config().model_dump(mode="json")))
    assert main(["synthesize", str(labels), "--config", str(preset), "--checkpoint", str(checkpoint), "--out",
                 str(tmp_path / "refined.tif"), "--device", "cpu", "--t-start", "40", "--steps", "2"]) == 0
    image, spacing = read_volume(tmp_path / "refined.tif")
    assert image.shape == blobs().shape and image.dtype == np.uint16 and spacing == SPACING


def test_bad_refiner_inputs_are_one_line(checkpoint, tmp_path):
    with pytest.raises(InputError, match=r"t_start must be in \[0, 1000\)"):
        refiner(checkpoint, t_start=5000)
    with pytest.raises(InputError, match="t_start must be >= 1 for the refiner"):
        refiner(checkpoint, t_start=0)
    with pytest.raises(InputError, match=r"the refiner was trained at \[0.29, 0.26, 0.26\] µm"):
        refiner(checkpoint).render(Sample(blobs(), spacing=(1.0, 0.5, 0.5)), rng=0)
    dim = with_overrides(physics_config(), {"optics.camera.photons": 2.0, "optics.camera.offset": 0.0})
    with pytest.raises(InputError, match="of the physics image falls outside the refiner's training range"):
        RefineRenderer(dim.optics, checkpoint, device="cpu").render(Sample(blobs(), spacing=SPACING), rng=0)
    with pytest.raises(InputError, match="refine.*needs --checkpoint"):
        load_renderer(with_overrides(physics_config(), {"renderer.name": "refine"}))
    with pytest.raises(Exception, match="units: camera is for gan and ddpm"):
        with_overrides(physics_config(), {"renderer.name": "refine", "renderer.units": "camera"})


def test_the_cpu_training_preset_trains_from_the_command_line_and_resumes(tmp_path, capsys):
    image = tmp_path / "real.tif"
    write_volume(image, load_renderer(physics_config()).render(Sample(blobs(), spacing=SPACING), rng=0).image, SPACING)
    run = tmp_path / "run"
    assert main(["train", "ddpm", "ddpm-cpu", "--images", str(image), "--out", str(run), "--steps", "1",
                 "--device", "cpu", "-q"]) == 0
    info = read_checkpoint_info(run / "checkpoint.safetensors")
    assert info["step"] == 1 and info["patch"] == [16, 64, 64] and info["architecture"]["widths"] == [16, 32, 64]
    assert info["architecture"]["attention"] is False and info["config"]["max_minutes"] == 20.0
    assert main(["train", "ddpm", "ddpm-cpu", "--images", str(image), "--out", str(run), "--steps", "2",
                 "--device", "cpu", "--resume", "-q"]) == 0
    assert read_checkpoint_info(run / "checkpoint.safetensors")["step"] == 2


def test_generate_like_refine_trains_generates_and_resumes_a_killed_training(tmp_path, capsys, monkeypatch):
    """`generate --like IMAGE --refine`: the refiner trains in OUT-refiner, the dataset records it; a training
    killed after its first checkpoint goes on from it with --resume, then the dataset is made."""
    from conftest import render_known
    from test_calibrate import KNOWN

    from cellsynth.dataset import Dataset
    from cellsynth.training.refine import FINISHED_NAME, refiner_folder

    config, _, image = render_known({**KNOWN, "volume": {"shape": [16, 96, 96], "spacing_um": [0.4, 0.2, 0.2]}})
    write_volume(tmp_path / "image.tif", image, config.volume.spacing_um)
    out, run = tmp_path / "like", refiner_folder(tmp_path / "like")
    killed = resolve_training_config("ddpm-cpu", [str(tmp_path / "image.tif")])
    train_ddpm(with_overrides(killed, {"steps": 1, "device": "cpu"}), run, progress=False)  # as if killed at step 1
    assert main(["generate", "--like", str(tmp_path / "image.tif"), "--refine", "--minutes", "0.02", "--out",
                 str(out), "--n", "1", "--resume", "-q"]) == 0
    info = read_checkpoint_info(run / "checkpoint.safetensors")
    assert info["step"] > 1 and (run / FINISHED_NAME).is_file()  # trained on from the killed run's step
    dataset = Dataset.open(out)
    renderer = dataset.manifest["config"]["renderer"]
    assert renderer["name"] == "refine" and renderer["refiner"]["checkpoint"] == str(run / "checkpoint.safetensors")
    assert len(dataset.pending()) == 0 and (out / "calibration.yaml").is_file()
    assert read_volume(out / "images" / f"{dataset.name(0)}.tif")[0].shape == image.shape
    capsys.readouterr()
    assert main(["generate", "--like", str(tmp_path / "image.tif"), "--refine", "--out", str(tmp_path / "x"),
                 "--resume", "-q"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_a_fully_convolutional_refiner_runs_few_large_tiles(checkpoint):
    from cellsynth.synthesis.patching import PatchPlan

    renderer = refiner(checkpoint)
    geometry = renderer.diffusion.tile_geometry((60, 256, 128))
    assert geometry["patch"][1] <= 4 * 16 and geometry["crop"] == [2, 4, 4]  # margins of the training patch
    assert len(PatchPlan((60, 256, 128), **geometry).tiles) < len(PatchPlan(
        (60, 256, 128), **{**geometry, "patch": [8, 16, 16]}).tiles) / 10


def test_the_training_log_holds_each_loss_and_its_mean_since_the_last_row(checkpoint):
    import csv

    with (checkpoint.parent / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [4, 8]  # log_every 4
    assert all(float(row["loss_mean"]) > 0 and "loss" in row for row in rows)
    assert any(row["loss_mean"] != row["loss"] for row in rows)  # a mean of 4 steps, not the last one
