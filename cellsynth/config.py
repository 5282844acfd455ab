"""Validated configs: YAML in (safe loader only), typed objects out, one clear message per mistake.

Every length is in µm. Shipped presets live in ``cellsynth/presets/*.yaml``; a user file is
validated the same way, and any key left out takes its default.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cellsynth.errors import ConfigError

PositiveUm = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class OutputConfig(StrictModel):
    """Which files each dataset sample gets besides its image and labels."""

    previews: bool = Field(True, description="write previews/NAME.png (orthogonal mid-slices with outlines)")
    semantic: bool = Field(True, description="write semantic/NAME.tif (0 background, 1 interior, 2 border)")
    tiff_compression: Literal["none", "zlib"] = Field(
        "none", description="zlib shrinks files; Fiji then opens them through Bio-Formats only"
    )


class VolumeConfig(StrictModel):
    """Geometry of each generated sample."""

    shape: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = Field(
        (32, 128, 128), description="voxels (Z, Y, X); Z = 1 makes 2D samples"
    )
    spacing_um: tuple[PositiveUm, PositiveUm, PositiveUm] = Field(
        (0.29, 0.26, 0.26), description="voxel size (z, y, x) in µm; default = scikit-image cells3d"
    )


class DatasetConfig(StrictModel):
    """How many samples, from which seed, named how, with which files."""

    n_samples: Annotated[int, Field(ge=1)] = 4
    seed: Annotated[int, Field(ge=0)] = 0
    name_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)] = "sample"
    output: OutputConfig = OutputConfig()


class Config(StrictModel):
    """A whole cellsynth run."""

    dataset: DatasetConfig = DatasetConfig()
    volume: VolumeConfig = VolumeConfig()


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _accepted_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(error: dict, model: type[BaseModel]) -> str:
    where = _location(error["loc"])
    if error["type"] == "extra_forbidden":
        accepted = ", ".join(_accepted_keys(model, error["loc"]))
        return f"unknown key '{where}' (accepted here: {accepted})"
    if error["type"] == "missing" and isinstance(error["loc"][-1], int):
        return f"'{_location(error['loc'][:-1])}': too few values (got {error['input']!r})"
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"'{where}': {message} (got {error['input']!r})"


def validate_config(data: Any, source: str = "config", model: type[StrictModel] = Config) -> StrictModel:
    """Validate a mapping (parsed YAML) into ``model``.

    Raises
    ------
    ConfigError
        One line naming the source, each offending key and what is accepted.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(_describe(e, model) for e in err.errors())) from None


def load_config(path: str | os.PathLike, model: type[StrictModel] = Config) -> StrictModel:
    """Read a YAML file with the safe loader and validate it.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or does not validate.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config '{path}': {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(err, 'problem', err)})") from None
    return validate_config(data, str(path), model)


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    folder = resources.files("cellsynth.presets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of the shipped preset ``name``."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    return resources.files("cellsynth.presets").joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> Config:
    """The shipped preset ``name``, validated."""
    return validate_config(yaml.safe_load(preset_text(name)), f"preset '{name}'")  # type: ignore[return-value]


def resolve_config(name_or_path: str | os.PathLike) -> Config:
    """A preset name or the path of a YAML file, validated."""
    if isinstance(name_or_path, str) and name_or_path in preset_names():
        return load_preset(name_or_path)
    if not Path(name_or_path).exists():
        raise ConfigError(f"'{name_or_path}' is neither a preset ({', '.join(preset_names())}) nor a file")
    return load_config(name_or_path)  # type: ignore[return-value]
