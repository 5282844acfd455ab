"""Syn2Real: train a 3D segmenter on one dataset, test it on another, report the matching scores.

Trained on synthetic data and tested on the user's real images it answers "is this synthetic
dataset worth training on?"; trained on a spatially disjoint part of the real data (see
:func:`cellsynth.dataset.split.split_dataset`) it gives Real2Real, and
:func:`cellsynth.evaluate.baseline.baseline` the untrained classical figure to beat.

The segmenter
-------------
- **Grid.** Training and test volumes are resampled to one *working spacing* (default: the
  coarsest spacing of the data, but never finer than 0.5 µm per axis: nuclei a few µm across keep
  ten or more voxels, and a CPU trains in minutes). Patches have a size in µm. Intensities are
  normalised per volume (0.1/99.9 percentiles to [0, 1]).
- **Network.** The one 3D U-Net (:class:`cellsynth.models.unet3d.UNet3D`, three down-samplings,
  instance norm) predicts two maps: the foreground and a *centre-ness*, each object's distance to
  its own surface in µm divided by that object's largest such distance (1 at its centre, → 0 at
  its border, 0 outside). Binary cross-entropy on both.
- **Training.** Random patches (70 % centred on an object) with on-the-fly augmentation
  (:func:`default_augmentation`), Adam, a 5 % linear warm-up then cosine decay over the budget
  (``steps`` or ``minutes``, whichever ends first), bf16 autocast where the hardware has it.
- **Model selection.** The last ``validation_fraction`` of every training volume (along its longest
  lateral axis) is never trained on. At ten points of the budget the network segments it; the
  thresholds (foreground, seed) with the best AP@0.5 there, and the weights of the best point,
  are kept. The test set is never looked at before the end.
- **Instances.** Seeds are the connected voxels with foreground and centre-ness above their
  thresholds; a watershed of the negated centre-ness grows them inside the foreground
  (:func:`instances_from_probabilities`), at the test image's own grid.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from cellsynth.augment import PatchDataset, Transform, normalize_percentiles
from cellsynth.augment.strategies import augmentation, default_augmentation
from cellsynth.checks import Spacing, check_memory, check_output_folder, check_spacing
from cellsynth.dataset.split import split_volume
from cellsynth.errors import InputError
from cellsynth.evaluate.baseline import write_segmentation_results
from cellsynth.evaluate.segmentation import THRESHOLDS, bootstrap_ap, matching, pooled_scores, score_at
from cellsynth.evaluate.volumes import grid_shape, read_volumes, resample
from cellsynth.io import atomic_path
from cellsynth.masks.derived import centreness
from cellsynth.masks.segment import MIN_VOLUME_UM3, seeded_watershed
from cellsynth.models.common import autocast_dtype, resolve_device, supervised_step
from cellsynth.models.unet3d import UNet3D, seeded
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import apply_patched

PERCENTILES = (0.1, 99.9)
#: The working grid is never finer than this (µm per axis) unless asked for.
MIN_WORKING_SPACING_UM = 0.5
#: Default training patch (z, y, x) in µm.
PATCH_UM = (16.0, 32.0, 32.0)
#: Default share of each training volume held out for model selection.
VALIDATION_FRACTION = 0.2
#: Model selection happens at this many evenly spread points of the budget.
N_VALIDATIONS = 10
FOREGROUND_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
SEED_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
WARMUP = 0.05
#: Bytes of training memory per patch voxel per base feature (measured: fp32, Adam, batch 2).
_BYTES_PER_VOXEL_FEATURE = 220


def segmentation_targets(labels: np.ndarray, spacing: Sequence[float]) -> dict[str, np.ndarray]:
    """``{"target": (2, Z, Y, X) float32}``: the foreground and :func:`centreness` of ``labels``."""
    return {"target": np.stack([(labels > 0).astype(np.float32), centreness(labels, spacing)])}


def working_spacing(spacings: Sequence[Sequence[float]], min_spacing_um: float = MIN_WORKING_SPACING_UM) -> Spacing:
    """The coarsest voxel size of ``spacings`` per axis, but at least ``min_spacing_um``."""
    spacings = [check_spacing(s) for s in spacings]
    return tuple(max(min_spacing_um, *(s[axis] for s in spacings)) for axis in range(3))  # type: ignore[return-value]


def pools_for(patch: Sequence[int], levels: int = 3) -> list[tuple[int, int, int]]:
    """Down-sampling per level: halve an axis only while it keeps at least 4 voxels."""
    size, pools = list(patch), []
    for _ in range(levels):
        pool = tuple(2 if n // 2 >= 4 else 1 for n in size)
        size = [n // p for n, p in zip(size, pool, strict=True)]
        pools.append(pool)
    return pools  # type: ignore[return-value]


def patch_voxels(patch_um: Sequence[float], spacing: Sequence[float]) -> tuple[int, int, int]:
    """A patch of ``patch_um`` µm in voxels of ``spacing``, rounded to a multiple of 8 (at least 8)."""
    patch_um = tuple(float(p) for p in patch_um)
    if len(patch_um) != 3 or not all(math.isfinite(p) and p > 0 for p in patch_um):
        raise InputError(f"patch size must be three lengths > 0 µm (z, y, x); got {patch_um}")
    return tuple(max(8, 8 * round(p / s / 8)) for p, s in zip(patch_um, spacing, strict=True))  # type: ignore


def training_bytes(patch: Sequence[int], batch_size: int, features: int) -> int:
    """A generous estimate of the memory one training step needs (activations, gradients, optimiser)."""
    return int(np.prod(patch)) * batch_size * features * _BYTES_PER_VOXEL_FEATURE


def prepare(volume: Sample, spacing: Spacing) -> Sample:
    """A labelled volume on the working grid, intensities normalised to [0, 1]."""
    image = resample(volume.image, volume.spacing, spacing, order=1)
    labels = resample(volume.labels, volume.spacing, spacing, order=0, shape=image.shape)
    return Sample(labels, normalize_percentiles(image, *PERCENTILES), spacing)


def instances_from_probabilities(probabilities: np.ndarray, spacing: Sequence[float], *,
                                 foreground_threshold: float = 0.5, seed_threshold: float = 0.5,
                                 min_volume_um3: float = MIN_VOLUME_UM3) -> np.ndarray:
    """Instances from foreground and centre-ness maps: seeds where both are high, a watershed from them.

    Parameters
    ----------
    probabilities : ndarray, shape (2, Z, Y, X)
        Foreground probability and predicted centre-ness.
    spacing : 3 floats
        Voxel size in µm.
    foreground_threshold, seed_threshold : float
        The foreground is ``p_fg > foreground_threshold``; seeds are its connected parts with
        centre-ness above ``seed_threshold`` (at least a tenth of ``min_volume_um3``).
    min_volume_um3 : float
        Smaller objects are dropped; the rest are numbered 1…n.

    Examples
    --------
    >>> p = np.zeros((2, 1, 1, 9)); p[0, 0, 0, 1:8] = 1; p[1, 0, 0] = [0, .2, .9, .2, .1, .3, .9, .3, 0]
    >>> instances_from_probabilities(p, (1, 1, 1), min_volume_um3=1)[0, 0]
    array([0, 1, 1, 1, 2, 2, 2, 2, 0], dtype=uint16)
    """
    foreground, centre = probabilities
    mask = foreground > foreground_threshold
    seeds, _ = ndi.label(mask & (centre > seed_threshold))
    small = np.bincount(seeds.ravel()) * np.prod(spacing) < min_volume_um3 / 10
    small[0] = False
    seeds[small[seeds]] = 0
    return seeded_watershed(-centre, seeds, mask, spacing, min_volume_um3)


def choose_thresholds(probabilities: Sequence[np.ndarray], volumes: Sequence[Sample],
                      min_volume_um3: float = MIN_VOLUME_UM3) -> tuple[dict, float]:
    """Foreground and seed thresholds with the best pooled AP@0.5 over ``volumes``, and that AP.

    A coordinate search: the seed threshold first (foreground at 0.5), then the foreground
    threshold at that seed threshold. Ties go to the better mean AP over IoU 0.5…0.9, then to
    values nearer 0.5.
    """
    def key(fg: float, seed: float) -> tuple:
        predicted = [instances_from_probabilities(p, v.spacing, foreground_threshold=fg, seed_threshold=seed,
                                                  min_volume_um3=min_volume_um3)
                     for p, v in zip(probabilities, volumes, strict=True)]
        pooled = pooled_scores([matching(v.labels, q, THRESHOLDS[4:])
                                for v, q in zip(volumes, predicted, strict=True)])
        mean_ap = np.mean([r["average_precision"] for r in pooled])
        return score_at(pooled, 0.5), mean_ap, -abs(fg - 0.5) - abs(seed - 0.5)

    seed = max(SEED_THRESHOLDS, key=lambda t: key(0.5, t))
    scored = {fg: key(fg, seed) for fg in FOREGROUND_THRESHOLDS}
    foreground = max(scored, key=scored.get)
    return {"foreground": foreground, "seed": seed}, float(scored[foreground][0])


@dataclass
class Segmenter:
    """A trained segmenter: network, working grid, patch, thresholds; segments images of any spacing.

    Attributes
    ----------
    model : UNet3D
    spacing : tuple of 3 float
        Working voxel size (µm).
    patch : tuple of 3 int
        Training and inference tile (voxels of the working grid).
    thresholds : dict
        ``foreground`` and ``seed`` thresholds (chosen on validation data).
    min_volume_um3 : float
    device : str
    dtype : torch.dtype or None
        Autocast dtype (None: fp32).
    history : dict
        Training record: losses, validation points, steps, seconds, the selected step.

    Examples
    --------
    >>> segmenter = train_segmenter('data/synthetic', steps=2000)  # doctest: +SKIP
    >>> labels = segmenter.segment(image, spacing=(0.29, 0.26, 0.26))  # doctest: +SKIP
    """

    model: UNet3D
    spacing: Spacing
    patch: tuple[int, int, int]
    thresholds: dict = field(default_factory=lambda: {"foreground": 0.5, "seed": 0.5})
    min_volume_um3: float = MIN_VOLUME_UM3
    device: str = "cpu"
    dtype: torch.dtype | None = None
    history: dict = field(default_factory=dict)

    def probabilities(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Foreground and centre-ness ``(2, Z, Y, X)`` of a raw image, on the image's own grid."""
        spacing = check_spacing(spacing)
        working = normalize_percentiles(resample(image, spacing, self.spacing, order=1), *PERCENTILES)
        divisor = max(self.model.divisor)
        overlap, crop = [p // 4 for p in self.patch], [p // 8 for p in self.patch]
        model = self.model.eval()

        @torch.no_grad()
        def run(tiles: np.ndarray) -> np.ndarray:
            with torch.autocast(self.device, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                logits = model(torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device))
            return torch.sigmoid(logits.float()).cpu().numpy()

        result, _ = apply_patched(run, working[None], patch=self.patch, overlap=overlap, crop=crop, window="hann",
                                  multiple=divisor, batch_size=2, out_channels=2)
        return np.stack([resample(channel, self.spacing, spacing, order=1, shape=image.shape) for channel in result])

    def segment(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Instance labels of a raw image, on its own grid."""
        return instances_from_probabilities(self.probabilities(image, spacing), check_spacing(spacing),
                                            foreground_threshold=self.thresholds["foreground"],
                                            seed_threshold=self.thresholds["seed"],
                                            min_volume_um3=self.min_volume_um3)

    def save(self, path: str | os.PathLike, settings: dict) -> None:
        """Weights in safetensors; spacing, patch, thresholds and ``settings`` in its metadata."""
        import json

        from safetensors.torch import save_file

        metadata = {"cellsynth_checkpoint": "syn2real-segmenter",
                    "settings": json.dumps({**settings, "working_spacing_um": list(self.spacing),
                                            "patch_voxels": list(self.patch), "thresholds": self.thresholds})}
        with atomic_path(path) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(tmp),
                      metadata=metadata)


def _learning_rate(progress: float, peak: float) -> float:
    """Linear warm-up over the first 5 % of the budget, then cosine decay to 2 % of ``peak``."""
    if progress < WARMUP:
        return peak * max(progress / WARMUP, 0.01)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, (progress - WARMUP) / (1 - WARMUP))))
    return peak * (0.02 + 0.98 * cosine)


def _split_for_validation(volumes: Sequence[Sample], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """Each volume cut along its longer lateral axis: the first part trains, the last ``fraction`` validates."""
    train, validation = [], []
    for volume in volumes:
        first, last = _cut_lateral(volume, 1 - fraction)
        train.append(first)
        validation.append(last)
    if not any(v.labels.any() for v in validation):
        raise InputError("the validation part of the training data holds no labelled object; "
                         "use a larger --validation-fraction or more training data")
    return train, validation


TrainingSet = str | os.PathLike | Sequence[Sample]


def _training_sets(train: TrainingSet | Sequence[TrainingSet]) -> list[list[Sample]]:
    """One training set (a path or volumes) or several, as lists of volumes with labels."""
    def one(source) -> list[Sample]:
        volumes = (read_volumes(source, labels=True, what="--train") if isinstance(source, (str, os.PathLike))
                   else list(source))
        if not volumes or any(not isinstance(v, Sample) or v.labels is None for v in volumes):
            raise InputError("every training set needs at least one image, each with its labels")
        return volumes

    several = not isinstance(train, (str, os.PathLike)) and len(train) > 0 and not isinstance(train[0], Sample)
    return [one(source) for source in train] if several else [one(train)]


def _keep_fraction(volumes: Sequence[Sample], fraction: float) -> list[Sample]:
    """The first ``fraction`` of each volume along its longer lateral axis (a share of the labelled volume)."""
    if fraction == 1:
        return list(volumes)
    return [_cut_lateral(volume, fraction)[0] for volume in volumes]


def _cut_lateral(volume: Sample, fraction: float) -> tuple[Sample, Sample]:
    """``volume`` cut along its longer lateral axis where the first part holds ``fraction`` of it."""
    axis = 1 if volume.image.shape[1] >= volume.image.shape[2] else 2
    image, labels = (split_volume(a, axis, fraction) for a in (volume.image, volume.labels))
    return (volume.replace(image=image[0], labels=labels[0]), volume.replace(image=image[1], labels=labels[1]))


def _set_weights(sets: Sequence[Sequence[Sample]], weights: Sequence[float] | None) -> list[float] | None:
    """Each training volume's share of the patches: a set's weight split evenly over its volumes (None: every
    volume alike)."""
    if weights is None:
        return None
    weights = [float(w) for w in weights]
    if len(weights) != len(sets) or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise InputError(f"--weights needs {len(sets)} finite numbers >= 0 (one per --train set), not all 0; "
                         f"got {weights}")
    return [w / len(volumes) for w, volumes in zip(weights, sets, strict=True) for _ in volumes]


def train_segmenter(
    train: TrainingSet | Sequence[TrainingSet],
    *,
    spacing_um: Sequence[float] | None = None,
    patch_um: Sequence[float] = PATCH_UM,
    steps: int | None = 2000,
    minutes: float | None = None,
    batch_size: int = 2,
    learning_rate: float = 2e-3,
    features: int = 16,
    validation_fraction: float = VALIDATION_FRACTION,
    min_volume_um3: float = MIN_VOLUME_UM3,
    transform: Transform | None = None,
    weights: Sequence[float] | None = None,
    fraction: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    progress: bool = True,
) -> Segmenter:
    """Train the segmenter (module doc) on labelled volumes; select weights and thresholds on held-out parts.

    Parameters
    ----------
    train : path-like, sequence of Sample, or a sequence of them
        A dataset folder with labels, or volumes with labels; or several such training sets (mixed
        training: real + synthetic), the first of which gives the validation part.
    spacing_um : 3 floats, optional
        Working voxel size in µm (default :func:`working_spacing` of the training data).
    patch_um : 3 floats
        Training patch (z, y, x) in µm.
    steps, minutes : int or float, optional
        Budget: training stops at whichever comes first (at least one must be given). With ``steps`` the
        learning-rate schedule and the validation points follow the steps only, so a run is reproducible on
        any machine unless ``minutes`` stop it first (``history["stopped_by"]`` says which did); with
        ``minutes`` alone they follow the clock, and a loaded machine trains fewer steps.
    batch_size, learning_rate, features : int, float, int
        Patches per step, Adam's peak learning rate, channels of the first U-Net level.
    validation_fraction : float
        Share of each training volume held out for model selection, in (0, 0.5].
    min_volume_um3 : float
        Smaller predicted objects are dropped.
    transform : Transform, optional
        Augmentation (default :func:`default_augmentation`; see :func:`augmentation` for the strategies).
    weights : sequence of float, optional
        With several training sets: the share of the patches drawn from each (default: every volume alike).
    fraction : float
        Keep only this share of the first set's training part (along each volume's longer lateral axis,
        after the validation part is held out), in (0, 1]: "a quarter of the real labels".
    seed : int
        Weights, patches and augmentation; with a step budget, the same seed gives the same model.
    device : {"cpu", "cuda", "auto"}
    precision : {"auto", "bf16", "fp32"}
        Autocast: ``auto`` uses bf16 where the hardware has it (:func:`autocast_dtype`).
    progress : bool

    Returns
    -------
    Segmenter
        With ``history``: ``losses`` (every step), ``validation`` (step, seconds, AP@0.5,
        thresholds at each point), ``selected_step``, ``steps``, ``seconds``.

    Examples
    --------
    >>> segmenter = train_segmenter("data/cells3d_left", minutes=15)            # doctest: +SKIP
    >>> labels = segmenter.segment(image, spacing)                               # doctest: +SKIP
    """
    if steps is None and minutes is None:
        raise InputError("give a training budget: steps, minutes or both")
    if (steps is not None and steps < 1) or (minutes is not None and not 0 < minutes < math.inf):
        raise InputError(f"the training budget must be >= 1 step and finite minutes > 0; got steps {steps}, "
                         f"minutes {minutes}")
    if batch_size < 1 or features < 1 or not 0 < learning_rate < math.inf:
        raise InputError(f"batch size and features must be >= 1 and the learning rate a finite number > 0; "
                         f"got {batch_size}, {features}, {learning_rate}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"a seed is a whole number >= 0; got {seed!r}")
    if not 0 < validation_fraction <= 0.5:
        raise InputError(f"the validation fraction must lie in (0, 0.5]; got {validation_fraction!r}")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise InputError(f"--fraction must lie in (0, 1] (the share of the first training set kept); got "
                         f"{fraction!r}")
    device = resolve_device(device)
    dtype = autocast_dtype(device, precision)
    sets = _training_sets(train)
    volumes = [v for volumes in sets for v in volumes]
    volume_weights = _set_weights(sets, weights)
    if not any(v.labels.any() for v in volumes):
        raise InputError("the training labels hold no object")
    spacing = check_spacing(spacing_um, "--spacing") if spacing_um is not None else working_spacing(
        [v.spacing for v in volumes])
    patch = patch_voxels(patch_um, spacing)
    check_memory(training_bytes(patch, batch_size, features),
                 f"a training step on {batch_size} patches of {tuple(patch)} voxels with {features} features",
                 "use a smaller --patch-um, a coarser --spacing or a smaller --batch-size")
    fitting, validation = _split_for_validation(sets[0], validation_fraction)
    fitting = _keep_fraction(fitting, fraction) + [v for volumes in sets[1:] for v in volumes]
    validation = [v.replace(image=resample(v.image, v.spacing, spacing), spacing=spacing,
                            labels=resample(v.labels, v.spacing, spacing, order=0,
                                            shape=grid_shape(v.image.shape, v.spacing, spacing)))
                  for v in validation]  # model selection on the working grid: cheap enough to run ten times
    patches = PatchDataset([prepare(v, spacing) for v in fitting], patch,
                           transform=default_augmentation() if transform is None else transform,
                           samples_per_epoch=batch_size * 50, foreground_fraction=0.7, percentiles=None,
                           targets=segmentation_targets, seed=seed, weights=volume_weights)
    model = seeded(lambda: UNet3D(1, 2, [features * 2**k for k in range(4)], pools_for(patch), upsample="transpose",
                                  negative_slope=0.1), torch.Generator().manual_seed(seed)).to(device)
    segmenter = Segmenter(model, spacing, patch, min_volume_um3=min_volume_um3, device=device, dtype=dtype)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses, points = [], []
    best_state, best_ap = None, -1.0
    budget_s = minutes * 60 if minutes is not None else math.inf
    start = time.perf_counter()
    next_check = 1
    bar = tqdm(total=steps, desc="training", unit="step", disable=True if not progress else None)

    def progress_of(step: int) -> float:
        # With a step budget the schedule and the validation points follow the steps alone (the minutes only
        # stop a run that overruns): the same seed gives the same model on a quiet or a loaded machine.
        if steps is not None:
            return step / steps
        return (time.perf_counter() - start) / budget_s

    done = False
    for epoch in count():
        patches.set_epoch(epoch)
        for batch in torch.utils.data.DataLoader(patches, batch_size=batch_size):
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(progress_of(len(losses)), learning_rate)
            losses.append(supervised_step(model, optimiser, batch["image"].to(device), batch["target"].to(device),
                                          dtype, precision, len(losses)))
            bar.update()
            out_of_time = time.perf_counter() - start >= budget_s
            finished = progress_of(len(losses)) >= 1 or out_of_time
            if finished or progress_of(len(losses)) >= next_check / N_VALIDATIONS:
                next_check = math.floor(progress_of(len(losses)) * N_VALIDATIONS) + 1
                probabilities = [segmenter.probabilities(v.image, v.spacing) for v in validation]
                thresholds, ap = choose_thresholds(probabilities, validation, min_volume_um3)
                points.append({"step": len(losses), "seconds": round(time.perf_counter() - start, 2),
                               "validation_ap50": ap, "thresholds": thresholds,
                               "loss": float(np.mean(losses[-50:]))})
                if ap >= best_ap:
                    best_ap, best_state = ap, copy.deepcopy(model.state_dict())
                    segmenter.thresholds = thresholds
            if finished:
                done = True
                break
        if done:
            break
    bar.close()
    model.load_state_dict(best_state)
    selected = max((p for p in points if p["validation_ap50"] == best_ap), key=lambda p: p["step"])
    segmenter.history = {"losses": losses, "validation": points, "selected_step": selected["step"],
                         "validation_ap50": best_ap, "steps": len(losses),
                         "stopped_by": "steps" if steps is not None and len(losses) >= steps else "minutes",
                         "seconds": round(time.perf_counter() - start, 2)}
    model.eval()
    return segmenter


def syn2real(
    train: TrainingSet | Sequence[TrainingSet],
    test: str | os.PathLike,
    out: str | os.PathLike,
    *,
    spacing_um: Sequence[float] | None = None,
    patch_um: Sequence[float] = PATCH_UM,
    steps: int | None = 2000,
    minutes: float | None = None,
    batch_size: int = 2,
    learning_rate: float = 2e-3,
    features: int = 16,
    validation_fraction: float = VALIDATION_FRACTION,
    thresholds: Sequence[float] = THRESHOLDS,
    weights: Sequence[float] | None = None,
    fraction: float = 1.0,
    augment: str | Sequence[str] = "default",
    repeats: int = 1,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    progress: bool = True,
) -> dict:
    """Train on ``train`` (:func:`train_segmenter`), segment every image of ``test``, write the report into ``out``.

    ``out`` receives ``report.json`` (pooled and per-image matching at every IoU threshold, the
    settings, the loss curve and the validation points), ``segmenter.safetensors`` (weights;
    working spacing, patch and thresholds in its metadata) and ``predictions/test_NNNN.tif``.
    Both datasets and ``out`` are checked before training starts. The working spacing defaults to
    :func:`working_spacing` of the training *and* test data.

    ``train`` may be several training sets (real first: validation is taken from it), mixed by
    ``weights`` and with ``fraction`` of the first kept (:func:`train_segmenter`); ``augment`` is a
    strategy of :func:`augmentation`. With ``repeats`` above 1 the segmenter is trained with seeds
    ``seed … seed + repeats − 1`` and the report adds ``repeats``: every run's AP@0.5 and AP@0.75,
    their mean and standard deviation, and a bootstrap interval over test objects of each mean
    (:func:`~cellsynth.evaluate.segmentation.bootstrap_ap`); the files are the first run's.

    Examples
    --------
    >>> report = syn2real("data/nuclei", "data/cells3d_right", "data/syn2real", minutes=15)   # doctest: +SKIP
    >>> report["pooled"][4]["average_precision"]                                              # doctest: +SKIP
    >>> mixed = syn2real(["data/cells3d_left", "data/nuclei"], "data/cells3d_right", "data/mix",  # doctest: +SKIP
    ...                  weights=[1, 1], repeats=3)
    """
    if not isinstance(repeats, (int, np.integer)) or isinstance(repeats, bool) or not 1 <= repeats <= 100:
        raise InputError(f"--repeats must be a whole number in 1…100; got {repeats!r}")
    augmentation(augment)  # an unknown strategy is refused before anything is read
    out = check_output_folder(out)
    test_volumes = read_volumes(test, labels=True, what="--test")
    sets = _training_sets(train)
    if spacing_um is None:
        spacing_um = working_spacing([v.spacing for volumes in sets for v in volumes] +
                                     [v.spacing for v in test_volumes])
    runs, first = [], None
    for run in range(int(repeats)):
        segmenter = train_segmenter(sets, spacing_um=spacing_um, patch_um=patch_um, steps=steps, minutes=minutes,
                                    batch_size=batch_size, learning_rate=learning_rate, features=features,
                                    validation_fraction=validation_fraction, transform=augmentation(augment),
                                    weights=weights, fraction=fraction, seed=seed + run, device=device,
                                    precision=precision, progress=progress)
        predictions = [segmenter.segment(v.image, v.spacing) for v in
                       tqdm(test_volumes, desc="testing", unit="image", disable=True if not progress else None)]
        pooled = pooled_scores([matching(v.labels, p, (0.5, 0.75)) for v, p in zip(test_volumes, predictions,
                                                                                  strict=True)])
        runs.append({"seed": seed + run, "ap50": score_at(pooled, 0.5), "ap75": score_at(pooled, 0.75),
                     "counts": {t: [row["tp"], row["fp"], row["fn"]] for t, row in zip(("ap50", "ap75"), pooled,
                                                                                         strict=True)},
                     "steps": segmenter.history["steps"], "stopped_by": segmenter.history["stopped_by"]})
        first = first or (segmenter, predictions)
    segmenter, predictions = first
    history = segmenter.history
    settings = {"method": "syn2real",
                "train": ([str(t) if isinstance(t, (str, os.PathLike)) else "volumes" for t in train] if len(sets) > 1
                          else str(train) if isinstance(train, (str, os.PathLike)) else "volumes"),
                "test": str(test), "weights": None if weights is None else [float(w) for w in weights],
                "fraction": fraction, "augment": augment if isinstance(augment, str) else list(augment),
                "working_spacing_um": list(segmenter.spacing), "patch_um": [float(p) for p in patch_um],
                "patch_voxels": list(segmenter.patch), "budget_steps": steps, "budget_minutes": minutes,
                "batch_size": batch_size, "learning_rate": learning_rate, "features": features,
                "validation_fraction": validation_fraction, "seed": seed, "repeats": int(repeats),
                "device": segmenter.device, "precision": "bf16" if segmenter.dtype is not None else "fp32",
                "normalization_percentiles": list(PERCENTILES), "thresholds": segmenter.thresholds}
    out.mkdir(exist_ok=True)
    segmenter.save(out / "segmenter.safetensors", settings)
    losses = history["losses"]
    extra = {"repeats": repeated_figures(runs)} if repeats > 1 else {}
    return write_segmentation_results(
        Path(out), test_volumes, predictions, settings, thresholds,
        training={key: history[key] for key in ("steps", "stopped_by", "seconds", "selected_step", "validation_ap50",
                                                    "validation")},
        loss_first=losses[0], loss_last=float(np.mean(losses[-max(1, len(losses) // 10):])), losses=losses, **extra)


def repeated_figures(runs: Sequence[dict]) -> dict:
    """Mean, standard deviation (over runs, ddof 1) and bootstrap interval over test objects of AP@0.5 and AP@0.75.

    Examples
    --------
    >>> runs = [{"ap50": 0.8, "ap75": 0.5, "counts": {"ap50": [8, 1, 1], "ap75": [5, 4, 4]}},
    ...         {"ap50": 0.6, "ap75": 0.4, "counts": {"ap50": [6, 2, 2], "ap75": [4, 4, 4]}}]
    >>> figures = repeated_figures(runs)
    >>> figures["ap50_mean"], round(figures["ap50_sd"], 3), figures["n_runs"]
    (0.7, 0.141, 2)
    """
    figures: dict = {"runs": list(runs), "n_runs": len(runs)}
    for key in ("ap50", "ap75"):
        values = np.array([r[key] for r in runs], np.float64)
        figures[f"{key}_mean"] = round(float(values.mean()), 6)
        figures[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        figures[f"{key}_ci95"] = list(bootstrap_ap([tuple(r["counts"][key]) for r in runs]))
    return figures
