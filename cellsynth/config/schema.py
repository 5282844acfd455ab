"""The generation config (``cellsynth generate``): volume, masks, renderer, optics, patching, dataset
and output sections. Every length is in µm."""

from __future__ import annotations

import math
import warnings
from typing import Annotated, Literal

from pydantic import Field, model_validator

from cellsynth.checks import MAX_VOXELS
from cellsynth.config.base import (
    Finite,
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
    PositiveUm,
    Seed,
    StrictModel,
    TripleUm,
)


class OutputConfig(StrictModel):
    """Which files each dataset sample gets besides its image and labels."""

    previews: bool = Field(True, description="write previews/NAME.png (orthogonal mid-slices with outlines)")
    semantic: bool = Field(True, description="write semantic/NAME.tif (0 background, 1 interior, 2 border)")
    tiff_compression: Literal["none", "zlib"] = Field(
        "none", description="zlib shrinks files; Fiji then opens them through Bio-Formats only"
    )
    centroids: bool = Field(True, description="write centroids/NAME.csv: id, z, y, x (µm), volume (µm³), radius")
    meshes: Literal["none", "ply", "obj", "stl"] = Field(
        "none", description="write meshes/NAME/cell_ID.FORMAT: one surface per cell (µm, XYZ) for viewing"
    )


class VolumeConfig(StrictModel):
    """Geometry of each generated sample."""

    shape: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (32, 128, 128), description="voxels (Z, Y, X); Z = 1 makes 2D samples"
    )
    spacing_um: tuple[PositiveUm, PositiveUm, PositiveUm] = Field(
        (0.29, 0.26, 0.26), description="voxel size (z, y, x) in µm; default = scikit-image cells3d"
    )

    @model_validator(mode="after")
    def _not_too_large(self):
        if math.prod(self.shape) > MAX_VOXELS:
            raise ValueError(f"shape {list(self.shape)} has {math.prod(self.shape):,} voxels; at most {MAX_VOXELS:,} "
                             "(tile a larger field)")
        return self


class OrganismConfig(StrictModel):
    """The specimen: where cells may be. ``none`` fills the whole volume (a field of view inside tissue)."""

    kind: Literal["none", "ellipsoid", "sh", "ssm", "mask"] = "none"
    semi_axes_um: tuple[PositiveUm, PositiveUm, PositiveUm] | None = Field(
        None, description="ellipsoid semi-axes (z, y, x) in µm; default 45 % of the volume's extent")
    angles_deg: tuple[Finite, Finite, Finite] = Field((0.0, 0.0, 0.0), description="ellipsoid rotation about z, y, x")
    radius_um: PositiveUm | None = Field(None, description="sh: mean radius in µm; default 40 % of the smallest extent")
    gamma: PositiveUm = Field(3.0, description="sh: smoothness (larger is smoother)")
    deformation: Annotated[float, Field(ge=0, le=1)] = Field(0.1, description="sh: relative RMS of the radius")
    lmax: Annotated[int, Field(ge=2, le=16)] = 4
    ssm_model: str | None = Field(None, description="ssm: a model .npz from `cellsynth masks fit-ssm --per foreground`")
    mask: str | None = Field(None, description="mask: a volume file (non-zero = inside) of the volume's shape")

    @model_validator(mode="after")
    def _needs_file(self):
        for kind, key in (("ssm", "ssm_model"), ("mask", "mask")):
            if self.kind == kind and getattr(self, key) is None:
                raise ValueError(f"organism kind '{kind}' needs '{key}' (a file path)")
        return self


