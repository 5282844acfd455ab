"""The DDPM (Eschweiler et al., DDPM): ε-prediction training, and SDEdit sampling from a sketch with
diffusers' schedulers.

Images live in [−1, 1] inside this module. Sampling starts from the sketch noised to a start
timestep and denoises with DDPM ancestral steps (the reference), DDIM, or DPM-Solver++. For a
volume larger than a patch, every step runs the network on all overlapping tiles of one
:class:`~cellsynth.synthesis.patching.PatchPlan`, blends the predictions with its weights and takes
**one** scheduler step on the whole volume from one global noise tensor: one coherent sample, no
seams (the reference samples tiles independently). The blend equals a whole-volume call exactly only
for a network whose receptive field fits inside the tiles' crop; :func:`fusion_error` measures the
shipped U-Net's difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLERS = ("ddpm", "ddim", "dpmsolver")


def to_model_range(image):
    """[0, 1] images (numpy or torch) to the [−1, 1] the denoiser works in."""
    return image * 2 - 1


def from_model_range(image):
    """The denoiser's [−1, 1] back to [0, 1]."""
    return (image + 1) / 2

PREDICTIONS = ("epsilon", "v_prediction")


def make_scheduler(sampler: str = "ddpm", *, num_train_timesteps: int = 1000,
                   beta_schedule: str = "squaredcos_cap_v2", prediction_type: str = "epsilon"):
    """A diffusers scheduler: ``ddpm`` (ancestral; also the training noise schedule), ``ddim`` (η = 0)
    or ``dpmsolver`` (DPM-Solver++ 2nd order multistep), all on the same β schedule.

    DDIM is diffusers' first-order DPM-Solver++, which is the same update (Lu et al. 2022, §3.3)
    and, unlike ``DDIMScheduler``, takes an explicit list of timesteps, so sampling starts exactly
    at ``t_start`` (:func:`sampling_timesteps`)."""
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}")
    if prediction_type not in PREDICTIONS:
        raise ValueError(f"unknown prediction type '{prediction_type}'; choose one of {', '.join(PREDICTIONS)}")
    common = {"num_train_timesteps": num_train_timesteps, "beta_schedule": beta_schedule,
              "prediction_type": prediction_type}
    if sampler == "ddpm":
        return DDPMScheduler(**common, clip_sample=True, clip_sample_range=1.0)
    order = 1 if sampler == "ddim" else 2
    return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=order, thresholding=False,
                                       lower_order_final=True)


def diffusion_loss(model: nn.Module, images: torch.Tensor, scheduler, generator: torch.Generator) -> torch.Tensor:
    """MSE of the network's ε (or v) prediction at a uniformly drawn timestep per sample.

    ``images``: ``(B, C, Z, Y, X)`` in [−1, 1]. The timesteps and noise come from ``generator``, on
    its device (the training device: no host-to-device copy of the noise).
    """
    batch = images.shape[0]
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator,
                              device=generator.device)
    noise = torch.randn(images.shape, generator=generator, device=generator.device).to(images.device, images.dtype)
    timesteps = timesteps.to(images.device)
    noisy = scheduler.add_noise(images, noise, timesteps)
    target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(images, noise,
                                                                                                 timesteps)
    return F.mse_loss(model(noisy, timesteps).float(), target.float())


