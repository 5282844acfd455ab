"""Two CPU processes under ``accelerate launch`` (gloo): what multi-GPU training needs, without a GPU."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_renderer_images

from cellsynth.checkpoints import read_checkpoint
from cellsynth.training.runs import unpack_state

WORKER = Path(__file__).with_name("distributed_worker.py")


def launch(folder: Path, minutes: float, steps: int, resume: bool = False, processes: int = 2):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    command = [accelerate, "launch", *(["--multi_gpu"] if processes > 1 else []), "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(port), str(WORKER), str(folder), str(minutes), str(steps), "resume" if resume else "fresh"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})


def test_two_processes_draw_their_own_patches_share_ada_p_and_stop_together(tmp_path):
    write_renderer_images(tmp_path, (12, 48, 48), seed=4, n=2)
    done = launch(tmp_path, minutes=0.05, steps=10**6)  # a 3 s budget: rank 0's clock ends it for both
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] >= 2
    assert ranks[0]["ada_r"] == ranks[1]["ada_r"]  # r from both processes' logits (gathered), so one p
    assert ranks[0]["ada_p"] == ranks[1]["ada_p"]
    assert len(set(ranks[0]["ada_r"])) > 2  # r moved with the logits
    tensors, info = read_checkpoint(tmp_path / "run" / "checkpoint.safetensors", "gan")
    assert info["step"] == ranks[0]["steps"]
    saved = unpack_state(info["state"], tensors)["ranks"]
    assert len(saved) == 2
    assert saved[0]["sampler"]["rng"] != saved[1]["sampler"]["rng"]  # different patches
    assert not torch.equal(saved[0]["random"], saved[1]["random"])  # different augmentation draws

    step = info["step"]
    again = launch(tmp_path, minutes=5, steps=step + 2, resume=True)  # each process resumes its own state
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "rank_1_resumed.json").read_text())["steps"] == 2
    alone = launch(tmp_path, minutes=5, steps=step + 4, resume=True, processes=1)
    assert alone.returncode != 0 and "was trained by 2 process(es); resume it with as many" in alone.stderr


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gloo launch on POSIX only")
