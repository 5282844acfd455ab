"""Bad input, table-driven: every case exits 2 with one line naming the problem, and writes nothing.

Later issues add their rows to CASES. A case is (id, setup, expected fragment): ``setup(tmp)`` writes the
inputs it needs into ``tmp/in`` and returns the CLI arguments.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SPACING, boxes_labels

from cellsynth.cli import main
from cellsynth.config import OutputConfig
from cellsynth.dataset import build_dataset
from cellsynth.io import write_volume
from cellsynth.sample import Sample


def pair(tmp, image=None, labels=None, suffix=".npy", spacing=True):
    """Write an image/labels pair into tmp/in and return the import arguments."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    labels = boxes_labels() if labels is None else labels
    image = np.full(labels.shape, 0.5, np.float32) if image is None else image
    paths = []
    for name, array in (("image", image), ("labels", labels)):
        path = folder / f"{name}{suffix}"
        if suffix == ".npy":
            np.save(path, array)
        else:
            write_volume(path, array, SPACING)
        paths.append(str(path))
    spacing_args = ["--spacing", *map(str, SPACING)] if spacing else []
    return ["dataset", "import", str(tmp / "out"), "--images", paths[0], "--labels", paths[1], *spacing_args]


def nan_image():
    image = np.full((4, 16, 20), 0.5, np.float32)
    image[1, 2, 3] = np.nan
    return image


def dataset_and(tmp, *args):
    """A valid dataset in tmp/in/ds, then the given arguments (formatted with tmp)."""
    assert main(pair(tmp)[:2] + [str(tmp / "in" / "ds")] + pair(tmp)[3:]) == 0
    return [a.format(tmp=tmp) for a in args]


def config_bytes(tmp, raw: bytes):
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "in" / "c.yaml").write_bytes(raw)
    return ["config", "check", str(tmp / "in" / "c.yaml")]


def config_file(tmp, text):
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "in" / "c.yaml").write_text(text)
    return ["config", "check", str(tmp / "in" / "c.yaml")]


