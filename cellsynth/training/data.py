"""The training data of a run: the user's images read and normalised, condition volumes for the
cGAN, and random patches drawn from them (one generator per process), prefetched on a thread."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellsynth.augment.data import patch_start
from cellsynth.augment.diversify import rescale
from cellsynth.checks import check_image, check_spacing
from cellsynth.config import TrainConfig, TrainDataConfig
from cellsynth.dataset import sample_rng
from cellsynth.errors import InputError
from cellsynth.io import read_volume, volume_files
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import reflect_indices


def load_training_images(data: TrainDataConfig, images: Sequence[Sample] | None = None
                         ) -> tuple[list[np.ndarray], tuple[float, float, float], dict]:
    """The training images normalised to [0, 1], their common spacing (µm) and the normalisation.

    The images are ``data.images`` (files), or ``images`` (in memory: :class:`~cellsynth.sample.Sample`
    with an image and its spacing), one of the two. The percentiles are computed per image and
    averaged, then one mapping is applied to all (and stored in the checkpoint, so generated images
    can be mapped back to camera units).

    Parameters
    ----------
    data : TrainDataConfig
        The training data section (its images are files).
    images : sequence of Sample, optional
        In-memory images instead of ``data.images`` (spacing in µm each).

    Returns
    -------
    images : list of ndarray
        float32 in [0, 1].
    spacing : 3 floats
        µm.
    normalisation : dict
        The percentiles and the intensities (``low``, ``high``) mapped to 0 and 1.

    Raises
    ------
    InputError
        If both or neither source is given, a file is missing or unreadable, an image holds NaN or
        inf or has no spacing (and none is configured), or the spacings differ by more than 1 %.

    Examples
    --------
    >>> from cellsynth import Sample
    >>> from cellsynth.config import TrainDataConfig
    >>> image = np.random.default_rng(0).random((4, 16, 16))
    >>> volumes, spacing, mapping = load_training_images(TrainDataConfig(), [Sample(image=image, spacing=(1, .5, .5))])
    >>> spacing, float(volumes[0].min()), float(volumes[0].max())
    ((1.0, 0.5, 0.5), 0.0, 1.0)
    """
    if bool(data.images) == bool(images):
        raise InputError("give the training images as files (data.images) or as arrays (images=...), one of the two")
    volumes, spacings = [], []
    if images:
        for index, sample in enumerate(images):
            if not isinstance(sample, Sample) or sample.image is None:
                raise InputError(f"training image {index} must be a cellsynth Sample with an image and its spacing")
            volumes.append(sample.image.astype(np.float32, copy=False))
            spacings.append(check_spacing(data.spacing_um or sample.voxel_spacing(), f"spacing of image {index}"))
    for path in volume_files(data.images, "training image")[0] if data.images else []:
        image, spacing = read_volume(path, data.spacing_um,
                                     spacing_hint="set data.spacing_um: [z, y, x] (µm) in the training YAML")
        volumes.append(np.asarray(check_image(image, f"training image '{path}'"), np.float32))
        spacings.append(check_spacing(data.spacing_um or spacing, f"spacing of '{path}'"))
    spacing = spacings[0]
    for other in spacings[1:]:
        if not np.allclose(other, spacing, rtol=0.01):
            raise InputError(f"training images must share one voxel spacing; got {spacing} and {other} µm "
                             "(resample them, or set data.spacing_um if the files are wrong)")
    lows, highs = zip(*(np.percentile(image, data.percentiles) for image in volumes), strict=True)
    low, high = float(np.mean(lows)), float(np.mean(highs))
    if high <= low:
        raise InputError(f"the training images are constant between percentiles {list(data.percentiles)}")
    normalisation = {"percentiles": list(data.percentiles), "low": low, "high": high}
    return [rescale(image, low, high) for image in volumes], spacing, normalisation


def crop(volume: np.ndarray, start: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """``volume[..., start:start+patch]`` over the last three axes, reflected where it leaves the volume.

    A window inside the volume is a slice copy (about 10× faster than the fancy indexing that
    reflection needs).
    """
    shape = volume.shape[-3:]
    if all(0 <= s and s + p <= n for s, p, n in zip(start, patch, shape, strict=True)):
        return volume[(..., *(slice(int(s), int(s) + int(p)) for s, p in zip(start, patch, strict=True)))].copy()
    index = [reflect_indices(s, p, n) for s, p, n in zip(start, patch, shape, strict=True)]
    return volume[..., index[0][:, None, None], index[1][None, :, None], index[2][None, None, :]]


class PatchSampler:
    """Random training patches: one per image per epoch (images in a new random order every epoch).

    Parameters
    ----------
    images : list of ndarray (C, Z, Y, X)
        Per image its channels (image, positional map).
    patch : 3 ints
    batch_size : int
    rng : numpy.random.Generator
        The only source of randomness; its state is part of the checkpoint.
    masks : list of ndarray (C, Z, Y, X), optional
        Condition volumes drawn independently of the images (unpaired), or, with ``paired``,
        ``masks[i]`` belongs to ``images[i]`` and is cropped at the same place.
    """

    def __init__(self, images: list[np.ndarray], patch: Sequence[int], batch_size: int,
                 masks: list[np.ndarray] | None = None, paired: bool = False, rng=None):
        rng = np.random.default_rng(rng)
        self.images, self.masks, self.patch, self.paired = images, masks, tuple(patch), paired
        self.batch_size, self.rng = batch_size, rng
        self.order: list[int] = []

    def _start(self, shape: Sequence[int]) -> list[int]:
        return patch_start(shape, self.patch, rng=self.rng)

    def next(self) -> dict[str, np.ndarray]:
        """A batch: ``image`` (B, C, *patch) and, with masks, ``mask`` (B, C_mask, *patch) and ``paired`` (B,)."""
        images, masks = [], []
        for _ in range(self.batch_size):
            if not self.order:
                self.order = [int(i) for i in self.rng.permutation(len(self.images))]
            index = self.order.pop(0)
            start = self._start(self.images[index].shape[1:])
            images.append(crop(self.images[index], start, self.patch))
            if self.masks is not None:
                which = index if self.paired else int(self.rng.integers(len(self.masks)))
                mask_start = start if self.paired else self._start(self.masks[which].shape[1:])
                masks.append(crop(self.masks[which], mask_start, self.patch))
        batch = {"image": np.stack(images)}
        if self.masks is not None:
            batch["mask"] = np.stack(masks)
            batch["paired"] = np.full(self.batch_size, self.paired)
        return batch

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": list(self.order)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = [int(i) for i in state["order"]]


class Prefetcher:
    """A :class:`PatchSampler`'s next batch, cropped on a background thread while a step runs.

    Batches come in the sampler's own order, so training is unchanged; :meth:`state_dict` is the
    sampler's state before the batch drawn ahead, so a resumed run draws that batch again.
    """

    def __init__(self, sampler: PatchSampler):
        from concurrent.futures import ThreadPoolExecutor

        self.sampler = sampler
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="patches")
        self.ahead = self._draw()

    def _draw(self):
        return self.pool.submit(lambda: (self.sampler.state_dict(), self.sampler.next()))

    def next(self) -> dict[str, np.ndarray]:
        _, batch = self.ahead.result()
        self.ahead = self._draw()
        return batch

    def state_dict(self) -> dict:
        return self.ahead.result()[0]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def patch_size(config: TrainConfig, model: str) -> tuple[int, int, int]:
    """``data.patch``, or the model's default (cGAN 64×128×128 and DDPM 32×128×128, as in the papers)."""
    if config.data.patch is not None:
        return tuple(config.data.patch)  # type: ignore[return-value]
    return (64, 128, 128) if model == "gan" else (32, 128, 128)


