"""Checkpoints: torch tensors and a JSON description in one safetensors file (never a pickle)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cellsynth.checks import MAX_LENGTH_UM, check_regular_file
from cellsynth.errors import InputError
from cellsynth.io import atomic_path

#: safetensors metadata key whose JSON value marks (and describes) a cellsynth checkpoint.
CHECKPOINT_KEY = "cellsynth_checkpoint"


_Um = Annotated[float, Field(gt=0, le=MAX_LENGTH_UM, allow_inf_nan=False)]
_Voxels = Annotated[int, Field(ge=1, le=2**20)]


class Normalisation(BaseModel):
    """The intensity mapping the training images went through: ``percentiles`` → ``low`` and ``high``."""

    model_config = ConfigDict(frozen=True)
    percentiles: tuple[Annotated[float, Field(ge=0, le=100)], Annotated[float, Field(ge=0, le=100)]]
    low: Annotated[float, Field(allow_inf_nan=False)]
    high: Annotated[float, Field(allow_inf_nan=False)]


class CheckpointInfo(BaseModel):
    """What training records beside the weights and a renderer reads back, validated when read.

    Training writes it (:func:`cellsynth.training.train_gan`, ``train_ddpm``) and the learned renderers
    read it with :meth:`read`; ``conditioning`` is the cGAN's, ``schedule`` and ``sketch`` the
    DDPM's. Other keys (the config, the training state) are kept as they are.

    Examples
    --------
    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "checkpoint.safetensors"
    >>> write_checkpoint(path, {"generator.w": torch.zeros(2)}, {
    ...     "model": "gan", "architecture": {"features": 8}, "spacing_um": [1.0, 0.5, 0.5], "patch": [16, 64, 64],
    ...     "normalisation": {"percentiles": [1, 99.8], "low": 90.0, "high": 3000.0}})
    >>> info = CheckpointInfo.read(path, "gan")
    >>> info.patch, info.spacing_um, info.normalisation.high
    ((16, 64, 64), (1.0, 0.5, 0.5), 3000.0)
    >>> CheckpointInfo.read(path, "ddpm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: ...
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    model: Literal["gan", "ddpm"]
    step: int | None = Field(None, ge=0)
    architecture: dict[str, Any]
    spacing_um: tuple[_Um, _Um, _Um]
    patch: tuple[_Voxels, _Voxels, _Voxels]
    normalisation: Normalisation | None = None
    conditioning: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    sketch: dict[str, Any] | None = None

    @classmethod
    def read(cls, path: str | os.PathLike, model: str, required: tuple[str, ...] = ()) -> CheckpointInfo:
        """The validated info of the ``model`` checkpoint at ``path``.

        Raises
        ------
        InputError
            If the file is no such checkpoint, lacks one of ``required`` (or the fields every
            learned renderer needs), or holds values of the wrong type.
        """
        info = read_checkpoint_info(path, model)
        missing = [key for key in ("architecture", "spacing_um", "patch", *required) if key not in info]
        if missing:
            raise InputError(f"'{path}' lacks {', '.join(missing)}: not a complete {model} checkpoint")
        try:
            return cls.model_validate(info)
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise InputError(f"'{path}' has damaged metadata at '{where}': {problem['msg']}") from None


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
    path : path-like
        A ``.safetensors`` checkpoint.
    model : str, optional
        The model kind the caller needs (``gan``, ``ddpm``); another kind is refused.

    Returns
    -------
    dict

    Raises
    ------
    InputError
        If the file is missing, not safetensors (a pickle such as ``.pt`` / ``.ckpt`` is never
        opened), not a cellsynth checkpoint, or of another model kind.

    Examples
    --------
    >>> import tempfile, torch
    >>> path = Path(tempfile.mkdtemp()) / "checkpoint.safetensors"
    >>> write_checkpoint(path, {"generator.w": torch.zeros(2)}, {"model": "gan", "patch": [64, 128, 128]})
    >>> read_checkpoint_info(path, "gan")["patch"]
    [64, 128, 128]
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"checkpoint '{path}' does not exist")
    check_regular_file(path, "checkpoint")
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
