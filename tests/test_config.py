"""Configs: presets validate, mistakes give one message naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from cellsynth.config import Config, load_config, load_preset, preset_names, preset_text, resolve_config, with_overrides
from cellsynth.errors import ConfigError


def test_every_preset_validates_and_default_is_physically_sensible():
    from cellsynth.masks.simulate import simulate_masks

    assert "default" in preset_names()
    for name in preset_names():
        assert isinstance(load_preset(name), Config)
    default = load_preset("default")
    psf = default.optics.microscope.psf_sigma_um
    assert psf[0] > 2 * psf[1] and psf[1] >= 0.5 * default.volume.spacing_um[1]  # x-z blurrier than x-y; edges blurred
    masks = simulate_masks(default.volume.shape, default.volume.spacing_um, default.masks, rng=0)
    ids = np.unique(masks.labels)[1:]
    on_a_z_face = np.intersect1d(ids, np.concatenate([masks.labels[0].ravel(), masks.labels[-1].ravel()]))
    assert len(ids) >= 8 and len(on_a_z_face) <= 0.2 * len(ids)  # whole nuclei, not slices of them


def test_partial_file_takes_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  n_samples: 10\nvolume:\n  spacing_um: [1, 0.5, 0.5]\n")
    config = load_config(path)
    assert config.dataset.n_samples == 10 and config.dataset.seed == 0
    assert config.volume.spacing_um == (1.0, 0.5, 0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset:\n  sead: 3\n", "unknown key 'dataset.sead' (accepted here: n_samples, seed, name_prefix, output)"),
        ("volum: {}\n", "unknown key 'volum'"),
        ("dataset:\n  output:\n    preview: true\n", "unknown key 'dataset.output.preview'"),
        ("dataset:\n  n_samples: many\n", "'dataset.n_samples': input should be a valid integer"),
        ("dataset:\n  n_samples: 0\n", "'dataset.n_samples': input should be greater than or equal to 1 (got 0)"),
        ("volume:\n  spacing_um: [0.3, -0.26, 0.26]\n", "'volume.spacing_um[1]': input should be greater than 0"),
        ("volume:\n  spacing_um: [0.3, 0.26]\n", "'volume.spacing_um'"),
        ("volume:\n  spacing_um: [.nan, 1, 1]\n", "'volume.spacing_um[0]'"),
        ("dataset:\n  output:\n    tiff_compression: lzw\n", "input should be 'none' or 'zlib'"),
        ("dataset:\n  name_prefix: '../evil'\n", "'dataset.name_prefix'"),
        ("- a\n- b\n", "expected a mapping"),
        ("dataset: [1\n", "not valid YAML at line"),
    ],
)
def test_mistakes_name_the_key_in_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_unsafe_yaml_tags_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("dataset: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="available: default"):
        preset_text("nope")
    with pytest.raises(ConfigError, match="neither a preset"):
        resolve_config("nope")


def test_an_error_line_echoes_at_most_a_short_piece_of_the_input(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"dataset: {{n_samples: {'9' * 5000}x}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(str(caught.value)) < 300 and "…" in str(caught.value)


def test_optics_has_specimen_microscope_and_camera_and_still_reads_flat_yaml(tmp_path):
    nested = tmp_path / "nested.yaml"
    nested.write_text("optics:\n  specimen:\n    texture: 0.2\n  microscope:\n    haze: 0.1\n  camera:\n"
                      "    photons: 80\n    bit_depth: 16\n")
    flat = tmp_path / "flat.yaml"  # the layout of older presets and calibrations
    flat.write_text("optics:\n  texture: 0.2\n  haze: 0.1\n  photons: 80\n  bit_depth: 16\n")
    with pytest.warns(DeprecationWarning, match=r"flat optics keys \(bit_depth, haze, photons, texture\)"):
        assert load_config(flat) == load_config(nested)
    optics = load_config(nested).optics
    assert (optics.specimen.texture, optics.microscope.haze, optics.camera.photons) == (0.2, 0.1, 80.0)
    with pytest.warns(DeprecationWarning, match="optics.camera.photons"):
        overridden = with_overrides(load_config(nested), {"optics.photons": 40, "optics.camera.gain": 2.0})
    assert (overridden.optics.camera.photons, overridden.optics.camera.gain) == (40.0, 2.0)
    typo = tmp_path / "typo.yaml"
    typo.write_text("optics:\n  photon: 80\n")
    with pytest.raises(ConfigError, match="photon"):
        load_config(typo)
