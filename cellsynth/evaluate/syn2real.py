"""Syn2Real: train a compact 3D segmenter on one dataset, test it on another, report the matching scores.

Trained on synthetic data and tested on real data it answers "is this synthetic dataset good
enough?"; trained on the real training split it gives the Real2Real baseline to compare with.

The segmenter is a small 3D U-Net (:class:`cellsynth.models.unet3d.UNet3D`) predicting two
probabilities per voxel, foreground and instance boundary (the targets of
:func:`segmentation_targets`), trained with binary cross-entropy on random patches augmented on the
fly (:class:`cellsynth.augment.PatchDataset`). Test volumes go through the patch engine, and
instances come from a seeded watershed: seeds are the connected foreground voxels away from
boundaries, flooded over the boundary probability within the foreground.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import watershed
from tqdm.auto import tqdm

from cellsynth.augment import (
    BrightnessContrast,
    Diversify,
    Flip,
    Gamma,
    GaussianNoise,
    PatchDataset,
    Rotate90,
    Stacked,
    Transform,
    load_labelled_images,
)
from cellsynth.errors import InputError
from cellsynth.evaluate.images import jsonable
from cellsynth.evaluate.segmentation import THRESHOLDS, matching, scores_from_counts
from cellsynth.io import atomic_path, write_json_atomic, write_volume
from cellsynth.masks.derived import SEMANTIC_CLASSES, semantic_from_instances
from cellsynth.models.unet3d import UNet3D, seeded
from cellsynth.synthesis.patching import apply_patched

PERCENTILES = (0.1, 99.9)


def segmentation_targets(labels: np.ndarray, spacing=None) -> dict[str, np.ndarray]:
    """``{"target": (2, Z, Y, X) float32}``: foreground and instance-boundary masks of ``labels``."""
    semantic = semantic_from_instances(labels)
    return {"target": np.stack([semantic > 0, semantic == SEMANTIC_CLASSES["border"]]).astype(np.float32)}


def default_augmentation() -> Transform:
    """Flips, 90° rotations, diversification, intensity jitter and noise, each with probability 0.5."""
    return Stacked([Flip(), Rotate90(), Diversify(), BrightnessContrast(), Gamma(), GaussianNoise(std=(0, 0.03))],
                   p=0.5)


def pools_for(patch: Sequence[int], levels: int = 2) -> list[tuple[int, int, int]]:
    """Pooling per level: halve an axis only while it keeps at least 4 voxels."""
    size, pools = list(patch), []
    for _ in range(levels):
        pool = tuple(2 if n // 2 >= 4 else 1 for n in size)
        size = [n // p for n, p in zip(size, pool, strict=True)]
        pools.append(pool)
    return pools  # type: ignore[return-value]


def train_segmenter(
    train,
    *,
    patch: Sequence[int] = (16, 64, 64),
    steps: int = 300,
    batch_size: int = 2,
    learning_rate: float = 1e-3,
    features: int = 16,
    transform: Transform | None = None,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> tuple[UNet3D, list[float]]:
    """Train the segmenter on random augmented patches of ``train`` (a dataset folder or labelled images).

    Returns
    -------
    model : UNet3D
        In eval mode.
    losses : list of float
        The loss of every step.
    """
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch size must be >= 1; got {steps} and {batch_size}")
    patches = PatchDataset(train, patch, transform=default_augmentation() if transform is None else transform,
                           samples_per_epoch=steps * batch_size, foreground_fraction=0.7, percentiles=PERCENTILES,
                           targets=segmentation_targets, seed=seed)
    model = seeded(lambda: UNet3D(1, 2, (features, 2 * features, 4 * features), pools_for(patch), upsample="transpose",
                                  negative_slope=0.1), torch.Generator().manual_seed(seed)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    model.train()
    loader = torch.utils.data.DataLoader(patches, batch_size=batch_size)
    for batch in tqdm(loader, desc="training", unit="step", disable=True if not progress else None):
        logits = model(batch["image"].to(device))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["target"].to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses


def predict_probabilities(model: UNet3D, image: np.ndarray, patch: Sequence[int], device: str = "cpu",
                          batch_size: int = 2) -> np.ndarray:
    """Foreground and boundary probabilities ``(2, Z, Y, X)`` of a normalised image, tile by tile."""
    divisor = max(model.divisor)
    patch = [max(divisor, p - p % divisor) for p in patch]
    overlap = [p // 4 for p in patch]
    crop = [p // 8 for p in patch]

    @torch.no_grad()
    def run(tiles: np.ndarray) -> np.ndarray:
        return torch.sigmoid(model(torch.from_numpy(np.ascontiguousarray(tiles)).to(device))).cpu().numpy()

    result, _ = apply_patched(run, image[None].astype(np.float32), patch=patch, overlap=overlap, crop=crop,
                              window="hann", multiple=divisor, batch_size=batch_size, out_channels=2)
    return result


def instances_from_probabilities(probabilities: np.ndarray, threshold: float = 0.5, min_seed_voxels: int = 4,
                                 min_object_voxels: int = 32) -> np.ndarray:
    """Seeded watershed: seeds = foreground away from boundaries, flooded over the boundary probability.

    Seeds smaller than ``min_seed_voxels`` and objects smaller than ``min_object_voxels`` (speckle)
    are dropped; the remaining objects are numbered 1…n.
    """
    foreground, boundary = probabilities
    mask = foreground > threshold
    seeds, _ = ndi.label(mask & (boundary < threshold))
    seeds[(np.bincount(seeds.ravel()) < min_seed_voxels)[seeds] & (seeds > 0)] = 0
    labels = watershed(boundary, seeds, mask=mask)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_object_voxels
    keep[0] = False
    numbering = np.zeros(len(sizes), np.int64)
    numbering[keep] = np.arange(1, keep.sum() + 1)
    labels = numbering[labels]
    return labels.astype(np.uint32 if labels.max() >= 2**16 else np.uint16)


def pooled_scores(per_image: list[list[dict]]) -> list[dict]:
    """Matching scores over all test images: counts summed per threshold, then the ratios."""
    return [scores_from_counts(rows[0]["threshold"], *(sum(r[k] for r in rows) for k in ("n_true", "n_pred", "tp")),
                               sum(r["mean_matched_iou"] * r["tp"] for r in rows if r["tp"]))
            for rows in zip(*per_image, strict=True)]


def _check_out(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output folder '{out}' exists and is not empty; choose a new folder")
    if not out.parent.is_dir():
        raise InputError(f"output folder '{out}': its parent '{out.parent}' does not exist")
    return out


def syn2real(
    train: str | os.PathLike,
    test: str | os.PathLike,
    out: str | os.PathLike,
    *,
    patch: Sequence[int] = (16, 64, 64),
    steps: int = 300,
    batch_size: int = 2,
    learning_rate: float = 1e-3,
    features: int = 16,
    thresholds: Sequence[float] = THRESHOLDS,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Train on ``train``, segment every image of ``test``, and write the report into ``out``.

    ``out`` receives ``report.json`` (pooled and per-image matching at every threshold, the loss
    curve, the settings), ``segmenter.safetensors`` (the weights, settings in its metadata) and
    ``predictions/test_NNNN.tif`` (the instances found). Both datasets are validated before
    training starts.
    """
    out = _check_out(Path(out))
    patch = tuple(int(p) for p in patch)
    if len(patch) != 3 or min(patch) < 4:
        raise InputError(f"patch must be three sizes >= 4 voxels (z, y, x); got {patch}")
    test_items = load_labelled_images(test, percentiles=PERCENTILES)
    load_labelled_images(train, percentiles=None)  # fail on a bad training set before any work
    model, losses = train_segmenter(train, patch=patch, steps=steps, batch_size=batch_size,
                                    learning_rate=learning_rate, features=features, seed=seed, device=device,
                                    progress=progress)
    per_image, predictions = [], []
    for item in tqdm(test_items, desc="testing", unit="image", disable=True if not progress else None):
        predicted = instances_from_probabilities(predict_probabilities(model, item.image, patch, device))
        predictions.append(predicted)
        per_image.append(matching(item.labels, predicted, thresholds))
    settings = {"train": str(train), "test": str(test), "patch": list(patch), "steps": steps,
                "batch_size": batch_size, "learning_rate": learning_rate, "features": features, "seed": seed,
                "device": device, "normalization_percentiles": list(PERCENTILES)}
    report = jsonable({"settings": settings, "pooled": pooled_scores(per_image), "per_image": per_image,
                       "loss_first": losses[0], "loss_last": float(np.mean(losses[-max(1, len(losses) // 10):])),
                       "losses": losses})
    out.mkdir(exist_ok=True)
    (out / "predictions").mkdir(exist_ok=True)
    for index, (item, predicted) in enumerate(zip(test_items, predictions, strict=True)):
        write_volume(out / "predictions" / f"test_{index:04d}.tif", predicted, item.spacing)
    with atomic_path(out / "segmenter.safetensors") as tmp:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp),
                  metadata={"cellsynth_checkpoint": "syn2real-segmenter", "settings": json.dumps(settings)})
    write_json_atomic(out / "report.json", report)
    return report
