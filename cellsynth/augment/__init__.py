"""Diversification (Eschweiler et al., diversification) and label-safe 3D augmentations (Chen,
augmentations; Malec, U-Net segmentation): numpy in, numpy out."""

from cellsynth.augment.data import PatchDataset, load_labelled_images, patch_start
from cellsynth.augment.diversify import diversify, local_std, neighbourhood_voxels, normalize_percentiles
from cellsynth.augment.intensity import BrightnessContrast, Diversify, Gamma, GaussianBlur, GaussianNoise, PoissonNoise
from cellsynth.augment.spatial import (
    CopyPaste,
    CropResize,
    Elastic,
    LateralStretch,
    RandomFlip,
    RandomRotate,
    RandomRotate90,
)
from cellsynth.augment.spatial import Flip as Flip  # the old names (deprecated), importable but outside __all__
from cellsynth.augment.spatial import Rotate as Rotate
from cellsynth.augment.spatial import Rotate90 as Rotate90
from cellsynth.augment.strategies import AUGMENTATIONS, STRATEGIES, augmentation, default_augmentation
from cellsynth.augment.transforms import Identity, RandomChoice, Stacked, Transform, as_item
from cellsynth.augment.weights import (
    curriculum_limits,
    diversified_stack,
    predict_with_tta,
    random_weights,
    robustness_loss,
    single_weights,
    structured_weights,
    truncated_normal,
)

__all__ = [
    "AUGMENTATIONS", "STRATEGIES", "augmentation", "default_augmentation",
    "BrightnessContrast", "CopyPaste", "CropResize", "Diversify", "Elastic", "Gamma", "GaussianBlur",
    "GaussianNoise", "Identity", "LateralStretch", "PatchDataset", "PoissonNoise", "RandomChoice", "RandomFlip",
    "RandomRotate", "RandomRotate90",
    "Stacked", "Transform", "as_item", "curriculum_limits", "diversified_stack", "diversify", "patch_start",
    "load_labelled_images", "local_std", "neighbourhood_voxels", "normalize_percentiles", "random_weights",
    "predict_with_tta", "robustness_loss", "single_weights", "structured_weights", "truncated_normal",
]
