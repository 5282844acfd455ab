"""``cellsynth calibrate --report``: every measured value as JSON, and real beside synthetic as one PNG."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from cellsynth.checks import check_output_folder
from cellsynth.evaluate.metrics import normalize
from cellsynth.evaluate.realism import radial_spectrum
from cellsynth.io import jsonable, write_bytes_atomic, write_json_atomic
from cellsynth.masks.derived import centreness
from cellsynth.masks.simulate import masks_from_labels
from cellsynth.synthesis.fit import interior_profile
from cellsynth.synthesis.optics import OpticsRenderer
from cellsynth.synthesis.preset import Calibration


def render_like(calibration: Calibration, spacing: Sequence[float], seed: int = 0) -> np.ndarray:
    """The first calibration image's own labels drawn by the calibrated physics renderer."""
    labels = calibration.labels[0]
    renderer = OpticsRenderer(calibration.config.optics, calibration.config.patching)
    return renderer.render(masks_from_labels(labels, spacing, calibration.config.masks),
                           np.random.default_rng(seed)).image


def write_calibration_report(calibration: Calibration, spacing: Sequence[float], out: str | os.PathLike) -> Path:
    """Write ``calibration.json`` (value and method of each measurement) and ``calibration.png`` into ``out``.

    The PNG shows, for the real image and the calibrated renderer drawing the same labels: the
    middle z-plane, the intensity histograms (each normalised on its own), the radially averaged
    power spectra (cycles/µm) and the in-object profile against normalised depth.

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.synthesis.calibrate import calibrate
    >>> image, labels, spacing = toy_nuclei()
    >>> out = write_calibration_report(calibrate(image, spacing, labels), spacing, Path(tempfile.mkdtemp()) / "report")
    >>> sorted(path.name for path in out.iterdir())
    ['calibration.json', 'calibration.png']
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    out = check_output_folder(out)
    real = calibration.images[0].astype(np.float64)
    labels = calibration.labels[0]
    synthetic = render_like(calibration, spacing).astype(np.float64)
    depth = centreness(labels, spacing)
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.2))
    middle = real.shape[0] // 2
    for ax, (name, image) in zip(axes[:2], (("real", real), ("calibrated renderer, same labels", synthetic)),
                                 strict=True):
        ax.imshow(normalize(image[middle]), cmap="gray", vmin=0, vmax=1, aspect=spacing[1] / spacing[2])
        ax.set(title=f"{name}, z = {middle}")
        ax.axis("off")
    profiles = {}
    for name, image, colour in (("real", real, "#1f77b4"), ("synthetic", synthetic, "#d62728")):
        normalized = normalize(image)
        axes[2].hist(normalized.ravel(), bins=128, range=(-0.2, 1.4), density=True, histtype="step", label=name,
                     color=colour)
        axes[3].plot(*radial_spectrum(normalized, spacing), label=name, color=colour)
        ids = np.flatnonzero(np.bincount(labels.ravel()))[1:]
        background = float(np.median(image[labels == 0])) if (labels == 0).any() else 0.0
        means = np.asarray(ndi.mean(image, labels, ids))
        profiles[name] = interior_profile(image, labels, depth, means, ids, background)
        axes[4].plot(*np.asarray(profiles[name]).T, "o-", label=name, color=colour)
    axes[2].set(xlabel="normalised intensity", yscale="log", title="histogram")
    axes[3].set(xlabel="cycles/µm", yscale="log", title="radial power spectrum")
    axes[4].set(xlabel="normalised depth (0 surface, 1 centre)", ylabel="intensity / object mean",
                title="in-object profile")
    for ax in axes[2:]:
        ax.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    out.mkdir(exist_ok=True)
    write_bytes_atomic(out / "calibration.png", buffer.getvalue())
    write_json_atomic(out / "calibration.json", jsonable({"measured": calibration.report(),
                                                          "config": calibration.config.model_dump(mode="json"),
                                                          "profiles": profiles}))
    return out
