"""Validated configs: YAML in (safe loader only), typed objects out, one clear message per mistake.

Every length is in µm. Shipped presets live in ``cellsynth/presets/*.yaml``; a user file is
validated the same way, and any key left out takes its default.
"""

from __future__ import annotations

import math
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from cellsynth.checks import MAX_LENGTH_UM, MAX_VOXELS, check_regular_file
from cellsynth.errors import ConfigError, InputError

#: Bounds that no experiment reaches: a length above a metre, a count above a billion, or any
#: number above 10⁹ is a mistake, not a request (and would overflow the arithmetic behind it).
MAX_QUANTITY = 1e9
PositiveUm = Annotated[float, Field(gt=0, le=MAX_LENGTH_UM, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, le=MAX_QUANTITY, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, le=MAX_QUANTITY, allow_inf_nan=False)]
Finite = Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]
NonNegativeInt = Annotated[int, Field(ge=0, le=2**31 - 1)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
#: One length for all axes, or (z, y, x); always stored as three.
TripleUm = Annotated[
    tuple[PositiveUm, PositiveUm, PositiveUm],
    BeforeValidator(lambda v: (v, v, v) if isinstance(v, int | float) and not isinstance(v, bool) else v),
]


def _holds_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list | tuple) and any(_holds_bool(v) for v in value))


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are errors, objects are immutable, and true/false is
    never read as the number 1/0 (``shape: [true, 32, 32]`` is a mistake)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data):
        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key) if isinstance(key, str) else None
                if field is not None and field.annotation is not bool and _holds_bool(value):
                    raise ValueError(f"'{key}' takes numbers or text, not true/false (got {_shown(value)})")
        return data


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


class GeneratorConfig(StrictModel):
    """Which generator renders the images."""

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
            raise ValueError("alpha_um (quality levels) needs generator 'gan' and at least one value")
        given = [k for k in ("t_start", "strength", "snr") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of t_start, strength, snr; got {', '.join(given)}")
        sampling = [k for k in ("sampler", "steps", "t_start", "strength", "snr")
                    if getattr(self, k) != type(self).model_fields[k].default]
        if sampling and self.name not in ("ddpm", "refine"):
            raise ValueError(f"{', '.join(sampling)} set the ddpm generator's sampling; generator '{self.name}' "
                             "takes none")
        if self.units == "camera" and self.name in ("optics", "refine"):
            raise ValueError(f"units: camera is for gan and ddpm (their training images' units); the {self.name} "
                             "renderer's units are set by its camera section")
        return self


class DatasetConfig(StrictModel):
    """How many samples, from which seed, named how, with which files."""

    n_samples: Annotated[int, Field(ge=1, le=1_000_000, description="samples in the dataset (its manifest lists "
                                    "each; split larger jobs into several datasets)")] = 4
    seed: Seed = 0
    name_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)] = "sample"
    output: OutputConfig = OutputConfig()


class Config(StrictModel):
    """A whole cellsynth run."""

    dataset: DatasetConfig = DatasetConfig()
    volume: VolumeConfig = VolumeConfig()
    masks: MasksConfig = MasksConfig()
    generator: GeneratorConfig = GeneratorConfig()
    optics: OpticsConfig = OpticsConfig()
    patching: PatchingConfig = PatchingConfig()


class TrainDataConfig(StrictModel):
    """Where training images (and, for the cGAN, masks) come from."""

    images: list[str] = Field(
        [], description="TIFF / OME-Zarr volumes (paths or globs); for the cGAN and the DDPM no labels are needed; "
                        "empty when the images are given as arrays (train_gan(..., images=...))"
    )
    spacing_um: tuple[PositiveUm, PositiveUm, PositiveUm] | None = Field(
        None, description="voxel size (z, y, x) µm when the files carry none (or to override theirs)"
    )
    percentiles: tuple[Annotated[float, Field(ge=0, le=100)], Annotated[float, Field(ge=0, le=100)]] = Field(
        (0.1, 99.9), description="intensity percentiles mapped to 0 and 1 (stored in the checkpoint; 2/98 would "
                                 "saturate 11.6 % of cells3d's nucleus voxels, 0.1/99.9 saturates 0.58 %)"
    )
    patch: tuple[Annotated[int, Field(ge=4)], Annotated[int, Field(ge=4)], Annotated[int, Field(ge=4)]] | None = (
        Field(None, description="training patch, voxels (Z, Y, X); default cGAN 64×128×128, DDPM 32×128×128")
    )
    masks: Literal["simulated", "files", "pseudo"] = Field(
        "simulated", description="cGAN masks: simulated from the masks section (no annotation), label files, or "
                                 "pseudo: the classical segmentation of each training image, paired with it"
    )
    mask_files: list[str] = Field([], description="label volumes when masks = files")
    paired: bool = Field(False, description="mask_files[i] segments images[i]: adds the paired L1 loss "
                                            "(always so with masks = pseudo)")
    simulated_volumes: PositiveInt = Field(4, description="simulated mask volumes (image-sized)")

    @model_validator(mode="after")
    def _masks(self):
        if self.percentiles[0] >= self.percentiles[1]:
            raise ValueError(f"percentiles must rise; got {list(self.percentiles)}")
        if self.masks == "files" and not self.mask_files:
            raise ValueError("masks = files needs mask_files (label volumes)")
        if self.paired and self.masks == "simulated":
            raise ValueError("paired training needs masks = files (or pseudo)")
        return self


