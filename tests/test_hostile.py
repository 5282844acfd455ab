"""The second hostile-input sweep (issue 24), one row per case: escapes, overwritten inputs, concurrent
writers, hangs, exhaustion, tracebacks and bad input accepted. Each row exits 2 with one line naming the
problem and leaves every file as it was; the tests after the table show that what is allowed still works.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import SPACING, boxes_labels
from test_bad_inputs import (
    config_file,
    damaged_checkpoint_info,
    dataset_and,
    ddpm_generate,
    generate_run,
    masks_run,
    snapshot,
)

from cellsynth.cli import main
from cellsynth.io import write_volume

# ----------------------------------------------------------------------------- helpers


def tampered(tmp, change, *args):
    """A valid dataset in tmp/in/ds whose manifest ``change(manifest)`` edited, then ``args`` (formatted)."""
    args = dataset_and(tmp, *args)
    path = tmp / "in" / "ds" / "manifest.json"
    manifest = json.loads(path.read_text())
    replaced = change(manifest)
    path.write_text(json.dumps(manifest if replaced is None else replaced))
    return args


def renamed(name):
    return lambda manifest: manifest["samples"][0].update(name=name)


def raw_manifest(tmp, text: bytes, *args):
    args = dataset_and(tmp, *args)
    (tmp / "in" / "ds" / "manifest.json").write_bytes(text)
    return args


def labels_file(tmp):
    (tmp / "in").mkdir(exist_ok=True)
    write_volume(tmp / "in" / "l.tif", boxes_labels(), SPACING)
    return str(tmp / "in" / "l.tif")


def synthesize(tmp, out=None, *extra):
    labels = labels_file(tmp)
    return ["synthesize", labels, "--config", "default", "--out", out or labels, *extra]


def existing_output(tmp, *extra):
    labels = labels_file(tmp)
    (tmp / "in" / "mine.tif").write_bytes(b"my own work")
    return ["synthesize", labels, "--config", "default", "--out", str(tmp / "in" / "mine.tif"), *extra]


def link_to_input(tmp):
    labels = labels_file(tmp)
    (tmp / "in" / "link.tif").symlink_to(labels)
    return ["synthesize", labels, "--config", "default", "--out", str(tmp / "in" / "link.tif"), "--overwrite"]


def existing_file(tmp, name):
    (tmp / "in").mkdir(exist_ok=True)
    (tmp / "in" / name).write_text("mine")
    return str(tmp / "in" / name)


def fifo(tmp, name):
    (tmp / "in").mkdir(exist_ok=True)
    os.mkfifo(tmp / "in" / name)
    return str(tmp / "in" / name)


def fifo_import(tmp):
    labels = labels_file(tmp)
    return ["dataset", "import", str(tmp / "out"), "--images", fifo(tmp, "image.tif"), "--labels", labels]


def fifo_checkpoint(tmp):
    labels = labels_file(tmp)
    return ["synthesize", labels, "--checkpoint", fifo(tmp, "c.safetensors"), "--out", str(tmp / "o.tif")]


def nan_spacing_checkpoint(tmp):
    args = damaged_checkpoint_info(tmp)
    from safetensors import safe_open

    from cellsynth.checkpoints import CHECKPOINT_KEY

    path = tmp / "in" / "d.safetensors"
    with safe_open(str(path), "pt") as handle:  # json writes NaN as a bare NaN token, as a forger would
        info = json.loads(handle.metadata()[CHECKPOINT_KEY])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    from safetensors.torch import save_file

    info["spacing_um"] = [float("nan"), 0.25, 0.2]
    save_file(tensors, str(path), metadata={CHECKPOINT_KEY: json.dumps(info)})
    return args


def check(text):
    """`config check` of a config holding ``text``."""
    return lambda t: config_file(t, text)


SAFETY = [
    # 1. path escape through a manifest's sample name
    ("escape-export-stardist", lambda t: tampered(t, renamed("../../evil"), "export", "{tmp}/in/ds", "--format",
                                                  "stardist", "--out", "{tmp}/x"), "is not a plain file name"),
    ("escape-export-ome-zarr", lambda t: tampered(t, renamed("../../evil"), "export", "{tmp}/in/ds", "--format",
                                                  "ome-zarr", "--out", "{tmp}/x"), "is not a plain file name"),
    ("escape-split", lambda t: tampered(t, renamed("../../../evil"), "dataset", "split", "{tmp}/in/ds", "--out",
                                        "{tmp}/a", "{tmp}/b"), "is not a plain file name"),
    ("escape-diversify", lambda t: tampered(t, renamed("../../evil"), "diversify", "{tmp}/in/ds", "--out", "{tmp}/x",
                                            "-q"), "is not a plain file name"),
    ("escape-verify", lambda t: tampered(t, renamed("../../evil"), "dataset", "verify", "{tmp}/in/ds"),
     "is not a plain file name"),
    ("escape-report", lambda t: tampered(t, renamed("a/b"), "report", "{tmp}/in/ds"), "is not a plain file name"),
    ("name-hidden", lambda t: tampered(t, renamed(".partial"), "dataset", "verify", "{tmp}/in/ds"),
     "is not a plain file name"),
    ("name-backslash", lambda t: tampered(t, renamed("..\\evil"), "dataset", "verify", "{tmp}/in/ds"),
     "is not a plain file name"),
    ("name-nul", lambda t: tampered(t, renamed("a\x00b"), "dataset", "verify", "{tmp}/in/ds"),
     "is not a plain file name"),
    # 2. data loss: an output that is an input, or a file that exists
    ("synthesize-onto-its-labels", lambda t: synthesize(t), "it is also an input"),
    ("synthesize-onto-its-labels-overwrite", lambda t: synthesize(t, None, "--overwrite"), "it is also an input"),
    ("synthesize-through-a-link-to-its-labels", link_to_input, "it is also an input"),
    ("synthesize-existing-output", existing_output, "the file exists; pass --overwrite"),
    ("calibrate-existing-output", lambda t: ["calibrate", labels_file(t), "--spacing", "1", "1", "1", "--out",
                                             existing_file(t, "p.yaml")], "the file exists; pass --overwrite"),
    ("calibrate-onto-an-input", lambda t: ["calibrate", labels_file(t), "--labels", existing_file(t, "l.yaml"),
                                           "--out", str(t / "in" / "l.yaml"), "--overwrite"], "it is also an input"),
    ("fit-ssm-existing-output", lambda t: ["masks", "fit-ssm", labels_file(t), "--out", existing_file(t, "m.npz")],
     "the file exists; pass --overwrite"),
    ("fit-ssm-existing-sidecar", lambda t: ["masks", "fit-ssm", labels_file(t), "--out",
                                            existing_file(t, "m.json").replace(".json", ".npz")],
     "m.json': the file exists"),
    ("report-existing-output", lambda t: dataset_and(t, "report", "{tmp}/in/ds", "--out", "{tmp}/in/image.npy"),
     "the file exists; pass --overwrite"),
    ("export-inside-the-dataset", lambda t: dataset_and(t, "export", "{tmp}/in/ds", "--format", "stardist", "--out",
                                                        "{tmp}/in/ds/export"), "inside the input folder"),
    ("diversify-inside-the-dataset", lambda t: dataset_and(t, "diversify", "{tmp}/in/ds", "--out",
                                                           "{tmp}/in/ds/div", "-q"), "inside the input folder"),
    ("split-inside-the-dataset", lambda t: dataset_and(t, "dataset", "split", "{tmp}/in/ds", "--out",
                                                       "{tmp}/in/ds/a", "{tmp}/b"), "inside the input folder"),
    # 4. hangs: non-regular files, unbounded steps
    ("config-check-fifo", lambda t: ["config", "check", fifo(t, "c.yaml")], "is a FIFO (named pipe), not a regular"),
    ("config-check-dev-zero", lambda t: ["config", "check", "/dev/zero"], "is a character device, not a regular"),
    ("generate-config-fifo", lambda t: ["generate", fifo(t, "c.yaml"), "--out", str(t / "out")], "is a FIFO"),
    ("import-image-fifo", fifo_import, "is a FIFO (named pipe)"),
    ("synthesize-checkpoint-fifo", fifo_checkpoint, "is a FIFO (named pipe)"),
    ("masks-detections-fifo", lambda t: masks_run(t, "masks: {placement: {method: detections, detections: "
                                                     f"{fifo(t, 'd.csv')}}}}}\n"), "is a FIFO (named pipe)"),
    ("masks-shape-model-fifo", lambda t: masks_run(t, "masks: {nuclei: {shape: ssm, ssm_model: "
                                                      f"{fifo(t, 'm.npz')}}}}}\n"), "is a FIFO (named pipe)"),
    ("ddpm-steps-1e8", lambda t: ddpm_generate(t, "--steps", "100000000"),
     "'renderer.steps': input should be less than or equal to 10000"),
    ("ddpm-steps-beyond-the-training-timesteps", lambda t: ddpm_generate(t, "--steps", "5000"),
     "steps must be between 1 and the checkpoint's 1000 training timesteps"),
    # 6. tracebacks on bad input
    ("yaml-nul-byte", lambda t: config_file(t, "dataset: {n_samples: 2}\x00\n"), "a config is printable text"),
    ("yaml-5000-digit-integer", lambda t: config_file(t, f"dataset: {{seed: {'9' * 5000}}}\n"),
     "a value cannot be read"),
    ("min-distance-1e300", check("masks: {placement: {min_distance_um: 1e300}}\n"),
     "'masks.placement.min_distance_um[0]': input should be less than or equal to 1000000"),
    ("background-1e300", check("optics: {specimen: {background: 1e300}}\n"),
     "'optics.specimen.background': input should be less than or equal to 1000000000"),
    ("haze-inf", check("optics: {microscope: {haze: .inf}}\n"), "'optics.microscope.haze': input should be"),
    ("photons-inf", check("optics: {camera: {photons: .inf}}\n"), "'optics.camera.photons': input should be"),
    ("photons-1e300", check("optics: {camera: {photons: 1e300}}\n"), "less than or equal to 1000000000"),
    ("haze-scale-1e300", check("optics: {microscope: {haze_scale_um: 1e300}}\n"),
     "'optics.microscope.haze_scale_um': input should be less than or equal to 1000000"),
    ("generate-min-distance-1e300", lambda t: generate_run(t, "masks: {placement: {min_distance_um: 1e300}}\n"),
     "less than or equal to 1000000"),
    ("baseline-min-volume-inf", lambda t: dataset_and(t, "evaluate", "baseline", "--test", "{tmp}/in/ds", "--out",
                                                      "{tmp}/x", "--min-volume-um3", "inf"),
     "minimum volume (µm³) must be a finite number"),
    ("baseline-smoothing-nan", lambda t: dataset_and(t, "evaluate", "baseline", "--test", "{tmp}/in/ds", "--out",
                                                     "{tmp}/x", "--smoothing-um", "nan"),
     "smoothing (µm) must be a finite number"),
    ("manifest-nul-in-a-path", lambda t: tampered(t, lambda m: m["samples"][0]["files"]["image"].update(
        path="images/a\x00.tif"), "dataset", "verify", "{tmp}/in/ds"), "names a file outside the dataset"),
    ("manifest-a-list", lambda t: tampered(t, lambda m: [m], "dataset", "verify", "{tmp}/in/ds"),
     "is not a cellsynth manifest"),
    ("manifest-100000-deep", lambda t: raw_manifest(t, b"[" * 100_000 + b"]" * 100_000, "dataset", "verify",
                                                    "{tmp}/in/ds"), "is not valid JSON (nested too deeply)"),
    ("manifest-5000-digit-number", lambda t: raw_manifest(t, b'{"cellsynth_manifest": ' + b"9" * 5000 + b"}",
                                                          "dataset", "verify", "{tmp}/in/ds"), "is not valid JSON"),
    ("checkpoint-nan-spacing", nan_spacing_checkpoint, "has damaged metadata at 'spacing_um.0'"),
    # 7. bad input accepted
    *[(f"{key}-inf", check(f"optics: {{{section}: {{{key}: .inf}}}}\n"), f"'optics.{section}.{key}': input should be")
      for section, key in (("specimen", "background"), ("specimen", "background_outside"), ("microscope", "haze"),
                           ("camera", "read_noise"), ("camera", "offset"))],
    ("shape-with-a-boolean", check("volume: {shape: [true, 32, 32]}\n"), "'shape' takes numbers or text, not true"),
    ("n-samples-boolean", check("dataset: {n_samples: true}\n"), "'n_samples' takes numbers or text, not true"),
    ("photons-boolean", check("optics: {camera: {photons: yes}}\n"), "'photons' takes numbers or text"),
    ("shape-10000-cubed", check("volume: {shape: [10000, 10000, 10000]}\n"), "at most 17,179,869,184"),
    ("alpha-empty-item", lambda t: ["generate", "--out", str(t / "out"), "--alpha", "10,,20"],
     "expected comma-separated numbers"),
    ("out-empty", lambda t: ["generate", "--out", "", "-q"], "an empty path; give a file or folder name"),
    ("export-out-empty", lambda t: dataset_and(t, "export", "{tmp}/in/ds", "--format", "ctc", "--out", ""),
     "an empty path; give a file or folder name"),
    ("resume-nothing", lambda t: ["generate", "--out", str(t / "nothing"), "--resume", "-q"], "nothing to resume"),
    ("resume-a-folder-that-is-no-dataset", lambda t: ["generate", "--out", existing_file(t, "x").rsplit("/", 1)[0],
                                                      "--resume", "-q"], "nothing to resume"),
    ("nnunet-folder-name", lambda t: dataset_and(t, "export", "{tmp}/in/ds", "--format", "nnunet", "--out",
                                                 "{tmp}/nn"), "named DatasetNNN_Name"),
    ("masks-resume-nothing", lambda t: ["masks", "nuclei", "--out", str(t / "nothing"), "--resume", "-q"],
     "nothing to resume"),
    ("diversify-levels-1e300", lambda t: dataset_and(t, "diversify", "{tmp}/in/ds", "--out", "{tmp}/x", "--levels",
                                                     "1e300"), "w_v must be a finite number from 0 to 1000"),
    ("diversify-neighbourhood-100001", lambda t: dataset_and(t, "diversify", "{tmp}/in/ds", "--out", "{tmp}/x",
                                                             "--neighbourhood", "100001"), "from 3 to 1001"),
    ("diversify-neighbourhood-um-huge", lambda t: dataset_and(t, "diversify", "{tmp}/in/ds", "--out", "{tmp}/x",
                                                              "--neighbourhood-um", "1e6"), "at most 1001"),
    *[(f"manifest-huge-shape-{command[0]}", lambda t, c=command: tampered(
        t, lambda m: m["samples"][0].update(shape=[100_000] * 3), *c), "a shape is three whole numbers")
      for command in (("dataset", "verify", "{tmp}/in/ds"), ("report", "{tmp}/in/ds"),
                      ("export", "{tmp}/in/ds", "--format", "stardist", "--out", "{tmp}/x"))],
    ("manifest-nan-spacing", lambda t: tampered(t, lambda m: m["samples"][0].update(spacing_um=[float("nan"), 1, 1]),
                                                "export", "{tmp}/in/ds", "--format", "stardist", "--out", "{tmp}/x"),
     "spacing_um must be three finite numbers"),
    ("manifest-duplicate-names", lambda t: tampered(t, lambda m: m["samples"].append(
        {**m["samples"][0], "index": 1}), "report", "{tmp}/in/ds"), "repeats the name"),
    ("manifest-shape-differs-from-the-file", lambda t: tampered(
        t, lambda m: m["samples"][0].update(shape=[4, 16, 21]), "export", "{tmp}/in/ds", "--format", "stardist",
        "--out", "{tmp}/x"), "its labels file holds [4, 16, 20]"),
]


@pytest.mark.parametrize(("setup", "fragment"), [c[1:] for c in SAFETY], ids=[c[0] for c in SAFETY])
def test_hostile_input_one_line_exit_2_nothing_written(tmp_path, capsys, setup, fragment):
    argv = setup(tmp_path)
    capsys.readouterr()
    before = snapshot(tmp_path)
    contents = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0], lines[0]
    assert snapshot(tmp_path) == before
    assert all(p.read_bytes() == data for p, data in contents.items())  # nothing overwritten either


# ----------------------------------------------------------------------------- what is allowed still works


def test_overwrite_replaces_an_existing_output_but_never_the_input(tmp_path, capsys):
    args = existing_output(tmp_path, "--overwrite")
    assert main(args) == 0
    image = tmp_path / "in" / "mine.tif"
    assert image.read_bytes()[:2] in (b"II", b"MM")  # replaced by a TIFF
    assert main(synthesize(tmp_path, str(tmp_path / "in" / "new.tif"))) == 0  # a new name needs no flag


def test_bounds_accept_every_physical_value(tmp_path):
    from cellsynth.config import validate_config

    config = validate_config({"optics": {"camera": {"photons": 1e9, "offset": 0, "read_noise": 1e3},
                                         "specimen": {"background": 1e9}, "microscope": {"haze_scale_um": 1e6}},
                              "masks": {"placement": {"min_distance_um": 1e6}},
                              "volume": {"shape": [1, 131072, 131072]}, "dataset": {"seed": 2**63 - 1}})
    assert config.optics.camera.photons == 1e9 and config.volume.shape == (1, 131072, 131072)
    assert validate_config({"dataset": {"output": {"previews": False}}}).dataset.output.previews is False


# ----------------------------------------------------------------------------- 3. one writer at a time

HOLD = textwrap.dedent("""
    import sys, time
    from cellsynth.locks import folder_lock
    with folder_lock(sys.argv[1], "dataset"):
        print("held", flush=True)
        time.sleep(60)
