"""Paired image metrics: a real image against a synthetic one made from the real image's own labels.

Both images are first normalised *independently* (:func:`normalize`, default ``"percentile"``:
the 1st and 99.8th percentiles of each image map to 0 and 1, nothing clipped — the CSBDeep
convention), so the metrics judge structure and relative intensities, not the camera's units.
Then, over the whole volume and over the annotated foreground (labels > 0):

- NRMSE ``sqrt(MSE) / d`` with ``d`` = ``sqrt(mean(real²))`` (``"euclidean"``, the default of
  ``skimage.metrics.normalized_root_mse``), ``max − min`` (``"min-max"``) or ``mean`` (``"mean"``)
  of the real image over the region;
- SSIM: ``skimage.metrics.structural_similarity`` in 3D (7-voxel window, Gaussian weights off,
  explicit data range 1 after normalisation); over the foreground, the mean of its SSIM map there;
- ZNCC: the Pearson correlation, 1 for any positive affine intensity change;
- PSNR ``10 log10(data_range² / MSE)`` with data range 1.

Over the whole volume every figure equals ``skimage.metrics`` on the normalised images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage import metrics as skmetrics

from cellsynth.errors import InputError

NORMALIZATIONS = ("percentile", "min-max", "zscore", "none")
NRMSE_VARIANTS = ("euclidean", "min-max", "mean")
PERCENTILES = (1.0, 99.8)
SSIM_WINDOW = 7


def normalize(image: np.ndarray, method: str = "percentile", percentiles: Sequence[float] = PERCENTILES) -> np.ndarray:
    """Intensities mapped for comparison (float64).

    ``percentile``: ``(x − p_low) / (p_high − p_low)``, unclipped; ``min-max``: min → 0, max → 1;
    ``zscore``: zero mean, unit standard deviation; ``none``: unchanged.

    Parameters
    ----------
    image : ndarray
    method : {'percentile', 'min-max', 'zscore', 'none'}
    percentiles : 2 floats
        Mapped to 0 and 1 by ``percentile``.

    Returns
    -------
    ndarray
        float64, the shape of ``image``.

    Examples
    --------
    >>> normalize(np.array([[[0.0, 5.0, 10.0]]]), 'min-max').tolist()
    [[[0.0, 0.5, 1.0]]]
    >>> normalize(np.array([[[1.0, 2.0, 3.0]]]), 'zscore').round(3).tolist()
    [[[-1.225, 0.0, 1.225]]]
    """
    image = np.asarray(image, np.float64)
    if method == "none":
        return image
    if method == "zscore":
        low, scale = image.mean(), image.std()
    elif method in ("percentile", "min-max"):
        low, high = np.percentile(image, percentiles) if method == "percentile" else (image.min(), image.max())
        scale = high - low
    else:
        raise InputError(f"unknown normalisation '{method}'; accepted: {', '.join(NORMALIZATIONS)}")
    if scale <= 0:
        raise InputError(f"cannot normalise a constant image (every voxel {image.flat[0]:g}); "
                         "the metrics need intensity variation")
    return (image - low) / scale


def _pair(real: np.ndarray, synthetic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real, synthetic = np.asarray(real), np.asarray(synthetic)
    if real.shape != synthetic.shape:
        raise InputError(f"real image shape {real.shape} and synthetic shape {synthetic.shape} differ; "
                         "paired metrics need the same grid")
    if real.size == 0:
        raise InputError("paired metrics need non-empty images")
    return real, synthetic


def _region(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise InputError(f"labels shape {mask.shape} differs from the images' {shape}")
    mask = mask > 0
    if not mask.any():
        raise InputError("the labels are empty (no voxel > 0); foreground metrics need at least one object")
    return mask


def nrmse(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None,
          variant: str = "euclidean") -> float:
    """Normalised root-mean-square error over ``mask`` (default everything); see the module doc.

    Parameters
    ----------
    real, synthetic : ndarray
        The same shape, normalised.
    mask : ndarray of bool, optional
        Where to compare.
    variant : {'euclidean', 'min-max', 'mean'}
        The normalisation (module doc).

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> image = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    >>> float(nrmse(image, image))
    0.0
    """
    real, synthetic = _pair(real, synthetic)
    region = _region(mask, real.shape)
    r = real[region].astype(np.float64) if region is not None else real.astype(np.float64).ravel()
    s = synthetic[region].astype(np.float64) if region is not None else synthetic.astype(np.float64).ravel()
    if variant == "euclidean":
        denominator = np.sqrt(np.mean(r * r))
    elif variant == "min-max":
        denominator = r.max() - r.min()
    elif variant == "mean":
        denominator = r.mean()
    else:
        raise InputError(f"unknown NRMSE variant '{variant}'; accepted: {', '.join(NRMSE_VARIANTS)}")
    if denominator == 0:
        raise InputError(f"NRMSE ({variant}) is undefined: its normaliser is 0 for the real image")
    return float(np.sqrt(np.mean((r - s) ** 2)) / denominator)


def psnr(reference: np.ndarray, image: np.ndarray, data_range: float = 1.0, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB, as ``skimage.metrics``.

    Returns ``inf`` for identical arrays.

    Parameters
    ----------
    reference, image : ndarray
        The same shape.
    data_range : float
        The intensity range.
    mask : ndarray of bool, optional
        Where to compare.

    Returns
    -------
    float
        dB.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    >>> round(psnr(image, 0.9 * image), 2)
    24.74
    """
    reference, image = _pair(reference, image)
    if not data_range > 0:
        raise InputError(f"PSNR data_range must be > 0; got {data_range!r}")
    region = _region(mask, reference.shape)
    difference = reference.astype(np.float64) - image.astype(np.float64)
    mse = float(np.mean(difference[region] ** 2 if region is not None else difference**2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def zncc(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Zero-normalised cross-correlation (Pearson's r) over ``mask``; 1 for a positive affine change.

    Parameters
    ----------
    real, synthetic : ndarray
        The same shape.
    mask : ndarray of bool, optional
        Where to compare.

    Returns
    -------
    float
        In [−1, 1].

    Examples
    --------
    >>> import numpy as np
    >>> image = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8)
    >>> round(zncc(image, 2 * image + 1), 3)
    1.0
    """
    real, synthetic = _pair(real, synthetic)
    region = _region(mask, real.shape)
    r = (real[region] if region is not None else real.ravel()).astype(np.float64)
    s = (synthetic[region] if region is not None else synthetic.ravel()).astype(np.float64)
    r, s = r - r.mean(), s - s.mean()
    norm = np.sqrt((r * r).sum() * (s * s).sum())
    if norm == 0:
        which = "real" if (r == 0).all() else "synthetic"
        raise InputError(f"ZNCC is undefined: the {which} image is constant over the region")
    return float((r * s).sum() / norm)


def _ssim_map(real: np.ndarray, synthetic: np.ndarray, data_range: float) -> tuple[float, np.ndarray]:
    """skimage's mean SSIM and the full SSIM map (flat axes squeezed away)."""
    squeeze = tuple(a for a, n in enumerate(real.shape) if n == 1)
    r, s = np.squeeze(real, squeeze).astype(np.float64), np.squeeze(synthetic, squeeze).astype(np.float64)
    window = min(SSIM_WINDOW, *(n if n % 2 else n - 1 for n in r.shape))
    if window < 3:
        raise InputError(f"SSIM needs at least 3 voxels along each non-flat axis; got shape {real.shape}")
    mean, full = skmetrics.structural_similarity(r, s, data_range=data_range, win_size=window, full=True)
    return float(mean), full.reshape(real.shape)


def ssim(real: np.ndarray, synthetic: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """3D SSIM (``skimage.metrics.structural_similarity``, 7-voxel window) or its mean over ``mask``.

    Volumes with an axis shorter than 7 voxels use the largest odd window that fits; a single
    plane is compared in 2D.

    Parameters
    ----------
    real, synthetic : ndarray
        The same shape, normalised.
    mask : ndarray of bool, optional
        Average the SSIM map over it.
    data_range : float
        The intensity range.

    Returns
    -------
    float

    Examples
    --------
    >>> image = np.random.default_rng(0).random((4, 16, 16))
    >>> ssim(image, image), bool(ssim(image, 1 - image) < 0)
    (1.0, True)
    """
    real, synthetic = _pair(real, synthetic)
    region = _region(mask, real.shape)
    mean, full = _ssim_map(real, synthetic, data_range)
    return mean if region is None else float(full[region].mean())


def paired_metrics(
    real: np.ndarray,
    synthetic: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    normalization: str = "percentile",
    nrmse_variant: str = "euclidean",
) -> dict:
    """NRMSE, SSIM, ZNCC and PSNR of ``synthetic`` against ``real`` after :func:`normalize`.

    Parameters
    ----------
    real, synthetic : ndarray
        ZYX images of equal shape.
    labels : ndarray, optional
        The real image's labels: adds the same figures inside the foreground (labels > 0).
    normalization : {"percentile", "min-max", "zscore", "none"}
        Applied to each image on its own.
    nrmse_variant : {"euclidean", "min-max", "mean"}

    Returns
    -------
    dict
        ``{"whole": {...}, "foreground": {...}}`` (the latter only with labels), plus the
        normalisation used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> real = rng.random((4, 16, 16)); labels = np.zeros(real.shape, np.uint16); labels[1:3, 4:12, 4:12] = 1
    >>> metrics = paired_metrics(real, real + rng.normal(0, 0.05, real.shape), labels)
    >>> sorted(metrics['whole']), round(metrics['foreground']['zncc'], 2)
    (['nrmse', 'psnr_db', 'ssim', 'zncc'], 0.98)
    """
    real, synthetic = _pair(real, synthetic)
    if nrmse_variant not in NRMSE_VARIANTS:
        raise InputError(f"unknown NRMSE variant '{nrmse_variant}'; accepted: {', '.join(NRMSE_VARIANTS)}")
    a, b = normalize(real, normalization), normalize(synthetic, normalization)
    regions = {"whole": None} if labels is None else {"whole": None, "foreground": _region(labels, real.shape)}
    result: dict = {"normalization": normalization, "nrmse_variant": nrmse_variant}
    ssim_mean, ssim_full = _ssim_map(a, b, 1.0)
    for name, region in regions.items():
        result[name] = {"nrmse": nrmse(a, b, region, nrmse_variant),
                        "ssim": ssim_mean if region is None else float(ssim_full[region].mean()),
                        "zncc": zncc(a, b, region), "psnr_db": psnr(a, b, 1.0, region)}
    return result