class AdaConfig(StrictModel):
    """Adaptive discriminator augmentation (Eschweiler et al., data synthesis eq. 2)."""

    p_start: Annotated[float, Field(ge=0, le=1)] = 0.0
    target: Annotated[float, Field(ge=-1, le=1)] = Field(0.6, description="r = E[sign(D(real))] aimed at")
    rule: Literal["epochs", "kimg"] = Field(
        "epochs", description="epochs: p ± delta every interval_epochs (paper); kimg: StyleGAN2-ADA speed"
    )
    delta: Annotated[float, Field(ge=0, le=1)] = Field(0.05, description="epochs rule: step of p")
    interval_epochs: PositiveInt = 1
    interval_batches: PositiveInt = Field(4, description="kimg rule: adjust every N minibatches")
    kimg: Positive = Field(500.0, description="kimg rule: p can go 0 → 1 in this many thousand images")


class GanTrainConfig(StrictModel):
    """The cGAN: networks, losses, conditioning, ADA."""

    kind: Literal["nuclei", "membranes"] = Field("nuclei", description="what the mask channel shows")
    widths: Annotated[list[PositiveInt], Field(min_length=2)] = Field(
        [16, 32, 64, 128], description="generator channels per level (len − 1 downsamplings)"
    )
    norm: Literal["instance", "group", "batch", "none"] = "instance"
    discriminator_widths: Annotated[list[PositiveInt], Field(min_length=1)] = [64, 128, 256, 512, 512]
    discriminator_strides: Annotated[list[Annotated[int, Field(ge=1, le=4)]], Field(min_length=1)] = [2, 2, 2, 2, 1]
    adversarial_loss: Literal["bce", "lsgan", "hinge"] = "bce"
    identity_weight: NonNegative = Field(1.0, description="‖i − G(i)‖₁ (unpaired training)")
    paired_weight: NonNegative = Field(10.0, description="‖i − G(m)‖₁ when paired")
    r1_weight: NonNegative = Field(0.0, description="R1 gradient penalty on reals (0 = off)")
    learning_rate: PositiveUm = Field(1e-3, description="RAdam (paper and reference: 1e-3)")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = Field(0.999, description="generator EMA; null = off")
    alpha_um: PositiveUm = Field(100.0, description="positional map inside the specimen, µm")
    beta_um: PositiveUm = Field(100.0, description="positional map outside the specimen, µm")
    ada: AdaConfig = AdaConfig()

    @model_validator(mode="after")
    def _discriminator(self):
        if len(self.discriminator_widths) != len(self.discriminator_strides):
            raise ValueError("discriminator_widths and discriminator_strides need the same length")
        return self


class DdpmTrainConfig(StrictModel):
    """The DDPM (Eschweiler et al., DDPM): denoiser and noise schedule; trained on unlabelled images."""

    widths: Annotated[list[PositiveInt], Field(min_length=2)] = Field(
        [32, 64, 128, 256], description="denoiser channels per level (group norm, time scale-shift)"
    )
    attention: bool = Field(True, description="self-attention at the lowest resolution")
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"
    num_train_timesteps: Annotated[int, Field(ge=2)] = 1000
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = "squaredcos_cap_v2"
    learning_rate: PositiveUm = 1e-4
    ema_decay: Annotated[float, Field(gt=0, lt=1)] | None = Field(0.9999, description="EMA of the weights; null = off")
    sketch_blur_um: tuple[NonNegative, NonNegative,
                          NonNegative] | None = Field(
        None, description="σ (µm, z y x) of the sketch blur; default 1 voxel of the training images (the paper's)"
    )


