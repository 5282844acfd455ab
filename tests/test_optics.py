"""Physics renderer: PSF widths, camera statistics, attenuation, tiling exactness, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from cellsynth.config import OpticsConfig, PatchingConfig, validate_config
from cellsynth.masks.simulate import simulate_masks
from cellsynth.sample import Sample
from cellsynth.synthesis.optics import (
    OpticsRenderer,
    camera,
    depth_um,
    gaussian_psf,
    psf_sigma_um,
)

SPACING = (0.5, 0.2, 0.2)


def test_psf_widths_follow_na_and_wavelength():
    z, y, x = psf_sigma_um(1.0, 0.52, 1.33, confocal=False)
    assert y == x == pytest.approx(0.21 * 0.52) and z == pytest.approx(0.66 * 0.52 * 1.33)
    assert psf_sigma_um(1.0, 0.52, 1.33, confocal=True)[0] == pytest.approx(z / np.sqrt(2))
    assert psf_sigma_um(0.5, 0.52, 1.33)[1] == pytest.approx(2 * psf_sigma_um(1.0, 0.52, 1.33)[1])
    kernel = gaussian_psf((1.0, 0.4, 0.4), SPACING)
    assert kernel.sum() == pytest.approx(1, abs=1e-5) and all(k % 2 == 1 for k in kernel.shape)
    zz = (np.arange(kernel.shape[0]) - kernel.shape[0] // 2) * SPACING[0]
    measured = np.sqrt((kernel.sum(axis=(1, 2)) * zz**2).sum())
    assert measured == pytest.approx(1.0, rel=0.05)  # the sampled kernel has the requested σ in µm


def test_camera_is_poisson_gaussian_with_gain_and_offset():
    adu = camera(np.full((200, 200), 0.5, np.float32), photons=100, read_noise=3.0, gain=2.0, offset=50,
                 bit_depth=16, rng=np.random.default_rng(0))
    assert adu.mean() == pytest.approx(50 + 2 * 50, rel=0.01)
    assert adu.var() == pytest.approx(4 * (50 + 9), rel=0.05)  # gain² (shot + read²)
    saturated = camera(np.full((10, 10), 1e6, np.float32), photons=250, bit_depth=8, rng=np.random.default_rng(0))
    assert saturated.max() == 255


def test_depth_below_surface_or_below_the_top_plane():
    full = np.ones((4, 5, 5), bool)
    np.testing.assert_allclose(depth_um(full, SPACING)[:, 2, 2], [0, 0.5, 1.0, 1.5])
    organism = np.zeros((9, 9, 9), bool)
    organism[2:7, 2:7, 2:7] = True
    depth = depth_um(organism, (1.0, 1.0, 1.0))
    assert depth[4, 4, 4] == 3 and depth[2, 4, 4] == 1 and depth[0, 0, 0] == 0


def masks_and_config(**sections):
    config = validate_config({"volume": {"shape": [16, 48, 48], "spacing_um": list(SPACING)},
                              "masks": {"nuclei": {"radius_um": 2.0}, "placement": {"min_distance_um": 4.5}},
                              **sections})
    return simulate_masks(config.volume.shape, config.volume.spacing_um, config.masks, np.random.default_rng(0)), config


def test_render_is_deterministic_and_cells_are_brighter_than_background():
    masks, config = masks_and_config()
    renderer = OpticsRenderer(config.optics, config.patching)
    image = renderer.render(masks, np.random.default_rng(1)).image
    again = renderer.render(masks, np.random.default_rng(1)).image
    assert image.dtype == np.float32 and image.shape == masks.labels.shape
    np.testing.assert_array_equal(image, again)
    assert 0 <= image.min() and image.max() <= 1
    inside, outside = image[masks.labels > 0].mean(), image[masks.labels == 0].mean()
    assert inside > 1.8 * outside
    means = [image[masks.labels == i].mean() for i in range(1, masks.labels.max() + 1) if (masks.labels == i).any()]
    assert np.std(means) / np.mean(means) > 0.05  # cells differ in brightness
    counts = OpticsRenderer(OpticsConfig(output_dtype="uint16"), config.patching).render(
        masks, np.random.default_rng(1)).image
    offset = OpticsConfig().camera.offset
    assert counts.dtype == np.uint16 and counts.max() <= 4095  # the default camera's 12 bits
    assert np.median(counts[masks.labels == 0]) > offset  # light above the dark level, even between cells


def test_attenuation_dims_deep_cells():
    labels = np.zeros((40, 20, 20), np.uint16)
    labels[2:6, 5:15, 5:15], labels[30:34, 5:15, 5:15] = 1, 2
    masks = Sample(labels, spacing=(0.5, 0.2, 0.2))
    optics = OpticsConfig(attenuation_length_um=5.0, brightness_sigma=0, texture=0, haze=0, background=0,
                          read_noise=0, photons=500)
    image = OpticsRenderer(optics, PatchingConfig(patch=(24, 24, 24))).render(masks, np.random.default_rng(0)).image
    shallow, deep = image[3:5, 8:12, 8:12].mean(), image[31:33, 8:12, 8:12].mean()
    offset = 100 / 4095
    assert (deep - offset) / (shallow - offset) == pytest.approx(np.exp(-14.0 / 5.0), rel=0.1)


def test_tiled_blur_equals_a_whole_volume_convolution():
    rng = np.random.default_rng(0)
    volume = rng.random((20, 60, 50)).astype(np.float32)
    renderer = OpticsRenderer(OpticsConfig(numerical_aperture=0.8), PatchingConfig(patch=(16, 32, 32), overlap=4,
                                                                                   crop=2))
    tiled = renderer.optical_image(volume, SPACING)
    o = renderer.optics.microscope
    kernel = gaussian_psf(psf_sigma_um(o.numerical_aperture, o.wavelength_um, o.refractive_index), SPACING)
    pad = [(k // 2, k // 2) for k in kernel.shape]
    whole = signal.fftconvolve(np.pad(volume, pad, mode="reflect"), kernel, mode="valid")
    assert np.abs(tiled - whole).max() < 1e-4


def test_the_renderer_stages_are_reachable_and_compose_to_render():
    labels = np.zeros((12, 40, 40), np.uint16)
    labels[3:9, 8:20, 8:20], labels[3:9, 22:34, 20:32] = 1, 2
    sample = Sample(labels, spacing=SPACING)
    renderer = OpticsRenderer(OpticsConfig(camera={"output_dtype": "uint16", "bit_depth": 12}))
    rng = np.random.default_rng(5)
    light = renderer.ground_truth(sample, rng)
    assert light.dtype == np.float32 and light[labels > 0].mean() > 2 * light[labels == 0].mean()
    optical = renderer.optical_image(light, SPACING)
    assert optical.sum() == pytest.approx(light.sum(), rel=0.02)  # the PSF moves light, it does not make it
    assert np.abs(np.diff(optical, axis=2)).mean() < np.abs(np.diff(light, axis=2)).mean()  # and blurs edges
    digital = renderer.digital_image(optical, SPACING, rng)
    assert digital.dtype == np.uint16 and digital.max() <= 4095
    np.testing.assert_array_equal(renderer.render(sample, rng=5).image, digital)
