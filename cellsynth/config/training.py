"""The training config (``cellsynth train gan|ddpm``): data, the cGAN and DDPM sections and the budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from cellsynth.config.base import (
    NonNegative,
    NonNegativeInt,
    Positive,
    PositiveInt,
    PositiveUm,
    Seed,
    StrictModel,
)
from cellsynth.config.schema import MasksConfig


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
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when there is one")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field("auto", description="auto: bf16 on a GPU")
    log_every: PositiveInt = 10
    preview_every: NonNegativeInt = Field(200, description="preview PNG every N steps (0 = never)")
    checkpoint_every: PositiveInt = 200
    tensorboard: bool = False
    data: TrainDataConfig
    masks: MasksConfig = Field(MasksConfig(), description="simulated masks for the cGAN (data.masks = simulated)")
    gan: GanTrainConfig = GanTrainConfig()
    ddpm: DdpmTrainConfig = DdpmTrainConfig()