class TrainConfig(StrictModel):
    """A training run (``cellsynth train gan|ddpm CONFIG``).

    Examples
    --------
    >>> config = TrainConfig.model_validate({'steps': 2000, 'data': {'images': ['data/real/*.tif']}})
    >>> config.steps, config.batch_size, config.data.percentiles
    (2000, 1, (0.1, 99.9))
    """

    seed: Seed = 0
    steps: PositiveInt = Field(5000, description="optimiser steps in all")
    max_minutes: PositiveUm | None = Field(None, description="stop (with a checkpoint) after this wall time")
    batch_size: PositiveInt = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field("auto", description="auto: bf16 on a GPU")
    log_every: PositiveInt = 10
    preview_every: NonNegativeInt = Field(200, description="preview PNG every N steps (0 = never)")
    checkpoint_every: PositiveInt = 200
    tensorboard: bool = False
    data: TrainDataConfig
    masks: MasksConfig = Field(MasksConfig(), description="simulated masks for the cGAN (data.masks = simulated)")
    gan: GanTrainConfig = GanTrainConfig()
    ddpm: DdpmTrainConfig = DdpmTrainConfig()


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _accepted_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error line echoes input, never pages of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(error: dict, model: type[BaseModel]) -> str:
    where = _location(error["loc"])[:120]
    if error["type"] == "extra_forbidden":
        accepted = ", ".join(_accepted_keys(model, error["loc"]))
        return f"unknown key '{where}' (accepted here: {accepted})"
    if error["type"] == "missing" and isinstance(error["loc"][-1], int):
        return f"'{_location(error['loc'][:-1])}': too few values (got {_shown(error['input'])})"
    if error["type"] == "value_error":  # a cross-key rule of a section
        return f"'{where}': {error['ctx']['error']}"
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"'{where}': {message} (got {_shown(error['input'])})"


def validate_config(data: Any, source: str = "config", model: type[StrictModel] = Config) -> StrictModel:
    """Validate a mapping (parsed YAML) into ``model``.

    Raises
    ------
    ConfigError
        One line naming the source, each offending key and what is accepted.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: " + "; ".join(_describe(e, model) for e in err.errors())) from None


def load_config(path: str | os.PathLike, model: type[StrictModel] = Config) -> StrictModel:
    """Read a YAML file with the safe loader and validate it.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or does not validate.
    """
    return validate_config(parse_yaml(_read_config(path), str(path)), str(path), model)


def _read_config(path: str | os.PathLike) -> bytes:
    """The bytes of a config file: a regular file, read to at most one byte past the size limit."""
    path = Path(path)
    try:
        check_regular_file(path, "config")
        with path.open("rb") as handle:
            return handle.read(MAX_CONFIG_BYTES + 1)  # a file that grows while read is still capped
    except (OSError, InputError) as err:
        raise ConfigError(str(err) if isinstance(err, InputError) else
                          f"cannot read config '{path}': {err.strerror or err}") from None


#: Configs larger than this are refused before parsing (a config is a page of keys, not data).
MAX_CONFIG_BYTES = 1 << 20
#: Deeper nesting of mappings and lists is refused (a config is a few levels deep).
MAX_CONFIG_DEPTH = 32


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, stricter: no aliases (no alias bombs), no duplicate keys, bounded nesting."""

    def __init__(self, stream, source: str):
        super().__init__(stream)
        self.name, self._depth = source, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"{self.name}: YAML aliases (*{event.anchor}) are not accepted in a cellsynth config "
                              f"(line {event.start_mark.line + 1}); write the values out")
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.name}: nested deeper than {MAX_CONFIG_DEPTH} levels at line {mark.line + 1}; "
                                  "a cellsynth config is a few levels of keys")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue
            if key in seen:
                raise ConfigError(f"{self.name}: key {_shown(key)} appears twice in one mapping (line "
                                  f"{key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads ``1e300`` or ``2e-3`` (an exponent without a dot) as text; a config means a number.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""", re.VERBOSE),
    list("-+0123456789."),
)


