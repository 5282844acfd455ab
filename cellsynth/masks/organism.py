"""Organism (specimen) foregrounds: where cells may be. Every function returns a boolean ZYX volume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellsynth.checks import as_volume, check_spacing
from cellsynth.errors import InputError
from cellsynth.masks.nuclei import EllipsoidShape, random_sh_shape, rasterize_shapes


def _centre(volume_shape: Sequence[int], spacing: Sequence[float], centre_um: Sequence[float] | None) -> np.ndarray:
    if centre_um is None:
        return (np.asarray(volume_shape) - 1) * np.asarray(spacing) / 2
    return np.asarray(centre_um, float)


def _nonempty(mask: np.ndarray, what: str) -> np.ndarray:
    if not mask.any():
        raise InputError(f"{what} foreground is empty: the organism does not overlap the volume")
    return mask


def rotation_from_angles(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix (ZYX frame) from rotations about the z, y and x axes, in degrees, applied in that order."""
    rotation = np.eye(3)
    for axis, angle in enumerate(np.deg2rad(np.asarray(angles_deg, float))):
        c, s = np.cos(angle), np.sin(angle)
        a, b = [i for i in range(3) if i != axis]
        step = np.eye(3)
        step[a, a], step[a, b], step[b, a], step[b, b] = c, -s, s, c
        rotation = step @ rotation
    return rotation


def ellipsoid_organism(
    volume_shape: Sequence[int],
    spacing: Sequence[float],
    semi_axes_um: Sequence[float],
    *,
    angles_deg: Sequence[float] = (0.0, 0.0, 0.0),
    centre_um: Sequence[float] | None = None,
) -> np.ndarray:
    """An ellipsoidal specimen.

    Parameters
    ----------
    volume_shape : sequence of int
        ZYX voxels.
    spacing : sequence of 3 float
        Voxel size (z, y, x) in µm.
    semi_axes_um : sequence of 3 float
        Semi-axes along z, y, x before rotation, µm.
    angles_deg : sequence of 3 float
        Rotations about z, y, x in degrees.
    centre_um : sequence of 3 float, optional
        Centre in µm; default the volume centre.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> organism = ellipsoid_organism((20, 40, 40), (1.0, 0.5, 0.5), semi_axes_um=(8, 8, 8))
    >>> organism.dtype, organism.shape
    (dtype('bool'), (20, 40, 40))
    """
    spacing = check_spacing(spacing)
    axes = [float(a) for a in semi_axes_um]
    if len(axes) != 3 or not all(np.isfinite(a) and a > 0 for a in axes):
        raise InputError(f"semi_axes_um must be three numbers > 0 (µm); got {semi_axes_um!r}")
    shape = EllipsoidShape(tuple(axes), rotation_from_angles(angles_deg))
    labels, _ = rasterize_shapes(volume_shape, spacing, _centre(volume_shape, spacing, centre_um)[None], [shape])
    return _nonempty(labels > 0, "ellipsoid organism")


def sh_organism(
    volume_shape: Sequence[int],
    spacing: Sequence[float],
    mean_radius_um: float,
    *,
    gamma: float = 3.0,
    deformation: float = 0.1,
    lmax: int = 4,
    centre_um: Sequence[float] | None = None,
    rng=None,
) -> np.ndarray:
    """A smooth star-convex specimen from a low-degree spherical-harmonic expansion.

    Same recipe as :func:`cellsynth.masks.nuclei.random_sh_shape`, with a low ``lmax`` so the
    outline stays smooth at organism scale.

    Parameters
    ----------
    volume_shape : 3 ints
        The volume (voxels).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    mean_radius_um : float
        Mean radius in µm.
    gamma : float
        Smoothness: higher degrees decay as l^-gamma.
    deformation : float
        Relative RMS of the radius.
    lmax : int
        Highest degree.
    centre_um : 3 floats, optional
        The centre in µm; default the volume centre.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray of bool
        The specimen, ``volume_shape``.

    Examples
    --------
    >>> organism = sh_organism((20, 40, 40), (1.0, 0.5, 0.5), 8.0, rng=0)
    >>> organism.dtype, bool(organism[10, 20, 20]), bool(organism[0, 0, 0])
    (dtype('bool'), True, False)
    """
    rng = np.random.default_rng(rng)
    spacing = check_spacing(spacing)
    shape = random_sh_shape(mean_radius_um, gamma=gamma, deformation=deformation, lmax=lmax, rng=rng)
    labels, _ = rasterize_shapes(volume_shape, spacing, _centre(volume_shape, spacing, centre_um)[None], [shape])
    return _nonempty(labels > 0, "spherical-harmonic organism")


def ssm_organism(
    volume_shape: Sequence[int],
    spacing: Sequence[float],
    model,
    *,
    n_modes: int | None = None,
    centre_um: Sequence[float] | None = None,
    rng=None,
) -> np.ndarray:
    """A specimen drawn from a statistical shape model fitted to specimen foregrounds.

    Parameters
    ----------
    model : cellsynth.masks.ssm.StatisticalShapeModel
        E.g. ``fit_ssm(specimen_masks, spacing, per='foreground')``.
    n_modes : int, optional
        Modes to vary (default all), each within ±3σ.
    centre_um : sequence of 3 float, optional
        Where the shape's centre goes, µm; default the volume centre.
    volume_shape : 3 ints
        The volume (voxels).
    spacing : 3 floats
        Voxel size (z, y, x) in µm.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray of bool
        The specimen, ``volume_shape``.

    Examples
    --------
    >>> from cellsynth.masks.ssm import fit_ssm
    >>> ball = np.linalg.norm(np.indices((20, 20, 20)) - 9.5, axis=0) < 7
    >>> model = fit_ssm([ball.astype(np.uint16)], (1, 1, 1), per='foreground', n_directions=64)
    >>> organism = ssm_organism((24, 24, 24), (1, 1, 1), model, rng=0)
    >>> bool(abs(int(organism.sum()) - int(ball.sum())) < 0.1 * ball.sum())
    True
    """
    rng = np.random.default_rng(rng)
    spacing = check_spacing(spacing)
    shape = model.sample_shapes(1, n_modes=n_modes, rng=rng)[0]
    labels, _ = rasterize_shapes(volume_shape, spacing, _centre(volume_shape, spacing, centre_um)[None], [shape])
    return _nonempty(labels > 0, "shape-model organism")


def mask_organism(mask: np.ndarray) -> np.ndarray:
    """A user-given foreground (any array; non-zero = inside), validated as a non-empty ZYX volume.

    Parameters
    ----------
    mask : ndarray
        Non-zero inside.

    Returns
    -------
    ndarray of bool

    Examples
    --------
    >>> mask = np.zeros((4, 8, 8), np.uint16); mask[1:3, 2:6, 2:6] = 7
    >>> int(mask_organism(mask).sum())
    32
    """
    return _nonempty(as_volume(np.asarray(mask), "organism mask") != 0, "given organism mask")
