"""The public surface: every re-exported name resolves, and importing it stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["cellsynth", "cellsynth.masks", "cellsynth.synthesis", "cellsynth.evaluate",
                                     "cellsynth.augment"])
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_the_top_level_holds_what_a_notebook_needs_and_imports_no_torch():
    import cellsynth

    assert len(cellsynth.__all__) <= 20
    assert {"load_preset", "generate_dataset", "load_renderer", "train_gan", "train_ddpm", "export_dataset",
            "read_volume", "write_volume", "cells3d_nuclei"} <= set(cellsynth.__all__)
    code = ("import sys, cellsynth, cellsynth.masks, cellsynth.synthesis, cellsynth.evaluate, cellsynth.augment; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
