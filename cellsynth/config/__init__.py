"""Validated configs: YAML in (safe loader only), typed objects out, one clear message per mistake.

Every length is in µm. The generation schema is in :mod:`.schema`, the training schema in
:mod:`.training`, their shared strict base and bounds in :mod:`.base`, and reading YAML, presets and
overrides in :mod:`.loading`. Shipped presets live in ``cellsynth/presets/*.yaml``; a user file is
validated the same way, and any key left out takes its default.

Examples
--------
>>> from cellsynth.config import load_preset, with_overrides
>>> with_overrides(load_preset("nuclei"), {"dataset.n_samples": 2}).dataset.n_samples
2
"""

from cellsynth.config.base import (
    MAX_QUANTITY,
    StrictModel,
)
from cellsynth.config.loading import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    config_field,
    load_config,
    load_preset,
    parse_yaml,
    preset_names,
    preset_text,
    resolve_config,
    resolve_training_config,
    set_dotted,
    training_preset_names,
    validate_config,
    with_overrides,
)
from cellsynth.config.schema import (
    OPTICS_SECTIONS,
    CameraConfig,
    Config,
    DatasetConfig,
    InclusionConfig,
    MasksConfig,
    MembranesConfig,
    MicroscopeConfig,
    NucleiConfig,
    OpticsConfig,
    OrganismConfig,
    OutputConfig,
    PatchingConfig,
    PlacementConfig,
    RendererConfig,
    SpecimenConfig,
    VolumeConfig,
)
from cellsynth.config.training import (
    AdaConfig,
    DdpmTrainConfig,
    GanTrainConfig,
    TrainConfig,
    TrainDataConfig,
)

__all__ = [
    "AdaConfig",
    "CameraConfig",
    "Config",
    "DatasetConfig",
    "DdpmTrainConfig",
    "GanTrainConfig",
    "InclusionConfig",
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_QUANTITY",
    "MasksConfig",
    "MembranesConfig",
    "MicroscopeConfig",
    "NucleiConfig",
    "OPTICS_SECTIONS",
    "OpticsConfig",
    "OrganismConfig",
    "OutputConfig",
    "PatchingConfig",
    "PlacementConfig",
    "RendererConfig",
    "SpecimenConfig",
    "StrictModel",
    "TrainConfig",
    "TrainDataConfig",
    "VolumeConfig",
    "config_field",
    "load_config",
    "load_preset",
    "parse_yaml",
    "preset_names",
    "preset_text",
    "resolve_config",
    "resolve_training_config",
    "set_dotted",
    "training_preset_names",
    "validate_config",
    "with_overrides",
]
