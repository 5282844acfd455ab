"""PNG plots of the realism statistics (matplotlib, no display needed), written atomically."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cellsynth.evaluate.metrics import normalize
from cellsynth.io import write_bytes_atomic

COLOURS = {"real": "#1f77b4", "synthetic": "#d62728"}


def _figure(n_panels: int = 1, width: float = 5.0):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, 3.6), squeeze=False)
    return plt, figure, list(axes[0])


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _curves(ax, stats: Mapping[str, Mapping], key: str, *, log: bool = False) -> None:
    for name, values in stats.items():
        if key in values:
            x, y = values[key] if isinstance(values[key], tuple) else (np.arange(len(values[key])), values[key])
            ax.plot(x, y, label=name, color=COLOURS.get(name))
    if log:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def write_plots(
    images: Mapping[str, np.ndarray],
    stats: Mapping[str, Mapping],
    spacing: Sequence[float],
    out: str | os.PathLike,
    normalization: str = "percentile",
) -> list[Path]:
    """Write the comparison plots into the folder ``out``; returns their paths.

    Parameters
    ----------
    images : mapping name -> ndarray
        The images (e.g. ``{"real": ..., "synthetic": ...}``), normalised here for the histogram
        and the slices.
    stats : mapping name -> dict
        :func:`cellsynth.evaluate.realism.image_statistics` of each.
    spacing : 3 floats
        Voxel size in µm (axis labels, slice aspect).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    normalized = {name: normalize(image, normalization) for name, image in images.items()}
    paths = []

    plt, figure, (ax,) = _figure()
    for name, values in stats.items():
        ax.plot(np.arange(len(values["xz_profile"])) * spacing[2], values["xz_profile"], label=name,
                color=COLOURS.get(name))
    ax.set(xlabel="x (µm)", ylabel="Σ_z intensity", title="centre xz-slice integrated over z")
    ax.legend()
    paths.append(_save(plt, figure, out / "xz_profile.png"))

    plt, figure, axes = _figure(4, 4.0)
    _curves(axes[0], stats, "radial_spectrum", log=True)
    axes[0].set(xlabel="cycles/µm", ylabel="relative power", title="radial")
    for ax, axis in zip(axes[1:], "zyx", strict=True):
        for name, values in stats.items():
            if axis in values["axis_spectra"]:
                ax.plot(*values["axis_spectra"][axis], label=name, color=COLOURS.get(name))
        ax.set(yscale="log", xlabel="cycles/µm", title=f"along {axis}")
        ax.legend()
    paths.append(_save(plt, figure, out / "spectra.png"))

    plt, figure, (ax,) = _figure()
    for name, image in normalized.items():
        ax.hist(image.ravel(), bins=128, range=(-0.2, 1.2), density=True, histtype="step", label=name,
                color=COLOURS.get(name))
    ax.set(xlabel="normalised intensity", ylabel="density", yscale="log", title="histogram")
    ax.legend()
    paths.append(_save(plt, figure, out / "histogram.png"))

    plt, figure, axes = _figure(2)
    _curves(axes[0], stats, "depth_profile")
    axes[0].set(xlabel="z (µm)", ylabel="mean intensity", title="intensity vs depth")
    _curves(axes[1], stats, "surface_profile")
    axes[1].set(xlabel="signed distance to the specimen surface (µm, > 0 inside)", title="intensity vs surface")
    paths.append(_save(plt, figure, out / "depth.png"))

    plt, figure, axes = _figure(len(normalized), 4.5)
    for ax, (name, image) in zip(axes, normalized.items(), strict=True):
        middle = image[image.shape[0] // 2]
        ax.imshow(middle, cmap="gray", vmin=0, vmax=1, aspect=spacing[1] / spacing[2])
        ax.set(title=f"{name}, z = {image.shape[0] // 2}")
        ax.axis("off")
    paths.append(_save(plt, figure, out / "slices.png"))
    return paths
