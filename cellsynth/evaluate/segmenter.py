"""The judges' 3D segmenter: trained on labelled volumes (:func:`train_segmenter`, how it trains in
:class:`~cellsynth.evaluate.settings.SegmenterSettings`), it segments images of any voxel size (:class:`Segmenter`).

- **Grid.** Training and test volumes are resampled to one *working spacing* (default: the
  coarsest spacing of the data, but never finer than 0.5 µm per axis: nuclei a few µm across keep
  ten or more voxels, and a CPU trains in minutes). Patches have a size in µm. Intensities are
  normalised per volume (0.1/99.9 percentiles to [0, 1]).
- **Network.** The one 3D U-Net (:class:`cellsynth.models.unet3d.UNet3D`, three down-samplings,
  instance norm) predicts two maps: the foreground and a *centre-ness*, each object's distance to
  its own surface in µm divided by that object's largest such distance (1 at its centre, → 0 at
  its border, 0 outside). Binary cross-entropy on both.
- **Training.** Random patches (70 % centred on an object) with on-the-fly augmentation
  (by default :func:`~cellsynth.augment.strategies.default_augmentation`), Adam, a 5 % linear
  warm-up then cosine decay over the budget (``steps`` or ``minutes``, whichever ends first), bf16
  autocast where the hardware has it.
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

import numpy as np
import torch
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from cellsynth.augment import PatchDataset, normalize_percentiles
from cellsynth.augment.strategies import augmentation
from cellsynth.checks import Spacing, check_memory, check_spacing
from cellsynth.dataset.samples import as_samples
from cellsynth.dataset.split import split_volume
from cellsynth.errors import InputError
from cellsynth.evaluate.segmentation import THRESHOLDS, matching, pooled_scores, score_at
from cellsynth.evaluate.settings import SegmenterSettings, patch_voxels
from cellsynth.evaluate.volumes import grid_shape, resample
from cellsynth.io import atomic_path
from cellsynth.masks.derived import centreness
from cellsynth.masks.segment import MIN_VOLUME_UM3, seeded_watershed
from cellsynth.models.common import autocast_dtype, keep_freed_memory, resolve_device, supervised_step
from cellsynth.models.unet3d import UNet3D, seeded
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import apply_patched

PERCENTILES = (0.1, 99.9)
#: The working grid is never finer than this (µm per axis) unless asked for.
MIN_WORKING_SPACING_UM = 0.5
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
    >>> labels = np.zeros((8, 32, 32), np.uint16); labels[2:6, 4:12, 4:12] = 1; labels[2:6, 18:28, 16:26] = 2
    >>> image = (labels > 0) + 0.1 * np.random.default_rng(0).random(labels.shape, np.float32)
    >>> segmenter = train_segmenter([Sample(labels, image, (1.0, 1.0, 1.0))], steps=2, patch_um=(8, 16, 16),
    ...                             features=2, device="cpu", progress=False)
    >>> segmenter.patch, segmenter.spacing, segmenter.segment(image, (1.0, 0.5, 0.5)).shape
    ((8, 16, 16), (1.0, 1.0, 1.0), (8, 32, 32))
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


TrainingSet = str | os.PathLike | Sequence[Sample]


def train_segmenter(
    train: TrainingSet | Sequence[TrainingSet],
    settings: SegmenterSettings | None = None,
    *,
    progress: bool = True,
    **changes,
) -> Segmenter:
    """Train the segmenter (module doc) on labelled volumes; select weights and thresholds on held-out parts.

    Parameters
    ----------
    train : path-like, sequence of Sample, or a sequence of them
        A dataset folder with labels, or volumes with labels; or several such training sets (mixed
        training: real + synthetic), the first of which gives the validation part.
    settings : SegmenterSettings, optional
        How to train (default :class:`SegmenterSettings`).
    progress : bool
        Show a progress bar.
    **changes
        Fields of ``settings`` to change (``steps=400, seed=1``).

    Returns
    -------
    Segmenter
        With ``history``: ``losses`` (every step), ``validation`` (step, seconds, AP@0.5,
        thresholds at each point), ``selected_step``, ``steps``, ``stopped_by``, ``seconds``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.zeros((8, 32, 32), np.uint16); labels[2:6, 4:12, 4:12] = 1; labels[2:6, 18:28, 16:26] = 2
    >>> image = (labels > 0) + 0.1 * rng.random(labels.shape, np.float32)
    >>> segmenter = train_segmenter([Sample(labels, image, (1.0, 1.0, 1.0))], steps=2, patch_um=(8, 16, 16),
    ...                             features=2, device="cpu", progress=False)
    >>> segmenter.history["steps"], segmenter.segment(image, (1.0, 1.0, 1.0)).shape
    (2, (8, 32, 32))
    """
    settings = (settings or SegmenterSettings()).replace(**changes)
    steps, minutes, batch_size, learning_rate, features, seed = (
        settings.steps, settings.minutes, settings.batch_size, settings.learning_rate, settings.features, settings.seed)
    min_volume_um3 = settings.min_volume_um3
    device = resolve_device(settings.device)
    dtype = autocast_dtype(device, settings.precision)
    sets = training_sets(train)
    volumes = [v for volumes in sets for v in volumes]
    volume_weights = _set_weights(sets, settings.weights)
    if not any(v.labels.any() for v in volumes):
        raise InputError("the training labels hold no object")
    spacing = settings.spacing_um or working_spacing([v.spacing for v in volumes])
    patch = patch_voxels(settings.patch_um, spacing)
    check_memory(training_bytes(patch, batch_size, features),
                 f"a training step on {batch_size} patches of {tuple(patch)} voxels with {features} features",
                 "use a smaller --patch-um, a coarser --spacing or a smaller --batch-size")
    fitting, validation = _split_for_validation(sets[0], settings.validation_fraction)
    fitting = _keep_fraction(fitting, settings.fraction) + [v for volumes in sets[1:] for v in volumes]
    validation = [v.replace(image=resample(v.image, v.spacing, spacing), spacing=spacing,
                            labels=resample(v.labels, v.spacing, spacing, order=0,
                                            shape=grid_shape(v.image.shape, v.spacing, spacing)))
                  for v in validation]  # model selection on the working grid: cheap enough to run ten times
    patches = PatchDataset([prepare(v, spacing) for v in fitting], patch,
                           transform=augmentation(settings.augment),
                           samples_per_epoch=batch_size * 50, foreground_fraction=0.7, percentiles=None,
                           targets=segmentation_targets, seed=seed, weights=volume_weights)
    if device == "cpu":
        keep_freed_memory()  # page faults, not arithmetic, were a third of a CPU step
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
                                          dtype, settings.precision, len(losses)))
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


def training_sets(train: TrainingSet | Sequence[TrainingSet]) -> list[list[Sample]]:
    """One training set (a path or volumes) or several, as lists of volumes with labels."""
    several = not isinstance(train, (str, os.PathLike)) and len(train) > 0 and not isinstance(train[0], Sample)
    return [as_samples(source, labels=True, what="--train") for source in (train if several else [train])]


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