class PlacementConfig(StrictModel):
    """Cell centres (nuclei) or Voronoi seeds (membranes)."""

    method: Literal["poisson", "layers", "detections"] = Field(
        "poisson", description="poisson: blue noise; layers: shells inward from the organism surface; "
        "detections: a CSV of z, y, x in µm")
    n_cells: PositiveInt | None = Field(None, description="how many; default as many as fit")
    min_distance_um: TripleUm = Field(
        (9.0, 9.0, 9.0),
        description="minimum centre distance in µm, one or (z, y, x); layers: spacing of the outer layer")
    decay: Annotated[float, Field(gt=0, le=1)] = Field(0.9, description="layers: spacing grows by 1/decay per layer")
    z_range_um: tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)],
                      Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None, description="poisson: centres only at depths z (µm from the first plane) in [low, high]: "
                          "a monolayer or slab; null: the whole depth")
    detections: str | None = Field(None, description="detections: CSV file with columns z, y, x (µm)")

    @model_validator(mode="after")
    def _needs_file(self):
        if self.method == "detections" and self.detections is None:
            raise ValueError("placement method 'detections' needs 'detections' (a CSV path)")
        if self.method == "layers" and len(set(self.min_distance_um)) > 1:
            raise ValueError("placement method 'layers' needs one min_distance_um (µm) for all axes")
        if self.z_range_um is not None and (self.method != "poisson" or self.z_range_um[0] > self.z_range_um[1]):
            raise ValueError("z_range_um is [low, high] µm with low <= high, for placement method 'poisson'")
        return self


class NucleiConfig(StrictModel):
    """Star-convex nuclei at the cell centres."""

    shape: Literal["sh", "ellipsoid", "ssm"] = "sh"
    radius_um: PositiveUm = Field(4.0, description="mean radius, µm (sh, ellipsoid)")
    radius_std_um: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(0.4, description="spread of the radius")
    gamma: PositiveUm = Field(5.0, description="sh: smoothness, degree power ∝ l^-gamma (paper: 5)")
    deformation: Annotated[float, Field(ge=0, le=0.4)] = Field(
        0.15, description="sh: relative RMS of the radius (above 0.4 the draws would need damping to keep every "
                          "radius positive, and the RMS would not be what is asked)")
    lmax: Annotated[int, Field(ge=2, le=32)] = 12
    elongation: PositiveUm = Field(1.0, description="ellipsoid: long/short axis along the organism's surface normal")
    flattening: Annotated[float, Field(gt=0, le=4, allow_inf_nan=False)] = Field(
        1.0, description="minor/major axis ratio of a squeeze along flattening_axis, volume kept (1: none; "
                         "< 1: oblate, e.g. nuclei lying flat in a monolayer)")
    flattening_axis: Literal["z", "random"] = Field("z", description="z: the optical axis; random: per nucleus")
    ssm_model: str | None = Field(None, description="ssm: a model .npz from `cellsynth masks fit-ssm`")
    ssm_modes: NonNegativeInt | None = Field(None, description="ssm: how many modes vary (default all)")
    ssm_limit: Annotated[float, Field(gt=0, le=10)] = Field(
        3.0, description="ssm: each mode's coefficient stays within ± this many standard deviations")

    @model_validator(mode="after")
    def _needs_model(self):
        if self.shape == "ssm" and self.ssm_model is None:
            raise ValueError("nucleus shape 'ssm' needs 'ssm_model' (a file path)")
        return self


class MembranesConfig(StrictModel):
    """Weighted-Voronoi cells filling the organism, with their membranes."""

    weights: tuple[PositiveUm, PositiveUm] = Field((1.0, 1.25), description="seed weights ~ U(low, high)")
    thickness_um: PositiveUm = Field(0.5, description="membrane thickness, µm")
    include_surface: bool = Field(False, description="also draw a membrane along the organism surface")


class MasksConfig(StrictModel):
    """What to simulate: nuclei or membrane-bounded cells, inside an organism."""

    kind: Literal["nuclei", "membranes"] = "nuclei"
    organism: OrganismConfig = OrganismConfig()
    placement: PlacementConfig = PlacementConfig()
    nuclei: NucleiConfig = NucleiConfig()
    membranes: MembranesConfig = MembranesConfig()


class InclusionConfig(StrictModel):
    """One kind of inclusion inside objects: a Poisson number of balls per object, centred away from its surface."""

    per_object: Annotated[float, Field(ge=0, le=50)] = Field(1.0, description="mean count per object (Poisson)")
    radius_um: PositiveUm = Field(0.8, description="mean radius, µm")
    radius_std_um: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(0.2, description="radius spread, µm")
    factor: Annotated[float, Field(ge=0, le=20, allow_inf_nan=False)] = Field(
        0.5, description="density inside relative to the object's: < 1 dark (nucleoli), > 1 bright (chromocenters)")


