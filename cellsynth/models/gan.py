"""The positionally-conditioned cGAN: adaptive discriminator augmentation, losses, one training step.

Seed 001 §2 with the reference's defects fixed (see ``shared/reference`` §2.6): the discriminator
learns on **detached** fakes; real and fake images go through the **same** augmentation call (one
batch), so the augmentations cannot leak; the scale range is ×U(0.6, 1.2) and the noise std 0.1
(a std, not a variance); all five augmentations run; the decline acts on a spatial axis only.

Batches are dicts of ``(B, 1, Z, Y, X)`` float tensors: ``mask`` and ``mask_position`` (the
generator's condition), ``image`` and ``image_position`` (a real patch and its positional map),
and for paired training a ``paired`` flag (the mask belongs to the image).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

ADVERSARIAL_LOSSES = ("bce", "lsgan", "hinge")


@dataclass(frozen=True)
class AugmentSettings:
    """The ADA augmentations (paper §4): each fires per sample with probability p."""

    scale: tuple[float, float] = (0.6, 1.2)
    noise_std: float = 0.1
    shuffle_size: int = 25
    inpaint_size: int = 15


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, device=generator.device))


def _random_box(shape, size: int, generator: torch.Generator) -> tuple[slice, ...]:
    starts = [int(torch.randint(0, max(1, n - size + 1), (1,), generator=generator, device=generator.device))
              for n in shape]
    return (slice(None), *(slice(s, s + min(size, n)) for s, n in zip(starts, shape, strict=True)))


def scale_intensity(sample: torch.Tensor, generator: torch.Generator, settings: AugmentSettings) -> None:
    """Multiply by U(scale) (paper: 0.6–1.2)."""
    low, high = settings.scale
    sample.mul_(low + (high - low) * _uniform(generator))


def add_noise(sample: torch.Tensor, generator: torch.Generator, settings: AugmentSettings) -> None:
    """Add N(0, noise_std²) per voxel."""
    noise = torch.randn(sample.shape, generator=generator, device=generator.device)
    sample.add_(settings.noise_std * noise.to(sample.device, sample.dtype))


def shuffle_voxels(sample: torch.Tensor, generator: torch.Generator, settings: AugmentSettings) -> None:
    """Permute the voxels within a random ``shuffle_size``³ box."""
    box = _random_box(sample.shape[1:], settings.shuffle_size, generator)
    region = sample[box]
    order = torch.randperm(region[0].numel(), generator=generator, device=generator.device).to(sample.device)
    sample[box] = region.reshape(region.shape[0], -1)[:, order].reshape(region.shape)


def inpaint_box(sample: torch.Tensor, generator: torch.Generator, settings: AugmentSettings) -> None:
    """Fill a random ``inpaint_size``³ box with the sample's mean."""
    sample[_random_box(sample.shape[1:], settings.inpaint_size, generator)] = sample.mean()


def decline(sample: torch.Tensor, generator: torch.Generator, settings: AugmentSettings) -> None:
    """Multiply by a linear ramp from 1 to U(0, 1) along a random spatial axis, in a random direction."""
    axis = int(torch.randint(0, 3, (1,), generator=generator, device=generator.device))
    ramp = torch.linspace(1.0, _uniform(generator), sample.shape[axis + 1], device=sample.device,
                          dtype=sample.dtype)
    if _uniform(generator) < 0.5:
        ramp = ramp.flip(0)
    shape = [1, 1, 1, 1]
    shape[axis + 1] = -1
    sample.mul_(ramp.reshape(shape))


#: The ADA augmentations in the order they are applied; each edits one ``(C, Z, Y, X)`` sample in place.
AUGMENTATIONS = {"scale": scale_intensity, "noise": add_noise, "shuffle": shuffle_voxels, "inpaint": inpaint_box,
                 "decline": decline}


def augment(images: torch.Tensor, p: float, generator: torch.Generator,
            settings: AugmentSettings = AugmentSettings()) -> torch.Tensor:
    """ADA augmentations of a ``(B, C, Z, Y, X)`` image batch (a new tensor; the input is untouched).

    Every augmentation of :data:`AUGMENTATIONS` fires independently per sample with probability
    ``p``. All random numbers come from ``generator``, drawn on its device (the trainer's is on the
    training device, so the noise is never copied from the host).
    """
    out = images.clone()
    if p <= 0:
        return out
    for index in range(len(out)):  # out[index], not iteration: autograd allows in-place edits of select views
        fire = (torch.rand(len(AUGMENTATIONS), generator=generator, device=generator.device) < p).tolist()
        for on, transform in zip(fire, AUGMENTATIONS.values(), strict=True):
            if on:
                transform(out[index], generator, settings)
    return out


