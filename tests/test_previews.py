"""Previews: three orthogonal mid-slices, aspect-correct, with coloured outlines."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from cellsynth.dataset.previews import preview_layout, render_preview, write_preview


def ball_volume(shape, spacing, radius_um):
    axes = [np.arange(n) * s - n * s / 2 for n, s in zip(shape, spacing, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    inside = z**2 + y**2 + x**2 <= radius_um**2
    return inside.astype(np.float32), inside.astype(np.uint16) * 5


@pytest.mark.parametrize("spacing", [(1.0, 0.25, 0.25), (0.25, 0.25, 0.25), (2.0, 0.2, 0.4)])
def test_panels_have_the_physical_aspect(spacing):
    shape = (12, 40, 30)
    z_um, y_um, x_um = (n * s for n, s in zip(shape, spacing, strict=True))
    layout = preview_layout(shape, spacing)
    size = {k: (rows.stop - rows.start, cols.stop - cols.start) for k, (rows, cols) in layout.items()}
    assert size["xy"][0] / size["xy"][1] == pytest.approx(y_um / x_um, rel=0.03)
    assert size["xz"][0] / size["xz"][1] == pytest.approx(z_um / x_um, rel=0.05)
    assert size["yz"][0] / size["yz"][1] == pytest.approx(y_um / z_um, rel=0.05)
    assert size["xz"][1] == size["xy"][1] and size["yz"][0] == size["xy"][0]
    assert max(max(v) for v in size.values()) >= 256
    image, labels = ball_volume(shape, spacing, 3.0)
    picture = render_preview(image, labels, spacing)
    assert picture.shape[:2] == (size["xy"][0] + 2 + size["xz"][0], size["xy"][1] + 2 + size["yz"][1])


@pytest.mark.parametrize("spacing", [(1.0, 0.25, 0.25), (0.5, 0.3, 0.2)])
def test_a_sphere_looks_round_in_every_panel(spacing):
    shape = (24, 64, 80)
    image, labels = ball_volume(shape, spacing, radius_um=5.0)
    picture = render_preview(image, labels, spacing)
    for name, (rows, cols) in preview_layout(shape, spacing).items():
        inside = picture[rows, cols, 0] > 127  # half intensity: the ball, interior plus its outline
        r, c = np.nonzero(inside)
        height, width = np.ptp(r) + 1, np.ptp(c) + 1
        assert height == pytest.approx(width, rel=0.12), name


def test_outlines_are_coloured_and_only_on_objects():
    spacing = (1.0, 0.5, 0.5)
    image, labels = ball_volume((9, 30, 30), spacing, 3.0)
    picture = render_preview(image, labels, spacing)
    coloured = ~((picture[..., 0] == picture[..., 1]) & (picture[..., 1] == picture[..., 2]))
    assert coloured.sum() > 20
    empty = render_preview(image, np.zeros_like(labels), spacing)
    assert (empty[..., 0] == empty[..., 1]).all() and (empty[..., 1] == empty[..., 2]).all()


def test_single_plane_gives_the_xy_panel_only(tmp_path):
    spacing = (1.0, 0.5, 0.5)
    image, labels = ball_volume((1, 40, 60), spacing, radius_um=8)
    picture = render_preview(image, labels, spacing)
    assert list(preview_layout((1, 40, 60), spacing)) == ["xy"]
    assert picture.shape[1] / picture.shape[0] == pytest.approx(60 / 40, rel=0.02)
    write_preview(tmp_path / "p.png", image, labels, spacing)
    np.testing.assert_array_equal(iio.imread(tmp_path / "p.png"), picture)
