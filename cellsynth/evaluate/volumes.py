"""Volumes for evaluation put on one grid (they are read by :func:`~cellsynth.dataset.samples.as_samples`).

Everything that compares or trains on volumes from different sources (C2ST, the classical
baseline, Syn2Real) goes through these few functions, so that "the same spacing" means one thing
everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellsynth.checks import Spacing, check_spacing


def common_spacing(spacings: Sequence[Sequence[float]]) -> Spacing:
    """The coarsest voxel size per axis: every volume can be brought to it without inventing detail."""
    spacings = [check_spacing(s) for s in spacings]
    return tuple(float(max(s[axis] for s in spacings)) for axis in range(3))  # type: ignore[return-value]


def grid_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, int, int]:
    """The shape that covers the field of view of ``shape`` voxels of ``spacing`` with voxels of ``target`` µm.

    Examples
    --------
    >>> grid_shape((60, 256, 256), (0.29, 0.26, 0.26), (0.5, 0.5, 0.5))
    (35, 133, 133)
    """
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))  # type: ignore


def resample(volume: np.ndarray, spacing: Sequence[float], target: Sequence[float], *, order: int = 1,
             shape: Sequence[int] | None = None) -> np.ndarray:
    """``volume`` on a grid of voxel size ``target`` (µm), covering the same field of view.

    Parameters
    ----------
    volume : ndarray
        ZYX volume.
    spacing, target : 3 floats
        Its voxel size and the wanted one, in µm.
    order : int
        Interpolation order: 1 (linear, for images; low-pass filtered first when coarsening, so
        noise does not alias) or 0 (nearest, for labels).
    shape : 3 ints, optional
        The output shape (default ``round(n · spacing / target)``, at least 1).

    Returns
    -------
    ndarray
        float32 for order 1, the input dtype for order 0. Unchanged when the grids agree.

    Examples
    --------
    >>> resample(np.ones((10, 20, 20)), (0.5, 0.25, 0.25), (0.5, 0.5, 0.5)).shape
    (10, 10, 10)
    """
    from skimage.transform import resize

    spacing, target = check_spacing(spacing), check_spacing(target, "target spacing")
    shape = grid_shape(volume.shape, spacing, target) if shape is None else tuple(int(n) for n in shape)
    if shape == volume.shape:
        return volume.astype(np.float32, copy=False) if order else volume
    if order == 0:
        return resize(volume, shape, order=0, mode="edge", anti_aliasing=False, preserve_range=True).astype(
            volume.dtype)
    coarser = any(m < n for m, n in zip(shape, volume.shape, strict=True))
    return resize(volume.astype(np.float32, copy=False), shape, order=1, mode="edge", anti_aliasing=coarser,
                  preserve_range=True).astype(np.float32)


