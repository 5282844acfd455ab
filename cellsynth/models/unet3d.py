"""The one 3D U-Net of cellsynth: cGAN generator, DDPM denoiser and Syn2Real segmenter.

Residual blocks (conv–norm–act ×2), strided-convolution downsampling, pixel-shuffle (or
transposed-convolution) upsampling, an optional sinusoidal time embedding injected as a
scale-shift after the first norm of every block (DDPM), and optional self-attention at the lowest
resolution. Inputs of any size are padded (replicate) up to the network's divisor and the output
cropped back, so odd patch sizes work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

NORMS = ("instance", "group", "batch", "none")
UPSAMPLES = ("pixelshuffle", "transpose", "resize")
OUT_ACTIVATIONS = ("none", "sigmoid", "tanh")


def pixel_shuffle_3d(x: torch.Tensor, factor: Sequence[int]) -> torch.Tensor:
    """Depth-to-space: ``(B, C·fz·fy·fx, Z, Y, X) → (B, C, Z·fz, Y·fy, X·fx)``."""
    fz, fy, fx = (int(f) for f in factor)
    b, c, z, y, x_ = x.shape
    channels = c // (fz * fy * fx)
    if channels * fz * fy * fx != c:
        raise ValueError(f"{c} channels cannot be shuffled by a factor {fz}×{fy}×{fx}")
    x = x.reshape(b, channels, fz, fy, fx, z, y, x_).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, channels, z * fz, y * fy, x_ * fx)


def pixel_unshuffle_3d(x: torch.Tensor, factor: Sequence[int]) -> torch.Tensor:
    """Space-to-depth, the exact inverse of :func:`pixel_shuffle_3d`."""
    fz, fy, fx = (int(f) for f in factor)
    b, c, z, y, x_ = x.shape
    if z % fz or y % fy or x_ % fx:
        raise ValueError(f"size {(z, y, x_)} is not divisible by the factor {(fz, fy, fx)}")
    x = x.reshape(b, c, z // fz, fz, y // fy, fy, x_ // fx, fx).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * fz * fy * fx, z // fz, y // fy, x_ // fx)


class PixelShuffle3d(nn.Module):
    """:func:`pixel_shuffle_3d` as a layer."""

    def __init__(self, factor: Sequence[int]):
        super().__init__()
        self.factor = tuple(int(f) for f in factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(x, self.factor)


def make_norm(kind: str, channels: int) -> nn.Module:
    """A 3D normalisation layer by name (one of :data:`NORMS`); group norm uses up to 8 groups."""
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}'; choose one of {', '.join(NORMS)}")


def _activation(negative_slope: float) -> nn.Module:
    return nn.SiLU() if negative_slope < 0 else nn.LeakyReLU(negative_slope)


class ResidualBlock(nn.Module):
    """conv3–norm–(time scale-shift)–act–conv3–norm–act, plus a (1×1 projected) skip."""

    def __init__(self, in_channels: int, out_channels: int, norm: str, negative_slope: float,
                 time_channels: int | None = None):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1)
        self.norm2 = make_norm(norm, out_channels)
        self.act = _activation(negative_slope)
        self.time = nn.Linear(time_channels, 2 * out_channels) if time_channels else None
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        if self.time is not None:
            scale, shift = self.time(time)[:, :, None, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.act(self.norm2(self.conv2(self.act(h))))
        return h + self.skip(x)


class Attention(nn.Module):
    """Multi-head self-attention over all voxels (used at the lowest resolution only)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(8, channels), channels)
        self.attention = nn.MultiheadAttention(channels, math.gcd(heads, channels), batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        tokens = self.norm(x).reshape(b, c, -1).transpose(1, 2)
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(x.shape)


def timestep_embedding(timesteps: torch.Tensor, channels: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B,) → (B, channels)`` of (possibly fractional) diffusion timesteps."""
    half = channels // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=timesteps.device) / half)
    angles = timesteps.float()[:, None] * frequencies[None]
    embedding = torch.cat([angles.cos(), angles.sin()], dim=1)
    return nn.functional.pad(embedding, (0, channels - 2 * half))


def _downsample(channels: int, pool: tuple[int, int, int]) -> nn.Conv3d:
    # even factors: kernel 2f, padding f/2 (the reference's 4³ stride-2 conv); odd: kernel f, no padding
    kernel = tuple(2 * f if f % 2 == 0 else f for f in pool)
    padding = tuple(f // 2 if f % 2 == 0 else 0 for f in pool)
    return nn.Conv3d(channels, channels, kernel, stride=pool, padding=padding)


class UNet3D(nn.Module):
    """Encoder–decoder with skip connections.

    Parameters
    ----------
    in_channels, out_channels : int
    widths : sequence of int
        Channels per level, top to bottom; ``len(widths) − 1`` downsamplings.
    pools : sequence of 3-tuples, optional
        Downsampling factor ``(z, y, x)`` per level, e.g. ``(1, 2, 2)`` to keep a thin stack's z;
        default 2 on every axis.
    norm : str
        One of :data:`NORMS` (``group`` for the DDPM: it does not whiten each sample's intensity).
    upsample : str
        ``pixelshuffle`` (1×1 conv to ``f³·C`` channels, then depth-to-space), ``transpose``, or
        ``resize`` (nearest-neighbour upsampling, then a 3×3×3 conv: resize-convolution, free of the
        checkerboard the other two draw before they are trained; Odena et al. 2016, "Deconvolution
        and checkerboard artifacts").
    time_embedding : bool
        Take a timestep ``(B,)`` as second input (DDPM).
    attention : bool
        Self-attention at the lowest resolution.
    out_activation : str
        One of :data:`OUT_ACTIVATIONS` (the cGAN uses sigmoid: images in [0, 1]).
    negative_slope : float
        LeakyReLU slope (the reference's 0.2); a negative value selects SiLU.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: Sequence[int] = (16, 32, 64, 128),
                 pools: Sequence[Sequence[int]] | None = None, norm: str = "instance", upsample: str = "pixelshuffle",
                 time_embedding: bool = False, attention: bool = False, out_activation: str = "none",
                 negative_slope: float = 0.2):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 1 or min(widths) < 1:
            raise ValueError(f"widths must be one or more positive channel counts; got {widths}")
        pools = [(2, 2, 2)] * (len(widths) - 1) if pools is None else pools
        self.pools = [tuple(int(f) for f in pool) for pool in pools]
        if len(self.pools) != len(widths) - 1 or any(len(p) != 3 or min(p) < 1 for p in self.pools):
            raise ValueError(f"need {len(widths) - 1} pools of three factors >= 1 for widths {widths}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"unknown upsample '{upsample}'; choose one of {', '.join(UPSAMPLES)}")
        if out_activation not in OUT_ACTIVATIONS:
            raise ValueError(f"unknown out_activation '{out_activation}'; choose one of {', '.join(OUT_ACTIVATIONS)}")
        self.out_activation = out_activation
        time_channels = 4 * widths[0] if time_embedding else None
        self.time_mlp = nn.Sequential(nn.Linear(widths[0], time_channels), nn.SiLU(),
                                      nn.Linear(time_channels, time_channels)) if time_embedding else None

        def block(cin: int, cout: int) -> ResidualBlock:
            return ResidualBlock(cin, cout, norm, negative_slope, time_channels)

        self.stem = block(in_channels, widths[0])
        self.downs = nn.ModuleList([_downsample(widths[i], pool) for i, pool in enumerate(self.pools)])
        self.encoders = nn.ModuleList([block(widths[i], widths[i + 1]) for i in range(len(self.pools))])
        self.attention = Attention(widths[-1]) if attention else None
        if upsample == "pixelshuffle":
            self.ups = nn.ModuleList([
                nn.Sequential(nn.Conv3d(widths[i + 1], widths[i] * math.prod(pool), 1),
                              _activation(negative_slope), PixelShuffle3d(pool))
                for i, pool in enumerate(self.pools)])
        elif upsample == "resize":
            self.ups = nn.ModuleList([
                nn.Sequential(nn.Upsample(scale_factor=tuple(float(f) for f in pool), mode="nearest"),
                              nn.Conv3d(widths[i + 1], widths[i], 3, padding=1), _activation(negative_slope))
                for i, pool in enumerate(self.pools)])
        else:
            self.ups = nn.ModuleList([nn.ConvTranspose3d(widths[i + 1], widths[i], pool, stride=pool)
                                      for i, pool in enumerate(self.pools)])
        self.decoders = nn.ModuleList([block(2 * widths[i], widths[i]) for i in range(len(self.pools))])
        self.head = nn.Conv3d(widths[0], out_channels, 1)

    @property
    def divisor(self) -> tuple[int, int, int]:
        """What the padded input size is made a multiple of, per axis."""
        return tuple(math.prod(pool[axis] for pool in self.pools) for axis in range(3))  # type: ignore[return-value]

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | None = None) -> torch.Tensor:
        if (timesteps is None) != (self.time_mlp is None):
            raise ValueError("pass timesteps exactly when the network has a time embedding")
        size = x.shape[2:]
        pad = [(-n) % d for n, d in zip(size, self.divisor, strict=True)]
        if any(pad):
            x = nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        time = None
        if self.time_mlp is not None:
            time = self.time_mlp(timestep_embedding(timesteps, self.time_mlp[0].in_features))
        x = self.stem(x, time)
        skips = []
        for down, encoder in zip(self.downs, self.encoders, strict=True):
            skips.append(x)
            x = encoder(down(x), time)
        if self.attention is not None:
            x = self.attention(x)
        for level in reversed(range(len(self.pools))):
            x = self.decoders[level](torch.cat([self.ups[level](x), skips[level]], dim=1), time)
        x = self.head(x)[:, :, :size[0], :size[1], :size[2]]
        if self.out_activation == "sigmoid":
            return torch.sigmoid(x)
        return torch.tanh(x) if self.out_activation == "tanh" else x


def seeded(factory: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """The module ``factory()`` builds, with every weight drawn from ``generator`` alone.

    The layers are built without storage (meta device), so torch's global RNG is never touched;
    convolutions and linear layers are drawn Kaiming-uniform (torch's default law) with zero bias,
    attention projections Xavier-uniform, norms start at identity.
    """
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu")
    done = set()
    for module in model.modules():
        if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=5**0.5, generator=generator)
            tensors = [module.weight]
            if module.bias is not None:
                nn.init.zeros_(module.bias)
                tensors.append(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.xavier_uniform_(module.in_proj_weight, generator=generator)
            nn.init.zeros_(module.in_proj_bias)
            tensors = [module.in_proj_weight, module.in_proj_bias]
        elif isinstance(module, (nn.InstanceNorm3d, nn.GroupNorm, nn.BatchNorm3d)):
            tensors = [t for t in (module.weight, module.bias) if t is not None]
            for t, value in zip(tensors, (1.0, 0.0), strict=False):
                nn.init.constant_(t, value)
            if isinstance(module, nn.BatchNorm3d):
                module.reset_running_stats()
        else:
            continue
        done.update(id(t) for t in tensors)
    missing = [name for name, p in model.named_parameters() if id(p) not in done]
    if missing:
        raise TypeError(f"seeded() does not know how to draw {missing[:3]}")
    return model