class SpecimenConfig(StrictModel):
    """The fluorophores: per-object brightness, profile, inclusions and texture; ambient light; attenuation."""

    brightness_sigma: Annotated[float, Field(ge=0, le=3)] = Field(
        0.18, description="log-normal spread of the per-cell fluorophore density (median 1)")
    texture: Annotated[float, Field(ge=0, le=5)] = Field(0.45, description="relative amplitude of nucleus texture")
    texture_scales_um: tuple[PositiveUm, PositiveUm] = Field(
        (0.4, 2.0), description="texture length scales (fine, coarse) in µm: band-pass noise between them")
    texture_spectrum: list[tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)],
                                 Annotated[float, Field(ge=0, allow_inf_nan=False)]]] | None = Field(
        None, description="texture amplitude spectrum before the PSF: [cycles/µm, relative amplitude] knots "
                          "(e.g. from `cellsynth calibrate`); replaces texture_scales_um when given")
    texture_law: Literal["additive", "lognormal"] = Field(
        "additive", description="additive: density × max(0, 1 + a·n); lognormal: density × exp(a·n − a²/2), "
                                "skewed to bright spots and never 0 (a = texture, n unit-variance noise)")
    texture_sigma: Annotated[float, Field(ge=0, le=3)] = Field(
        0.0, description="log-normal spread of each object's texture amplitude (0: the same for all)")
    interior_profile: list[tuple[Annotated[float, Field(ge=0, le=1)],
                                 Annotated[float, Field(ge=0, allow_inf_nan=False)]]] | None = Field(
        None, description="density against normalised depth inside each object, [depth, factor] knots from 0 "
                          "(its surface) to 1 (its centre); factor > 1 near 0 is a bright rim")
    inclusions: list[InclusionConfig] = Field(
        [], description="kinds of small balls inside objects: dark nucleoli (factor < 1), bright chromocenters "
                        "(factor > 1); none by default")
    cytoplasm: Annotated[float, Field(ge=0, le=1)] = Field(
        0.05, description="membrane cells: density of the cell interior relative to its membrane")
    background: NonNegative = Field(0.2, description="autofluorescence inside the organism")
    ambient_texture: Annotated[float, Field(ge=0, le=3)] = Field(
        0.0, description="relative amplitude a of a texture over the ambient light (autofluorescence + haze): "
                         "ambient × max(0, 1 + a·n), cytoplasm and out-of-focus structure (0: uniform)")
    ambient_spectrum: list[tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)],
                                 Annotated[float, Field(ge=0, allow_inf_nan=False)]]] | None = Field(
        None, description="its amplitude spectrum before the PSF: [cycles/µm, relative amplitude] knots; "
                          "default: band-pass between texture_scales_um")
    background_outside: NonNegative = Field(0.03, description="background outside the organism")
    attenuation_length_um: PositiveUm | None = Field(
        80.0, description="signal falls by 1/e per this depth below the surface (µm); null: no attenuation")

    @model_validator(mode="after")
    def _scales_ordered(self):
        if self.texture_scales_um[0] >= self.texture_scales_um[1]:
            raise ValueError("texture_scales_um must be (fine, coarse) with fine < coarse")
        for name in ("texture_spectrum", "ambient_spectrum", "interior_profile"):
            knots = getattr(self, name)
            increasing = knots is not None and all(b[0] > a[0] for a, b in zip(knots[:-1], knots[1:], strict=True))
            if knots is not None and (len(knots) < 2 or not increasing):
                raise ValueError(f"{name} needs two or more [x, value] knots with increasing x")
        return self


class MicroscopeConfig(StrictModel):
    """The optics: a Gaussian PSF (measured σ, or from NA, wavelength and index) and out-of-focus haze."""

    numerical_aperture: Annotated[float, Field(gt=0, le=1.7)] = 1.0
    wavelength_um: Annotated[float, Field(gt=0.2, lt=2.0)] = Field(0.52, description="emission wavelength, µm")
    refractive_index: Annotated[float, Field(ge=1.0, le=1.7)] = Field(1.33, description="immersion medium")
    confocal: bool = Field(True, description="pinhole-limited PSF (σ / √2) instead of widefield")
    psf_sigma_um: tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)],
                        Annotated[float, Field(ge=0, allow_inf_nan=False)],
                        Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = Field(
        None, description="measured Gaussian PSF σ (z, y, x) in µm; replaces the one from NA, wavelength and index")
    haze: NonNegative = Field(0.35, description="out-of-focus light, relative to the signal")
    haze_scale_um: PositiveUm = Field(3.0, description="blur (σ, µm) of the out-of-focus light")


