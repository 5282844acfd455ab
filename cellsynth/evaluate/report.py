"""``cellsynth report``: one self-contained HTML page about a dataset (images inlined as base64)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import numpy as np

from cellsynth.checks import check_output
from cellsynth.dataset import Dataset
from cellsynth.dataset.previews import render_preview
from cellsynth.errors import DatasetError
from cellsynth.evaluate.realism import contrast, radial_spectrum
from cellsynth.io import jsonable, write_bytes_atomic

MAX_PREVIEWS = 12


def _png(data: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _plot(draw) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    figure, ax = plt.subplots(figsize=(5, 3.4))
    draw(ax)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return _png(buffer.getvalue())


def sample_statistics(dataset: Dataset) -> list[dict]:
    """Per done sample: object count, object volumes (µm³), and image intensity statistics."""
    rows = []
    for index in dataset.done():
        sample = dataset.read_sample(index)
        voxel_um3 = float(np.prod(sample.spacing))
        volumes = np.bincount(sample.labels.ravel())[1:]
        volumes = volumes[volumes > 0] * voxel_um3
        row = {"name": dataset.name(index), "shape": list(sample.labels.shape), "spacing_um": list(sample.spacing),
               "n_objects": int(len(volumes)), "object_volumes_um3": volumes.tolist(),
               "foreground_fraction": float(np.mean(sample.labels > 0))}
        if sample.image is not None:
            image = sample.image.astype(np.float64)
            row["intensity"] = {"mean": float(image.mean()), "std": float(image.std()),
                                "p1": float(np.percentile(image, 1)), "p99": float(np.percentile(image, 99))}
            if 0 < row["foreground_fraction"] < 1:
                row["contrast"] = contrast(image, sample.labels)
            row["_spectrum"] = radial_spectrum(image, sample.spacing)
        rows.append(row)
    return rows


def write_report(root: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False) -> Path:
    """Write a self-contained HTML report of a dataset: its samples, statistics, plots and previews.

    Parameters
    ----------
    root : path-like
        The dataset folder.
    out : path-like, optional
        The HTML file (default: report.html in the dataset folder, replaced each time).
    overwrite : bool
        Replace an existing file at ``out`` (never a file of the dataset).

    Returns
    -------
    Path
        The report's path.
    """
    dataset = Dataset.open(root)
    if not dataset.done():
        raise DatasetError(f"dataset '{root}' has no finished sample to report on")
    dataset_files = [dataset.root / "manifest.json",
                     *(dataset.root / file["path"] for entry in dataset.samples for file in entry["files"].values())]
    out = check_output(out, "report", folder=False, overwrite=overwrite, inputs=dataset_files) if out is not None \
        else Path(root) / "report.html"
    stats = sample_statistics(dataset)
    sections = [f"<h1>cellsynth dataset report: {html.escape(str(Path(root).name))}</h1>",
                f"<p>{len(stats)} of {len(dataset)} samples done; created {html.escape(dataset.manifest['created'])}"
                f", seed {dataset.manifest.get('seed')}.</p>"]

    counts = [s["n_objects"] for s in stats]
    volumes = np.concatenate([s["object_volumes_um3"] for s in stats]) if any(counts) else np.zeros(0)
    rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{'×'.join(map(str, s['shape']))}</td><td>{s['n_objects']}</td>"
        f"<td>{100 * s['foreground_fraction']:.1f} %</td>"
        + (f"<td>{s['intensity']['mean']:.4g} ± {s['intensity']['std']:.3g}</td>"
           f"<td>{s['contrast']['ratio']:.3g}</td>" if "contrast" in s else "<td>–</td><td>–</td>")
        + "</tr>" for s in stats)
    sections.append("<h2>Samples</h2><table><tr><th>sample</th><th>shape (ZYX)</th><th>objects</th>"
                    "<th>foreground</th><th>intensity mean ± sd</th><th>object/background</th></tr>"
                    f"{rows}</table>")
    summary = (f"<p>Objects per sample: {np.mean(counts):.1f} on average (min {min(counts)}, max {max(counts)}). "
               + (f"Object volume: median {np.median(volumes):.1f} µm³, equivalent radius "
                  f"{np.median((3 * volumes / (4 * np.pi)) ** (1 / 3)):.2f} µm.</p>" if len(volumes) else "</p>"))
    sections.append("<h2>Labels</h2>" + summary)
    plots = []
    if len(volumes):
        plots.append(_plot(lambda ax: (ax.hist(volumes, bins=40), ax.set(xlabel="object volume (µm³)",
                                                                          ylabel="objects"))))
    spectra = [s for s in stats if "_spectrum" in s]
    if spectra:
        def draw(ax):
            for s in spectra[:MAX_PREVIEWS]:
                ax.plot(*s["_spectrum"], label=s["name"])
            ax.set(yscale="log", xlabel="cycles/µm", ylabel="relative power", title="radial power spectrum")
        plots.append(_plot(draw))
    sections.append("<h2>Plots</h2>" + "".join(plots))

    previews = []
    for index in dataset.done()[:MAX_PREVIEWS]:
        entry = dataset.samples[index]
        if "preview" in entry["files"]:
            data = (dataset.root / entry["files"]["preview"]["path"]).read_bytes()
        else:
            sample = dataset.read_sample(index)
            shown = sample.image if sample.image is not None else (sample.labels > 0).astype(np.float32)
            buffer = io.BytesIO()
            from imageio import v3 as iio

            iio.imwrite(buffer, render_preview(shown, sample.labels, sample.spacing), extension=".png")
            data = buffer.getvalue()
        previews.append(f"<figure>{_png(data)}<figcaption>{html.escape(entry['name'])}</figcaption></figure>")
    sections.append("<h2>Previews</h2>" + "".join(previews))

    parameters = {"config": dataset.manifest.get("config"), "versions": dataset.manifest.get("versions"),
                  "levels": dataset.manifest.get("levels"),
                  "first_sample_params": dataset.samples[dataset.done()[0]].get("params")}
    metrics = [{k: v for k, v in s.items() if not k.startswith("_") and k != "object_volumes_um3"} for s in stats]
    sections.append("<h2>Metrics</h2><pre>" + html.escape(json.dumps(jsonable(metrics), indent=1)) + "</pre>")
    sections.append("<h2>Parameters (manifest)</h2><pre>" + html.escape(json.dumps(jsonable(parameters), indent=1))
                    + "</pre>")
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>cellsynth report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px}figure{display:inline-block;margin:4px}"
            "img{max-width:560px}pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:400px}</style>"
            "</head><body>" + "\n".join(sections) + "</body></html>\n")
    write_bytes_atomic(out, page.encode())
    return out