def start_timestep(scheduler, *, t_start: int | None = None, strength: float | None = None,
                   snr: float | None = None) -> int:
    """The SDEdit start timestep from exactly one of ``t_start``, ``strength`` (t_start / T) or a target
    signal-to-noise ratio ᾱ/(1−ᾱ) (the same SNR means the same noise under any schedule).

    Raises
    ------
    ValueError
        If none or several are given, or the value is outside [0, T).
    """
    total = scheduler.config.num_train_timesteps
    given = [name for name, value in (("t_start", t_start), ("strength", strength), ("snr", snr)) if value is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of t_start, strength, snr; got {', '.join(given) or 'none'}")
    if t_start is not None:
        if not 0 <= t_start < total:
            raise ValueError(f"t_start must be in [0, {total}) for a {total}-step model; got {t_start}")
        return int(t_start)
    if strength is not None:
        if not 0 <= strength < 1:
            raise ValueError(f"strength must be in [0, 1); got {strength}")
        return min(total - 1, int(round(strength * total)))  # e.g. 0.9996 of 1000 steps is the last one, 999
    if not snr > 0:
        raise ValueError(f"the target SNR must be > 0; got {snr}")
    alphas = scheduler.alphas_cumprod.double()
    return int(torch.argmin((torch.log(alphas / (1 - alphas)) - math.log(snr)).abs()))


def sampling_timesteps(scheduler, t_start: int, steps: int) -> torch.Tensor:
    """``steps`` timesteps evenly spaced from exactly ``t_start`` down towards 0 (set on the scheduler).

    The first is ``t_start`` itself, whatever the sampler and the number of steps; with fewer
    timesteps than steps below ``t_start``, every one of them.

    Examples
    --------
    >>> sampling_timesteps(make_scheduler("dpmsolver"), 400, 5).tolist()
    [400, 320, 240, 160, 80]
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1; got {steps}")
    if t_start < 1:
        raise ValueError(f"t_start must be >= 1 to sample; got {t_start}")
    grid = np.round(np.linspace(t_start, 0, min(steps, t_start) + 1)[:-1]).astype(int)
    scheduler.set_timesteps(timesteps=sorted(set(grid.tolist()), reverse=True))
    return scheduler.timesteps


@torch.no_grad()
def sdedit(denoise, sketch: torch.Tensor, scheduler, *, t_start: int, steps: int,
           generator: torch.Generator) -> torch.Tensor:
    """Noise ``sketch`` (``(C, Z, Y, X)`` in [−1, 1]) to ``t_start``, then denoise with ``scheduler``.

    Parameters
    ----------
    denoise : callable
        ``(x_t (C, Z, Y, X), t) → ε̂ or v̂ (C, Z, Y, X)``: the network on the whole volume, or the
        per-step fusion of its tiles (:func:`fused_denoiser`).
    steps : int
        Denoising steps (the reference: 400 ancestral steps from t = 400).
    generator : torch.Generator
        The start noise and every ancestral noise draw, on the generator's device (a CPU generator
        gives the same numbers whatever device the model runs on; a CUDA one avoids the copies).

    Returns
    -------
    torch.Tensor
        The sample in [−1, 1]; the sketch itself when ``t_start`` is 0.
    """
    if t_start == 0:
        return sketch.clone()
    timesteps = sampling_timesteps(scheduler, t_start, steps)
    noise = torch.randn(sketch.shape, generator=generator, device=generator.device).to(sketch.device, sketch.dtype)
    x = scheduler.add_noise(sketch, noise, timesteps[:1].to(sketch.device))
    for t in timesteps:
        # the ancestral noise comes from ``generator`` on its device: a CUDA generator keeps it there
        x = scheduler.step(denoise(x, t)[None], t, x[None], generator=generator).prev_sample[0]
    return x.clamp(-1, 1)


def fused_denoiser(model: nn.Module, plan, batch_size: int = 1):
    """``(x_t, t) → prediction`` that runs ``model`` on every tile of ``plan`` and blends the tiles with the
    plan's weights (per-step fusion)."""

    def denoise(x: torch.Tensor, t) -> torch.Tensor:
        def run(tiles: torch.Tensor) -> torch.Tensor:
            timesteps = torch.full((tiles.shape[0],), int(t), device=tiles.device)
            return model(tiles, timesteps).float()

        return plan.apply(run, x, batch_size=batch_size, out_channels=x.shape[0])

    return denoise


def whole_denoiser(model: nn.Module):
    """``(x_t, t) → prediction`` with one network call on the whole volume."""

    def denoise(x: torch.Tensor, t) -> torch.Tensor:
        return model(x[None], torch.full((1,), int(t), device=x.device))[0].float()

    return denoise


@torch.no_grad()
def fusion_error(model: nn.Module, plan, x0: torch.Tensor, t: int, scheduler, generator: torch.Generator,
                 batch_size: int = 1) -> dict[str, float]:
    """How far per-step fusion over ``plan`` is from one whole-volume call, at timestep ``t``.

    ``x0`` (``(C, Z, Y, X)`` in [−1, 1]) is noised to ``t``; both denoisers predict the noise.
    Returns the RMS difference of the two predictions relative to the whole call's RMS
    (``relative_difference``), and each one's RMS error against the noise actually added
    (``fused_error``, ``whole_error``; ε-prediction). Tiling is exact (difference 0) for a network
    whose receptive field fits inside the crop; the shipped U-Net's does not (group norms,
    attention), so this is what the README reports.
    """
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    x_t = scheduler.add_noise(x0, noise, torch.tensor([int(t)], device=x0.device))
    fused = fused_denoiser(model, plan, batch_size)(x_t, t)
    whole = whole_denoiser(model)(x_t, t)

    def rms(tensor: torch.Tensor) -> float:
        return float(tensor.float().pow(2).mean().sqrt())

    return {"relative_difference": rms(fused - whole) / max(rms(whole), 1e-12), "fused_error": rms(fused - noise),
            "whole_error": rms(whole - noise)}


class DiffusionTrainer:
    """The denoiser, AdamW, its EMA and the noise schedule, prepared by an Accelerator."""

    def __init__(self, model: nn.Module, scheduler, accelerator, *, learning_rate: float = 1e-4,
                 ema_decay: float | None = 0.9999, seed: int = 0):
        from cellsynth.models.common import make_ema

        self.accelerator, self.scheduler = accelerator, scheduler
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.ema = make_ema(self.unwrapped_model, ema_decay) if ema_decay else None
        self.random = torch.Generator(device=accelerator.device).manual_seed(seed)  # timesteps and noise

    @property
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One optimiser step on ``batch['image']`` (in [0, 1]; mapped to [−1, 1] here)."""
        images = to_model_range(batch["image"].to(self.accelerator.device))
        with self.accelerator.autocast():
            loss = diffusion_loss(self.model, images, self.scheduler, self.random)
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.step(self.unwrapped_model.parameters())
        return {"loss": float(loss.detach())}

    def generator_weights(self) -> dict[str, torch.Tensor]:
        from cellsynth.models.common import ema_weights

        model = self.unwrapped_model
        return ema_weights(model, self.ema) if self.ema is not None else dict(model.state_dict())

    def state_dict(self) -> dict:
        return {"model": self.unwrapped_model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None, "rng": self.random.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.random.set_state(state["rng"])