def corrupt_tiff(tmp):
    args = pair(tmp, suffix=".tif", spacing=False)
    (tmp / "in" / "image.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    return args


def truncated_tiff(tmp):
    """A valid 10-plane image whose file lost its second half (as an interrupted copy leaves it)."""
    args = pair(tmp, image=np.random.default_rng(0).random((10, 16, 20), dtype=np.float32),
                labels=boxes_labels((10, 16, 20)), suffix=".tif", spacing=False)
    data = (tmp / "in" / "image.tif").read_bytes()
    (tmp / "in" / "image.tif").write_bytes(data[: len(data) // 2])
    return args


def damaged_manifest(tmp, damage):
    """A valid dataset in tmp/in/ds whose manifest's first entry was edited by ``damage`` (None: replaced by 7)."""
    import json

    args = dataset_and(tmp, "dataset", "verify", "{tmp}/in/ds")
    path = tmp / "in" / "ds" / "manifest.json"
    manifest = json.loads(path.read_text())
    if damage is None:
        manifest["samples"][0] = 7
    else:
        damage(manifest["samples"][0])
    path.write_text(json.dumps(manifest))
    return args


def out_is_file(tmp):
    args = pair(tmp)
    (tmp / "in" / "f").write_text("")
    return args[:2] + [str(tmp / "in" / "f")] + args[3:]


def unsupported_suffix(tmp):
    args = pair(tmp)
    (tmp / "in" / "image.png").write_bytes(b"\x89PNG")
    return args[:4] + [str(tmp / "in" / "image.png")] + args[5:]


def count_mismatch(tmp):
    args = pair(tmp)
    return args[:7] + [args[6]] + args[7:]  # --labels gets two files for one image


CASES = [
    ("4d-image", lambda t: pair(t, image=np.zeros((2, 4, 16, 20), np.float32)), "must be a 2D (YX) or 3D (ZYX) array"),
    ("1d-image", lambda t: pair(t, image=np.zeros(20, np.float32), labels=np.zeros(20, np.uint16)), "got 1D"),
    (
        "shape-mismatch",
        lambda t: pair(t, image=np.zeros((4, 16, 21), np.float32)),
        "shape (4, 16, 21) and labels shape",
    ),
    ("float-labels", lambda t: pair(t, labels=boxes_labels().astype(np.float32)), "must hold integer instance ids"),
    ("bool-labels", lambda t: pair(t, labels=boxes_labels() > 0), "skimage.measure.label"),
    ("negative-labels", lambda t: pair(t, labels=boxes_labels().astype(np.int32) - 1), "negative values (min -1)"),
    ("nan-image", lambda t: pair(t, image=nan_image()), "1 NaN or inf values"),
    ("inf-image", lambda t: pair(t, image=np.full((4, 16, 20), np.inf, np.float32)), "NaN or inf values"),
    ("int64-image", lambda t: pair(t, image=np.zeros((4, 16, 20), np.int64)), "integers up to 32 bits"),
    ("no-spacing", lambda t: pair(t, spacing=False), "carries no voxel spacing; pass spacing"),
    ("negative-spacing", lambda t: pair(t)[:-3] + ["1", "-0.2", "0.2"], "finite numbers > 0"),
    ("corrupt-tiff", corrupt_tiff, "not a readable TIFF"),
    ("truncated-tiff", lambda t: truncated_tiff(t), "the TIFF is truncated or corrupt"),
    ("config-not-utf8", lambda t: config_bytes(t, b"dataset: {n_samples: 2}\n# \xff\xfe\n"), "not UTF-8 text"),
    ("config-nested-50000-deep", lambda t: config_bytes(t, b"a: " + b"[" * 50000 + b"]" * 50000 + b"\n"),
     "nested deeper than 32 levels"),
    ("config-duplicate-key", lambda t: config_file(t, "dataset: {n_samples: 2}\ndataset: {n_samples: 3}\n"),
     "key 'dataset' appears twice"),
    ("config-alias-bomb", lambda t: config_file(t, "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                                                   "c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"),
     "YAML aliases (*a) are not accepted"),
    ("config-huge-value-is-not-echoed", lambda t: config_file(t, f"dataset: {{n_samples: {'9' * 5000}x}}\n"),
     "(got '99999"),
    ("manifest-entry-without-files", lambda t: damaged_manifest(t, lambda e: e.pop("files")),
     "is done but lists no files"),
    ("manifest-path-outside-the-dataset", lambda t: damaged_manifest(
        t, lambda e: e["files"]["image"].update(path="../../../etc/hostname")), "names a file outside the dataset"),
    ("manifest-entry-not-a-mapping", lambda t: damaged_manifest(t, None), "is not an entry with its index and name"),
    ("missing-image", lambda t: pair(t)[:4] + [str(t / "nope.tif")] + pair(t)[5:], "does not exist"),
    ("unsupported-suffix", unsupported_suffix, "unsupported file type; accepted: .tif"),
    ("count-mismatch", count_mismatch, "got 1 image files but 2 label files"),
    ("out-is-file", out_is_file, "is a file, not a folder"),
    (
        "import-bad-config",
        lambda t: config_file(t, "dataset: {sead: 1}\n") and pair(t) + ["--config", str(t / "in" / "c.yaml")],
        "unknown key 'dataset.sead'",
    ),
    (
        "export-unknown-format",
        lambda t: dataset_and(t, "export", "{tmp}/in/ds", "--format", "hdf5", "--out", "{tmp}/x"),
        "unknown export format 'hdf5'; accepted: stardist, cellpose, ctc, nnunet, ome-zarr",
    ),
    (
        "export-out-is-file",
        lambda t: dataset_and(t, "export", "{tmp}/in/ds", "--format", "ctc", "--out", "{tmp}/in/image.npy"),
        "is a file",
    ),
    (
        "export-not-a-dataset",
        lambda t: ["export", str(t), "--format", "ctc", "--out", str(t / "x")],
        "is not a cellsynth dataset",
    ),
    (
        "config-unknown-key",
        lambda t: config_file(t, "volume: {shape: [1, 2, 3], spacnig_um: [1, 1, 1]}\n"),
        "unknown key 'volume.spacnig_um' (accepted here: shape, spacing_um)",
    ),
    (
        "config-wrong-type",
        lambda t: config_file(t, "dataset: {n_samples: ten}\n"),
        "'dataset.n_samples': input should be",
    ),
    (
        "config-negative-spacing",
        lambda t: config_file(t, "volume: {spacing_um: [-1, 0.2, 0.2]}\n"),
        "'volume.spacing_um[0]': input should be greater than 0",
    ),
    ("unknown-preset", lambda t: ["config", "show", "nuclei-xl"], "unknown preset 'nuclei-xl'"),
    ("usage-missing-arg", lambda t: ["export", str(t)], "the following arguments are required"),
    ("usage-unknown-command", lambda t: ["frobnicate"], "invalid choice: 'frobnicate'"),
]


def masks_run(tmp, yaml_text, kind="nuclei", *extra):
    """A `cellsynth masks KIND` run on a config file holding ``yaml_text``."""
    config_file(tmp, yaml_text)
    return ["masks", kind, str(tmp / "in" / "c.yaml"), "--out", str(tmp / "out"), "-q", *extra]


def labels_fit(tmp, labels):
    (tmp / "in").mkdir()
    np.save(tmp / "in" / "labels.npy", labels)
    return ["masks", "fit-ssm", str(tmp / "in" / "labels.npy"), "--spacing", "1", "1", "1", "--out", str(tmp / "m.npz")]


def empty_labels_fit(tmp):
    (tmp / "in").mkdir()
    write_volume(tmp / "in" / "empty.tif", np.zeros((4, 16, 20), np.uint16), SPACING)
    return ["masks", "fit-ssm", str(tmp / "in" / "empty.tif"), "--out", str(tmp / "m.npz")]


SMALL_VOLUME = "volume: {shape: [8, 32, 32], spacing_um: [0.5, 0.3, 0.3]}\n"
CASES += [
    ("masks-nonpositive-radius", lambda t: masks_run(t, "masks: {nuclei: {radius_um: 0}}\n"),
     "'masks.nuclei.radius_um': input should be greater than 0"),
    ("masks-nonpositive-spacing", lambda t: masks_run(t, "volume: {spacing_um: [0.5, 0, 0.3]}\n"),
     "'volume.spacing_um[1]': input should be greater than 0"),
    ("masks-volume-smaller-than-a-cell", lambda t: masks_run(t, SMALL_VOLUME + "masks: {nuclei: {radius_um: 6}}\n"),
     "smaller than one cell (12 µm across)"),
    ("masks-empty-foreground", lambda t: masks_run(
        t, SMALL_VOLUME + "masks: {nuclei: {radius_um: 1}, organism: {kind: ellipsoid, "
        "semi_axes_um: [0.01, 0.01, 0.01]}}\n"), "foreground is empty"),
    ("masks-no-room-for-any-cell", lambda t: masks_run(
        t, SMALL_VOLUME + "masks: {kind: membranes, organism: {kind: ellipsoid, semi_axes_um: [1, 1, 1]}, "
        "placement: {method: layers, min_distance_um: 4}}\n", "membranes"), "no cell could be placed"),
    ("masks-ssm-without-model", lambda t: masks_run(t, "masks: {nuclei: {shape: ssm}}\n"),
     "nucleus shape 'ssm' needs 'ssm_model'"),
    ("masks-ssm-model-missing", lambda t: masks_run(t, "masks: {nuclei: {shape: ssm, ssm_model: none.npz}}\n"),
     "shape model 'none.npz' not found"),
    ("masks-unknown-preset", lambda t: ["masks", "nuclei", "--preset", "nope", "--out", str(t / "out")],
     "unknown preset 'nope'"),
    ("masks-config-and-preset", lambda t: masks_run(t, "{}\n", "nuclei", "--preset", "default"),
     "not both"),
    ("masks-min-distance-below-radius", lambda t: masks_run(
        t, "masks: {placement: {min_distance_um: 3}, nuclei: {radius_um: 4}}\n"), "overlap into fragments"),
    ("masks-min-distance-tiny", lambda t: masks_run(
        t, "masks: {kind: membranes, placement: {min_distance_um: 0.0001}}\n", "membranes"),
     "at most 200000 are placed"),
    ("masks-radius-below-a-voxel", lambda t: masks_run(t, "masks: {nuclei: {radius_um: 0.01}}\n"),
     "smaller than one voxel"),
    ("masks-deformation-too-large", lambda t: masks_run(t, "masks: {nuclei: {deformation: 0.6}}\n"),
     "'masks.nuclei.deformation': input should be less than or equal to 0.4"),
    ("fit-ssm-no-instances", empty_labels_fit, "cannot fit a shape model: no instance"),
    ("fit-ssm-float-labels", lambda t: labels_fit(t, np.full((4, 16, 20), 1.5, np.float32)),
     "must hold integer instance ids"),
    ("fit-ssm-negative-labels", lambda t: labels_fit(t, np.full((4, 16, 20), -1, np.int16)), "negative values"),
    ("fit-ssm-not-npz", lambda t: ["masks", "fit-ssm", "--example", "cells3d", "--out", str(t / "m.pkl")],
     "--out must name a .npz file"),
]


def generate_run(tmp, yaml_text, *extra):
    """A `cellsynth generate` run on a config file holding ``yaml_text``."""
    config_file(tmp, yaml_text)
    return ["generate", str(tmp / "in" / "c.yaml"), "--out", str(tmp / "out"), "-q", *extra]


def foreign_checkpoint(tmp):
    (tmp / "in").mkdir()
    (tmp / "in" / "model.ckpt").write_bytes(b"PK\x03\x04 a zip with a pickle inside")
    checkpoint = str(tmp / "in" / "model.ckpt")
    return ["generate", "--out", str(tmp / "out"), "--generator", "ddpm", "--checkpoint", checkpoint]


CASES += [
    ("generate-overlap-crop-too-large", lambda t: generate_run(t, "patching: {patch: [16, 64, 64], overlap: 8, "
                                                                  "crop: 4}\n"),
     "overlap + 2·crop (8 + 2·4) must be smaller than every patch size"),
    ("generate-nonpositive-patch", lambda t: generate_run(t, "patching: {patch: [0, 64, 64]}\n"),
     "'patching.patch[0]': input should be greater than or equal to 1"),
    ("generate-unknown-preset", lambda t: ["generate", "--preset", "nuclei-xl", "--out", str(t / "out")],
     "unknown preset 'nuclei-xl'"),
    ("generate-unknown-renderer", lambda t: ["generate", "--out", str(t / "out"), "--renderer", "vae"],
     "argument --renderer/--generator: invalid choice: 'vae'"),
    ("generate-not-a-checkpoint", foreign_checkpoint, "is not a cellsynth checkpoint"),
    ("generate-unreachable-scheduler", lambda t: ["generate", "--out", str(t / "out"), "-q", "--n", "1",
                                                   "--scheduler", "tcp://127.0.0.1:9"],
     "cannot reach the dask scheduler at 'tcp://127.0.0.1:9'"),
    ("generate-zero-workers", lambda t: ["generate", "--out", str(t / "out"), "-q", "--workers", "0"],
     "--workers must be >= 1; got 0"),
    ("generate-out-not-empty", lambda t: (t / "in" / "x").mkdir(parents=True) or
     ["generate", "--out", str(t / "in"), "-q"], "folder exists and is not empty"),
]


def diversify_run(tmp, *extra):
    """A valid dataset in tmp/in/ds, then `cellsynth diversify` on it with the given options."""
    return dataset_and(tmp, "diversify", "{tmp}/in/ds", "--out", "{tmp}/out", "-q", *extra)


def masks_only_dataset(tmp):
    (tmp / "in").mkdir()
    build_dataset(tmp / "in" / "ds", ["m"], lambda i, rng: Sample(boxes_labels(), spacing=SPACING),
                  config={}, seed=0, output=OutputConfig(), progress=False)
    return ["diversify", str(tmp / "in" / "ds"), "--out", str(tmp / "out"), "-q"]


CASES += [
    ("diversify-negative-w_v", lambda t: diversify_run(t, "--levels", "1", "-1"), "w_v must be a finite number from 0"),
    ("diversify-negative-w_i", lambda t: diversify_run(t, "--intensity-levels", "-0.5"),
     "w_i must be a finite number from 0"),
    ("diversify-even-neighbourhood", lambda t: diversify_run(t, "--neighbourhood", "4"),
     "neighbourhood size s_σ must be odd voxel counts from 3 to 1001"),
    ("diversify-neighbourhood-below-3", lambda t: diversify_run(t, "--neighbourhood", "1"),
     "neighbourhood size s_σ must be odd voxel counts from 3 to 1001"),
    ("diversify-tiny-neighbourhood-um", lambda t: diversify_run(t, "--neighbourhood-um", "0.1"),
     "covers a single voxel"),
    ("diversify-percentiles-reversed", lambda t: diversify_run(t, "--percentiles", "99", "1"),
     "percentiles must satisfy 0 <= low < high <= 100"),
    ("diversify-not-a-dataset", lambda t: ["diversify", str(t), "--out", str(t / "out")],
     "is not a cellsynth dataset"),
    ("diversify-masks-only", masks_only_dataset, "holds masks only (no images); to diversify it needs images"),
]

def evaluate_run(tmp, real=None, synthetic=None, labels=None):
    """Image files in tmp/in, then `cellsynth evaluate images` on them."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"real": rng.random((4, 16, 20), dtype=np.float32) if real is None else real,
              "synthetic": rng.random((4, 16, 20), dtype=np.float32) if synthetic is None else synthetic,
              "labels": boxes_labels() if labels is None else labels}
    for name, array in arrays.items():
        write_volume(folder / f"{name}.tif", array, SPACING)
    return ["evaluate", "images", "--real", str(folder / "real.tif"), "--synthetic", str(folder / "synthetic.tif"),
            "--labels", str(folder / "labels.tif"), "--out", str(tmp / "out")]


def syn2real_run(tmp, *extra):
    return dataset_and(tmp, "evaluate", "syn2real", "--train", "{tmp}/in/ds", "--test", "{tmp}/in/ds", "-q",
                       "--steps", "1", "--patch-um", "2", "4", "4", *extra)


CASES += [
    ("evaluate-constant-real-image", lambda t: evaluate_run(t, real=np.full((4, 16, 20), 3, np.float32)),
     "cannot normalise a constant image"),
    ("evaluate-labels-shape-mismatch", lambda t: evaluate_run(t, labels=np.ones((4, 16, 21), np.uint16)),
     "labels shape (4, 16, 21) differs from the real image's (4, 16, 20)"),
    ("evaluate-empty-labels", lambda t: evaluate_run(t, labels=np.zeros((4, 16, 20), np.uint16)),
     "the labels are empty"),
    ("syn2real-out-not-empty", lambda t: syn2real_run(t, "--out", str(t / "in")), "exists and is not empty"),
    ("syn2real-negative-patch", lambda t: syn2real_run(t, "--out", str(t / "out"), "--patch-um", "-2", "8", "8"),
     "patch size must be three lengths > 0 µm"),
    ("syn2real-masks-only-test", lambda t: masks_only_dataset(t)[:0] + [
        "evaluate", "syn2real", "--train", str(t / "in" / "ds"), "--test", str(t / "in" / "ds"),
        "--out", str(t / "out"), "-q"], "holds masks only"),
    ("report-not-a-dataset", lambda t: ["report", str(t)], "is not a cellsynth dataset"),
]

def tiny_image(tmp):
    """A small float image with spacing in tmp/in/image.tif."""
    (tmp / "in").mkdir(exist_ok=True)
    write_volume(tmp / "in" / "image.tif", np.random.default_rng(0).random((8, 32, 32), dtype=np.float32), SPACING)
    return [str(tmp / "in" / "image.tif")]


def untagged_image(tmp):
    (tmp / "in").mkdir(exist_ok=True)
    np.save(tmp / "in" / "plain.npy", np.random.default_rng(0).random((8, 32, 32), dtype=np.float32))
    return []


def nan_training_image(tmp):
    (tmp / "in").mkdir(exist_ok=True)
    write_volume(tmp / "in" / "nan.tif", nan_image(), SPACING)
    return []


def train_run(tmp, yaml_text, *extra):
    """A `cellsynth train gan` run on a training config holding ``yaml_text``."""
    config_file(tmp, yaml_text)
    return ["train", "gan", str(tmp / "in" / "c.yaml"), "--out", str(tmp / "out"), "-q", *extra]


def ddpm_checkpoint(tmp):
    import torch

    from cellsynth.checkpoints import write_checkpoint

    (tmp / "in").mkdir()
    write_checkpoint(tmp / "in" / "d.safetensors", {"x": torch.zeros(1)}, {"model": "ddpm"})
    write_volume(tmp / "in" / "labels.tif", boxes_labels(), SPACING)
    return ["synthesize", str(tmp / "in" / "labels.tif"), "--checkpoint", str(tmp / "in" / "d.safetensors"),
            "--out", str(tmp / "out.tif")]


def pickled_checkpoint(tmp):
    import torch

    (tmp / "in").mkdir()
    torch.save({"w": torch.zeros(1)}, tmp / "in" / "g.pt")
    write_volume(tmp / "in" / "labels.tif", boxes_labels(), SPACING)
    return ["synthesize", str(tmp / "in" / "labels.tif"), "--checkpoint", str(tmp / "in" / "g.pt"),
            "--out", str(tmp / "out.tif")]


CASES += [
    ("train-no-images", lambda t: train_run(t, "steps: 2\n"), "'data': field required"),
    ("train-image-without-spacing", lambda t: tiny_image(t)[:0] + untagged_image(t) + train_run(
        t, f"data: {{images: [{t / 'in' / 'plain.npy'}], patch: [4, 16, 16]}}\n"), "set data.spacing_um"),
    ("train-nan-in-an-image", lambda t: nan_training_image(t)[:0] + train_run(
        t, f"data: {{images: [{t / 'in' / 'nan.tif'}], patch: [4, 16, 16]}}\n"), "contains 1 NaN or inf values"),
    ("train-cuda-without-a-gpu", lambda t: tiny_image(t)[:0] + train_run(
        t, f"data: {{images: [{t / 'in' / 'image.tif'}], patch: [4, 16, 16]}}\n"
           "masks: {nuclei: {radius_um: 1.0}, placement: {min_distance_um: 2.5}}\n", "--device", "cuda"),
     "torch sees no CUDA GPU"),
    ("train-images-match-nothing", lambda t: train_run(t, "data: {images: [/nonexistent/*.tif]}\n"),
     "training image '/nonexistent/*.tif' matches no file"),
    ("train-resume-nothing", lambda t: train_run(t, "data: {images: [a.tif]}\n", "--resume"), "nothing to resume"),
    ("train-paired-without-files", lambda t: train_run(t, "data: {images: [a.tif], paired: true}\n"),
     "paired training needs masks = files"),
    ("generate-alpha-for-optics", lambda t: ["generate", "--out", str(t / "out"), "--alpha", "10,100"],
     "alpha_um (quality levels) needs renderer 'gan'"),
    ("generate-alpha-not-numbers", lambda t: ["generate", "--out", str(t / "out"), "--alpha", "10,x"],
     "expected comma-separated numbers"),
    ("synthesize-incomplete-checkpoint", ddpm_checkpoint, "lacks architecture, spacing_um, patch, schedule, sketch: "
                                                          "not a complete ddpm checkpoint"),
    ("synthesize-pickle", pickled_checkpoint, "not a safetensors file; cellsynth never unpickles"),
]


def ddpm_generate(tmp, *extra):
    """`cellsynth generate --renderer ddpm` with a (weightless) ddpm checkpoint and ``extra`` options."""
    import torch

    from cellsynth.checkpoints import write_checkpoint

    (tmp / "in").mkdir()
    info = {"model": "ddpm", "patch": [8, 16, 16], "spacing_um": list(SPACING),
            "architecture": {"widths": [4, 8], "time_embedding": True},
            "schedule": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2",
                         "prediction_type": "epsilon"},
            "sketch": {"object_mean": 0.6, "object_std": 0.1, "background_mean": 0.1, "background_std": 0.0,
                       "blur_um": list(SPACING)}}
    write_checkpoint(tmp / "in" / "d.safetensors", {"x": torch.zeros(1)}, info)
    return ["generate", "--out", str(tmp / "out"), "--renderer", "ddpm", "--checkpoint",
            str(tmp / "in" / "d.safetensors"), "-q", *extra]


CASES += [
    ("optics-given-a-t-start", lambda t: ["generate", "--out", str(t / "out"), "--t-start", "5000", "-q"],
     "t_start set the ddpm renderer's sampling; renderer 'optics' takes none"),
    ("ddpm-t-start-too-large", lambda t: ddpm_generate(t, "--t-start", "1000"),
     "t_start must be in [0, 1000) for a 1000-step model; got 1000"),
    ("ddpm-zero-steps", lambda t: ddpm_generate(t, "--steps", "0"), "'renderer.steps': input should be greater"),
    ("ddpm-unknown-sampler", lambda t: ddpm_generate(t, "--sampler", "euler"),
     "argument --sampler: invalid choice: 'euler'"),
    ("ddpm-unknown-sampler-set", lambda t: ddpm_generate(t, "--set", "renderer.sampler=euler"),
     "'renderer.sampler': input should be 'ddpm', 'ddim' or 'dpmsolver'"),
    ("ddpm-two-starts", lambda t: ddpm_generate(t, "--t-start", "10", "--strength", "0.2"), "not allowed with"),
    ("gan-given-a-ddpm-checkpoint", lambda t: [a.replace("ddpm", "gan") if a == "ddpm" else a
                                               for a in ddpm_generate(t)],
     "is a ddpm checkpoint; a gan checkpoint is needed here"),
]


def realism_run(tmp, real=None, synthetic=None, *extra):
    """Two image files in tmp/in, then `cellsynth evaluate realism` on them."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name, array in (("real", real), ("synthetic", synthetic)):
        write_volume(folder / f"{name}.tif", rng.random((8, 64, 64), dtype=np.float32) if array is None else array,
                     (1.0, 1.0, 1.0))
    return ["evaluate", "realism", "--real", str(folder / "real.tif"), "--synthetic", str(folder / "synthetic.tif"),
            "--out", str(tmp / "out"), "--patch-um", "4", "8", "8", "--steps", "2", *extra]


def replace_after(args, flag, value):
    """``args`` with the value that follows ``flag`` replaced."""
    index = args.index(flag) + 1
    return args[:index] + [value] + args[index + 1:]


def empty_dataset(tmp):
    """A dataset folder whose only sample never finished."""
    from cellsynth.dataset import Dataset

    (tmp / "in").mkdir(exist_ok=True)
    Dataset.create(tmp / "in" / "empty", ["s"], config={}, seed=0, output=OutputConfig())
    return str(tmp / "in" / "empty")


CASES += [
    ("realism-2d-against-3d", lambda t: realism_run(t, real=np.random.default_rng(0).random((64, 64), np.float32)),
     "differ in dimensionality"),
    ("realism-real-smaller-than-a-patch", lambda t: realism_run(t, real=np.random.default_rng(0).random(
        (2, 64, 64), np.float32)), "smaller than one patch"),
    ("realism-negative-seed", lambda t: realism_run(t, None, None, "--seed", "-1"), "a seed is a whole number >= 0"),
    ("syn2real-learning-rate-nan", lambda t: syn2real_run(t, "--out", str(t / "out"), "--learning-rate", "nan"),
     "the learning rate a finite number > 0"),
    ("syn2real-learning-rate-inf", lambda t: syn2real_run(t, "--out", str(t / "out"), "--learning-rate", "inf"),
     "the learning rate a finite number > 0"),
    ("train-learning-rate-nan", lambda t: train_run(t, "data: {images: [a.tif]}\ngan: {learning_rate: .nan}\n"),
     "'gan.learning_rate': input should be a finite number (got nan)"),
    ("syn2real-negative-seed", lambda t: syn2real_run(t, "--out", str(t / "out"), "--seed", "-1"),
     "a seed is a whole number >= 0"),
    ("realism-zero-steps", lambda t: realism_run(t, None, None, "--steps", "0"), "budget must be >= 1 step"),
    ("realism-zero-minutes", lambda t: realism_run(t, None, None, "--minutes", "0"), "> 0 minutes"),
    ("realism-empty-dataset", lambda t: realism_run(t)[:2] + ["--real", empty_dataset(t)] + realism_run(t)[4:],
     "has no finished sample"),
    ("baseline-empty-dataset", lambda t: ["evaluate", "baseline", "--test", empty_dataset(t), "--out",
                                          str(t / "out")], "has no finished sample"),
    ("baseline-image-file-not-a-dataset", lambda t: realism_run(t)[:0] + [
        "evaluate", "baseline", "--test", str(t / "in" / "real.tif"), "--out", str(t / "out")],
     "must be a cellsynth dataset folder"),
    ("syn2real-zero-steps", lambda t: syn2real_run(t, "--out", str(t / "out"), "--steps", "0"),
     "budget must be >= 1 step"),
    ("syn2real-empty-train", lambda t: replace_after(syn2real_run(t, "--out", str(t / "out")), "--train",
                                                     empty_dataset(t)), "has no finished sample"),
    ("syn2real-cuda-without-a-gpu", lambda t: syn2real_run(t, "--out", str(t / "out"), "--device", "cuda"),
     "torch sees no CUDA GPU"),
    ("syn2real-weights-per-set", lambda t: syn2real_run(t, "--out", str(t / "out"), "--weights", "1", "2"),
     "--weights needs 1 finite numbers >= 0 (one per --train set)"),
    ("syn2real-fraction-zero", lambda t: syn2real_run(t, "--out", str(t / "out"), "--fraction", "0"),
     "--fraction must lie in (0, 1]"),
    ("syn2real-unknown-augmentation", lambda t: syn2real_run(t, "--out", str(t / "out"), "--augment", "flip,sharpen"),
     "unknown augmentation 'sharpen'; accepted: default, none, stacked, random-choice, one of flip"),
    ("syn2real-zero-repeats", lambda t: syn2real_run(t, "--out", str(t / "out"), "--repeats", "0"),
     "--repeats must be a whole number in 1…100"),
    ("split-fraction-one", lambda t: dataset_and(t, "dataset", "split", "{tmp}/in/ds", "--fraction", "1",
                                                 "--out", "{tmp}/a", "{tmp}/b"), "strictly between 0 and 1"),
    ("split-same-folder-twice", lambda t: dataset_and(t, "dataset", "split", "{tmp}/in/ds", "--out", "{tmp}/a",
                                                      "{tmp}/a"), "two different folders"),
    ("split-not-a-dataset", lambda t: ["dataset", "split", str(t), "--out", str(t / "a"), str(t / "b")],
     "is not a cellsynth dataset"),
]


def calibrate_run(tmp, image=None, labels=None, *extra):
    """Image (and label) files in tmp/in, then `cellsynth calibrate` on them."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    image = np.random.default_rng(0).poisson(100, (8, 64, 64)).astype(np.uint16) if image is None else image
    write_volume(folder / "image.tif", image, (0.5, 0.25, 0.25))
    args = ["calibrate", str(folder / "image.tif"), "--out", str(tmp / "out.yaml"), *extra]
    if labels is not None:
        write_volume(folder / "labels.tif", labels, (0.5, 0.25, 0.25))
        args += ["--labels", str(folder / "labels.tif")]
    return args


CASES += [
    ("calibrate-constant-image", lambda t: calibrate_run(t, np.full((8, 64, 64), 7, np.uint16)), "is constant"),
    ("calibrate-2d-image", lambda t: calibrate_run(t, np.random.default_rng(0).poisson(100, (64, 64)).astype(
        np.uint16)), "needs a 3D stack"),
    ("calibrate-labels-do-not-match", lambda t: calibrate_run(t, None, np.ones((8, 64, 63), np.uint16)),
     "do not match image 0"),
    ("calibrate-no-objects", lambda t: calibrate_run(t, None, np.zeros((8, 64, 64), np.uint16)), "no object"),
    ("calibrate-out-not-yaml", lambda t: calibrate_run(t)[:2] + ["--out", str(t / "out.txt")], "must name a .yaml"),
    ("generate-like-with-a-preset", lambda t: calibrate_run(t)[:0] + [
        "generate", "--like", str(t / "in" / "x.tif"), "--preset", "nuclei", "--out", str(t / "o")],
     "takes no config, preset"),
    ("synthesize-neither-config-nor-checkpoint", lambda t: calibrate_run(t, None, np.ones((8, 64, 64), np.uint16))[:0]
     + ["synthesize", str(t / "in" / "labels.tif"), "--out", str(t / "o.tif")], "or both (a physics preset refined"),
]


def dangling_out(tmp, *args):
    """``args`` (formatted with tmp) whose --out {tmp}/out is a link to a folder that does not exist."""
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "out").symlink_to(tmp / "gone")
    return [a.format(tmp=tmp) for a in args]


def labels_file(tmp):
    (tmp / "in").mkdir(exist_ok=True)
    write_volume(tmp / "in" / "labels.tif", boxes_labels(), SPACING)
    return str(tmp / "in" / "labels.tif")


def synthesize_onto_a_folder(tmp):
    labels = labels_file(tmp)
    (tmp / "in" / "x.tif").mkdir()
    return ["synthesize", labels, "--config", "default", "--out", str(tmp / "in" / "x.tif")]


def unfinished_dataset(tmp, *args):
    """A dataset in tmp/in/ds with one done and one pending sample, then ``args``."""
    import json

    args = dataset_and(tmp, *args)
    path = tmp / "in" / "ds" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["samples"].append({"index": 1, "name": "later", "status": "pending"})
    path.write_text(json.dumps(manifest))
    return args


def changed_sample(tmp, *args):
    """A dataset in tmp/in/ds whose image file changed after it was written, then ``args``."""
    args = dataset_and(tmp, *args)
    image = next((tmp / "in" / "ds" / "images").iterdir())
    image.write_bytes(image.read_bytes()[:-8] + bytes(8))
    return args


CASES += [
    ("generate-out-dangling-link", lambda t: dangling_out(t, "generate", "--preset", "default", "--n", "1",
                                                          "--out", "{tmp}/out"), "which does not exist"),
    ("synthesize-out-missing-parent", lambda t: ["synthesize", labels_file(t), "--config", "default", "--out",
                                                 str(t / "no" / "image.tif")], "folder '" ),
    ("synthesize-out-is-a-folder", synthesize_onto_a_folder, "it is an existing folder; give a file name"),
    ("fit-ssm-out-dangling-link", lambda t: dangling_out(t, "masks", "fit-ssm", "--example", "cells3d",
                                                         "--out", "{tmp}/out/m.npz"), "does not exist"),
    ("export-unfinished-dataset", lambda t: unfinished_dataset(t, "export", "{tmp}/in/ds", "--format", "stardist",
                                                               "--out", "{tmp}/x"),
     "is unfinished (1 of 2 samples done); complete it with --resume, or pass --allow-partial"),
    ("diversify-unfinished-dataset", lambda t: unfinished_dataset(t, "diversify", "{tmp}/in/ds", "--out",
                                                                  "{tmp}/x", "-q"), "is unfinished"),
    ("diversify-changed-source-sample", lambda t: changed_sample(t, "diversify", "{tmp}/in/ds", "--out",
                                                                 "{tmp}/x", "-q", "--levels", "0", "1"),
     "have a missing or changed file (first: 'image')"),
    ("split-changed-source-sample", lambda t: changed_sample(t, "dataset", "split", "{tmp}/in/ds", "--out",
                                                             "{tmp}/a", "{tmp}/b"), "missing or changed file"),
]


def forged_checkpoint(tmp):
    """A real tiny ddpm checkpoint whose metadata claims 200 000 channels per level."""
    from safetensors import safe_open

    from cellsynth.checkpoints import CHECKPOINT_KEY, write_checkpoint
    from cellsynth.models.unet3d import UNet3D

    args = ddpm_generate(tmp)
    path = tmp / "in" / "d.safetensors"
    with safe_open(str(path), "pt") as handle:
        info = json.loads(handle.metadata()[CHECKPOINT_KEY])
    info["architecture"] = {"widths": [200_000, 200_000], "time_embedding": True}
    weights = UNet3D(1, 1, [4, 8], time_embedding=True).state_dict()
    write_checkpoint(path, {f"generator.{k}": v for k, v in weights.items()}, info)
    return args


def damaged_checkpoint_info(tmp, **changes):
    """The weightless ddpm checkpoint of ddpm_generate with ``changes`` in its metadata."""
    from safetensors import safe_open

    from cellsynth.checkpoints import CHECKPOINT_KEY, write_checkpoint

    args = ddpm_generate(tmp)
    path = tmp / "in" / "d.safetensors"
    with safe_open(str(path), "pt") as handle:
        info = json.loads(handle.metadata()[CHECKPOINT_KEY])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    write_checkpoint(path, tensors, {**info, **changes})
    return args


def ddpm_train_run(tmp, yaml_text):
    tiny_image(tmp)
    config_file(tmp, f"data: {{images: [{tmp / 'in' / 'image.tif'}], patch: [4, 16, 16]}}\n" + yaml_text)
    return ["train", "ddpm", str(tmp / "in" / "c.yaml"), "--out", str(tmp / "out"), "-q"]


CASES += [
    ("generate-volume-beyond-memory", lambda t: generate_run(t, "volume: {shape: [1000, 4000, 4000]}\n"),
     "voxels at once needs about 2384.2 GiB of memory"),
    ("generate-volume-beyond-any-machine", lambda t: generate_run(t, "volume: {shape: [4000, 40000, 40000]}\n"),
     "has 6,400,000,000,000 voxels; at most 17,179,869,184"),
    ("generate-n-beyond-a-manifest", lambda t: ["generate", "--preset", "default", "--n", "100000000", "--out",
                                                str(t / "out")], "'dataset.n_samples': input should be less than"),
    ("train-ddpm-widths-beyond-memory", lambda t: ddpm_train_run(t, "ddpm: {widths: [100000, 100000]}\n"),
     "the DDPM denoiser ("),
    ("optics-in-camera-units", lambda t: ["generate", "--preset", "default", "--units", "camera", "--out",
                                          str(t / "out")], "units: camera is for gan and ddpm"),
    ("ddpm-tile-batch-zero", lambda t: ddpm_generate(t, "--tile-batch", "0"),
     "'patching.batch_size': input should be greater than or equal to 1"),
    ("ddpm-unknown-units", lambda t: ddpm_generate(t, "--units", "adu"), "argument --units: invalid choice: 'adu'"),
    ("ddpm-unknown-units-set", lambda t: ddpm_generate(t, "--set", "renderer.units=adu"),
     "'renderer.units': input should be"),
    ("checkpoint-metadata-of-the-wrong-type", lambda t: damaged_checkpoint_info(t, patch="large"),
     "has damaged metadata at 'patch': Input should be a valid"),
    ("checkpoint-metadata-claims-huge-widths", forged_checkpoint, "holds weights that do not fit its architecture"),
    ("fit-ssm-directions-1e8", lambda t: ["masks", "fit-ssm", "--example", "cells3d", "--directions", "100000000",
                                          "--out", str(t / "m.npz")], "takes 6 to 4096 directions"),
    ("syn2real-patch-beyond-memory", lambda t: syn2real_run(t, "--out", str(t / "out"), "--patch-um", "640",
                                                             "5120", "5120"), "GiB of memory"),
]


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*"))


@pytest.mark.parametrize(("setup", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, monkeypatch, setup, fragment):
    monkeypatch.setattr("cellsynth.synthesis.pipeline.SCHEDULER_TIMEOUT_S", 1)  # the unreachable scheduler: 1 s
    argv = setup(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse usage errors exit from inside parse_args
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cellsynth: error: ") or lines[0].startswith("cellsynth ")
    assert fragment in lines[0]
    assert snapshot(tmp_path) == before
