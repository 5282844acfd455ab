"""Training runs on the user's images: read and normalise them, draw patches, train, checkpoint.

A run folder holds ``checkpoint.safetensors`` (weights for generation, the whole training state,
and JSON with the config, normalisation, conditioning and step), ``log.csv`` and
``previews/step_NNNNNN.png``. ``resume=True`` continues a run exactly where its last checkpoint
left it: the same losses follow as in an uninterrupted run.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cellsynth.augment.data import patch_start
from cellsynth.augment.diversify import rescale
from cellsynth.checkpoints import CheckpointInfo, read_checkpoint, write_checkpoint
from cellsynth.checks import check_image, check_output, check_spacing
from cellsynth.config import TrainConfig, TrainDataConfig
from cellsynth.dataset import sample_rng
from cellsynth.errors import InputError, MissingDependencyError
from cellsynth.io import read_volume, volume_files
from cellsynth.sample import Sample
from cellsynth.synthesis.patching import reflect_indices

CHECKPOINT_NAME = "checkpoint.safetensors"
#: Patches in one ADA "epoch" (the paper's rule adjusts p once per epoch): with one training image an epoch
#: of images would be one step, and p would move every step; StyleGAN2-ADA likewise adjusts on images seen.
ADA_EPOCH_PATCHES = 64
#: Config keys a resumed run may change (how long and how it is watched, not what is learnt).
RESUMABLE_CHANGES = ("steps", "max_minutes", "log_every", "preview_every", "checkpoint_every", "tensorboard", "device",
                     "mixed_precision")


def load_training_images(data: TrainDataConfig, images: Sequence[Sample] | None = None
                         ) -> tuple[list[np.ndarray], tuple[float, float, float], dict]:
    """The training images normalised to [0, 1], their common spacing (µm) and the normalisation.

    The images are ``data.images`` (files), or ``images`` (in memory: :class:`~cellsynth.sample.Sample`
    with an image and its spacing), one of the two. The percentiles are computed per image and
    averaged, then one mapping is applied to all (and stored in the checkpoint, so generated images
    can be mapped back to camera units).

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


def _check_run_folder(out: Path, resume: bool, config: TrainConfig, model: str) -> dict | None:
    """The checkpoint info to resume from (None for a fresh run); refuses unsafe combinations."""
    checkpoint = out / CHECKPOINT_NAME
    if config.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise MissingDependencyError("tensorboard: true needs the tensorboard package; pip install tensorboard")
    if not resume:
        check_output(out, "run folder", folder=True, if_not_empty="continue it with --resume or choose a new folder")
        return None
    if not checkpoint.is_file():
        raise InputError(f"nothing to resume in '{out}': it has no {CHECKPOINT_NAME}")
    _, info = read_checkpoint(checkpoint, model)
    before, now = info["config"], config.model_dump(mode="json")
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
    if changed:
        raise InputError(f"cannot resume '{out}' with a different {', '.join(changed)}; only "
                         f"{', '.join(RESUMABLE_CHANGES)} may change")
    if info["step"] >= config.steps:
        raise InputError(f"'{out}' already ran {info['step']} steps; raise steps above that to continue")
    return info