def parse_yaml(raw: bytes, source: str = "config") -> Any:
    """YAML bytes to Python objects, for configs: UTF-8, at most 1 MiB, no aliases, no duplicate keys,
    at most 32 levels deep; any problem is one :class:`ConfigError` line.

    Examples
    --------
    >>> parse_yaml(b"dataset: {n_samples: 2}")
    {'dataset': {'n_samples': 2}}
    """
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(raw)} bytes; a config is at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source}: not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start})") from None
    try:
        loader = _StrictLoader(text, source)
    except yaml.YAMLError as err:  # the reader refuses NUL and other unprintable characters up front
        raise ConfigError(f"{source}: not valid YAML ({_shown(getattr(err, 'reason', err), 120)}); a config is "
                          "printable text") from None
    try:
        return loader.get_single_data()
    except ValueError as err:  # e.g. an integer of thousands of digits
        raise ConfigError(f"{source}: a value cannot be read ({_shown(str(err), 120)})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where} ({_shown(getattr(err, 'problem', err), 120)})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read; a cellsynth config is a few levels of keys") from None
    finally:
        loader.dispose()


def preset_names() -> list[str]:
    """Names of the shipped presets.

    Examples
    --------
    >>> "nuclei" in preset_names()
    True
    """
    folder = resources.files("cellsynth.presets")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    """The YAML text of the shipped preset ``name``.

    Examples
    --------
    >>> print(preset_text("nuclei"))  # doctest: +SKIP
    """
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    return resources.files("cellsynth.presets").joinpath(f"{name}.yaml").read_text()


def load_preset(name: str) -> Config:
    """The shipped preset ``name``, validated.

    Examples
    --------
    >>> load_preset("nuclei").volume.shape
    (60, 256, 256)
    """
    return validate_config(parse_yaml(preset_text(name).encode(), f"preset '{name}'"),  # type: ignore[return-value]
                           f"preset '{name}'")


def training_preset_names() -> list[str]:
    """Names of the shipped training presets (``cellsynth train ddpm NAME --images ...``).

    Examples
    --------
    >>> training_preset_names()
    ['ddpm-cpu', 'gan-cpu']
    """
    folder = resources.files("cellsynth.presets").joinpath("training")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_training_config(name_or_path: str | os.PathLike, images: list[str] | None = None) -> TrainConfig:
    """A shipped training preset or a training YAML file, validated, with ``images`` as ``data.images``
    when given (a preset names no images).

    Examples
    --------
    >>> config = resolve_training_config("ddpm-cpu", ["my_nuclei.tif"])
    >>> config.max_minutes, config.data.patch, config.ddpm.widths, config.ddpm.attention
    (20.0, (16, 64, 64), [16, 32, 64], False)
    """
    if isinstance(name_or_path, str) and name_or_path in training_preset_names():
        source = f"training preset '{name_or_path}'"
        data = parse_yaml(resources.files("cellsynth.presets").joinpath(f"training/{name_or_path}.yaml").read_bytes(),
                          source)
    elif not Path(name_or_path).exists():
        raise ConfigError(f"'{name_or_path}' is neither a training preset ({', '.join(training_preset_names())}) "
                          "nor a file")
    else:
        source = str(name_or_path)
        data = parse_yaml(_read_config(name_or_path), source)
    if images:
        if not isinstance(data, dict):
            data = {}
        data = {**data, "data": {**(data.get("data") or {}), "images": [str(i) for i in images]}}
    return validate_config(data, source, TrainConfig)  # type: ignore[return-value]


def resolve_config(name_or_path: str | os.PathLike) -> Config:
    """A preset name or the path of a YAML file, validated."""
    if isinstance(name_or_path, str) and name_or_path in preset_names():
        return load_preset(name_or_path)
    if not Path(name_or_path).exists():
        raise ConfigError(f"'{name_or_path}' is neither a preset ({', '.join(preset_names())}) nor a file")
    return load_config(name_or_path)  # type: ignore[return-value]


def with_overrides(config: StrictModel, overrides: dict[str, Any], source: str = "command line") -> StrictModel:
    """``config`` with dotted keys replaced (``{"dataset.n_samples": 3}``), validated again.

    Values that are None are left out, so unset command-line flags change nothing.

    Examples
    --------
    >>> config = with_overrides(load_preset("default"), {"dataset.n_samples": 2, "volume.shape": [16, 64, 64]})
    >>> config.dataset.n_samples, config.volume.shape
    (2, (16, 64, 64))
    """
    data = config.model_dump(mode="json")
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        section = data
        for key in parents:
            section = section[key]
        section[last] = list(value) if isinstance(value, tuple) else value
    return validate_config(data, source, type(config))
