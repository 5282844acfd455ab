"""What the judges train with, stated once: :class:`SegmenterSettings` for the Syn2Real segmenter
(the library's defaults and the CLI's options and help come from its fields) and the C2ST
classifier's defaults. Torch-free, so the CLI can read it without loading torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cellsynth.augment import Transform
from cellsynth.augment.strategies import AUGMENTATIONS, STRATEGIES, augmentation
from cellsynth.checks import check_spacing
from cellsynth.errors import InputError
from cellsynth.masks.segment import MIN_VOLUME_UM3

#: The segmenter's default training patch (z, y, x) in µm.
SEGMENTER_PATCH_UM = (16.0, 32.0, 32.0)
#: The C2ST classifier's default patch (z, y, x) in µm and its training steps.
C2ST_PATCH_UM = (5.0, 8.0, 8.0)
C2ST_STEPS = 400


def patch_voxels(patch_um: Sequence[float], spacing: Sequence[float]) -> tuple[int, int, int]:
    """A patch of ``patch_um`` µm in voxels of ``spacing``, rounded to a multiple of 8 (at least 8)."""
    patch_um = tuple(float(p) for p in patch_um)
    if len(patch_um) != 3 or not all(math.isfinite(p) and p > 0 for p in patch_um):
        raise InputError(f"patch size must be three lengths > 0 µm (z, y, x); got {patch_um}")
    return tuple(max(8, 8 * round(p / s / 8)) for p, s in zip(patch_um, spacing, strict=True))  # type: ignore


@dataclass(frozen=True)
class SegmenterSettings:
    """How the segmenter trains: working grid, patch, budget, optimiser, width, model selection,
    augmentation, the mixing of training sets, seed and device; checked on construction.

    The one place its defaults are stated: :func:`train_segmenter`, :func:`~cellsynth.evaluate.syn2real.syn2real`
    and ``cellsynth evaluate syn2real`` (whose help is each field's ``metadata["help"]``) all take them from here.

    Attributes
    ----------
    spacing_um : 3 floats or None
        Working voxel size (z, y, x) in µm (None: :func:`working_spacing` of the data).
    patch_um : 3 floats
        Training patch (z, y, x) in µm.
    steps, minutes : int or None, float or None
        Budget: training stops at whichever comes first (at least one is given). With ``steps`` the
        learning-rate schedule and the validation points follow the steps only, so a run is reproducible
        on any machine unless ``minutes`` stop it first; with ``minutes`` alone they follow the clock.
    batch_size, learning_rate, features : int, float, int
        Patches per step, Adam's peak learning rate, channels of the first U-Net level.
    validation_fraction : float
        Share of each volume of the first training set held out for model selection, in (0, 0.5].
    min_volume_um3 : float
        Smaller predicted objects are dropped.
    augment : str, sequence of str, or Transform
        A strategy of :func:`~cellsynth.augment.strategies.augmentation` or a transform itself.
    weights : sequence of float or None
        With several training sets: the share of the patches drawn from each (None: every volume alike).
    fraction : float
        Keep only this share of the first set's training part (along each volume's longer lateral
        axis, after the validation part is held out), in (0, 1]: "a quarter of the real labels".
    seed : int
        Weights, patches and augmentation; with a step budget, the same seed gives the same model.
    device : {"auto", "cpu", "cuda"}
        ``auto``: cuda when available.
    precision : {"auto", "bf16", "fp32"}
        Autocast: ``auto`` uses bf16 where the hardware has it (:func:`autocast_dtype`).

    Examples
    --------
    >>> settings = SegmenterSettings(steps=400, augment="random-choice")
    >>> settings.replace(seed=1).seed, settings.batch_size
    (1, 2)
    >>> SegmenterSettings(fraction=2)
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: --fraction must lie in (0, 1] (the share of the first training set kept); got 2
    """

    spacing_um: tuple[float, float, float] | None = field(default=None, metadata=dict(help=
        "working voxel size in µm (default: the data's coarsest, at least 0.5)"))
    patch_um: tuple[float, float, float] = field(default=SEGMENTER_PATCH_UM, metadata=dict(help="training patch in µm"))
    steps: int | None = field(default=2000, metadata=dict(help="training steps"))
    minutes: float | None = field(default=None, metadata=dict(help=
        "time budget; stops at steps or minutes, whichever first"))
    batch_size: int = field(default=2, metadata=dict(help="patches per step"))
    learning_rate: float = field(default=2e-3, metadata=dict(help="Adam's peak learning rate"))
    features: int = field(default=16, metadata=dict(help="channels of the first U-Net level"))
    validation_fraction: float = field(default=0.2, metadata=dict(help=
        "share of each training volume held out to pick weights and thresholds"))
    min_volume_um3: float = field(default=MIN_VOLUME_UM3, metadata=dict(help=
        "smaller predicted objects are dropped (µm³)"))
    augment: str | tuple[str, ...] | Transform = field(default="default", metadata=dict(help=
        f"augmentation: {', '.join(STRATEGIES)}, a transform ({', '.join(AUGMENTATIONS)}) or a comma-separated "
        "list of transforms"))
    weights: tuple[float, ...] | None = field(default=None, metadata=dict(help=
        "share of the patches drawn from each --train set (default: every volume alike)"))
    fraction: float = field(default=1.0, metadata=dict(help=
        "keep only this share of the first --train set's labelled volume"))
    seed: int = field(default=0, metadata=dict(help="base seed"))
    device: str = field(default="auto", metadata=dict(help="auto (cuda when available), cpu or cuda"))
    precision: str = field(default="auto", metadata=dict(help=
        "autocast: auto = bf16 where the CPU or GPU computes it natively; bf16 or fp32"))

    def __post_init__(self):
        steps, minutes = self.steps, self.minutes
        if steps is None and minutes is None:
            raise InputError("give a training budget: steps, minutes or both")
        if (steps is not None and steps < 1) or (minutes is not None and not 0 < minutes < math.inf):
            raise InputError(f"the training budget must be >= 1 step and finite minutes > 0; got steps {steps}, "
                             f"minutes {minutes}")
        if self.batch_size < 1 or self.features < 1 or not 0 < self.learning_rate < math.inf:
            raise InputError(f"batch size and features must be >= 1 and the learning rate a finite number > 0; "
                             f"got {self.batch_size}, {self.features}, {self.learning_rate}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"a seed is a whole number >= 0; got {self.seed!r}")
        if not 0 < self.validation_fraction <= 0.5:
            raise InputError(f"the validation fraction must lie in (0, 0.5]; got {self.validation_fraction!r}")
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise InputError(f"--fraction must lie in (0, 1] (the share of the first training set kept); got "
                             f"{self.fraction!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise InputError(f"precision must be auto, bf16 or fp32; got {self.precision!r}")
        augmentation(self.augment)  # an unknown strategy is refused before anything is read
        object.__setattr__(self, "patch_um", tuple(float(p) for p in self.patch_um))
        patch_voxels(self.patch_um, (1.0, 1.0, 1.0))
        if self.spacing_um is not None:
            object.__setattr__(self, "spacing_um", check_spacing(self.spacing_um, "--spacing"))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(self.weights))
        if isinstance(self.augment, list):
            object.__setattr__(self, "augment", tuple(self.augment))

    def replace(self, **changes) -> SegmenterSettings:
        """These settings with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """The settings as JSON-ready values (for reports and checkpoints)."""
        values = dataclasses.asdict(self)
        augment = self.augment
        values["augment"] = augment if isinstance(augment, str) else (
            list(augment) if isinstance(augment, tuple) else repr(augment))
        for key in ("spacing_um", "patch_um", "weights"):
            values[key] = None if values[key] is None else [float(v) for v in values[key]]
        return values
