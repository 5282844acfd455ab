"""Seam detection for tiled outputs: gradient energy on tile borders against everywhere else."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellsynth.errors import InputError


def seam_score(image: np.ndarray, planes: Sequence[Sequence[int]]) -> float:
    """Mean squared forward difference across the seam planes / the same over all other planes.

    Parameters
    ----------
    image : ndarray
        ZYX volume (or ``(C, Z, Y, X)``; channels are pooled).
    planes : sequence of 3 sequences of int
        Per axis, plane indices ``i`` (the boundary between voxels ``i − 1`` and ``i``), e.g.
        :meth:`cellsynth.synthesis.patching.PatchPlan.seam_planes`.

    Returns
    -------
    float
        About 1 when tile borders are indistinguishable from the rest, ≫ 1 for a visible seam;
        NaN when there is no seam plane.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((4, 32, 32))
    >>> image[:, :, 16:] += 0.5  # a step at x = 16
    >>> round(seam_score(image, [[], [], [16]]), 1), round(seam_score(image, [[], [], [8]]), 1)
    (3.0, 1.0)
    """
    image = np.asarray(image, np.float64)
    image = image[None] if image.ndim == 3 else image
    if image.ndim != 4 or len(planes) != 3:
        raise InputError("seam_score needs a ZYX (or CZYX) image and one list of planes per axis")
    at_seams, elsewhere = [], []
    for axis, axis_planes in enumerate(planes):
        energy = np.diff(image, axis=axis + 1) ** 2  # energy[k] is across plane k + 1
        per_plane = energy.mean(axis=tuple(a for a in range(4) if a != axis + 1))
        seam = np.zeros(len(per_plane), bool)
        for plane in axis_planes:
            if 1 <= plane <= len(per_plane):
                seam[plane - 1] = True
        at_seams.extend(per_plane[seam])
        elsewhere.extend(per_plane[~seam])
    if not at_seams:
        return float("nan")
    return float(np.mean(at_seams) / max(np.mean(elsewhere), 1e-30))
