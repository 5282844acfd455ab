"""cellsynth: fully-annotated synthetic 3D fluorescence-microscopy datasets.

The public API is re-exported here; see the README for the three jobs it serves.
"""

from importlib import metadata as _metadata

from cellsynth.config import Config, load_config, load_preset, preset_names, validate_config
from cellsynth.dataset import Dataset, Sample, build_dataset, sample_rng
from cellsynth.datasets import cells3d_nuclei
from cellsynth.errors import (
    CellsynthError,
    ConfigError,
    DatasetError,
    FileFormatError,
    InputError,
    MissingDependencyError,
)
from cellsynth.exports import EXPORT_FORMATS, export_dataset
from cellsynth.io import read_volume, write_ome_zarr, write_volume
from cellsynth.previews import render_preview

try:
    __version__ = _metadata.version("cellsynth")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "EXPORT_FORMATS", "CellsynthError", "Config", "ConfigError", "Dataset", "DatasetError",
    "FileFormatError", "InputError", "MissingDependencyError", "Sample", "__version__", "build_dataset",
    "cells3d_nuclei", "export_dataset", "load_config", "load_preset", "preset_names", "read_volume",
    "render_preview", "sample_rng", "validate_config", "write_ome_zarr", "write_volume",
]
