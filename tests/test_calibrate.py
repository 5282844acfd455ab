"""Calibration: known parameters come back; presets round-trip; the new renderer and simulator features work.

Tolerances a single 32×128×128 volume with 21 nuclei allows (stated per parameter): gain, offset
±10 %; read noise ±25 % (it only enters through the photon-transfer intercept); PSF σ within one
grid step (0.1 µm along z, 0.05 µm laterally); brightness spread ±20 % (21 draws of a log-normal);
radius ±10 %; flattening ±15 %; the slab holds the true one within 0.6 µm at each end; the in-object
profile of a re-rendered image within 10 % of the original's at every depth. The texture is kept
below 0.6 cycles/µm: finer texture is indistinguishable from shot noise in one volume.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import yaml
from conftest import render_known

from cellsynth.cli import main
from cellsynth.config import load_config, validate_config, with_overrides
from cellsynth.errors import InputError
from cellsynth.io import read_volume, write_volume
from cellsynth.masks.simulate import simulate_masks
from cellsynth.sample import Sample
from cellsynth.synthesis.calibrate import PHASES, calibrate
from cellsynth.synthesis.fit import object_levels
from cellsynth.synthesis.measure import CameraFit, camera_storage, dark_level_below, noise_correlation, photon_transfer
from cellsynth.synthesis.optics import OpticsRenderer
from cellsynth.synthesis.preset import write_calibration

#: KNOWN gives the optics flat, as older YAML did (read into their sections, with a deprecation warning).
pytestmark = pytest.mark.filterwarnings("ignore:flat optics keys:DeprecationWarning")
KNOWN = {
    "volume": {"shape": [32, 128, 128], "spacing_um": [0.4, 0.2, 0.2]},
    "masks": {"kind": "nuclei",
              "placement": {"method": "poisson", "min_distance_um": 5.5, "z_range_um": [5.0, 8.0]},
              "nuclei": {"radius_um": 2.5, "radius_std_um": 0.2, "flattening": 0.6}},
    "optics": {"brightness_sigma": 0.3, "texture": 0.25, "texture_law": "lognormal",
               "texture_spectrum": [[0, 1], [0.3, 1], [0.6, 0]], "background": 0.0, "haze": 0.0,
               "attenuation_length_um": None, "psf_sigma_um": [0.6, 0.2, 0.2], "photons": 250, "gain": 4.0,
               "offset": 100.0, "read_noise": 2.0, "interior_profile": [[0, 1.5], [0.3, 1.0], [1, 1.0]],
               "bit_depth": 16, "output_dtype": "uint16"},
}


@pytest.fixture(scope="module")
def known():
    config, masks, image = render_known(KNOWN)
    return config, masks, image, calibrate(image, config.volume.spacing_um, masks.labels)


def test_calibration_recovers_the_parameters_an_image_was_rendered_with(known):
    config, masks, image, calibration = known
    optics, nuclei, placement = calibration.config.optics, calibration.config.masks.nuclei, \
        calibration.config.masks.placement
    assert optics.camera.gain == pytest.approx(4.0, rel=0.10)
    assert optics.camera.offset == pytest.approx(100.0, rel=0.10)
    assert optics.camera.read_noise == pytest.approx(2.0, rel=0.25)
    psf = optics.microscope.psf_sigma_um
    assert abs(psf[0] - 0.6) <= 0.1 + 1e-9 and abs(psf[1] - 0.2) <= 0.05 + 1e-9
    assert optics.specimen.brightness_sigma == pytest.approx(0.3, rel=0.20)
    assert nuclei.radius_um == pytest.approx(2.5, rel=0.10) and nuclei.flattening_axis == "z"
    assert nuclei.flattening == pytest.approx(0.6, rel=0.15)
    low, high = placement.z_range_um
    assert abs(low - 5.0) <= 0.6 and abs(high - 8.0) <= 0.6
    assert placement.n_cells == len(np.unique(masks.labels)) - 1
    assert optics.camera.output_dtype == "uint16" and optics.specimen.background < 0.01
    profile = np.asarray(optics.specimen.interior_profile)
    assert profile[0, 1] > profile[-1, 1]  # the bright rim comes back, undone of the blur


def test_the_calibrated_renderer_shows_the_measured_profile_and_texture(known):
    config, masks, image, calibration = known
    again = OpticsRenderer(calibration.config.optics, config.patching).render(
        Sample(masks.labels, spacing=config.volume.spacing_um, foreground=masks.foreground),
        np.random.default_rng(1)).image
    second = calibrate(again, config.volume.spacing_um, masks.labels)
    seen, seen_again = (np.asarray(c.measured["seen_interior_profile"].value)[:, 1] for c in (calibration, second))
    assert np.allclose(seen_again, seen, rtol=0.10)
    assert second.config.optics.camera.gain == pytest.approx(calibration.config.optics.camera.gain, rel=0.10)


def test_every_measured_value_is_commented_and_the_preset_round_trips(known, tmp_path):
    *_, calibration = known
    path = write_calibration(calibration, tmp_path / "mine.yaml", sources=["known.tif"])
    text = path.read_text()
    assert text.startswith("# cellsynth preset written by `cellsynth calibrate` from known.tif")
    assert "    gain: " in text and "# photon transfer slope" in text and "# Gaussian σ fitted" in text
    assert load_config(path) == calibration.config
    assert main(["config", "check", str(path)]) == 0
    assert yaml.safe_load(text)["optics"]["specimen"]["texture_law"] == "lognormal"


def test_calibrate_command_writes_a_preset_and_a_report_that_generate_accepts(known, tmp_path, capsys):
    config, masks, image, _ = known
    write_volume(tmp_path / "image.tif", image, config.volume.spacing_um)
    write_volume(tmp_path / "labels.tif", masks.labels, config.volume.spacing_um)
    preset, report = tmp_path / "p.yaml", tmp_path / "report"
    assert main(["calibrate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "labels.tif"), "--out",
                 str(preset), "--report", str(report), "--n", "1"]) == 0
    assert "gain" in capsys.readouterr().out
    assert {"calibration.png", "calibration.json"} <= {p.name for p in report.iterdir()}
    assert main(["generate", str(preset), "--out", str(tmp_path / "data"), "-q"]) == 0
    image_out, spacing = read_volume(tmp_path / "data" / "images" / "calibrated_0000.tif")
    assert image_out.dtype == np.uint16 and image_out.shape == image.shape and spacing == (0.4, 0.2, 0.2)
    assert main(["synthesize", str(tmp_path / "labels.tif"), "--config", str(preset), "--out",
                 str(tmp_path / "again.tif")]) == 0
    assert read_volume(tmp_path / "again.tif")[0].shape == image.shape


def test_generate_like_is_deterministic_for_a_seed_and_keeps_its_preset(known, tmp_path):
    config, masks, image, _ = known
    write_volume(tmp_path / "image.tif", image, config.volume.spacing_um)
    outs = [tmp_path / name for name in ("a", "b")]
    for out in outs:
        assert main(["generate", "--like", str(tmp_path / "image.tif"), "--out", str(out), "--n", "1", "--seed",
                     "3", "-q"]) == 0
    first, second = (read_volume(out / "images" / "calibrated_0000.tif")[0] for out in outs)
    assert np.array_equal(first, second)
    assert load_config(outs[0] / "calibration.yaml").dataset.seed == 3


def test_calibration_refuses_what_it_cannot_measure():
    image = np.random.default_rng(0).poisson(100, (8, 64, 64)).astype(np.uint16)
    with pytest.raises(InputError, match="is constant"):
        calibrate(np.full((8, 32, 32), 7, np.uint16), (1, 1, 1))
    with pytest.raises(InputError, match="3D stack"):
        calibrate(image[0], (1, 1, 1))
    with pytest.raises(InputError, match="do not match"):
        calibrate(image, (1, 1, 1), np.zeros((8, 64, 63), np.uint16))
    with pytest.raises(InputError, match="no object"):
        calibrate(image, (1, 1, 1), np.zeros((8, 64, 64), np.uint16))


@pytest.mark.parametrize("dtype, values, expected", [
    ("uint8", [0, 30, 255], ("uint8", 1.0, 8, None)),
    ("uint16", [0, 300, 4000], ("uint16", 1.0, 12, None)),
    ("int16", [0, 300, 30000], ("uint16", 1.0, 15, None)),
    ("float32", [0.0, 300.0, 4000.0], ("float32", 1.0, 12, 1.0)),   # whole camera counts stored as floats
    ("float32", [0.0, 0.25, 0.5], ("float32", 131070.0, 16, 0.5 / 65535)),  # scaled: largest → 65535 ADU
    ("float64", [0.0, 1.5, 3e6], ("float32", 65535 / 3e6, 16, 3e6 / 65535)),  # beyond 16 bits
])
def test_every_storage_is_measured_in_camera_units_and_generated_back_in_its_own(dtype, values, expected):
    storage = camera_storage([np.array(values, dtype).reshape(1, 1, -1)])
    output, scale, bits, output_scale = expected
    assert (storage.output_dtype, storage.bits) == (output, bits)
    assert storage.scale == pytest.approx(scale) and (storage.output_scale is None) == (output_scale is None)
    if output_scale is not None:
        assert storage.output_scale == pytest.approx(output_scale)
    with pytest.raises(InputError, match="negative values"):
        camera_storage([np.array([-1.0, 2.0, 3.0], np.float32).reshape(1, 1, 3)])


def test_a_float_image_calibrates_like_its_integer_copy_and_generates_in_its_units(known):
    config, masks, image, calibration = known
    for stored in ((image / 65535.0).astype(np.float32),):  # whole counts as floats: the storage test above
        again = calibrate(stored, config.volume.spacing_um, masks.labels)
        camera, reference = again.config.optics.camera, calibration.config.optics.camera
        assert camera.photons == pytest.approx(reference.photons, rel=0.02)
        assert again.config.optics.specimen.background == pytest.approx(
            calibration.config.optics.specimen.background, abs=0.002)
        assert camera.output_dtype == "float32"
        rendered = OpticsRenderer(again.config.optics, config.patching).render(masks, np.random.default_rng(1)).image
        assert rendered.dtype == np.float32
        shown, target = (object_levels(i.astype(np.float64), masks.labels, config.volume.spacing_um)
                         for i in (rendered, stored))
        assert shown["median"] == pytest.approx(target["median"], rel=0.1)  # the user's units, not [0, 1]
        assert shown["floor"] == pytest.approx(target["floor"], rel=0.1, abs=1e-3 * target["median"])


def test_generate_like_stops_before_writing_when_the_generated_image_is_unlike_the_real_one(
        known, tmp_path, monkeypatch, capsys):
    import importlib

    config, masks, image, calibration = known
    write_volume(tmp_path / "image.tif", image, config.volume.spacing_um)
    module = importlib.import_module("cellsynth.synthesis.calibrate")  # wrapped: the command reads its docstring
    monkeypatch.setattr(module, "calibrate_files",  # the known image's calibration, measured once
                        functools.wraps(module.calibrate_files)(lambda *a, **k: calibration))
    monkeypatch.setattr(OpticsRenderer, "from_adu", lambda self, adu: np.ones(adu.shape, np.float32))
    assert main(["generate", "--like", str(tmp_path / "image.tif"), "--out", str(tmp_path / "out"), "-q"]) == 2
    error = capsys.readouterr().err
    assert "generated image is constant (1) unlike" in error and "image.tif" in error and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_failing_calibration_report_keeps_the_preset(known, tmp_path, monkeypatch):
    import importlib

    import cellsynth.evaluate.calibration as report

    config, masks, image, calibration = known
    write_volume(tmp_path / "image.tif", image, config.volume.spacing_um)
    write_volume(tmp_path / "labels.tif", masks.labels, config.volume.spacing_um)
    module = importlib.import_module("cellsynth.synthesis.calibrate")  # wrapped: the command reads its docstring
    monkeypatch.setattr(module, "calibrate_files",  # the known image's calibration, measured once
                        functools.wraps(module.calibrate_files)(lambda *a, **k: calibration))

    def fail(*args, **kwargs):
        raise InputError("the report failed")

    monkeypatch.setattr(report, "write_calibration_report", fail)
    assert main(["calibrate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "labels.tif"), "--out",
                 str(tmp_path / "p.yaml"), "--report", str(tmp_path / "report")]) == 2
    assert load_config(tmp_path / "p.yaml").optics.camera.output_dtype == "uint16"


def test_calibrate_takes_folders_and_shows_its_named_phases_unless_quiet(known, tmp_path, monkeypatch):
    import cellsynth.progress

    shown = []

    class Recorder:
        def __init__(self, total, desc, disable, **_):
            self.n, self.enabled = 0, not disable

        def update(self, n):
            self.n += n

        def set_description_str(self, text):
            if self.enabled:
                shown.append(text)

        def close(self):
            pass

    monkeypatch.setattr(cellsynth.progress, "tqdm", Recorder)
    with cellsynth.progress.Phases("quiet", ["a", "b"], enabled=False) as phase:  # what -q passes
        phase("a")
        phase("b")
    assert shown == []
    config, masks, image, calibration = known
    for folder, array in (("images", image), ("labels", masks.labels)):  # folders of images and of labels
        (tmp_path / folder).mkdir()
        write_volume(tmp_path / folder / "stack_01.tif", array, config.volume.spacing_um)
    assert main(["calibrate", str(tmp_path / "images"), "--labels", str(tmp_path / "labels"), "--out",
                 str(tmp_path / "p.yaml")]) == 0
    assert shown == [f"calibrate: {name}" for name in PHASES]
    assert load_config(tmp_path / "p.yaml").optics.camera.gain == pytest.approx(
        calibration.config.optics.camera.gain, rel=1e-6)


def test_a_2d_image_is_refused_in_one_round_trip_naming_the_file(tmp_path, capsys):
    write_volume(tmp_path / "flat.tif", np.ones((32, 32), np.uint16), (1, 1, 1))
    import tifffile

    tifffile.imwrite(tmp_path / "plain.tif", np.arange(32 * 32, dtype=np.uint16).reshape(32, 32))  # no spacing
    for name in ("flat.tif", "plain.tif"):
        assert main(["calibrate", str(tmp_path / name), "--out", str(tmp_path / "p.yaml")]) == 2
        error = capsys.readouterr().err
        assert f"{name}' has 1 plane(s) (a 2D image)" in error and "spacing" not in error


# ----------------------------------------------------------------------------- renderer and simulator features


def test_flattened_nuclei_lie_in_a_slab():
    config = validate_config({"volume": {"shape": [40, 96, 96], "spacing_um": [0.25, 0.25, 0.25]},
                              "masks": {"placement": {"min_distance_um": 6.0, "z_range_um": [4.0, 6.0]},
                                        "nuclei": {"radius_um": 2.5, "deformation": 0.0, "flattening": 0.5}}})
    labels = simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, rng=0).labels
    points = np.argwhere(labels > 0) * 0.25
    ids = labels[labels > 0]
    for object_id in np.unique(ids)[:5]:
        inside = points[ids == object_id]
        centre_z = inside[:, 0].mean()
        if inside[:, 1:].min() > 0.3 and inside[:, 1:].max() < 23.5:  # objects not cut by a lateral face
            extent = inside.max(axis=0) - inside.min(axis=0)
            assert extent[0] / extent[1] == pytest.approx(0.5, abs=0.12)
        assert 4.0 - 0.3 <= centre_z <= 6.0 + 0.3


def test_inclusions_texture_law_and_noise_correlation_render_as_configured():
    labels = np.zeros((16, 64, 64), np.uint16)
    labels[3:13, 20:44, 20:44] = 1
    base = {"texture": 0.0, "haze": 0.0, "background": 0.0, "attenuation_length_um": None, "photons": 1e4,
            "read_noise": 0.0, "psf_sigma_um": [0.0, 0.0, 0.0], "bit_depth": 16}
    spacing = (0.5, 0.25, 0.25)

    def render(**optics):
        config = validate_config({"optics": {**base, **optics}})
        return OpticsRenderer(config.optics).render(Sample(labels, spacing=spacing), np.random.default_rng(0)).image

    dark = render(inclusions=[{"per_object": 8, "radius_um": 1.0, "radius_std_um": 0.0, "factor": 0.2}])
    plain = render()
    inside = labels > 0
    assert (dark[inside] < 0.5 * np.median(plain[inside])).mean() > 0.01
    textured = render(texture=0.4, texture_law="lognormal", texture_spectrum=[[0, 1], [0.5, 1], [1.0, 0]])
    assert textured[inside].min() > 0 and textured[inside].mean() == pytest.approx(plain[inside].mean(), rel=0.05)
    correlated = render(noise_correlation_um=0.1, photons=100.0, background=0.5)  # noise around the object
    measured = noise_correlation(correlated.astype(np.float64) * 65535, np.zeros(labels.shape, np.uint16), spacing)
    assert measured["sigma_um"] == pytest.approx(0.1, rel=0.3)
    assert np.std(correlated[inside]) == pytest.approx(np.std(render(photons=100.0, background=0.5)[inside]), rel=0.1)


AMBIENT = {"volume": {"shape": [24, 128, 128], "spacing_um": [0.4, 0.2, 0.2]},
           "masks": {"kind": "nuclei", "placement": {"method": "poisson", "n_cells": 4, "min_distance_um": 8.0},
                     "nuclei": {"radius_um": 2.0, "radius_std_um": 0.1}},
           "optics": {**KNOWN["optics"], "interior_profile": None, "background": 0.4, "ambient_texture": 0.3,
                      "ambient_spectrum": [[0, 1], [0.3, 1], [0.5, 0]]}}


def test_calibration_recovers_the_ambient_texture_and_its_absence():
    """The ambient texture (relative RMS, tolerance ±25 %: one volume of smooth noise holds few independent
    patches of it) comes back, and a uniform background measures as (nearly) none."""
    found = {}
    for amplitude in (0.3, 0.0):
        config, masks, image = render_known({**AMBIENT, "optics": {**AMBIENT["optics"], "ambient_texture": amplitude}})
        found[amplitude] = calibrate(image, config.volume.spacing_um, masks.labels).config.optics
    assert found[0.3].specimen.ambient_texture == pytest.approx(0.3, rel=0.25)
    spectrum = np.asarray(found[0.3].specimen.ambient_spectrum)
    assert np.interp(0.7, *spectrum.T) < 0.3 * np.interp(0.1, *spectrum.T)  # the band's cut-off comes back
    assert found[0.0].specimen.ambient_texture < 0.06


def test_the_calibrated_renderer_shows_the_images_own_levels(known):
    """The closed loop: drawing the calibration labels with every object at the median brightness (a draw
    of 21 varies their median by ±8 %), the renderer shows the image's floor and median object signal
    (within 5 %)."""
    config, masks, image, calibration = known
    steady = with_overrides(calibration.config, {"optics.specimen.brightness_sigma": 0.0}).optics
    rendered = OpticsRenderer(steady, config.patching).render(
        Sample(masks.labels, spacing=config.volume.spacing_um, foreground=masks.foreground),
        np.random.default_rng(7)).image
    real, shown = (object_levels(v.astype(np.float64), masks.labels, config.volume.spacing_um)
                   for v in (image, rendered))
    assert shown["median"] == pytest.approx(real["median"], rel=0.05)
    assert shown["floor"] == pytest.approx(real["floor"], rel=0.05)
    assert "corrected so that the calibrated renderer" in calibration.measured["optics.camera.photons"].how


def test_ambient_texture_varies_the_ambient_light_and_keeps_its_mean():
    labels = np.zeros((16, 64, 64), np.uint16)
    labels[4:12, 20:44, 20:44] = 1
    spacing = (0.5, 0.25, 0.25)
    masks = Sample(labels, spacing=spacing)

    def render(amplitude: float) -> np.ndarray:
        optics = validate_config({"optics": {"texture": 0.0, "brightness_sigma": 0.0, "haze": 0.0, "background": 0.3,
                                             "attenuation_length_um": None, "photons": 1e5, "read_noise": 0.0,
                                             "psf_sigma_um": [0.0, 0.0, 0.0], "ambient_texture": amplitude}}).optics
        return OpticsRenderer(optics).render(masks, np.random.default_rng(0)).image.astype(np.float64)

    plain, textured = render(0.0), render(0.4)
    outside = labels == 0
    assert np.std(textured[outside]) > 5 * np.std(plain[outside])
    assert np.mean(textured[outside]) == pytest.approx(np.mean(plain[outside]), rel=0.05)
    assert np.mean(textured[labels > 0]) == pytest.approx(np.mean(plain[labels > 0]), rel=0.05)
    assert np.array_equal(textured, render(0.4))


def test_moving_the_dark_level_keeps_the_noise_of_every_level_and_stops_at_the_variance_lines_zero():
    rng = np.random.default_rng(0)
    signal = np.repeat(np.linspace(20, 400, 16), 32 * 64).reshape(16, 32, 64)
    image = (100 + 2.0 * rng.poisson(signal) + rng.normal(0, 3.0, signal.shape)).astype(np.float32)
    camera = photon_transfer(image, (1.0, 0.25, 0.25))
    assert camera.gain == pytest.approx(2.0, rel=0.1)

    def variance(fit: CameraFit, mean: float) -> float:  # ADU²: shot noise above the offset + read noise
        return fit.gain * (mean - fit.offset) + (fit.gain * fit.read_noise) ** 2

    lowered = camera.with_offset(camera.offset - 10, "a test")
    assert lowered.offset_how == "a test" and lowered.gain == camera.gain
    for mean in (camera.offset, 300.0, 900.0):
        assert variance(lowered, mean) == pytest.approx(variance(camera, mean))
    assert dark_level_below(camera, rms=1.0, level=camera.offset + 50) is camera  # a flat background: kept
    textured = dark_level_below(camera, rms=1e6, level=camera.offset + 50)  # lowered as far as the line allows
    assert textured.offset == pytest.approx(-camera.intercept / camera.gain) and textured.read_noise < 1e-6
