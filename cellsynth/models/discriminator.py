"""3D PatchGAN discriminator: one real/fake logit per receptive field (≈ 95 voxels by default)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cellsynth.models.unet3d import make_norm


class PatchDiscriminator(nn.Module):
    """Strided 3×3×3 convolutions, then a 1-channel logit map (no sigmoid: losses take logits).

    Parameters
    ----------
    in_channels : int
        Image channels plus conditioning channels (the cGAN: image and positional map = 2).
    widths : sequence of int
        Channels per layer (reference: 64, 128, 256, 512, 512).
    strides : sequence of int or 3-tuples
        Stride per layer; the default (2, 2, 2, 2, 1) with a final 3³ logit conv sees 95³ voxels.
    norm : str
        Norm after every layer but the first (see :func:`cellsynth.models.unet3d.make_norm`).
    """

    def __init__(self, in_channels: int = 2, widths: Sequence[int] = (64, 128, 256, 512, 512),
                 strides: Sequence[int | Sequence[int]] = (2, 2, 2, 2, 1), norm: str = "instance"):
        super().__init__()
        if len(widths) != len(strides) or not widths:
            raise ValueError(f"need one stride per width; got {len(widths)} widths and {len(strides)} strides")
        layers: list[nn.Module] = []
        channels = in_channels
        for index, (width, stride) in enumerate(zip(widths, strides, strict=True)):
            layers.append(nn.Conv3d(channels, width, 3, stride=stride, padding=1))
            if index > 0:
                layers.append(make_norm(norm, width))
            layers.append(nn.LeakyReLU(0.2))
            channels = width
        layers.append(nn.Conv3d(channels, 1, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        self.strides = [tuple(s) if isinstance(s, Sequence) else (s, s, s) for s in strides]

    @property
    def receptive_field(self) -> tuple[int, int, int]:
        """Voxels (z, y, x) that one output logit sees."""
        field = [3, 3, 3]  # the logit conv
        for stride in reversed(self.strides):
            field = [(f - 1) * s + 3 for f, s in zip(field, stride, strict=True)]
        return tuple(field)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
