"""Preview PNGs: three orthogonal mid-slices of an image with instance outlines, aspect-correct."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence

import imageio.v3 as iio
import numpy as np
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from cellsynth.checks import check_pair, check_spacing
from cellsynth.io import write_bytes_atomic

# Distinct outline colours (RGB); an instance's colour is its id modulo the palette length.
_PALETTE = np.array(
    [[255, 64, 64], [64, 224, 64], [80, 144, 255], [255, 208, 0], [255, 64, 255], [0, 224, 224],
     [255, 144, 32], [176, 112, 255], [160, 255, 96], [255, 128, 176], [96, 200, 160], [220, 220, 120]],
    np.uint8,
)
_GAP = 2
_BACKGROUND = 48


def preview_layout(
    shape: Sequence[int], spacing: Sequence[float], *, min_px: int = 256, max_px: int = 1024
) -> dict[str, tuple[slice, slice]]:
    """Where each panel of :func:`render_preview` sits on its canvas (rows, columns).

    Every panel uses the same µm per display pixel: the finest in-plane spacing, scaled so the
    longest side of the volume is between ``min_px`` and ``max_px`` pixels. Keys: ``'xy'``, and
    for Z > 1 also ``'yz'`` (right of XY, Z along columns) and ``'xz'`` (below XY).
    """
    nz = shape[0]
    extents = [n * s for n, s in zip(shape, spacing, strict=True)]
    used = slice(0, 3) if nz > 1 else slice(1, 3)
    longest, finest = max(extents[used]), min(spacing[used])
    unit = longest / float(np.clip(longest / finest, min_px, max_px))
    pz, py, px = (max(1, round(e / unit)) for e in extents)
    layout = {"xy": (slice(0, py), slice(0, px))}
    if nz > 1:
        layout["yz"] = (slice(0, py), slice(px + _GAP, px + _GAP + pz))
        layout["xz"] = (slice(py + _GAP, py + _GAP + pz), slice(0, px))
    return layout


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
    layout = preview_layout(image.shape, spacing, min_px=min_px, max_px=max_px)
    zc, yc, xc = (n // 2 for n in image.shape)
    planes = {
        "xy": (norm[zc], labels[zc]),
        "yz": (norm[:, :, xc].T, labels[:, :, xc].T),
        "xz": (norm[:, yc, :], labels[:, yc, :]),
    }
    height = max(rows.stop for rows, _ in layout.values())
    width = max(cols.stop for _, cols in layout.values())
    canvas = np.full((height, width, 3), _BACKGROUND, np.uint8)
    for name, (rows, cols) in layout.items():
        plane, ids = planes[name]
        canvas[rows, cols] = _panel(plane, ids, (rows.stop - rows.start, cols.stop - cols.start))
    return canvas


def write_preview(path: str | os.PathLike, image: np.ndarray, labels: np.ndarray, spacing: Sequence[float]) -> None:
    """Render :func:`render_preview` and write it as a PNG, atomically.

    Parameters
    ----------
    path : path-like
        The PNG file.
    image : ndarray
        ZYX.
    labels : ndarray
        Their instance labels (outlines).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> labels = np.zeros((4, 16, 16), np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> path = Path(tempfile.mkdtemp()) / 'preview.png'
    >>> write_preview(path, labels * 0.5, labels, (1.0, 0.5, 0.5))
    >>> path.read_bytes()[1:4]
    b'PNG'
    """
    buffer = io.BytesIO()
    iio.imwrite(buffer, render_preview(image, labels, spacing), extension=".png")
    write_bytes_atomic(path, buffer.getvalue())
