"""What the learned generators are conditioned on: mask channels, the positional map, specimen masks.

The positional map (Eschweiler et al., data synthesis eq. 1) is ``tanh(d/α)`` inside and ``tanh(−d/β)`` outside the
specimen, with ``d`` the Euclidean distance to the specimen surface **in µm**, computed once at full
resolution on the whole volume and then tiled with the image, so every patch keeps its global
position. The paper's α = β = 100 were measured on a 4×-strided voxel grid (≈ 400 full-resolution
voxels); at its ≈ 0.25 µm lateral spacing that is 100 µm, the default here. Smaller α makes the
map saturate closer to the surface (signal looks "deep" sooner: lower quality); larger α keeps the
whole specimen "near the surface" (higher quality).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu

from cellsynth.checks import check_spacing
from cellsynth.errors import InputError
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

    Examples
    --------
    >>> specimen = np.zeros((1, 1, 9), bool); specimen[..., 2:7] = True
    >>> positional_map(specimen, (1, 1, 1), alpha_um=2.0, beta_um=2.0)[0, 0].round(2)
    array([-0.76, -0.46,  0.46,  0.76,  0.91,  0.76,  0.46, -0.46, -0.76],
          dtype=float32)
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

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    kind : {'nuclei', 'membranes'}
        What the masks stain.
    membranes : ndarray, optional
        Membrane voxels (``kind='membranes'``).

    Returns
    -------
    ndarray
        float32 in [0, 1], the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((1, 3, 6), np.uint16); labels[0, :, 1:3] = 1; labels[0, :, 3:5] = 2
    >>> mask_channel(labels)[0, 1]
    array([0. , 0.5, 0.5, 0.5, 0.5, 0. ], dtype=float32)
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
    of :func:`specimen_of_masks`, computed on the whole volume.

    Parameters
    ----------
    labels : ndarray
        Instance labels.
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    kind : {'nuclei', 'membranes'}
        What the masks stain.
    foreground : ndarray, optional
        The specimen (default: from the masks).
    membranes : ndarray, optional
        Membrane voxels (``kind='membranes'``).
    alpha_um, beta_um : float
        Positional-map scales in µm (quality level α).

    Returns
    -------
    ndarray, shape (2, Z, Y, X)
        float32.

    Examples
    --------
    >>> labels = np.zeros((6, 24, 24), np.uint16); labels[1:5, 4:12, 4:12] = 1
    >>> condition = gan_condition(labels, (1.0, 0.5, 0.5), alpha_um=10, beta_um=10)
    >>> condition.shape, condition.dtype
    ((2, 6, 24, 24), dtype('float32'))
    """
    specimen = specimen_of_masks(labels, foreground, spacing)
    return np.stack([mask_channel(labels, kind, membranes), positional_map(specimen, spacing, alpha_um, beta_um)])


@dataclass(frozen=True)
class SketchStatistics:
    """Intensities of a sketch, in the normalised [0, 1] image range.

    Each object's intensity is drawn from N(object_mean, object_std²); the background from
    N(background_mean, background_std²) once per volume; membranes (membrane data) take the object
    law and the cells' insides the background's.

    Examples
    --------
    >>> SketchStatistics(object_mean=0.5).as_dict()
    {'object_mean': 0.5, 'object_std': 0.15, 'background_mean': 0.05, 'background_std': 0.02}
    """

    object_mean: float = 0.6
    object_std: float = 0.15
    background_mean: float = 0.05
    background_std: float = 0.02

    def as_dict(self) -> dict:
        return asdict(self)


