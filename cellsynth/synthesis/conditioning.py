"""What the learned generators are conditioned on: mask channels, the positional map, specimen masks.

The positional map (seed 001 eq. 1) is ``tanh(d/α)`` inside and ``tanh(−d/β)`` outside the
specimen, with ``d`` the Euclidean distance to the specimen surface **in µm**, computed once at full
resolution on the whole volume and then tiled with the image, so every patch keeps its global
position. The paper's α = β = 100 were measured on a 4×-strided voxel grid (≈ 400 full-resolution
voxels); at its ≈ 0.25 µm lateral spacing that is 100 µm, the default here. Smaller α makes the
map saturate closer to the surface (signal looks "deep" sooner: lower quality); larger α keeps the
whole specimen "near the surface" (higher quality).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu

from cellsynth.errors import InputError
from cellsynth.io import check_spacing
from cellsynth.masks.derived import instance_boundaries, specimen_mask

#: Default α and β (µm) of the positional map; see the module docstring.
DEFAULT_ALPHA_UM = 100.0
DEFAULT_BETA_UM = 100.0
#: What the mask channel shows: nuclei as filled objects (border voxels at half value), membranes as lines.
MASK_KINDS = ("nuclei", "membranes")


def positional_map(specimen: np.ndarray, spacing: Sequence[float], alpha_um: float = DEFAULT_ALPHA_UM,
                   beta_um: float = DEFAULT_BETA_UM) -> np.ndarray:
    """``tanh(d/α)`` inside, ``tanh(−d/β)`` outside the specimen; ``d`` = distance to its surface, µm.

    Parameters
    ----------
    specimen : ndarray of bool, ZYX
        The organism / specimen (foreground). The volume's border is not a surface: the specimen
        may continue outside the field of view.
    spacing : sequence of 3 float
        Voxel size (z, y, x), µm.
    alpha_um, beta_um : float
        Saturation lengths inside and outside, µm.

    Returns
    -------
    ndarray of float32 in (−1, 1)
        0 at the surface; 1 everywhere when the specimen fills the volume, −1 when it is empty.
    """
    spacing = check_spacing(spacing)
    if not (alpha_um > 0 and beta_um > 0 and np.isfinite(alpha_um) and np.isfinite(beta_um)):
        raise InputError(f"alpha and beta must be finite lengths > 0 µm; got {alpha_um} and {beta_um}")
    specimen = np.asarray(specimen, bool)
    if specimen.all() or not specimen.any():
        return np.full(specimen.shape, 1.0 if specimen.any() else -1.0, np.float32)
    inside = ndimage.distance_transform_edt(specimen, sampling=spacing)
    outside = ndimage.distance_transform_edt(~specimen, sampling=spacing)
    return np.where(specimen, np.tanh(inside / alpha_um), -np.tanh(outside / beta_um)).astype(np.float32)


def mask_channel(labels: np.ndarray, kind: str = "nuclei", membranes: np.ndarray | None = None) -> np.ndarray:
    """The generator's mask input (float32 in [0, 1]).

    ``nuclei``: 1 inside objects, 0.5 on each object's border voxels (so touching nuclei stay
    apart), 0 outside. ``membranes``: 1 on the membranes (``membranes`` if given, else the
    instance borders), 0 elsewhere.
    """
    if kind not in MASK_KINDS:
        raise InputError(f"unknown mask kind '{kind}'; choose one of {', '.join(MASK_KINDS)}")
    labels = np.asarray(labels)
    if kind == "membranes":
        lines = instance_boundaries(labels) if membranes is None else np.asarray(membranes, bool)
        return lines.astype(np.float32)
    channel = (labels > 0).astype(np.float32)
    channel[instance_boundaries(labels)] = 0.5
    return channel


def specimen_from_image(image: np.ndarray, spacing: Sequence[float], smooth_um: float = 1.0,
                        closing_um: float = 5.0) -> np.ndarray:
    """The specimen of a real image: Otsu threshold of a ``smooth_um`` Gaussian, closed and hole-filled.

    Raises
    ------
    InputError
        If the image is constant (no threshold exists).
    """
    spacing = check_spacing(spacing)
    image = np.asarray(image, np.float32)
    smoothed = gaussian(image, sigma=[smooth_um / s for s in spacing], preserve_range=True)
    if float(smoothed.max()) <= float(smoothed.min()):
        raise InputError("the image is constant: no specimen can be found in it")
    return specimen_mask(smoothed > threshold_otsu(smoothed), spacing, closing_um)


def specimen_of_masks(labels: np.ndarray, foreground: np.ndarray | None, spacing: Sequence[float],
                      closing_um: float = 5.0) -> np.ndarray:
    """The specimen of an annotation: the simulated organism, or (no organism: the cells fill the view,
    or a real segmentation) the objects closed by ``closing_um`` and hole-filled, as for real images."""
    if foreground is not None and not np.asarray(foreground, bool).all():
        return np.asarray(foreground, bool)
    return specimen_mask(labels, spacing, closing_um)


def gan_condition(labels: np.ndarray, spacing: Sequence[float], *, kind: str = "nuclei",
                  foreground: np.ndarray | None = None, membranes: np.ndarray | None = None,
                  alpha_um: float = DEFAULT_ALPHA_UM, beta_um: float = DEFAULT_BETA_UM) -> np.ndarray:
    """The cGAN generator's input ``(2, Z, Y, X)``: :func:`mask_channel` and the :func:`positional_map`
    of :func:`specimen_of_masks`, computed on the whole volume."""
    specimen = specimen_of_masks(labels, foreground, spacing)
    return np.stack([mask_channel(labels, kind, membranes), positional_map(specimen, spacing, alpha_um, beta_um)])
