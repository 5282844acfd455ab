"""Paired image metrics (real vs synthetic, original vs altered)."""

from __future__ import annotations

import numpy as np

from cellsynth.errors import InputError


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB, as ``skimage.metrics``.

    Parameters
    ----------
    reference, image : ndarray
        Arrays of equal shape.
    data_range : float
        The intensity range (1 for images normalised to [0, 1]).

    Returns
    -------
    float
        ``inf`` for identical arrays.
    """
    reference, image = np.asarray(reference, np.float64), np.asarray(image, np.float64)
    if reference.shape != image.shape:
        raise InputError(f"PSNR needs arrays of equal shape; got {reference.shape} and {image.shape}")
    if not data_range > 0:
        raise InputError(f"PSNR data_range must be > 0; got {data_range!r}")
    mse = float(np.mean((reference - image) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))