def fit_sketch_statistics(image: np.ndarray, labels: np.ndarray | None = None,
                          spacing: Sequence[float] | None = None) -> SketchStatistics:
    """Fit :class:`SketchStatistics` to one normalised image and its labels.

    Without labels (the DDPM trains on unlabelled images), the objects are those of the classical
    segmentation (:func:`cellsynth.masks.segment.classical_segmentation`: 1 µm smoothing, Otsu,
    objects ≥ 50 µm³), not the raw voxels above Otsu, whose speckle would make the objects too dark.
    ``background_std`` is the spread of the background *between volumes* (one draw per volume):
    0 for one image; :func:`pooled_sketch_statistics` measures it over several.

    Parameters
    ----------
    image : ndarray
        A normalised image (ZYX, [0, 1]).
    labels : ndarray, optional
        Its instance labels (default: the classical segmentation).
    spacing : 3 floats, optional
        Voxel size in µm (needed without labels).

    Returns
    -------
    SketchStatistics

    Raises
    ------
    InputError
        If there is no object or no background, or labels are missing and so is the spacing.

    Examples
    --------
    >>> labels = np.zeros((6, 24, 24), np.uint16); labels[1:5, 4:12, 4:12] = 1; labels[1:5, 14:22, 14:22] = 2
    >>> image = np.where(labels > 0, 0.7, 0.1) + np.random.default_rng(0).normal(0, 0.01, labels.shape)
    >>> statistics = fit_sketch_statistics(image, labels)
    >>> round(statistics.object_mean, 2), round(statistics.background_mean, 2)
    (0.7, 0.1)
    """
    image = np.asarray(image, np.float32)
    if labels is None:
        if spacing is None:
            raise InputError("sketch statistics without labels need the voxel spacing (µm) to find the objects")
        from cellsynth.masks.segment import classical_segmentation

        labels = classical_segmentation(image, spacing)
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    if ids.size == 0 or (labels > 0).all():
        raise InputError("sketch statistics need both objects and background in the image")
    means = ndimage.mean(image, labels, ids)
    return SketchStatistics(float(np.mean(means)), float(np.std(means)), float(image[labels == 0].mean()), 0.0)


def pooled_sketch_statistics(statistics: Sequence[SketchStatistics]) -> SketchStatistics:
    """One law for several volumes: mean object law, mean background and the background's spread between them."""
    backgrounds = [s.background_mean for s in statistics]
    return SketchStatistics(float(np.mean([s.object_mean for s in statistics])),
                            float(np.mean([s.object_std for s in statistics])), float(np.mean(backgrounds)),
                            float(np.std(backgrounds)))


def make_sketch(labels: np.ndarray, spacing: Sequence[float], statistics: SketchStatistics,
                *, blur_um: Sequence[float] | float = 0.0,
                membranes: np.ndarray | None = None, rng=None) -> np.ndarray:
    """A blurred intensity sketch of ``labels`` (float32 in [0, 1]) to start the DDPM from.

    Parameters
    ----------
    labels : ndarray of int, ZYX
    spacing : 3 floats
        Voxel size (µm).
    statistics : SketchStatistics
    rng : numpy.random.Generator
        Draws the per-object and background intensities.
    blur_um : float or 3 floats
        Gaussian σ (µm, per axis); the reference blurs by 1 voxel of its training data.
    membranes : ndarray of bool, optional
        Membrane data: the membranes are the bright objects, the cells take the background law.

    Returns
    -------
    ndarray
        float32 in [0, 1], the shape of ``labels``.

    Examples
    --------
    >>> labels = np.zeros((6, 24, 24), np.uint16); labels[1:5, 4:12, 4:12] = 1
    >>> sketch = make_sketch(labels, (1.0, 0.5, 0.5), SketchStatistics(), blur_um=0.5, rng=0)
    >>> sketch.shape, bool(sketch[3, 8, 8] > sketch[0, 20, 20]), bool(0 <= sketch.min() and sketch.max() <= 1)
    ((6, 24, 24), True, True)
    """
    rng = np.random.default_rng(rng)
    spacing = check_spacing(spacing)
    labels = np.asarray(labels)
    background = rng.normal(statistics.background_mean, statistics.background_std)
    if membranes is not None:
        sketch = np.where(np.asarray(membranes, bool), rng.normal(statistics.object_mean, statistics.object_std),
                          background)
    else:
        intensities = rng.normal(statistics.object_mean, statistics.object_std, int(labels.max()) + 1)
        intensities[0] = background
        sketch = intensities[labels]
    sketch = np.clip(sketch, 0.0, 1.0).astype(np.float32)
    sigma = np.broadcast_to(np.asarray(blur_um, float), (3,)) / np.asarray(spacing)
    if np.any(sigma < 0):
        raise InputError(f"the sketch blur must be >= 0 µm; got {blur_um}")
    return ndimage.gaussian_filter(sketch, sigma) if np.any(sigma > 0) else sketch
