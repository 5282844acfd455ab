"""What a training run needs around the networks: the accelerator, per-process seeds and ending,
the training state packed into a checkpoint, and the run's log (the only files training writes
besides its checkpoints and previews).

A training state is a nested structure of dicts, lists, scalars and tensors (model and optimiser
state dicts, EMA shadow weights, RNG states, step counters). :func:`pack_state` splits it into
flat named tensors (for safetensors) and a JSON skeleton; :func:`unpack_state` rebuilds it
exactly, so ``--resume`` continues bit for bit where the run stopped.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from cellsynth.models.common import MIXED_PRECISIONS, resolve_device


def make_accelerator(mixed_precision: str = "auto", device: str = "auto"):
    """An :class:`accelerate.Accelerator`: one GPU, several under ``accelerate launch``, or the CPU.

    Parameters
    ----------
    mixed_precision : str
        ``auto`` = bf16 autocast on a GPU that has it (fp32 on the CPU), or one of ``no``, ``bf16``, ``fp16``.
    device : str
        ``auto`` (a GPU when there is one), ``cpu`` or ``cuda``.
    """
    from accelerate import Accelerator

    if mixed_precision not in MIXED_PRECISIONS:
        raise ValueError(f"unknown mixed precision '{mixed_precision}'; choose one of {', '.join(MIXED_PRECISIONS)}")
    cpu = resolve_device(device) == "cpu"
    if mixed_precision == "auto":
        mixed_precision = "bf16" if not cpu and torch.cuda.is_bf16_supported() else "no"
    return Accelerator(cpu=cpu, mixed_precision="no" if cpu else mixed_precision)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s timesteps, noise and augmentations under ``accelerate launch``.

    Rank 0 keeps ``seed`` (a single process is unchanged); every other rank gets an independent
    stream spawned from it, so GPUs do not draw identical noise.

    Parameters
    ----------
    seed : int
        The run's seed.
    rank : int
        The process index.

    Returns
    -------
    int

    Examples
    --------
    >>> rank_seed(7, 0), rank_seed(7, 1) == rank_seed(7, 1), rank_seed(7, 1) == rank_seed(7, 2)
    (7, True, False)
    """
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1, np.uint64)[0] >> 1)


def end_processes() -> None:
    """Under ``accelerate launch``: wait for every process, then close the process group.

    A process whose peers exit with the group still open can be aborted by gloo (SIGABRT) at
    shutdown; a script that trains under ``accelerate launch`` ends with this. Nothing happens in
    a single process.

    Examples
    --------
    >>> checkpoint = train_gan(config, 'runs/gan')  # doctest: +SKIP
    >>> end_processes()
    """
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes > 1:
        state.wait_for_everyone()
        state.destroy_process_group()


def pack_state(state, prefix: str = "state") -> tuple[dict[str, torch.Tensor], object]:
    """Split a nested training state into ``(named tensors, JSON skeleton)``.

    Dicts keep their key types (optimiser states are keyed by int), tuples become lists.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(value, name: str):
        if isinstance(value, torch.Tensor):
            tensors[name] = value
            return {"__tensor__": name}
        if isinstance(value, Mapping):
            return {"__dict__": [[key, walk(item, f"{name}.{key}")] for key, item in value.items()]}
        if isinstance(value, list | tuple):
            return [walk(item, f"{name}.{index}") for index, item in enumerate(value)]
        if isinstance(value, np.integer | np.floating):
            return value.item()
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"cannot store a {type(value).__name__} at {name} in a checkpoint")

    return tensors, walk(state, prefix)


def unpack_state(skeleton, tensors: Mapping[str, torch.Tensor]):
    """Rebuild what :func:`pack_state` split."""
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        return {key: unpack_state(item, tensors) for key, item in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unpack_state(item, tensors) for item in skeleton]
    return skeleton


class TrainingLog:
    """Losses per step: a CSV file (always), TensorBoard (optional), the progress bar's postfix.

    Parameters
    ----------
    folder : path
        Run folder; the log is ``folder/log.csv``.
    resume_step : int, optional
        When resuming: rows after this step (written after the checkpoint) are dropped, so the
        log reads as one uninterrupted run.
    tensorboard : bool
        Also write TensorBoard events to ``folder/tensorboard`` (needs the ``tensorboard`` package).
    """

    def __init__(self, folder: str | os.PathLike, resume_step: int | None = None, tensorboard: bool = False):
        self.path = Path(folder) / "log.csv"
        self.columns: list[str] | None = None
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
            self.columns = list(rows[0]) if rows else None
            self._rewrite(rows)
        elif self.path.exists():
            self.path.unlink()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(folder) / "tensorboard"))

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_suffix(".csv.partial")
        with tmp.open("w", newline="") as handle:
            if self.columns:
                writer = csv.DictWriter(handle, self.columns)
                writer.writeheader()
                writer.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """Append one row (``step`` first, then ``values`` in a fixed column order)."""
        row = {"step": step, **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()}}
        new = self.columns is None
        if new:
            self.columns = list(row)
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, float) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