class CameraConfig(StrictModel):
    """The detector: photons per unit density, shot and read noise, gain, offset, bit depth, output type."""

    photons: Positive = Field(250.0, description="expected photo-electrons per voxel at density 1")
    read_noise: NonNegative = Field(2.0, description="camera read noise, electrons RMS")
    gain: Positive = Field(4.0, description="ADU per electron")
    offset: NonNegative = Field(100.0, description="camera offset, ADU")
    bit_depth: Annotated[int, Field(ge=8, le=16)] = Field(12, description="camera ADC bits (full scale 2^bits − 1)")
    noise_correlation_um: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = Field(
        0.0, description="σ (µm) of a Gaussian that correlates the camera noise between neighbouring voxels "
                         "(variance kept); 0: independent voxels")
    output_dtype: Literal["float32", "uint16", "uint8"] = Field(
        "float32", description="float32: ADU × output_scale; uint16 or uint8 (bit_depth 8): the ADU themselves")
    output_scale: Positive | None = Field(
        None, description="float32 output per ADU (the calibration images' units); default: 1 / full scale, "
                          "so that the image is in [0, 1]")

    @model_validator(mode="after")
    def _uint8_holds_the_range(self):
        if self.output_dtype == "uint8" and self.bit_depth != 8:
            raise ValueError(f"uint8 output needs bit_depth 8 (got {self.bit_depth}); use uint16 or float32")
        return self


#: Section of each key of the physics renderer's config (older YAML gave them all flat under ``optics``).
OPTICS_SECTIONS = {name: section for section, model in (("specimen", SpecimenConfig), ("microscope", MicroscopeConfig),
                                                        ("camera", CameraConfig)) for name in model.model_fields}


class OpticsConfig(StrictModel):
    """The physics renderer (`cellsynth.synthesis.optics`), as microsim names its parts: specimen, microscope
    and camera. A flat key of older YAML (``optics.photons``) is read into its section and wins over it."""

    specimen: SpecimenConfig = SpecimenConfig()
    microscope: MicroscopeConfig = MicroscopeConfig()
    camera: CameraConfig = CameraConfig()

    @model_validator(mode="before")
    @classmethod
    def _flat_keys_into_sections(cls, data):
        if not isinstance(data, dict) or not any(key in OPTICS_SECTIONS for key in data):
            return data
        flat = sorted(key for key in data if key in OPTICS_SECTIONS)
        warnings.warn(f"flat optics keys ({', '.join(flat)}) are read into their sections; write them as "
                      f"optics.specimen / optics.microscope / optics.camera (e.g. optics.{OPTICS_SECTIONS[flat[0]]}."
                      f"{flat[0]})", DeprecationWarning, stacklevel=2)
        nested = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()
                  if key not in OPTICS_SECTIONS}
        for key, value in data.items():
            if key in OPTICS_SECTIONS:
                section = nested.setdefault(OPTICS_SECTIONS[key], {})
                if not isinstance(section, dict):
                    return data  # the section's own validation names the problem
                section[key] = value
        return nested


class PatchingConfig(StrictModel):
    """How generators run over volumes of any size (`cellsynth.synthesis.patching`), in voxels."""

    patch: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (128, 256, 256), description="largest tile (z, y, x); shrunk to the smallest one needing no more tiles")
    overlap: NonNegativeInt = Field(8, description="least overlap of neighbouring tile cores")
    crop: NonNegativeInt = Field(4, description="margin cut from every tile output")
    window: Literal["hann", "gaussian", "pyramid", "constant"] = "hann"
    batch_size: PositiveInt | None = Field(
        None, description="tiles per call; default 1 on the CPU, for a learned generator on a GPU as many as fit "
                          "in half its free memory")

    @model_validator(mode="after")
    def _fits(self):
        if any(self.overlap + 2 * self.crop >= p for p in self.patch):
            raise ValueError(f"overlap + 2·crop ({self.overlap} + 2·{self.crop}) must be smaller than every "
                             f"patch size {list(self.patch)}")
        return self