""")


def hold_lock(target):
    """A separate process holding ``target``'s write lock (as a running `generate` does)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("command", ["generate", "resume", "import", "export"])
def test_a_second_writer_is_refused_in_one_line_while_the_first_holds_the_folder(tmp_path, capsys, command):
    dataset_and(tmp_path)  # a finished dataset in tmp/in/ds
    target = tmp_path / ("in/ds" if command == "resume" else "busy")
    argv = {"generate": ["masks", "nuclei", "--out", str(target), "-q"],
            "resume": ["dataset", "import", str(target), "--images", str(tmp_path / "in" / "image.npy"),
                       "--labels", str(tmp_path / "in" / "labels.npy"), "--spacing", *map(str, SPACING), "--resume"],
            "import": ["dataset", "import", str(target), "--images", str(tmp_path / "in" / "image.npy"),
                       "--labels", str(tmp_path / "in" / "labels.npy"), "--spacing", *map(str, SPACING)],
            "export": ["export", str(tmp_path / "in" / "ds"), "--format", "stardist", "--out", str(target)]}[command]
    holder = hold_lock(target)
    try:
        before = snapshot(tmp_path)
        capsys.readouterr()
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and f"is being written by process {holder.pid} on " in lines[0], lines
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_writer_is_stale_and_taken_over(tmp_path, capsys):
    from cellsynth.dataset import Dataset
    from cellsynth.locks import lock_path

    dataset_and(tmp_path)
    target = tmp_path / "new"
    holder = hold_lock(target)
    os.kill(holder.pid, signal.SIGKILL)  # SIGKILL: no cleanup, the lock file stays
    holder.wait()
    assert lock_path(target).exists()
    assert main(["dataset", "import", str(target), "--images", str(tmp_path / "in" / "image.npy"), "--labels",
                 str(tmp_path / "in" / "labels.npy"), "--spacing", *map(str, SPACING), "-q"]) == 0
    assert len(Dataset.open(target).pending()) == 0 and not lock_path(target).exists()


