"""Checkpoints: torch tensors and a JSON description in one safetensors file (never a pickle)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from cellsynth.errors import InputError
from cellsynth.io import atomic_path

#: safetensors metadata key whose JSON value marks (and describes) a cellsynth checkpoint.
CHECKPOINT_KEY = "cellsynth_checkpoint"


def write_checkpoint(path: str | os.PathLike, tensors: Mapping, info: Mapping) -> None:
    """Write torch ``tensors`` and the JSON-able ``info`` as one safetensors file, atomically.

    ``info`` (model kind, architecture, normalisation, training state …) goes into the safetensors
    header as JSON under :data:`CHECKPOINT_KEY`; no pickle is involved anywhere.
    """
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CHECKPOINT_KEY: json.dumps(info)})


def read_checkpoint_info(path: str | os.PathLike, model: str | None = None) -> dict:
    """The JSON ``info`` of a cellsynth checkpoint (weights not loaded).

    Parameters
    ----------
    model : str, optional
        The model kind the caller needs (``gan``, ``ddpm``); another kind is refused.

    Raises
    ------
    InputError
        If the file is missing, not safetensors (a pickle such as ``.pt`` / ``.ckpt`` is never
        opened), not a cellsynth checkpoint, or of another model kind.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint '{path}' does not exist")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"'{path}' is not a cellsynth checkpoint (not a safetensors file; cellsynth never "
                         f"unpickles: {' '.join(str(err).split())[:100]})") from None
    if CHECKPOINT_KEY not in metadata:
        raise InputError(f"'{path}' is a safetensors file but not a cellsynth checkpoint (no cellsynth metadata)")
    try:
        info = json.loads(metadata[CHECKPOINT_KEY])
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict) or "model" not in info:
        raise InputError(f"'{path}' has damaged cellsynth metadata; re-train or re-export the checkpoint")
    if model is not None and info["model"] != model:
        raise InputError(f"'{path}' is a {info['model']} checkpoint; a {model} checkpoint is needed here")
    return info


def read_checkpoint(path: str | os.PathLike, model: str | None = None) -> tuple[dict, dict]:
    """``(tensors, info)`` of a cellsynth checkpoint: torch tensors on the CPU and the JSON info."""
    info = read_checkpoint_info(path, model)
    from safetensors.torch import load_file

    return load_file(str(path)), info
