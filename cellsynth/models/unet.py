"""A compact 3D U-Net: the segmenter of the Syn2Real harness (and a backbone for small tasks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1), nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1), nn.InstanceNorm3d(out_channels, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNet3D(nn.Module):
    """Encoder–decoder with skip connections; logits out (no activation).

    Parameters
    ----------
    in_channels, out_channels : int
    features : int
        Channels of the first level, doubled at each level down.
    pools : sequence of 3-tuples
        Pooling factor ``(z, y, x)`` per level down, e.g. ``((1, 2, 2), (2, 2, 2))`` for an
        anisotropic stack; inputs must be divisible by their product along each axis.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 2, features: int = 16,
                 pools: Sequence[Sequence[int]] = ((2, 2, 2), (2, 2, 2))):
        super().__init__()
        self.pools = [tuple(int(f) for f in pool) for pool in pools]
        widths = [features * 2**level for level in range(len(self.pools) + 1)]
        self.encoders = nn.ModuleList([_block(in_channels, widths[0])] +
                                      [_block(widths[i], widths[i + 1]) for i in range(len(self.pools))])
        self.ups = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], pool, stride=pool)
                                  for i, pool in enumerate(self.pools)])
        self.decoders = nn.ModuleList([_block(2 * widths[i], widths[i]) for i in range(len(self.pools))])
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    @classmethod
    def seeded(cls, generator: torch.Generator, *args, **kwargs) -> UNet3D:
        """A new network whose weights come from ``generator`` alone (torch's global RNG untouched).

        The layers are built without storage (meta device), then every convolution is drawn
        Kaiming-uniform (torch's default law) with zero bias, and the norms start at identity.
        """
        with torch.device("meta"):
            model = cls(*args, **kwargs)
        model = model.to_empty(device="cpu")
        for module in model.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_uniform_(module.weight, a=5**0.5, generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.InstanceNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        return model

    @property
    def divisor(self) -> tuple[int, int, int]:
        """What every input size must be a multiple of, per axis."""
        total = [1, 1, 1]
        for pool in self.pools:
            total = [t * p for t, p in zip(total, pool, strict=True)]
        return tuple(total)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < len(self.pools):
                skips.append(x)
                x = nn.functional.max_pool3d(x, self.pools[level])
        for level in reversed(range(len(self.pools))):
            x = self.decoders[level](torch.cat([self.ups[level](x), skips[level]], dim=1))
        return self.head(x)
