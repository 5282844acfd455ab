"""YAML in (the safe loader, stricter), validated configs out, one line per mistake; the shipped presets
and dotted overrides."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from cellsynth.checks import check_regular_file
from cellsynth.config.base import StrictModel, _shown
from cellsynth.config.schema import Config
from cellsynth.config.training import TrainConfig
from cellsynth.errors import ConfigError, InputError


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


def config_field(key: str, model: type[BaseModel] = Config) -> FieldInfo:
    """The schema's field for a dotted config key: its ``description``, ``default`` and ``annotation``.

    Parameters
    ----------
    key : str
        Dotted path, e.g. ``renderer.sampler``.
    model : pydantic model class
        The schema (default :class:`~cellsynth.config.Config`).

    Returns
    -------
    pydantic.fields.FieldInfo

    Examples
    --------
    >>> config_field("renderer.steps").default
    25
    """
    *sections, name = key.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    return model.model_fields[name]


def _describe(error: dict, model: type[BaseModel]) -> str:
    where = _location(error["loc"])[:120]
    if error["type"] == "extra_forbidden":
        accepted = ", ".join(_accepted_keys(model, error["loc"]))
        return f"unknown key '{where}' (accepted here: {accepted})"
    if error["type"] == "missing" and isinstance(error["loc"][-1], int):
        return f"'{_location(error['loc'][:-1])}': too few values (got {_shown(error['input'])})"
    if error["type"] == "value_error":  # a cross-key rule of a section
        return f"'{where}': {error['ctx']['error']}"
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"'{where}': {message} (got {_shown(error['input'])})"


def validate_config(data: Any, source: str = "config", model: type[StrictModel] = Config) -> StrictModel:
    """Validate a mapping (parsed YAML) into ``model``.

    Parameters
    ----------
    data : object
        Parsed YAML (a mapping of sections).
    source : str
        What the data came from, named in every error line.
    model : type of StrictModel
        The schema: :class:`Config` (generation) or :class:`TrainConfig`.

    Returns
    -------
    StrictModel
        The validated, frozen config.

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

    Parameters
    ----------
    path : path-like
        A YAML file (at most :data:`MAX_CONFIG_BYTES`).
    model : type of StrictModel
        The schema (default :class:`Config`).

    Returns
    -------
    StrictModel
        The validated config.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or does not validate.
    """
    return validate_config(parse_yaml(_read_config(path), str(path)), str(path), model)


def _read_config(path: str | os.PathLike) -> bytes:
    """The bytes of a config file: a regular file, read to at most one byte past the size limit."""
    path = Path(path)
    try:
        check_regular_file(path, "config")
        with path.open("rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)  # a file that grows while read is still capped
    except (OSError, InputError) as err:
        raise ConfigError(str(err) if isinstance(err, InputError) else
                          f"cannot read config '{path}': {err.strerror or err}") from None


#: Configs larger than this are refused before parsing (a config is a page of keys, not data).
MAX_CONFIG_BYTES = 1 << 20
#: Deeper nesting of mappings and lists is refused (a config is a few levels deep).
MAX_CONFIG_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, stricter: no aliases (no alias bombs), no duplicate keys, bounded nesting."""

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.name, self._depth = source, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"{self.name}: YAML aliases (*{event.anchor}) are not accepted in a cellsynth config "
                              f"(line {event.start_mark.line + 1}); write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.name}: nested deeper than {MAX_CONFIG_DEPTH} levels at line {mark.line + 1}; "
                                  "a cellsynth config is a few levels of keys")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise ConfigError(f"{self.name}: key {_shown(key)} appears twice in one mapping (line "
                                  f"{key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads ``1e300`` or ``2e-3`` (an exponent without a dot) as text; a config means a number.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.VERBOSE),
    list("-+0123456789."),
)


def parse_yaml(raw: bytes, source: str = "config") -> Any:
    """YAML bytes to Python objects, for configs: UTF-8, at most 1 MiB, no aliases, no duplicate keys,
    at most 32 levels deep; any problem is one :class:`ConfigError` line.

    Parameters
    ----------
    raw : bytes
        The YAML text.
    source : str
        Named in every error line.

    Returns
    -------
    object
        The parsed document (mappings, lists, numbers, text).

    Examples
    --------
    >>> parse_yaml(b"dataset: {n_samples: 2}")
    {'dataset': {'n_samples': 2}}
    """
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(raw)} bytes; a config is at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start})") from None
    try:
        loader = _StrictLoader(text, source)
    except yaml.YAMLError as err:  # the reader refuses NUL and other unprintable characters up front
        raise ConfigError(f"{source}: not valid YAML ({_shown(getattr(err, 'reason', err), 120)}); a config is "
                          "printable text") from None
    try:
        return loader.get_single_data()
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise ConfigError(f"{source}: a value cannot be read ({_shown(str(err), 120)})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where} ({_shown(getattr(err, 'problem', err), 120)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read; a cellsynth config is a few levels of keys") from None
    finally:
        loader.dispose()