def paired(config: TrainConfig) -> bool:
    """Whether the cGAN's masks segment its images (files with ``data.paired``, or pseudo-labels)."""
    return config.data.paired or config.data.masks == "pseudo"


def run_sampler(config: TrainConfig, accelerator, images: list[np.ndarray], patch, masks=None) -> PatchSampler:
    # under `accelerate launch` every process draws its own patches
    rng = sample_rng(config.seed, (1 << 20) + accelerator.process_index)
    return PatchSampler(images, patch, config.batch_size, masks, paired(config), rng=rng)


def centre_crop(volume: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    return crop(volume, [max(0, (n - p) // 2) for n, p in zip(volume.shape[-3:], patch, strict=True)], patch)


def mask_volumes(config: TrainConfig, spacing, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Condition volumes (mask channel, positional map) and their labels: simulated, from files, or the
    classical segmentation of each training image (pseudo-labels)."""
    from cellsynth.synthesis.conditioning import gan_condition

    gan = config.gan
    conditions, labels_list = [], []
    if config.data.masks == "pseudo":
        from cellsynth.masks.segment import classical_segmentation

        for image in images:
            labels = classical_segmentation(image, spacing)
            conditions.append(gan_condition(labels, spacing, kind=gan.kind, alpha_um=gan.alpha_um,
                                            beta_um=gan.beta_um))
            labels_list.append(labels)
        return conditions, labels_list
    if config.data.masks == "simulated":
        from cellsynth.masks.simulate import simulate_masks

        for index in range(config.data.simulated_volumes):
            masks = simulate_masks(images[0].shape, spacing, config.masks, sample_rng(config.seed, index))
            conditions.append(gan_condition(masks.labels, spacing, kind=gan.kind, foreground=masks.foreground,
                                            membranes=masks.membranes, alpha_um=gan.alpha_um, beta_um=gan.beta_um))
            labels_list.append(masks.labels)
        return conditions, labels_list
    for path in volume_files(config.data.mask_files, "mask file")[0]:
        labels, _ = read_volume(path, spacing)
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"mask file '{path}' must hold integer labels; got {labels.dtype}")
        conditions.append(gan_condition(labels, spacing, kind=gan.kind, alpha_um=gan.alpha_um, beta_um=gan.beta_um))
        labels_list.append(labels)
    return conditions, labels_list
