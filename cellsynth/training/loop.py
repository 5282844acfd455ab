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

from cellsynth.checkpoints import CheckpointInfo, read_checkpoint, write_checkpoint
from cellsynth.checks import check_output
from cellsynth.config import TrainConfig
from cellsynth.errors import InputError, MissingDependencyError
from cellsynth.sample import Sample
from cellsynth.training.data import (
    PatchSampler,
    Prefetcher,
    centre_crop,
    load_training_images,
    mask_volumes,
    paired,
    patch_size,
    run_sampler,
)

CHECKPOINT_NAME = "checkpoint.safetensors"
#: Patches in one ADA "epoch" (the paper's rule adjusts p once per epoch): with one training image an epoch
#: of images would be one step, and p would move every step; StyleGAN2-ADA likewise adjusts on images seen.
ADA_EPOCH_PATCHES = 64
#: Config keys a resumed run may change (how long and how it is watched, not what is learnt).
RESUMABLE_CHANGES = ("steps", "max_minutes", "log_every", "preview_every", "checkpoint_every", "tensorboard", "device",
                     "mixed_precision")


def train_gan(config: TrainConfig, out: str | os.PathLike, *, images: Sequence[Sample] | None = None,
               resume: bool = False, progress: bool = True) -> Path:
    """Train the positionally-conditioned cGAN; returns the checkpoint path.

    Unpaired by default: real images and (simulated or real) masks are drawn independently, and
    the generator learns from the adversarial and identity losses; ``data.paired`` adds L1 to the
    image the mask segments. The images are ``config.data.images`` (files) or ``images`` (in memory,
    see :func:`load_training_images`).

    Parameters
    ----------
    config : TrainConfig
    out : path-like
        The run folder.
    images : sequence of Sample, optional
        In-memory training images.
    resume : bool
        Continue the run in ``out`` from its checkpoint.
    progress : bool
        Show progress bars (only on a terminal).

    Returns
    -------
    Path
        The checkpoint.

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
    info, (images, spacing, normalisation) = _start_run("gan", config, out, resume, images)
    gan, patch = config.gan, patch_size(config, "gan")
    image_volumes = [np.stack([image, positional_map(specimen_from_image(image, spacing), spacing, gan.alpha_um,
                                                     gan.beta_um)]) for image in images]
    conditions, labels = mask_volumes(config, spacing, images)
    if paired(config):
        if len(conditions) != len(images):
            raise InputError(f"paired training needs one mask file per image; got {len(conditions)} for "
                             f"{len(images)} images")
        for image, condition in zip(images, conditions, strict=True):
            if image.shape != condition.shape[1:]:
                raise InputError(f"paired mask of shape {condition.shape[1:]} differs from its image's {image.shape}")
    trainer = build_gan_trainer(config, math.ceil(max(len(images), ADA_EPOCH_PATCHES) / config.batch_size))
    sampler = run_sampler(config, trainer.accelerator, image_volumes, patch, conditions)
    preview_condition, preview_labels = centre_crop(conditions[0], patch), centre_crop(labels[0], patch)

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


def train_ddpm(config: TrainConfig, out: str | os.PathLike, *, images: Sequence[Sample] | None = None,
                resume: bool = False, progress: bool = True) -> Path:
    """Train the DDPM on unlabelled images (random patches in [0, 1], mapped to [−1, 1]); returns the
    checkpoint path. The checkpoint also carries the sketch statistics fitted to the training images
    (objects from the classical segmentation) and the sketch blur (default 1 voxel). The images are
    ``config.data.images`` (files) or ``images`` (in memory, see :func:`load_training_images`).

    Parameters
    ----------
    config : TrainConfig
    out : path-like
        The run folder.
    images : sequence of Sample, optional
        In-memory training images.
    resume : bool
        Continue the run in ``out`` from its checkpoint.
    progress : bool
        Show progress bars (only on a terminal).

    Returns
    -------
    Path
        The checkpoint.

    Examples
    --------
    >>> from cellsynth import TrainConfig
    >>> config = TrainConfig.model_validate({"steps": 2000, "data": {"images": ["data/real/*.tif"]}})
    >>> checkpoint = train_ddpm(config, "runs/ddpm")  # doctest: +SKIP
    """
    import torch

    from cellsynth.synthesis.conditioning import fit_sketch_statistics, pooled_sketch_statistics

    out = Path(out)
    info, (images, spacing, normalisation) = _start_run("ddpm", config, out, resume, images)
    patch, ddpm = patch_size(config, "ddpm"), config.ddpm
    sketch = pooled_sketch_statistics([fit_sketch_statistics(image, spacing=spacing) for image in images]).as_dict()
    trainer = build_ddpm_trainer(config)
    sampler = run_sampler(config, trainer.accelerator, [image[None] for image in images], patch)

    def preview(path: Path) -> None:  # 10 DDIM steps from t = 400 of a blurred training patch
        from scipy import ndimage

        from cellsynth.dataset.previews import write_preview
        from cellsynth.models.diffusion import from_model_range, make_scheduler, sdedit, to_model_range, whole_denoiser

        real = centre_crop(images[0], patch)
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


def _start_run(model: str, config: TrainConfig, out: Path, resume: bool, images: Sequence[Sample] | None
               ) -> tuple[dict | None, tuple[list[np.ndarray], tuple[float, float, float], dict]]:
    """The checkpoint info to resume from (None for a fresh run) and the run's training images, spacing
    and normalisation: what both generators check and read before building a network."""
    return _check_run_folder(out, resume, config, model), load_training_images(config.data, images)


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

    from cellsynth.models.common import keep_freed_memory
    from cellsynth.training.runs import TrainingLog, pack_state, unpack_state

    accelerator = trainer.accelerator
    if accelerator.device.type == "cpu":
        keep_freed_memory()  # page faults cost a CPU step more than a tenth of its time
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


def generate_patch(model, condition: np.ndarray, device) -> np.ndarray:
    """``model(condition)`` for one ``(C, Z, Y, X)`` numpy condition, in eval mode and without gradients."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        image = model(torch.from_numpy(np.ascontiguousarray(condition[None], np.float32)).to(device))
    model.train(was_training)
    return image[0, 0].float().cpu().numpy()
