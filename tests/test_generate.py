"""`cellsynth generate`: determinism serial vs parallel, kill + resume, generator loading."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cellsynth.cli import main
from cellsynth.config import Config, load_config, validate_config, with_overrides
from cellsynth.dataset import Dataset
from cellsynth.errors import InputError
from cellsynth.synthesis.pipeline import generate_dataset, load_renderer

TINY = ("volume: {shape: [8, 40, 40], spacing_um: [0.5, 0.3, 0.3]}\n"
        "masks: {nuclei: {radius_um: 1.8}, placement: {min_distance_um: 4.0}}\n"
        "patching: {patch: [16, 32, 32], overlap: 4, crop: 2}\n")


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def checksums(root):
    return {s["name"]: {k: f["sha256"] for k, f in s["files"].items()} for s in Dataset.open(root).samples}


def test_generate_writes_images_labels_and_previews(tiny_config, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["generate", str(tiny_config), "--out", str(out), "--n", "2", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 samples done" in printed and f"previews: {out / 'previews'}" in printed
    dataset = Dataset.open(out)
    sample = dataset.read_sample(0)
    assert sample.image.dtype == np.float32 and sample.image.shape == sample.labels.shape == (8, 40, 40)
    assert sample.image[sample.labels > 0].mean() > sample.image[sample.labels == 0].mean()
    assert set(dataset.samples[0]["files"]) == {"image", "labels", "semantic", "centroids", "foreground", "preview"}
    assert dataset.manifest["config"]["renderer"]["name"] == "optics"


def test_serial_two_workers_and_a_cluster_address_give_identical_files(tiny_config, tmp_path):
    from distributed import LocalCluster

    assert main(["generate", str(tiny_config), "--out", str(tmp_path / "serial"), "--n", "3", "-q"]) == 0
    assert main(["generate", str(tiny_config), "--out", str(tmp_path / "workers"), "--n", "3", "-q",
                 "--workers", "2"]) == 0
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert main(["generate", str(tiny_config), "--out", str(tmp_path / "cluster"), "--n", "3", "-q",
                     "--scheduler", cluster.scheduler_address]) == 0
    serial = checksums(tmp_path / "serial")
    assert serial == checksums(tmp_path / "workers") == checksums(tmp_path / "cluster")
    assert len({files["image"] for files in serial.values()}) == 3  # and the samples differ


KILLER = textwrap.dedent(
    """
    import os, signal
    import cellsynth.io
    from cellsynth.cli import main

    real_replace = os.replace
    def replace_then_die(src, dst):
        if str(dst).endswith("images/sample_0002.tif"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)
    cellsynth.io.atomic.os.replace = replace_then_die
    main(["generate", {config!r}, "--out", {out!r}, "--n", "4", "-q"])
    """
)


def test_killed_generate_resumes_to_identical_files(tiny_config, tmp_path):
    killed = tmp_path / "killed"
    result = subprocess.run([sys.executable, "-c", KILLER.format(config=str(tiny_config), out=str(killed))],
                            capture_output=True, timeout=300)
    assert result.returncode == -9, result.stderr.decode()
    assert Dataset.open(killed).pending() == [2, 3]
    assert main(["generate", str(tiny_config), "--out", str(killed), "--n", "4", "-q", "--resume"]) == 0
    assert not [p for p in killed.rglob("*") if p.name.endswith(".partial")]
    assert main(["generate", str(tiny_config), "--out", str(tmp_path / "whole"), "--n", "4", "-q"]) == 0
    assert checksums(killed) == checksums(tmp_path / "whole")
    for name in ("images/sample_0002.tif", "labels/sample_0003.tif"):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_resume_refuses_another_config(tiny_config, tmp_path):
    out = tmp_path / "ds"
    assert main(["generate", str(tiny_config), "--out", str(out), "--n", "1", "-q"]) == 0
    assert main(["generate", str(tiny_config), "--out", str(out), "--n", "1", "-q", "--resume", "--seed", "3"]) == 2


def test_the_older_generator_section_is_read_as_the_renderer_with_a_warning(tmp_path):
    with pytest.warns(DeprecationWarning, match="'generator' is now called 'renderer'"):
        config = validate_config({"generator": {"name": "ddpm", "steps": 5}})
    assert config.renderer.name == "ddpm" and config.renderer.steps == 5
    with pytest.warns(DeprecationWarning):  # a dotted override of the old name, as notebooks wrote it
        assert with_overrides(Config(), {"generator.name": "gan"}).renderer.name == "gan"
    (tmp_path / "old.yaml").write_text("generator:\n  name: optics\n")
    with pytest.warns(DeprecationWarning):
        assert load_config(tmp_path / "old.yaml").renderer.name == "optics"


def test_learned_generators_need_a_real_checkpoint(tmp_path):
    from safetensors.numpy import save_file

    config = validate_config({"renderer": {"name": "gan"}})
    with pytest.raises(InputError, match="needs --checkpoint"):
        load_renderer(config)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(InputError, match="not a cellsynth checkpoint"):
        load_renderer(validate_config({"renderer": {"name": "gan", "checkpoint": str(foreign)}}))
    with pytest.raises(InputError, match="needs no checkpoint"):
        load_renderer(validate_config({"renderer": {"checkpoint": str(foreign)}}))


def test_generate_dataset_from_python_matches_the_cli(tiny_config, tmp_path):
    import yaml

    config = validate_config({**yaml.safe_load(TINY), "dataset": {"n_samples": 1}})
    dataset = generate_dataset(config, tmp_path / "py", renderer=load_renderer(config), progress=False)
    assert main(["generate", str(tiny_config), "--out", str(tmp_path / "cli"), "--n", "1", "-q"]) == 0
    assert checksums(dataset.root) == checksums(tmp_path / "cli")
    recorded = json.loads((tmp_path / "py" / "manifest.json").read_text())["config"]
    assert recorded["patching"]["patch"] == [16, 32, 32]
