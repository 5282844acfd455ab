"""Probabilistic image diversification from local intensity statistics (Eschweiler et al., diversification, eq. 1).

Each voxel becomes a distribution, ``Ĩ(x) = N(0, 1) · w_v · σ_x + w_i · I_x``, where ``σ_x`` is the
standard deviation of the intensities in a small cube around ``x``. ``σ`` is computed once per image
(:func:`local_std`), after which any number of appearances are drawn on the fly
(:func:`diversify`). ``w = (w_i, w_v) = (1, 0)`` is the neutral element: the image itself.

The weight strategies of the paper's §3 (truncated-normal weights, stacked and curriculum
diversification, test-time augmentation) are in :mod:`cellsynth.augment.weights`.

Images must be normalised to [0, 1] (see :func:`normalize_percentiles`): the result is clipped to
that range, as in the paper.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from cellsynth.checks import check_image, check_spacing
from cellsynth.errors import InputError

#: Neutral weights ``(w_i, w_v)``: the input image, unchanged.
NEUTRAL = (1.0, 0.0)
#: Default weight limits of the paper (§3): ``w_i ∈ [0.2, 1.8]``, ``w_v ∈ [0, 8]``.
W_I_LIMITS = (0.2, 1.8)
W_V_LIMITS = (0.0, 8.0)
#: Default neighbourhood edge ``s_σ`` in voxels (5³ = 125 values).
NEIGHBOURHOOD = 5
#: Largest weight: with intensities in [0, 1], w·σ beyond this saturates every voxel.
MAX_WEIGHT = 1000.0
#: Largest neighbourhood edge, voxels: the filter cost grows with it and no volume needs more.
MAX_NEIGHBOURHOOD = 1001
_RANGE_SLACK = 1e-6  # float32 rounding of a [0, 1] normalisation


def neighbourhood_voxels(
    size: int | Sequence[int] | None = None,
    *,
    size_um: float | Sequence[float] | None = None,
    spacing: Sequence[float] | None = None,
) -> tuple[int, int, int]:
    """The cube ``s_σ`` as odd voxel counts per axis, given in voxels or in µm.

    Parameters
    ----------
    size : int or 3 ints, optional
        Edge length in voxels: odd and at least 3 (default 5 when ``size_um`` is not given); per
        axis, an axis may be 1 (what ``size_um`` gives a coarse z axis).
    size_um : float or 3 floats, optional
        Edge length in µm instead; each axis gets the nearest odd voxel count (at least 1, so a
        coarse z axis may be a single plane), which needs ``spacing``.
    spacing : 3 floats, optional
        Voxel size ``(z, y, x)`` in µm.

    Returns
    -------
    tuple of 3 int

    Raises
    ------
    InputError
        On an even or < 3 voxel size, a non-positive µm size, or a µm size without spacing or
        that covers a single voxel.

    Examples
    --------
    >>> neighbourhood_voxels(5), neighbourhood_voxels(size_um=1.5, spacing=(1.0, 0.25, 0.25))
    ((5, 5, 5), (1, 5, 5))
    """
    if size is not None and size_um is not None:
        raise InputError("give the neighbourhood in voxels or in µm, not both")
    if size_um is None:
        sizes = np.broadcast_to(np.asarray(NEIGHBOURHOOD if size is None else size), 3)
        if not np.issubdtype(sizes.dtype, np.integer) or (sizes < 1).any() or (sizes % 2 == 0).any() \
                or sizes.max() < 3 or sizes.max() > MAX_NEIGHBOURHOOD:
            raise InputError(f"neighbourhood size s_σ must be odd voxel counts from 3 to {MAX_NEIGHBOURHOOD} (e.g. 5; "
                             f"one axis may be 1, as a coarse z in µm gives); got {size!r}")
        return tuple(int(s) for s in sizes)  # type: ignore[return-value]
    if spacing is None:
        raise InputError("a neighbourhood in µm needs the voxel spacing (z, y, x) in µm")
    lengths = np.broadcast_to(np.asarray(size_um, float), 3)
    if not (np.isfinite(lengths) & (lengths > 0)).all():
        raise InputError(f"neighbourhood size in µm must be > 0; got {size_um!r}")
    half = np.rint((lengths / np.asarray(check_spacing(spacing)) - 1) / 2).clip(0)
    sizes = tuple(int(2 * h + 1) for h in half)
    if max(sizes) > MAX_NEIGHBOURHOOD:
        raise InputError(f"neighbourhood of {size_um!r} µm spans {max(sizes)} voxels at spacing {tuple(spacing)} µm; "
                         f"at most {MAX_NEIGHBOURHOOD}")
    if max(sizes) < 3:
        raise InputError(f"neighbourhood of {size_um!r} µm covers a single voxel at spacing {tuple(spacing)} µm; "
                         "it needs at least 3 voxels along one axis")
    return sizes  # type: ignore[return-value]


def local_std(image: np.ndarray, size: int | Sequence[int] = NEIGHBOURHOOD) -> np.ndarray:
    """Standard deviation of the intensities in the cube of ``size`` voxels around every voxel.

    Computed from two box filters (of ``x`` and ``x²``, mirror-reflected at the borders like
    ``scipy.ndimage.generic_filter(image, np.std, size, mode="reflect")``, which it equals) in
    float32 about the image mean.

    Parameters
    ----------
    image : ndarray
        ZYX intensities.
    size : int or 3 ints
        Neighbourhood edge per axis in voxels (see :func:`neighbourhood_voxels`).

    Returns
    -------
    ndarray of float32
        ``σ_x``, the image's shape.

    Examples
    --------
    >>> image = np.zeros((4, 8, 8), np.float32); image[:, :, 4:] = 1
    >>> std = local_std(image, 3)
    >>> float(std[2, 4, 0]), round(float(std[2, 4, 4]), 3)
    (0.0, 0.471)
    """
    image = check_image(image).astype(np.float32)
    size = neighbourhood_voxels(size)
    centred = image - np.float32(image.mean())  # keeps E[x²] − E[x]² well conditioned in float32
    mean = ndi.uniform_filter(centred, size, mode="reflect")
    mean_square = ndi.uniform_filter(centred * centred, size, mode="reflect")
    variance = np.subtract(mean_square, mean * mean, out=mean_square)
    return np.sqrt(np.maximum(variance, 0, out=variance), out=variance)


def _check_unit_range(image: np.ndarray, what: str = "image") -> None:
    low, high = float(image.min()), float(image.max())
    if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
        raise InputError(f"{what} intensities must be normalised to [0, 1] for diversification; got "
                         f"[{low:.4g}, {high:.4g}] (see cellsynth.augment.normalize_percentiles)")


def check_weights(w_i: float, w_v: float) -> tuple[float, float]:
    """``(w_i, w_v)`` as floats; both must be finite and >= 0."""
    for name, value in (("w_i", w_i), ("w_v", w_v)):
        if not np.isfinite(value) or not 0 <= value <= MAX_WEIGHT:
            raise InputError(f"{name} must be a finite number from 0 to {MAX_WEIGHT:g} (the image is normalised to "
                             f"[0, 1]: larger weights saturate every voxel); got {value!r}")
    return float(w_i), float(w_v)


def diversify(
    image: np.ndarray,
    std: np.ndarray,
    w_i: float,
    w_v: float,
    rng=None,
) -> np.ndarray:
    """One diversified appearance ``clip(N(0, 1) · w_v · σ_x + w_i · I_x, 0, 1)`` (eq. 1).

    Parameters
    ----------
    image : ndarray
        ZYX intensities normalised to [0, 1].
    std : ndarray
        ``σ_x`` of ``image`` (:func:`local_std`), same shape.
    w_i, w_v : float
        Intensity and variance weights, >= 0. ``(1, 0)`` returns a float32 copy of the image.
    rng : numpy.random.Generator, int or None
        Seeds the draw: ``N(0, 1)`` comes from torch's CPU generator (twice as fast as numpy's
        for a 64×128×128 patch) seeded with ``rng.integers(2**63)``, so the same ``rng`` state
        gives the same image.

    Returns
    -------
    ndarray of float32

    Examples
    --------
    >>> image = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    >>> altered = diversify(image, local_std(image), 1.0, 2.0, rng=0)
    >>> altered.dtype, bool(0 <= altered.min() and altered.max() <= 1)
    (dtype('float32'), True)
    >>> bool((altered == diversify(image, local_std(image), 1.0, 2.0, rng=0)).all())  # same rng, same image
    True
    """
    w_i, w_v = check_weights(w_i, w_v)
    image = check_image(image).astype(np.float32, copy=False)
    if np.shape(std) != image.shape:
        raise InputError(f"local std shape {np.shape(std)} differs from the image shape {image.shape}")
    _check_unit_range(image)
    seed = int(np.random.default_rng(rng).integers(2**63))  # drawn for the neutral element too: later draws keep
    if (w_i, w_v) == NEUTRAL:
        return image.copy()
    import torch  # here, not at import: augment is numpy in, numpy out; torch only draws the noise fast

    noise = _standard_normal(image.shape, seed)
    noise.mul_(torch.from_numpy(np.ascontiguousarray(std, np.float32))).mul_(w_v)
    noise.add_(torch.from_numpy(np.ascontiguousarray(image)), alpha=w_i).clamp_(0, 1)
    return noise.numpy()


def _standard_normal(shape: Sequence[int], seed: int):
    import torch

    return torch.empty(tuple(shape), dtype=torch.float32).normal_(generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- weight strategies


def normalize_percentiles(image: np.ndarray, low: float = 0.0, high: float = 100.0) -> np.ndarray:
    """Map the ``low`` and ``high`` intensity percentiles to 0 and 1 and clip to [0, 1] (float32).

    The default (0, 100) is a min–max normalisation, which clips nothing; a constant image maps
    to zeros.

    Parameters
    ----------
    image : ndarray
    low, high : float
        Percentiles mapped to 0 and 1.

    Returns
    -------
    ndarray
        float32 in [0, 1], the shape of ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> normalize_percentiles(np.array([[[0.0, 5.0, 10.0]]])).tolist()
    [[[0.0, 0.5, 1.0]]]
    """
    if not 0 <= low < high <= 100:
        raise InputError(f"percentiles must satisfy 0 <= low < high <= 100; got ({low:g}, {high:g})")
    image = check_image(image).astype(np.float32)
    lo, hi = np.percentile(image, [low, high]) if (low, high) != (0, 100) else (image.min(), image.max())
    return rescale(image, lo, hi)


def rescale(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(image − low) / (high − low)`` clipped to [0, 1], float32 (zeros when ``high <= low``).

    The one intensity normalisation of training data (:func:`normalize_percentiles`, and the
    stored mapping a generator is trained with); saturated voxels are exactly 0 or 1.

    Examples
    --------
    >>> rescale(np.array([0.0, 5.0, 20.0]), 0.0, 10.0).tolist()
    [0.0, 0.5, 1.0]
    """
    image = np.asarray(image, np.float32)
    if high <= low:
        return np.zeros_like(image)
    return np.clip((image - np.float32(low)) / np.float32(high - low), 0, 1)
