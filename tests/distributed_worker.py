"""Run by test_distributed.py under ``accelerate launch`` (two CPU processes, gloo).

Trains the tiny cGAN in ``FOLDER/run`` for a time budget and writes, per process, the ADA p after
and r after every step and the steps it took to ``FOLDER/rank_R.json``. Rank 1 is made slower, so the two
processes' clocks disagree about when the budget ends.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from accelerate import PartialState

import cellsynth.models.gan
from cellsynth.config import TrainConfig
from cellsynth.training.loop import train_gan
from cellsynth.training.runs import end_processes


def main(folder: Path, minutes: float, steps: int, resume: bool) -> None:
    rank = PartialState(cpu=True).process_index  # before any other state: the CPU (gloo) group
    seen: list[tuple[float, float]] = []
    original = cellsynth.models.gan.GanTrainer.step

    def recorded(self, batch):
        if rank == 1:
            time.sleep(0.05)
        losses = original(self, batch)
        seen.append((self.ada.p, self.ada.r))
        return losses

    cellsynth.models.gan.GanTrainer.step = recorded
    config = TrainConfig.model_validate({
        "steps": steps, "max_minutes": minutes, "log_every": 1, "preview_every": 0, "checkpoint_every": 10**6,
        "device": "cpu", "batch_size": 2, "seed": 3,
        "data": {"images": [str(folder / "image*.tif")], "patch": [8, 32, 32], "simulated_volumes": 1},
        "gan": {"widths": [4, 8], "discriminator_widths": [4, 8], "discriminator_strides": [2, 1],
                "ada": {"rule": "kimg", "interval_batches": 1, "kimg": 0.01}}})
    train_gan(config, folder / "run", resume=resume, progress=False)
    end_processes()
    (folder / f"rank_{rank}{'_resumed' if resume else ''}.json").write_text(json.dumps({
        "ada_p": [p for p, _ in seen], "ada_r": [r for _, r in seen], "steps": len(seen)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "resume")
