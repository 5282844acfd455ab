"""A calibration's result: the measured config with how each value was measured, and its preset file.

:func:`~cellsynth.synthesis.calibrate.calibrate` (nuclei) and
:func:`~cellsynth.synthesis.calibrate_membranes.calibrate_membranes` both return a
:class:`Calibration`; :func:`write_calibration` writes it as commented YAML.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cellsynth.checks import Spacing, check_labels
from cellsynth.config import Config, parse_yaml, set_dotted, validate_config
from cellsynth.errors import InputError
from cellsynth.io import write_bytes_atomic
from cellsynth.synthesis.measure import CameraFit, Storage


@dataclass(frozen=True)
class Measurement:
    """One calibrated value and how it was measured.

    Attributes
    ----------
    value : object
        What the calibration found (for a config path: the value the preset takes).
    how : str
        One sentence saying how it was measured (the preset file's comment).

    Examples
    --------
    >>> Measurement(51.3, "photon transfer slope").how
    'photon transfer slope'
    """

    value: Any
    how: str


class Measurements:
    """What a calibration finds, keyed by nested config path (``optics.camera.gain``), and the preset
    they make: every value set here goes into the config, those with a ``how`` are reported too.

    Examples
    --------
    >>> found = Measurements()
    >>> found.set("dataset.n_samples", 2)  # a choice: set, not reported
    2
    >>> found.set("optics.camera.gain", 51.3, "photon transfer slope")
    51.3
    >>> found.note("camera_points", [[1.0, 2.0]], "report only: no config path")
    [[1.0, 2.0]]
    >>> config = found.preset()
    >>> config.optics.camera.gain, sorted(found.found)
    (51.3, ['camera_points', 'optics.camera.gain'])
    """

    def __init__(self):
        self.settings: dict[str, Any] = {}
        self.found: dict[str, Measurement] = {}

    @classmethod
    def of_volume(cls, kind: str, shape: Sequence[int], spacing: Spacing, n_samples: int, seed: int) -> Measurements:
        """What every calibration sets first: the dataset, the volume like the calibration image's, the
        kind of masks and the physics renderer.

        Parameters
        ----------
        kind : {'nuclei', 'membranes'}
        shape : 3 ints
            The calibration image's shape (voxels).
        spacing : 3 floats
            Its voxel size in µm.
        n_samples, seed : int
            The dataset section.

        Returns
        -------
        Measurements
        """
        found = cls()
        for path, value in (("dataset.n_samples", n_samples), ("dataset.seed", seed),
                            ("dataset.name_prefix", "calibrated")):
            found.set(path, value)
        found.set("volume.shape", list(shape), "the calibration image's own shape (voxels)")
        found.set("volume.spacing_um", list(spacing))
        found.set("masks.kind", kind)
        found.set("renderer.name", "optics")
        return found

    def set_camera(self, camera: CameraFit, storage: Storage, gain_how: str = "") -> None:
        """The camera section from photon transfer (:func:`~cellsynth.synthesis.measure.measure_camera`)
        and the images' storage (:class:`~cellsynth.synthesis.measure.Storage`).

        Parameters
        ----------
        camera : CameraFit
            The photon transfer, with the offset as finally chosen.
        storage : Storage
            How the images store camera counts (the output type and units).
        gain_how : str
            Said after the gain's sentence.
        """
        detector = "optics.camera."
        self.set(detector + "read_noise", round(camera.read_noise, 4), "from the photon-transfer intercept at the "
                 "offset (electrons)")
        self.set(detector + "gain", round(camera.gain, 4), f"photon transfer slope over {len(camera.points)} "
                 f"intensity bins{gain_how}")
        self.set(detector + "offset", round(camera.offset, 3), camera.offset_how)
        for key, value in storage.camera_config().items():
            self.set(detector + key, value, storage.describe())
        self.note("camera_points", camera.points, "photon transfer: (mean, noise variance) per bin")

    def set(self, path: str, value, how: str | None = None):
        """``value`` for the config ``path``, measured ``how`` (None: a choice, not a measurement); returns it."""
        self.settings[path] = value
        if how is not None:
            self.found[path] = Measurement(value, how)
        return value

    def note(self, name: str, value, how: str):
        """A finding the report shows that is no config value (``camera_points``); returns ``value``."""
        self.found[name] = Measurement(value, how)
        return value

    def preset(self, source: str = "calibration") -> Config:
        """The validated config: the defaults with every value set here (None included: "none found")."""
        return validate_config(set_dotted({}, self.settings, source), source)  # type: ignore[return-value]


@dataclass
class Calibration:
    """What :func:`calibrate` measured: the config, and each value with how it was measured.

    Attributes
    ----------
    config : Config
        Validated; ``cellsynth generate`` accepts it unchanged.
    measured : dict of str to Measurement
        Nested config path (or a report-only name) → what was found and how.
    labels : list of ndarray
        The labels the measurements used (given, or from the classical segmentation).
    images : list of ndarray
        The images measured.

    Examples
    --------
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.synthesis.calibrate import calibrate
    >>> image, labels, spacing = toy_nuclei(gain=2.0)
    >>> calibration = calibrate(image, spacing, labels)
    >>> found = calibration.measured["optics.camera.gain"]
    >>> round(found.value, 1), found.how  # doctest: +ELLIPSIS
    (2.0, 'photon transfer slope over 24 intensity bins ...')
    >>> calibration.config.optics.camera.gain == found.value
    True
    """

    config: Config
    measured: dict = field(default_factory=dict)
    labels: list = field(default_factory=list, repr=False)
    images: list = field(default_factory=list, repr=False)

    def yaml(self, header: str = "") -> str:
        """The config as YAML, every measured value followed by a comment saying how it was measured."""
        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        full = self.config.model_dump(mode="json")
        shown = self.config.model_dump(mode="json", exclude_defaults=True)
        for dotted in self.measured:  # a measured value stays visible even where it equals the default
            keys = dotted.split(".")
            value = full
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None and not _has(full, keys):
                continue
            target = shown
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = value
        _emit(_ordered(shown, full), self.measured, "", 0, lines)
        return "\n".join(lines) + "\n"


    def report(self) -> dict:
        """The findings as JSON-ready ``{path: {"value": ..., "how": ...}}`` (``calibrate --report``)."""
        return {key: {"value": m.value, "how": m.how} for key, m in self.measured.items()}

    def summary(self) -> str:
        """One line: the camera, the PSF and the objects measured.

        Examples
        --------
        >>> from cellsynth.examples import toy_nuclei
        >>> from cellsynth.synthesis.calibrate import calibrate
        >>> image, labels, spacing = toy_nuclei(gain=2.0)
        >>> calibrate(image, spacing, labels).summary()  # doctest: +ELLIPSIS
        'gain 2.0... ADU/e-, PSF σ 0.00/0.10 µm (z/xy), 4 nuclei of 4.96 µm (flattening 1.00), texture 0.01'
        """
        specimen, masks = self.config.optics.specimen, self.config.masks
        psf = self.config.optics.microscope.psf_sigma_um
        objects = (f"{masks.placement.n_cells} nuclei of {masks.nuclei.radius_um:.2f} µm (flattening "
                   f"{masks.nuclei.flattening:.2f}), texture {specimen.texture:.2f}" if masks.kind == "nuclei" else
                   f"{masks.placement.n_cells} cells, membranes {masks.membranes.thickness_um:.2f} µm thick, "
                   f"cytoplasm {specimen.cytoplasm:.2f}")
        return f"gain {self.config.optics.camera.gain:.3g} ADU/e-, PSF σ {psf[0]:.2f}/{psf[1]:.2f} µm (z/xy), {objects}"


def _has(data: dict, keys: Sequence[str]) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _ordered(shown: dict, full: dict) -> dict:
    """``shown`` with its keys in the order of the config's fields."""
    return {key: _ordered(shown[key], full[key]) if isinstance(shown[key], dict) else shown[key]
            for key in full if key in shown}


def _flow(value) -> str:
    """``value`` as one line of flow-style YAML (a scalar alone would get a document-end marker)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10_000, allow_unicode=True).strip()[1:-1]


def _emit(data: dict, measured: dict, prefix: str, depth: int, lines: list[str]) -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        indent = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            _emit(value, measured, dotted + ".", depth + 1, lines)
            continue
        comment = f"  # {measured[dotted].how}" if dotted in measured else ""
        lines.append(f"{indent}{key}: {_flow(value)}{comment}")


def check_calibration_inputs(images, labels, spacing) -> tuple[list[np.ndarray], list[np.ndarray] | None, Spacing]:
    """The images (3D, not constant), their labels (one per image, same shape) and the one spacing, checked.

    ``images`` is anything :func:`~cellsynth.dataset.samples.as_samples` reads; Samples bring their
    spacing and, when ``labels`` is None and every one has them, their labels.
    """
    from cellsynth.dataset.samples import as_samples  # reads files and dataset folders: imported when used

    if labels is not None and isinstance(labels, np.ndarray):
        labels = [labels]
    if isinstance(images, (list, tuple)) and not images:
        raise InputError("calibration needs at least one image")
    samples = as_samples(images, spacing, what="calibration")
    spacings = sorted({sample.spacing for sample in samples})
    if len(spacings) > 1:
        raise InputError(f"the calibration images differ in voxel spacing ({', '.join(map(str, spacings))} µm); "
                         "calibrate one microscope setting at a time")
    spacing = spacings[0]
    if labels is None and all(sample.labels is not None for sample in samples):
        labels = [sample.labels for sample in samples]
    checked = []
    for index, image in enumerate(sample.image for sample in samples):
        if image.shape[0] < 3:
            raise InputError(f"image {index} has {image.shape[0]} plane(s); calibration needs a 3D stack "
                             "(at least 3 planes) to measure the PSF along z and the arrangement in depth")
        if float(image.max()) == float(image.min()):
            raise InputError(f"image {index} is constant ({float(image.min()):g}): there is nothing to measure")
        checked.append(image)
    if labels is not None:
        if len(labels) != len(checked):
            raise InputError(f"got {len(checked)} images but {len(labels)} label volumes; give one per image")
        labels = [check_labels(lab, f"labels {i}") for i, lab in enumerate(labels)]
        for index, (image, lab) in enumerate(zip(checked, labels, strict=True)):
            if lab.shape != image.shape:
                raise InputError(f"labels {index} of shape {lab.shape} do not match image {index} of shape "
                                 f"{image.shape}")
    return checked, labels, spacing


def write_calibration(calibration: Calibration, path: str | os.PathLike, sources: Sequence[str] = ()) -> Path:
    """Write the calibrated preset as commented YAML, atomically, after checking that it reads back unchanged.

    Parameters
    ----------
    calibration : Calibration
    path : path-like
        The YAML file.
    sources : sequence of str
        Named in the header.

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile
    >>> from cellsynth.config import load_config
    >>> from cellsynth.examples import toy_nuclei
    >>> from cellsynth.synthesis.calibrate import calibrate
    >>> image, labels, spacing = toy_nuclei(gain=2.0)
    >>> path = write_calibration(calibrate(image, spacing, labels), Path(tempfile.mkdtemp()) / "mine.yaml",
    ...                          sources=["nuclei.tif"])
    >>> path.read_text().splitlines()[0]
    '# cellsynth preset written by `cellsynth calibrate` from nuclei.tif.'
    >>> round(load_config(path).optics.camera.gain, 1)
    2.0
    """
    path = Path(path)
    header = ("cellsynth preset written by `cellsynth calibrate`" + (f" from {', '.join(map(str, sources))}"
                                                                     if sources else "") +
              ".\nEach measured value carries a comment saying how it was measured; every length is in µm.\n"
              "Use it with `cellsynth generate THIS.yaml --out DIR`; check it with `cellsynth config check`.")
    text = calibration.yaml(header)
    if validate_config(parse_yaml(text.encode(), str(path)), str(path)) != calibration.config:
        raise RuntimeError("the calibrated preset does not read back as written")  # a bug, never the user's input
    write_bytes_atomic(path, text.encode())
    return path