def preset_names() -> list[str]:
    """Names of the shipped presets.

    Returns
    -------
    list of str
        Sorted names of the shipped presets.

    Examples
    --------
    >>> "nuclei" in preset_names()
    True
    """
    folder = resources.files("cellsynth.presets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of the shipped preset ``name``.

    Parameters
    ----------
    name : str
        A shipped preset (:func:`preset_names`).

    Returns
    -------
    str
        Its YAML text, comments included.

    Examples
    --------
    >>> "volume:" in preset_text("nuclei")
    True
    """
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    return resources.files("cellsynth.presets").joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> Config:
    """The shipped preset ``name``, validated.

    Parameters
    ----------
    name : str
        A shipped preset (:func:`preset_names`).

    Returns
    -------
    Config

    Examples
    --------
    >>> load_preset("nuclei").volume.shape
    (60, 256, 256)
    """
    return validate_config(parse_yaml(preset_text(name).encode(), f"preset '{name}'"),  # type: ignore[return-value]
                           f"preset '{name}'")


def training_preset_names() -> list[str]:
    """Names of the shipped training presets (``cellsynth train ddpm NAME --images ...``).

    Returns
    -------
    list of str
        Sorted names of the shipped training presets.

    Examples
    --------
    >>> training_preset_names()
    ['ddpm-cpu', 'gan-cpu']
    """
    folder = resources.files("cellsynth.presets").joinpath("training")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_training_config(name_or_path: str | os.PathLike, images: list[str] | None = None) -> TrainConfig:
    """A shipped training preset or a training YAML file, validated, with ``images`` as ``data.images``
    when given (a preset names no images).

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped training preset or a training YAML file.
    images : list of str, optional
        Training image files or globs, set as ``data.images``.

    Returns
    -------
    TrainConfig

    Examples
    --------
    >>> config = resolve_training_config("ddpm-cpu", ["my_nuclei.tif"])
    >>> config.max_minutes, config.data.patch, config.ddpm.widths, config.ddpm.attention
    (20.0, (16, 64, 64), [16, 32, 64], False)
    """
    if isinstance(name_or_path, str) and name_or_path in training_preset_names():
        source = f"training preset '{name_or_path}'"
        data = parse_yaml(resources.files("cellsynth.presets").joinpath(f"training/{name_or_path}.yaml").read_bytes(),
                          source)
    elif not Path(name_or_path).exists():
        raise ConfigError(f"'{name_or_path}' is neither a training preset ({', '.join(training_preset_names())}) "
                          "nor a file")
    else:
        source = str(name_or_path)
        data = parse_yaml(_read_config(name_or_path), source)
    if images:
        if not isinstance(data, dict):
            data = {}
        data = {**data, "data": {**(data.get("data") or {}), "images": [str(i) for i in images]}}
    return validate_config(data, source, TrainConfig)  # type: ignore[return-value]


def resolve_config(name_or_path: str | os.PathLike) -> Config:
    """A preset name or the path of a YAML file, validated.

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped preset or a YAML file.

    Returns
    -------
    Config
    """
    if isinstance(name_or_path, str) and name_or_path in preset_names():
        return load_preset(name_or_path)
    if not Path(name_or_path).exists():
        raise ConfigError(f"'{name_or_path}' is neither a preset ({', '.join(preset_names())}) nor a file")
    return load_config(name_or_path)  # type: ignore[return-value]


def with_overrides(config: StrictModel, overrides: dict[str, Any], source: str = "command line") -> StrictModel:
    """``config`` with dotted keys replaced (``{"dataset.n_samples": 3}``), validated again.

    Values that are None are left out, so unset command-line flags change nothing.

    Parameters
    ----------
    config : StrictModel
        The config to start from.
    overrides : dict
        Dotted key → value; None values are skipped.
    source : str
        Named in every error line.

    Returns
    -------
    StrictModel
        A new config of the same type, validated again.

    Examples
    --------
    >>> config = with_overrides(load_preset("default"), {"dataset.n_samples": 2, "volume.shape": [16, 64, 64]})
    >>> config.dataset.n_samples, config.volume.shape
    (2, (16, 64, 64))
    """
    data = set_dotted(config.model_dump(mode="json"), {k: v for k, v in overrides.items() if v is not None}, source)
    return validate_config(data, source, type(config))


def set_dotted(data: dict, values: dict[str, Any], source: str = "command line") -> dict:
    """``data`` (nested dicts, changed in place) with each dotted key of ``values`` set, sections added
    as needed (a key the schema lacks is named by the validation that follows).

    Parameters
    ----------
    data : dict
        Nested sections, changed in place.
    values : dict
        Dotted key → value (tuples become lists, as YAML has them).
    source : str
        Named in the error line.

    Returns
    -------
    dict
        ``data``.

    Examples
    --------
    >>> set_dotted({"dataset": {"seed": 0}}, {"dataset.n_samples": 2, "volume.shape": (8, 32, 32)})
    {'dataset': {'seed': 0, 'n_samples': 2}, 'volume': {'shape': [8, 32, 32]}}
    """
    for dotted, value in values.items():
        *parents, last = dotted.split(".")
        section = data
        for key in parents:
            section = section.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: '{dotted}' sets a key inside '{key}', which is a value, not a section")
        section[last] = list(value) if isinstance(value, tuple) else value
    return data