def _mask_volumes(config: TrainConfig, spacing, images: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


def gan_architecture(config: TrainConfig) -> dict:
    """Keyword arguments of the cGAN generator's :class:`~cellsynth.models.unet3d.UNet3D`."""
    return {"in_channels": 2, "out_channels": 1, "widths": list(config.gan.widths), "norm": config.gan.norm,
            "upsample": "resize", "out_activation": "sigmoid"}


def build_gan_trainer(config: TrainConfig, steps_per_epoch: int):
    """The seeded cGAN trainer of ``config`` (ADA interval from the epoch length in steps)."""
    import torch

    from cellsynth.models.common import TRAINING_COPIES, check_model_memory
    from cellsynth.models.discriminator import PatchDiscriminator
    from cellsynth.models.gan import AdaController, GanLossSettings, GanTrainer
    from cellsynth.models.unet3d import UNet3D, seeded
    from cellsynth.training.runs import make_accelerator, rank_seed

    gan = config.gan
    check_model_memory(lambda: UNet3D(**gan_architecture(config)), "the cGAN generator", TRAINING_COPIES,
                       "use smaller gan.widths")
    check_model_memory(lambda: PatchDiscriminator(2, gan.discriminator_widths, gan.discriminator_strides, gan.norm),
                       "the cGAN discriminator", TRAINING_COPIES, "use smaller gan.discriminator_widths")
    weights = torch.Generator().manual_seed(config.seed)
    generator = seeded(lambda: UNet3D(**gan_architecture(config)), weights)
    discriminator = seeded(lambda: PatchDiscriminator(2, gan.discriminator_widths, gan.discriminator_strides,
                                                      gan.norm), weights)
    if gan.ada.rule == "epochs":
        ada = AdaController(gan.ada.p_start, gan.ada.target, gan.ada.delta, steps_per_epoch * gan.ada.interval_epochs)
    else:
        delta = config.batch_size * gan.ada.interval_batches / (gan.ada.kimg * 1000)
        ada = AdaController(gan.ada.p_start, gan.ada.target, delta, gan.ada.interval_batches)
    losses = GanLossSettings(gan.adversarial_loss, gan.identity_weight, gan.paired_weight, gan.r1_weight)
    try:
        accelerator = make_accelerator(config.mixed_precision, config.device)
    except ValueError as err:
        raise InputError(str(err)) from None
    return GanTrainer(generator, discriminator, accelerator, learning_rate=gan.learning_rate, betas=gan.betas,
                      losses=losses, ada=ada, ema_decay=gan.ema_decay,
                      seed=rank_seed(config.seed, accelerator.process_index))


def _fit(model: str, config: TrainConfig, out: Path, info: dict | None, trainer, sampler: PatchSampler, to_batch,
         checkpoint_info: dict, preview, progress: bool) -> Path:
    """The training loop both generators share: resume, steps, log, previews, checkpoints, time budget.

    ``to_batch`` turns a sampler batch (numpy) into the trainer's; ``preview(path)`` writes a PNG;
    ``checkpoint_info`` is what generation needs besides the weights (architecture, spacing …).
    Under ``accelerate launch`` every process keeps its own patch sampler and random stream (saved
    per rank), and rank 0's clock decides when a time budget ends.
    """
    import time

    import torch
    from accelerate.utils import broadcast, gather_object
    from tqdm.auto import tqdm

    from cellsynth.training.runs import TrainingLog, pack_state, unpack_state

    accelerator = trainer.accelerator
    step = 0

    def rank_state() -> dict:  # what differs between processes: each one's patches and random draws
        return {"sampler": batches.state_dict(), "random": trainer.random.get_state()}

    if info is not None:
        tensors, _ = read_checkpoint(out / CHECKPOINT_NAME, model)
        state = unpack_state(info["state"], tensors)
        trainer.load_state_dict(state["trainer"])
        ranks = state["ranks"]
        if len(ranks) != accelerator.num_processes:
            raise InputError(f"'{out}' was trained by {len(ranks)} process(es); resume it with as many "
                             f"(got {accelerator.num_processes})")
        sampler.load_state_dict(ranks[accelerator.process_index]["sampler"])
        trainer.random.set_state(ranks[accelerator.process_index]["random"])
        step = info["step"]
    out.mkdir(exist_ok=True)  # every process: they share the folder
    batches = Prefetcher(sampler)

    def save(step: int) -> None:
        accelerator.wait_for_everyone()
        ranks = gather_object([rank_state()]) if accelerator.num_processes > 1 else [rank_state()]
        if not accelerator.is_main_process:
            return
        tensors, skeleton = pack_state({"trainer": trainer.state_dict(), "ranks": ranks})
        weights = {f"generator.{k}": v for k, v in trainer.generator_weights().items()}
        info = CheckpointInfo(model=model, step=step, format=1, config=config.model_dump(mode="json"), state=skeleton,
                              **checkpoint_info)  # the typed record the renderers read back
        write_checkpoint(out / CHECKPOINT_NAME, {**weights, **tensors}, info.model_dump(mode="json", exclude_none=True))

    main = accelerator.is_main_process
    log = TrainingLog(out, step if info is not None else None, config.tensorboard) if main else None
    bar = tqdm(total=config.steps, initial=step, desc=f"train {model}", unit="step",
               disable=True if not (progress and main) else None)
    deadline = None if config.max_minutes is None else time.monotonic() + 60 * config.max_minutes
    since_log: dict[str, list[float]] = {}  # each loss over the steps since the last row: its mean is logged too
    try:
        while step < config.steps:
            losses = trainer.step(to_batch(batches.next()))
            step += 1
            for key, value in losses.items():
                if key.startswith("loss"):
                    since_log.setdefault(key, []).append(float(value))
            bar.update(1)
            bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items() if k in ("loss", "loss_d", "loss_g", "ada_p")})
            if step % config.log_every == 0 or step == config.steps:
                if main:
                    log.write(step, {**losses, **{f"{key}_mean": float(np.mean(v)) for key, v in since_log.items()}})
                since_log = {}
            if main and config.preview_every and (step % config.preview_every == 0 or step == config.steps):
                (out / "previews").mkdir(exist_ok=True)
                preview(out / "previews" / f"step_{step:06d}.png")
            out_of_time = deadline is not None and time.monotonic() > deadline
            if deadline is not None and accelerator.num_processes > 1:  # rank 0's clock decides for all
                flag = torch.tensor([int(out_of_time)], device=accelerator.device)
                out_of_time = bool(broadcast(flag, from_process=0).item())
            if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
                save(step)
            if out_of_time:
                break
    finally:
        batches.close()
        bar.close()
        if log is not None:
            log.close()
    return out / CHECKPOINT_NAME