class AdaController:
    """The augmentation probability p, steered by r = E[sign(D(real))] towards a target (paper eq. 2).

    Every ``interval`` observed minibatches, p moves by ``delta`` towards more augmentation if
    r > target (D overconfident on reals) and less otherwise, clipped to [0, 1]. The paper's rule
    (δ = 0.05 every epoch) and StyleGAN2-ADA's (δ = batch·N/(ada_kimg·1000) every N minibatches)
    are two parameter choices of this one rule.
    """

    def __init__(self, p: float = 0.0, target: float = 0.6, delta: float = 0.05, interval: int = 1):
        if not 0 <= p <= 1 or delta < 0 or interval < 1:
            raise ValueError(f"need 0 <= p <= 1, delta >= 0, interval >= 1; got {p}, {delta}, {interval}")
        self.p, self.target, self.delta, self.interval = float(p), float(target), float(delta), int(interval)
        self.sign_sum, self.count, self.batches, self.r = 0.0, 0, 0, float("nan")

    def observe(self, real_logits: torch.Tensor) -> None:
        """Add one minibatch of the discriminator's logits on (augmented) reals; adjust p when due."""
        self.sign_sum += float(torch.sign(real_logits.detach().float()).sum())
        self.count += real_logits.numel()
        self.batches += 1
        if self.batches >= self.interval:
            self.r = self.sign_sum / self.count
            step = self.delta if self.r > self.target else -self.delta if self.r < self.target else 0.0
            self.p = min(1.0, max(0.0, self.p + step))
            self.sign_sum, self.count, self.batches = 0.0, 0, 0

    def state_dict(self) -> dict:
        return {"p": self.p, "target": self.target, "delta": self.delta, "interval": self.interval,
                "sign_sum": self.sign_sum, "count": self.count, "batches": self.batches, "r": self.r}

    def load_state_dict(self, state: Mapping) -> None:
        self.p, self.target, self.delta = float(state["p"]), float(state["target"]), float(state["delta"])
        self.interval, self.sign_sum = int(state["interval"]), float(state["sign_sum"])
        self.count, self.batches = int(state["count"]), int(state["batches"])
        self.r = float("nan") if state["r"] is None else float(state["r"])  # JSON keeps "not measured yet" as null


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Mean adversarial loss of D on logits (``bce`` as pix2pix, ``lsgan``, ``hinge``)."""
    if kind == "bce":
        return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    if kind == "lsgan":
        return 0.5 * (F.mse_loss(real_logits, torch.ones_like(real_logits)) + F.mse_loss(fake_logits,
                                                                                           torch.zeros_like(fake_logits)))
    if kind == "hinge":
        return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())
    raise ValueError(f"unknown adversarial loss '{kind}'; choose one of {', '.join(ADVERSARIAL_LOSSES)}")


def generator_adversarial_loss(fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """What G minimises to fool D (non-saturating BCE, LSGAN, or hinge's −D)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "lsgan":
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown adversarial loss '{kind}'; choose one of {', '.join(ADVERSARIAL_LOSSES)}")


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """½·E‖∇ₓ D(x)‖² on real discriminator inputs (image channel and position)."""
    real = real.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
    return 0.5 * gradient.pow(2).flatten(1).sum(1).mean()


@dataclass(frozen=True)
class GanLossSettings:
    """Weights of the generator's and discriminator's loss terms."""

    adversarial: str = "bce"
    identity_weight: float = 1.0
    paired_weight: float = 10.0
    r1_weight: float = 0.0


class GanTrainer:
    """G and D, their RAdam optimisers, ADA and the generator's EMA, prepared by an Accelerator.

    :meth:`step` runs one discriminator update (on detached fakes) then one generator update.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, accelerator, *, learning_rate: float = 1e-3,
                 betas: tuple[float, float] = (0.5, 0.999), losses: GanLossSettings = GanLossSettings(),
                 augment_settings: AugmentSettings = AugmentSettings(), ada: AdaController | None = None,
                 ema_decay: float | None = 0.999, seed: int = 0):
        from cellsynth.models.common import make_ema

        self.accelerator = accelerator
        self.losses, self.augment_settings = losses, augment_settings
        self.ada = ada or AdaController()
        optimizer_g = torch.optim.RAdam(generator.parameters(), lr=learning_rate, betas=betas)
        optimizer_d = torch.optim.RAdam(discriminator.parameters(), lr=learning_rate, betas=betas)
        self.generator, self.discriminator, self.optimizer_g, self.optimizer_d = accelerator.prepare(
            generator, discriminator, optimizer_g, optimizer_d)
        self.ema = make_ema(self.unwrapped_generator, ema_decay) if ema_decay else None
        self.random = torch.Generator(device=accelerator.device).manual_seed(seed)  # augmentations, on the device

    @property
    def unwrapped_generator(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.generator)

    def _augmented_logits(self, images: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.discriminator(torch.cat([augment(images, self.ada.p, self.random, self.augment_settings),
                                             positions], dim=1))

    def step(self, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """One D update then one G update on ``batch``; returns the losses and the ADA state."""
        device = self.accelerator.device
        mask, mask_position, image, image_position = (batch[k].to(device) for k in
                                                      ("mask", "mask_position", "image", "image_position"))
        condition = torch.cat([mask, mask_position], dim=1)
        settings = self.losses
        with self.accelerator.autocast():
            fake = self.generator(condition)
            # D sees reals and detached fakes in one augmentation call: identical augmentation code and law.
            logits = self._augmented_logits(torch.cat([image, fake.detach()]), torch.cat([image_position,
                                                                                          mask_position]))
            real_logits, fake_logits = logits.float().chunk(2)
            loss_d = discriminator_loss(real_logits, fake_logits, settings.adversarial)
        if settings.r1_weight > 0:  # a double backward: fp32, and not through the DDP wrapper
            with torch.autocast(device_type=device.type, enabled=False):
                loss_d = loss_d + settings.r1_weight * r1_penalty(self.accelerator.unwrap_model(self.discriminator),
                                                                  torch.cat([image, image_position], dim=1).float())
        self.optimizer_d.zero_grad(set_to_none=True)
        self.accelerator.backward(loss_d)
        self.optimizer_d.step()
        self.ada.observe(self.accelerator.gather(real_logits.detach()))  # one p on every process

        self.discriminator.requires_grad_(False)  # G's update needs no gradients of D's weights
        with self.accelerator.autocast():
            loss_adv = generator_adversarial_loss(self._augmented_logits(fake, mask_position).float(),
                                                  settings.adversarial)
            identity = self.generator(torch.cat([image, image_position], dim=1))
            loss_identity = F.l1_loss(identity.float(), image)
            loss_g = loss_adv + settings.identity_weight * loss_identity
            loss_paired = torch.zeros(())
            if "paired" in batch and bool(batch["paired"].any()):
                keep = batch["paired"].to(device).bool()
                loss_paired = F.l1_loss(fake.float()[keep], image[keep])
                loss_g = loss_g + settings.paired_weight * loss_paired
        self.optimizer_g.zero_grad(set_to_none=True)
        self.accelerator.backward(loss_g)
        self.optimizer_g.step()
        self.discriminator.requires_grad_(True)
        if self.ema is not None:
            self.ema.step(self.unwrapped_generator.parameters())
        values = {"loss_d": loss_d, "loss_g": loss_g, "loss_adv": loss_adv, "loss_identity": loss_identity,
                  "loss_paired": loss_paired}
        return {**{k: float(v.detach()) for k, v in values.items()}, "ada_p": self.ada.p, "ada_r": self.ada.r}

    def generator_weights(self) -> dict[str, torch.Tensor]:
        """The weights to generate with: the EMA's when there is one."""
        from cellsynth.models.common import ema_weights

        model = self.unwrapped_generator
        return ema_weights(model, self.ema) if self.ema is not None else dict(model.state_dict())

    def state_dict(self) -> dict:
        """Everything to resume: networks, optimisers, EMA, ADA, the augmentation RNG."""
        return {"generator": self.unwrapped_generator.state_dict(),
                "discriminator": self.accelerator.unwrap_model(self.discriminator).state_dict(),
                "optimizer_g": self.optimizer_g.state_dict(), "optimizer_d": self.optimizer_d.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "ada": self.ada.state_dict(), "augment_rng": self.random.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        self.unwrapped_generator.load_state_dict(state["generator"])
        self.accelerator.unwrap_model(self.discriminator).load_state_dict(state["discriminator"])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.ada.load_state_dict(state["ada"])
        self.random.set_state(state["augment_rng"])