class RendererConfig(StrictModel):
    """Which renderer makes the images (the config section ``renderer``; older YAML called it ``generator``)."""

    name: Literal["optics", "gan", "ddpm", "refine"] = Field(
        "optics", description="optics needs no training; refine: the optics renderer finished by a ddpm checkpoint "
                              "trained on your images")
    checkpoint: str | None = Field(None, description="gan, ddpm, refine: a cellsynth checkpoint (.safetensors)")
    alpha_um: list[PositiveUm] | None = Field(
        None, description="gan: positional-map α (µm) per quality level; several = every sample at each level; "
                          "default the checkpoint's"
    )

    sampler: Literal["ddpm", "ddim", "dpmsolver"] = Field(
        "dpmsolver", description="ddpm: ancestral (the reference, needs ~t_start steps); ddim; dpmsolver (DPM-Solver++)"
    )
    steps: Annotated[int, Field(ge=1, le=10_000)] = Field(
        25, description="ddpm: denoising steps (at most the checkpoint's training timesteps)")
    t_start: NonNegativeInt | None = Field(
        None, description="ddpm: noise the sketch to this timestep (default 400 of 1000), refine: the physics image "
                          "(default 50); or strength, or snr"
    )
    strength: Annotated[float, Field(ge=0, lt=1)] | None = Field(None, description="ddpm: t_start / T")
    snr: Positive | None = Field(None, description="ddpm: start where ᾱ/(1−ᾱ) is this (schedule-independent)")
    units: Literal["normalised", "camera"] = Field(
        "normalised", description="gan, ddpm: images in [0, 1], or 'camera': the training images' units (the "
                                  "checkpoint's percentile mapping inverted)")

    @model_validator(mode="after")
    def _alpha_for_gan(self):
        if self.alpha_um is not None and (self.name != "gan" or not self.alpha_um):
            raise ValueError("alpha_um (quality levels) needs renderer 'gan' and at least one value")
        given = [k for k in ("t_start", "strength", "snr") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of t_start, strength, snr; got {', '.join(given)}")
        sampling = [k for k in ("sampler", "steps", "t_start", "strength", "snr")
                    if getattr(self, k) != type(self).model_fields[k].default]
        if sampling and self.name not in ("ddpm", "refine"):
            raise ValueError(f"{', '.join(sampling)} set the ddpm renderer's sampling; renderer '{self.name}' "
                             "takes none")
        if self.units == "camera" and self.name in ("optics", "refine"):
            raise ValueError(f"units: camera is for gan and ddpm (their training images' units); the {self.name} "
                             "renderer's units are set by its camera section")
        return self


class DatasetConfig(StrictModel):
    """How many samples, from which seed, named how, with which files."""

    n_samples: Annotated[int, Field(ge=1, le=1_000_000, description="samples in the dataset (its manifest lists "
                                    "each; split larger jobs into several datasets)")] = 4
    seed: Seed = Field(0, description="base seed: sample i draws from seed + i, alike serially or on workers")
    name_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)] = "sample"
    output: OutputConfig = OutputConfig()


class Config(StrictModel):
    """A whole cellsynth run."""

    dataset: DatasetConfig = DatasetConfig()
    volume: VolumeConfig = VolumeConfig()
    masks: MasksConfig = MasksConfig()
    renderer: RendererConfig = RendererConfig()
    optics: OpticsConfig = OpticsConfig()
    patching: PatchingConfig = PatchingConfig()

    @model_validator(mode="before")
    @classmethod
    def _generator_is_now_renderer(cls, data):
        if not isinstance(data, dict) or "generator" not in data:
            return data
        warnings.warn("the config section 'generator' is now called 'renderer'; rename it in your YAML",
                      DeprecationWarning, stacklevel=2)
        data = dict(data)
        old, new = data.pop("generator"), data.get("renderer")
        if isinstance(old, dict) and isinstance(new, dict):
            data["renderer"] = {**new, **old}
        elif new is None:
            data["renderer"] = old
        else:
            raise ValueError("give the renderer section once: 'renderer' (or the older name 'generator')")
        return data