def test_two_concurrent_generate_runs_leave_one_valid_dataset(tmp_path):
    """Two real `cellsynth masks` processes into one folder: each ends 0 or 2 (one line), the folder verifies."""
    config = tmp_path / "c.yaml"
    config.write_text("volume: {shape: [8, 48, 48], spacing_um: [1, 0.5, 0.5]}\n"
                      "masks: {nuclei: {radius_um: 2.5}, placement: {min_distance_um: 6}}\n")
    command = [sys.executable, "-m", "cellsynth.cli", "masks", "nuclei", str(config), "--out", str(tmp_path / "ds"),
               "--n", "6", "-q"]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results)[0] == 0, results
    for code, err in results:
        assert code in (0, 2) and (code == 0 or len(err.strip().splitlines()) == 1), results
    assert main(["dataset", "verify", str(tmp_path / "ds")]) == 0


# ----------------------------------------------------------------------------- 5. exhaustion is one line

MEMORY_LIMITED = textwrap.dedent("""
    import resource, sys
    from cellsynth.cli import main
    import cellsynth.synthesis.pipeline, cellsynth.masks.simulate, cellsynth.synthesis.optics, scipy.ndimage  # loaded
    cellsynth.synthesis.pipeline.check_memory = lambda *a, **k: None  # let the allocation itself fail
    size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + 350 * 2**20, resource.RLIM_INFINITY))
    sys.exit(main(sys.argv[1:]))
""")