def _centre_crop(volume: np.ndarray, patch: Sequence[int]) -> np.ndarray:
    return crop(volume, [max(0, (n - p) // 2) for n, p in zip(volume.shape[-3:], patch, strict=True)], patch)


def _sampler(config: TrainConfig, accelerator, images: list[np.ndarray], patch, masks=None) -> PatchSampler:
    # under `accelerate launch` every process draws its own patches
    rng = sample_rng(config.seed, (1 << 20) + accelerator.process_index)
    return PatchSampler(images, patch, config.batch_size, masks, paired(config), rng=rng)


def paired(config: TrainConfig) -> bool:
    """Whether the cGAN's masks segment its images (files with ``data.paired``, or pseudo-labels)."""
    return config.data.paired or config.data.masks == "pseudo"


def train_gan(config: TrainConfig, out: str | os.PathLike, *, images: Sequence[Sample] | None = None,
               resume: bool = False, progress: bool = True) -> Path:
    """Train the positionally-conditioned cGAN; returns the checkpoint path.

    Unpaired by default: real images and (simulated or real) masks are drawn independently, and
    the generator learns from the adversarial and identity losses; ``data.paired`` adds L1 to the
    image the mask segments. The images are ``config.data.images`` (files) or ``images`` (in memory,
    see :func:`load_training_images`).

    Examples
    --------
    >>> from cellsynth import TrainConfig
    >>> config = TrainConfig.model_validate({"steps": 2000, "data": {"images": ["data/real/*.tif"]}})
    >>> checkpoint = train_gan(config, "runs/gan")  # doctest: +SKIP
    """
    import torch

    from cellsynth.dataset.previews import write_preview
    from cellsynth.synthesis.conditioning import positional_map, specimen_from_image

    out = Path(out)
    info = _check_run_folder(out, resume, config, "gan")
    images, spacing, normalisation = load_training_images(config.data, images)
    gan, patch = config.gan, patch_size(config, "gan")
    image_volumes = [np.stack([image, positional_map(specimen_from_image(image, spacing), spacing, gan.alpha_um,
                                                     gan.beta_um)]) for image in images]
    conditions, labels = _mask_volumes(config, spacing, images)
    if paired(config):
        if len(conditions) != len(images):
            raise InputError(f"paired training needs one mask file per image; got {len(conditions)} for "
                             f"{len(images)} images")
        for image, condition in zip(images, conditions, strict=True):
            if image.shape != condition.shape[1:]:
                raise InputError(f"paired mask of shape {condition.shape[1:]} differs from its image's {image.shape}")
    trainer = build_gan_trainer(config, math.ceil(max(len(images), ADA_EPOCH_PATCHES) / config.batch_size))
    sampler = _sampler(config, trainer.accelerator, image_volumes, patch, conditions)
    preview_condition, preview_labels = _centre_crop(conditions[0], patch), _centre_crop(labels[0], patch)

    def to_batch(batch: dict) -> dict:
        batch = {key: torch.from_numpy(value) for key, value in batch.items()}
        return {"image": batch["image"][:, :1], "image_position": batch["image"][:, 1:],
                "mask": batch["mask"][:, :1], "mask_position": batch["mask"][:, 1:], "paired": batch["paired"]}

    def preview(path: Path) -> None:
        fake = generate_patch(trainer.unwrapped_generator, preview_condition, trainer.accelerator.device)
        write_preview(path, fake, preview_labels, spacing)

    return _fit("gan", config, out, info, trainer, sampler, to_batch, {
        "architecture": gan_architecture(config), "spacing_um": list(spacing), "normalisation": normalisation,
        "conditioning": {"kind": gan.kind, "alpha_um": gan.alpha_um, "beta_um": gan.beta_um},
        "patch": list(patch)}, preview, progress)


def ddpm_architecture(config: TrainConfig) -> dict:
    """Keyword arguments of the DDPM denoiser's :class:`~cellsynth.models.unet3d.UNet3D`."""
    ddpm = config.ddpm
    return {"in_channels": 1, "out_channels": 1, "widths": list(ddpm.widths), "norm": "group",
            "upsample": "pixelshuffle", "time_embedding": True, "attention": ddpm.attention,
            "out_activation": "none", "negative_slope": -1.0}


def build_ddpm_trainer(config: TrainConfig):
    """The seeded DDPM trainer of ``config``."""
    import torch

    from cellsynth.models.common import TRAINING_COPIES, check_model_memory
    from cellsynth.models.diffusion import DiffusionTrainer, make_scheduler
    from cellsynth.models.unet3d import UNet3D, seeded
    from cellsynth.training.runs import make_accelerator, rank_seed

    ddpm = config.ddpm
    check_model_memory(lambda: UNet3D(**ddpm_architecture(config)), "the DDPM denoiser", TRAINING_COPIES,
                       "use smaller ddpm.widths")
    model = seeded(lambda: UNet3D(**ddpm_architecture(config)), torch.Generator().manual_seed(config.seed))
    scheduler = make_scheduler("ddpm", num_train_timesteps=ddpm.num_train_timesteps,
                               beta_schedule=ddpm.beta_schedule, prediction_type=ddpm.prediction)
    try:
        accelerator = make_accelerator(config.mixed_precision, config.device)
    except ValueError as err:
        raise InputError(str(err)) from None
    return DiffusionTrainer(model, scheduler, accelerator, learning_rate=ddpm.learning_rate,
                            ema_decay=ddpm.ema_decay, seed=rank_seed(config.seed, accelerator.process_index))


def train_ddpm(config: TrainConfig, out: str | os.PathLike, *, images: Sequence[Sample] | None = None,
                resume: bool = False, progress: bool = True) -> Path:
    """Train the DDPM on unlabelled images (random patches in [0, 1], mapped to [−1, 1]); returns the
    checkpoint path. The checkpoint also carries the sketch statistics fitted to the training images
    (objects from the classical segmentation) and the sketch blur (default 1 voxel). The images are
    ``config.data.images`` (files) or ``images`` (in memory, see :func:`load_training_images`).

    Examples
    --------
    >>> from cellsynth import TrainConfig
    >>> config = TrainConfig.model_validate({"steps": 2000, "data": {"images": ["data/real/*.tif"]}})
    >>> checkpoint = train_ddpm(config, "runs/ddpm")  # doctest: +SKIP
    """
    import torch

    from cellsynth.synthesis.conditioning import fit_sketch_statistics, pooled_sketch_statistics

    out = Path(out)
    info = _check_run_folder(out, resume, config, "ddpm")
    images, spacing, normalisation = load_training_images(config.data, images)
    patch, ddpm = patch_size(config, "ddpm"), config.ddpm
    sketch = pooled_sketch_statistics([fit_sketch_statistics(image, spacing=spacing) for image in images]).as_dict()
    trainer = build_ddpm_trainer(config)
    sampler = _sampler(config, trainer.accelerator, [image[None] for image in images], patch)

    def preview(path: Path) -> None:  # 10 DDIM steps from t = 400 of a blurred training patch
        from scipy import ndimage

        from cellsynth.dataset.previews import write_preview
        from cellsynth.models.diffusion import from_model_range, make_scheduler, sdedit, to_model_range, whole_denoiser

        real = _centre_crop(images[0], patch)
        blurred = ndimage.gaussian_filter(real, 1.0)[None]
        sketch = torch.from_numpy(to_model_range(blurred)).to(trainer.accelerator.device)
        network = trainer.unwrapped_model.eval()
        scheduler = make_scheduler("ddim", num_train_timesteps=ddpm.num_train_timesteps,
                                   beta_schedule=ddpm.beta_schedule, prediction_type=ddpm.prediction)
        shown = sdedit(whole_denoiser(network), sketch, scheduler, t_start=min(400, ddpm.num_train_timesteps - 1),
                       steps=10, generator=torch.Generator().manual_seed(0))
        network.train()
        write_preview(path, from_model_range(shown[0].float().cpu().numpy()), np.zeros(real.shape, np.uint16), spacing)

    return _fit("ddpm", config, out, info, trainer, sampler,
                lambda batch: {"image": torch.from_numpy(batch["image"])}, {
                    "architecture": ddpm_architecture(config), "spacing_um": list(spacing),
                    "normalisation": normalisation, "patch": list(patch),
                    "schedule": {"num_train_timesteps": ddpm.num_train_timesteps,
                                 "beta_schedule": ddpm.beta_schedule, "prediction_type": ddpm.prediction},
                    "sketch": {**sketch, "blur_um": list(ddpm.sketch_blur_um or spacing)}}, preview, progress)


def patch_size(config: TrainConfig, model: str) -> tuple[int, int, int]:
    """``data.patch``, or the model's default (cGAN 64×128×128 and DDPM 32×128×128, as in the papers)."""
    if config.data.patch is not None:
        return tuple(config.data.patch)  # type: ignore[return-value]
    return (64, 128, 128) if model == "gan" else (32, 128, 128)


def generate_patch(model, condition: np.ndarray, device) -> np.ndarray:
    """``model(condition)`` for one ``(C, Z, Y, X)`` numpy condition, in eval mode and without gradients."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        image = model(torch.from_numpy(np.ascontiguousarray(condition[None], np.float32)).to(device))
    model.train(was_training)
    return image[0, 0].float().cpu().numpy()
