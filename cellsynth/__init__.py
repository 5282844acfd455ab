"""cellsynth: fully-annotated synthetic 3D fluorescence-microscopy datasets.

The public API is re-exported here; see the README for the three jobs it serves.
"""

from importlib import metadata as _metadata

from cellsynth.config import Config, load_config, load_preset, preset_names, validate_config, with_overrides
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
from cellsynth.masks.simulate import SimulatedMasks, simulate_masks
from cellsynth.masks.ssm import StatisticalShapeModel, fit_ssm
from cellsynth.previews import render_preview
from cellsynth.synthesis.optics import OpticsRenderer
from cellsynth.synthesis.patching import PatchPlan, apply_patched
from cellsynth.synthesis.pipeline import Generator, generate_dataset, load_generator

try:
    __version__ = _metadata.version("cellsynth")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "EXPORT_FORMATS", "CellsynthError", "Config", "ConfigError", "Dataset", "DatasetError",
    "FileFormatError", "Generator", "InputError", "MissingDependencyError", "OpticsRenderer", "PatchPlan",
    "Sample", "SimulatedMasks", "StatisticalShapeModel", "__version__", "apply_patched", "build_dataset",
    "cells3d_nuclei", "export_dataset", "fit_ssm", "generate_dataset", "load_config", "load_generator",
    "load_preset", "preset_names", "read_volume", "render_preview", "sample_rng", "simulate_masks",
    "validate_config", "with_overrides", "write_ome_zarr", "write_volume",
]