def test_out_of_memory_is_one_line_with_what_to_change_and_finished_samples_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("volume: {shape: [64, 512, 512]}\ndataset: {n_samples: 2}\n")
    result = subprocess.run([sys.executable, "-c", MEMORY_LIMITED, "generate", str(config), "--out",
                             str(tmp_path / "ds"), "-q"], capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "out of memory" in lines[0] and "smaller volume" in lines[0] and "--resume" in lines[0]


def test_thread_exhaustion_is_one_line(tmp_path, capsys, monkeypatch):
    import cellsynth.dataset.exports as exports

    def no_threads(*args, **kwargs):
        raise RuntimeError("can't start new thread")

    # wrapped: the command's options are read from the library function's docstring and signature
    monkeypatch.setattr(exports, "export_dataset", functools.wraps(exports.export_dataset)(no_threads))
    assert main(["export", str(tmp_path), "--format", "ome-zarr", "--out", str(tmp_path / "x")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cannot start another thread" in lines[0] and "fewer --workers" in lines[0]


def test_other_runtime_errors_are_not_mistaken_for_exhaustion(capsys, monkeypatch):
    import cellsynth.config as config

    def bug():
        raise RuntimeError("a bug")

    monkeypatch.setattr(config, "preset_names", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["config", "list"])
