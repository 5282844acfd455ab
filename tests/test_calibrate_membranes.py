"""Calibration of membrane stains: known parameters come back; the preset generates and renders real labels.

Tolerances one 32×96×96 volume of 47 cells allows (stated per parameter): membrane thickness within
one lateral voxel (the mask draws whole voxels); PSF σ within one grid step (0.1 µm along z, 0.05 µm
laterally); gain ±10 %; cytoplasm within 0.03 of the membrane's density; brightness spread ±20 %
(47 draws of a log-normal); photons ±15 % (the median of 47 brightnesses sets their unit). Without
the labels the cells come from the membrane watershed: their number within 10 %.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import render_known

from cellsynth.cli import main
from cellsynth.config import load_config
from cellsynth.errors import InputError
from cellsynth.evaluate.segmentation import matching
from cellsynth.io import read_volume, write_volume
from cellsynth.masks.segment import segment_membranes
from cellsynth.masks.simulate import masks_from_labels
from cellsynth.synthesis.calibrate import calibrate
from cellsynth.synthesis.preset import write_calibration

SPACING = (0.5, 0.25, 0.25)
#: KNOWN gives the optics flat, as older YAML did (read into their sections, with a deprecation warning).
pytestmark = pytest.mark.filterwarnings("ignore:flat optics keys:DeprecationWarning")
KNOWN = {
    "volume": {"shape": [32, 96, 96], "spacing_um": list(SPACING)},
    "masks": {"kind": "membranes", "organism": {"kind": "none"},
              "placement": {"method": "poisson", "min_distance_um": 6.0},
              "membranes": {"thickness_um": 0.75, "weights": [1.0, 1.25]}},
    "optics": {"brightness_sigma": 0.3, "texture": 0.0, "cytoplasm": 0.1, "background": 0.0,
               "background_outside": 0.0, "haze": 0.0, "attenuation_length_um": None,
               "psf_sigma_um": [0.6, 0.2, 0.2], "photons": 200, "gain": 4.0, "offset": 100.0, "read_noise": 2.0,
               "bit_depth": 16, "output_dtype": "uint16"},
}


@pytest.fixture(scope="module")
def known():
    config, masks, image = render_known(KNOWN)
    return config, masks, image, calibrate(image, SPACING, masks.labels, kind="membranes")


def test_membrane_calibration_recovers_the_parameters_an_image_was_rendered_with(known):
    config, masks, image, calibration = known
    optics, membranes = calibration.config.optics, calibration.config.masks.membranes
    assert calibration.config.masks.kind == "membranes"
    assert abs(membranes.thickness_um - 0.75) <= 0.25 + 1e-9
    psf = optics.microscope.psf_sigma_um
    assert abs(psf[0] - 0.6) <= 0.1 + 1e-9 and abs(psf[1] - 0.2) <= 0.05 + 1e-9
    assert optics.camera.gain == pytest.approx(4.0, rel=0.10)
    assert abs(optics.specimen.cytoplasm - 0.1) <= 0.03
    assert optics.specimen.brightness_sigma == pytest.approx(0.3, rel=0.20)
    assert optics.camera.photons == pytest.approx(200, rel=0.15)
    assert optics.specimen.texture == 0 and optics.microscope.haze < 0.05
    assert calibration.config.masks.placement.n_cells == len(np.unique(masks.labels))
    assert calibration.config.masks.organism.kind == "none" and 1.0 <= membranes.weights[1] <= 1.5


def test_the_membrane_watershed_finds_the_cells(known):
    _, masks, image, _ = known
    found = segment_membranes(image, SPACING)
    (scores,) = matching(masks.labels, found, thresholds=[0.5])
    assert scores["f1"] >= 0.9
    unlabelled = calibrate(image, SPACING, kind="membranes")
    n_cells = len(np.unique(masks.labels))
    assert abs(unlabelled.config.masks.placement.n_cells - n_cells) <= 0.1 * n_cells
    assert abs(unlabelled.config.optics.microscope.psf_sigma_um[1] - 0.2) <= 0.1


def test_membrane_preset_round_trips_generates_and_renders_real_labels(known, tmp_path, capsys):
    config, masks, image, calibration = known
    path = write_calibration(calibration, tmp_path / "mine.yaml")
    assert "# the renderer's membrane mask of this thickness" in path.read_text()
    assert load_config(path) == calibration.config
    write_volume(tmp_path / "image.tif", image, SPACING)
    write_volume(tmp_path / "labels.tif", masks.labels, SPACING)
    preset = tmp_path / "cli.yaml"
    assert main(["calibrate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "labels.tif"), "--kind",
                 "membranes", "--out", str(preset), "--n", "1"]) == 0
    assert "membranes 0.75 µm thick" in capsys.readouterr().out
    assert main(["generate", str(preset), "--out", str(tmp_path / "data"), "-q"]) == 0
    generated, _ = read_volume(tmp_path / "data" / "images" / "calibrated_0000.tif")
    assert generated.shape == image.shape and generated.dtype == np.uint16
    assert main(["synthesize", str(tmp_path / "labels.tif"), "--config", str(preset), "--out",
                 str(tmp_path / "again.tif")]) == 0
    again, _ = read_volume(tmp_path / "again.tif")
    walls = masks_from_labels(masks.labels, SPACING, calibration.config.masks).membranes
    assert again[walls].mean() > 2 * again[~walls].mean()  # the real labels' membranes, drawn


def test_membrane_calibration_refuses_what_it_cannot_measure(tmp_path):
    image = np.random.default_rng(0).poisson(100, (8, 32, 32)).astype(np.uint16)
    with pytest.raises(InputError, match="fewer than two cells"):
        calibrate(image, (1, 1, 1), np.ones(image.shape, np.uint16), kind="membranes")
    with pytest.raises(InputError, match="'nuclei' or 'membranes'"):
        calibrate(image, (1, 1, 1), kind="cytoplasm")
    write_volume(tmp_path / "image.tif", image, (1, 1, 1))
    assert main(["generate", "--preset", "default", "--kind", "membranes", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
