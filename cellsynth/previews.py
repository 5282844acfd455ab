"""Preview PNGs: three orthogonal mid-slices of an image with instance outlines, aspect-correct."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from cellsynth.io import check_pair, check_spacing, write_bytes_atomic

# Distinct outline colours (RGB); an instance's colour is its id modulo the palette length.
_PALETTE = np.array(
    [[255, 64, 64], [64, 224, 64], [80, 144, 255], [255, 208, 0], [255, 64, 255], [0, 224, 224],
     [255, 144, 32], [176, 112, 255], [160, 255, 96], [255, 128, 176], [96, 200, 160], [220, 220, 120]],
    np.uint8,
)
_GAP = 2
_BACKGROUND = 48


def _display_unit(extents_um: Sequence[float], finest_um: float, min_px: int, max_px: int) -> float:
    """µm per display pixel: the finest spacing, but keep the longest side within [min_px, max_px]."""
    longest = max(extents_um)
    return longest / float(np.clip(longest / finest_um, min_px, max_px))


def _panel(image: np.ndarray, labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    grey = resize(image, size, order=1, preserve_range=True, anti_aliasing=False)
    ids = resize(labels, size, order=0, preserve_range=True, anti_aliasing=False).astype(labels.dtype)
    rgb = np.repeat((np.clip(grey, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)
    edges = find_boundaries(ids, mode="inner") & (ids > 0)
    rgb[edges] = _PALETTE[ids[edges] % len(_PALETTE)]
    return rgb


def render_preview(
    image: np.ndarray,
    labels: np.ndarray,
    spacing: Sequence[float],
    *,
    min_px: int = 256,
    max_px: int = 1024,
) -> np.ndarray:
    """Compose the XY, XZ and YZ mid-slices with label outlines into one RGB picture.

    Layout as in Fiji's orthogonal views: XY top-left, YZ (Z along x) to its right, XZ below.
    Every panel is resampled to the same µm per pixel, so anisotropic voxels look right. A
    single-plane image (Z = 1) gives the XY panel alone.

    Parameters
    ----------
    image, labels : ndarray
        Image and instance labels of equal ZYX (or YX) shape.
    spacing : sequence of 3 float
        Voxel size ``(z, y, x)`` in µm.
    min_px, max_px : int
        Bounds of the longest side of the volume in display pixels.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    image, labels = check_pair(image, labels)
    spacing = check_spacing(spacing)
    lo, hi = np.percentile(image, (1, 99.8))
    norm = (image.astype(np.float32) - lo) / max(float(hi - lo), 1e-12)
    nz, ny, nx = image.shape
    extents = [n * s for n, s in zip(image.shape, spacing, strict=True)]
    in_plane = extents if nz > 1 else extents[1:]
    unit = _display_unit(in_plane, min(spacing if nz > 1 else spacing[1:]), min_px, max_px)
    pz, py, px = (max(1, round(e / unit)) for e in extents)
    zc, yc, xc = nz // 2, ny // 2, nx // 2
    xy = _panel(norm[zc], labels[zc], (py, px))
    if nz == 1:
        return xy
    xz = _panel(norm[:, yc, :], labels[:, yc, :], (pz, px))
    yz = _panel(norm[:, :, xc].T, labels[:, :, xc].T, (py, pz))
    canvas = np.full((py + _GAP + pz, px + _GAP + pz, 3), _BACKGROUND, np.uint8)
    canvas[:py, :px] = xy
    canvas[:py, px + _GAP:] = yz
    canvas[py + _GAP:, :px] = xz
    return canvas


def write_preview(path: str | os.PathLike, image: np.ndarray, labels: np.ndarray, spacing: Sequence[float]) -> None:
    """Render :func:`render_preview` and write it as a PNG, atomically."""
    buffer = io.BytesIO()
    iio.imwrite(buffer, render_preview(image, labels, spacing), extension=".png")
    write_bytes_atomic(path, buffer.getvalue())
