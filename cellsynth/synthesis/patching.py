"""Run any callable over a volume of any size in overlapping tiles, and blend them without seams.

Geometry (Eschweiler et al., data synthesis: ``d_overlap`` and ``d_crop``, per axis)
-------------------------------------------------------------
A tile of ``patch`` voxels goes through the callable; its output is cropped by ``crop`` on every
side (the border of a network's field of view is unreliable), leaving a *core* of
``patch − 2·crop``. Neighbouring cores overlap by at least ``overlap`` voxels and are blended there
with a window that falls off from the core centre; every voxel's value is ``Σ w·y / Σ w`` over the
cores that cover it. The volume is reflect-padded where a tile reaches past its border, so a
volume smaller than one patch, odd sizes and anisotropic patches need no special case.

Cores are spread evenly: per axis, the fewest tiles that cover the axis with the required overlap,
shifted so the first core starts at voxel 0 and the last ends at the last voxel. ``redundancy`` is
voxels run through the callable / voxels produced: 1 means no work wasted. :func:`fit_patch`
shrinks a patch to the smallest size (a multiple of the network's down-sampling factor) that needs
no more tiles, which keeps the redundancy low (≤ 1.6 for 180×512×512 with the defaults).

Any callable works: numpy or torch, ``(B, C_in, *patch) → (B, C_out, *patch)``. A torch input is
tiled and accumulated on its own device without leaving it, which is what per-step fused
denoising (MultiDiffusion-style) needs: call :meth:`PatchPlan.apply` once per diffusion step with
the per-tile model; the result is the weighted average of the tile outputs over the whole volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product

import numpy as np

from cellsynth.errors import InputError

WINDOWS = ("hann", "gaussian", "pyramid", "constant")
#: Defaults: largest patch (z, y, x) voxels, overlap and crop voxels, window, floor, patch multiple.
DEFAULT_PATCH = (128, 256, 256)
DEFAULT_OVERLAP = 8
DEFAULT_CROP = 4
DEFAULT_WINDOW = "hann"
DEFAULT_FLOOR = 1e-3
DEFAULT_MULTIPLE = 8


def _triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    values = tuple(int(v) for v in np.broadcast_to(np.asarray(value), (3,)))
    if any(v != float(u) for v, u in zip(values, np.broadcast_to(np.asarray(value, float), (3,)), strict=True)):
        raise InputError(f"{what} must be whole numbers of voxels; got {value!r}")
    return values  # type: ignore[return-value]


def check_geometry(patch, overlap, crop) -> tuple[tuple[int, int, int], ...]:
    """Validate patch, overlap and crop (voxels, one value or z, y, x); returns the three triples."""
    patch, overlap, crop = _triple(patch, "patch size"), _triple(overlap, "overlap"), _triple(crop, "crop")
    if min(patch) <= 0:
        raise InputError(f"patch size must be > 0 voxels along every axis; got {patch}")
    if min(overlap) < 0 or min(crop) < 0:
        raise InputError(f"overlap and crop must be >= 0 voxels; got overlap {overlap}, crop {crop}")
    bad = [axis for axis, (p, o, c) in enumerate(zip(patch, overlap, crop, strict=True)) if o + 2 * c >= p]
    if bad:
        axis = "zyx"[bad[0]]
        raise InputError(f"overlap + 2·crop must be smaller than the patch along {axis} "
                         f"({overlap[bad[0]]} + 2·{crop[bad[0]]} >= {patch[bad[0]]}): no voxel would advance")
    return patch, overlap, crop


def core_starts(size: int, core: int, overlap: int) -> list[int]:
    """Start of each core along one axis: the fewest cores of ``core`` voxels that cover ``size``
    with ≥ ``overlap`` shared voxels between neighbours, spread evenly, first at 0, last ending at ``size``."""
    if size <= core:
        return [0]
    n = int(np.ceil((size - overlap) / (core - overlap)))
    return [int(round(i * (size - core) / (n - 1))) for i in range(n)]


def fit_patch(volume_shape: Sequence[int], max_patch, overlap=DEFAULT_OVERLAP, crop=DEFAULT_CROP,
              multiple: int = 1) -> tuple[int, int, int]:
    """The smallest patch (≤ ``max_patch``, a multiple of ``multiple``) needing no more tiles than ``max_patch``.

    With evenly spread tiles, a patch that just covers the axis wastes the least work; networks
    that down-sample ``k`` times need patches divisible by ``multiple = 2**k``.

    Parameters
    ----------
    volume_shape : 3 ints
    max_patch : int or 3 ints
        The largest tile.
    overlap, crop : int or 3 ints
        See :class:`PatchPlan`.
    multiple : int
        Tile sizes are multiples of it.

    Returns
    -------
    (z, y, x)
        The tile size.

    Examples
    --------
    >>> fit_patch((20, 100, 100), (64, 128, 128))
    (28, 108, 108)
    """
    max_patch, overlap, crop = check_geometry(max_patch, overlap, crop)
    fitted = []
    for size, p, o, c in zip(volume_shape, max_patch, overlap, crop, strict=True):
        n = len(core_starts(size, p - 2 * c, o))
        core = size if n == 1 else int(np.ceil((size + (n - 1) * o) / n))
        candidate = int(np.ceil((core + 2 * c) / multiple) * multiple)
        fitted.append(max(min(candidate, p), o + 2 * c + 1))
    return tuple(fitted)  # type: ignore[return-value]


def window_1d(size: int, kind: str) -> np.ndarray:
    """A 1D profile in (0, 1], 1 at the centre, falling towards both ends."""
    position = (np.arange(size) + 0.5) / size  # voxel centres in (0, 1)
    if kind == "hann":
        return np.sin(np.pi * position) ** 2
    if kind == "gaussian":  # MONAI's: sigma = size / 8
        return np.exp(-0.5 * ((position - 0.5) * 8) ** 2)
    if kind == "constant":
        return np.ones(size)
    raise InputError(f"unknown window '{kind}'; accepted: {', '.join(WINDOWS)}")


def window(shape: Sequence[int], kind: str = DEFAULT_WINDOW, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Blending weights over a core: concentric, largest at the centre, never below ``floor``.

    ``hann`` and ``gaussian`` are separable products of 1D windows; ``pyramid`` is the reference's
    distance to the nearest face (normalised to 1 at the centre); ``constant`` is plain averaging.
    """
    if kind not in WINDOWS:
        raise InputError(f"unknown window '{kind}'; accepted: {', '.join(WINDOWS)}")
    if not 0 < floor <= 1:
        raise InputError(f"window floor must be in (0, 1] so every voxel keeps a weight; got {floor!r}")
    if kind == "pyramid":
        grids = np.meshgrid(*[np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / (n / 2) for n in shape],
                            indexing="ij")
        weights = np.minimum.reduce(grids)
    else:
        weights = np.ones(tuple(shape))
        for axis, n in enumerate(shape):
            weights = weights * window_1d(n, kind).reshape([-1 if a == axis else 1 for a in range(len(shape))])
    return np.maximum(weights, floor).astype(np.float32)


def reflect_indices(start: int, length: int, size: int) -> np.ndarray:
    """Indices ``start … start+length−1`` folded into ``0 … size−1`` by mirror reflection (no edge repeat)."""
    index = np.arange(start, start + length)
    if size == 1:
        return np.zeros(length, int)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index)


@dataclass(frozen=True)
class Tile:
    """One tile: where its input comes from and where its cropped core goes (volume voxels)."""

    source: tuple[np.ndarray, np.ndarray, np.ndarray]  # reflected input indices per axis
    core: tuple[slice, slice, slice]  # the part of the output this core fills
    keep: tuple[slice, slice, slice]  # the part of the tile output that is that core

    @cached_property
    def window_slices(self) -> tuple[slice, slice, slice] | None:
        """The input as plain slices when the tile lies inside the volume (no reflection): a view, no gather."""
        if all(np.array_equal(i, np.arange(i[0], i[0] + len(i))) for i in self.source):
            return tuple(slice(int(i[0]), int(i[0]) + len(i)) for i in self.source)  # type: ignore[return-value]
        return None


@dataclass(frozen=True)
class PatchPlan:
    """The tiles and weights for one volume shape; reusable across calls (e.g. diffusion steps).

    Parameters
    ----------
    volume_shape : sequence of 3 int
        ZYX voxels of the volume.
    patch, overlap, crop : int or sequence of 3 int
        Tile size, least overlap of neighbouring cores, and margin cropped from every tile output.
    window : str
        One of :data:`WINDOWS`.
    floor : float
        Least weight of any voxel of a core.

    Examples
    --------
    >>> plan = PatchPlan((32, 300, 300), patch=(32, 128, 128), overlap=(0, 16, 16), crop=(0, 4, 4))
    >>> len(plan.tiles), plan.tiles[0].core
    (9, (slice(0, 32, None), slice(0, 120, None), slice(0, 120, None)))
    """

    volume_shape: tuple[int, int, int]
    patch: tuple[int, int, int] = DEFAULT_PATCH
    overlap: tuple[int, int, int] = (DEFAULT_OVERLAP,) * 3
    crop: tuple[int, int, int] = (DEFAULT_CROP,) * 3
    window: str = DEFAULT_WINDOW
    floor: float = DEFAULT_FLOOR
    tiles: list[Tile] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        patch, overlap, crop = check_geometry(self.patch, self.overlap, self.crop)
        shape = tuple(int(n) for n in self.volume_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"volume shape must be three sizes >= 1 (Z, Y, X); got {self.volume_shape!r}")
        for name, value in (("volume_shape", shape), ("patch", patch), ("overlap", overlap), ("crop", crop)):
            object.__setattr__(self, name, value)
        window(patch, self.window, self.floor)  # validates the window and floor
        axes = []
        for size, p, o, c in zip(shape, patch, overlap, crop, strict=True):
            core = p - 2 * c
            axes.append([(s, min(core, size)) for s in core_starts(size, core, o)])
        tiles = []
        for starts in product(*axes):
            source = tuple(reflect_indices(s - c, p, n) for (s, _), c, p, n in zip(starts, crop, patch, shape,
                                                                                     strict=True))
            core = tuple(slice(s, s + length) for s, length in starts)
            keep = tuple(slice(c, c + length) for (_, length), c in zip(starts, crop, strict=True))
            tiles.append(Tile(source, core, keep))  # type: ignore[arg-type]
        object.__setattr__(self, "tiles", tiles)

    @cached_property
    def weights(self) -> np.ndarray:
        """The window over a core, float32 of shape ``patch − 2·crop``."""
        return window(tuple(p - 2 * c for p, c in zip(self.patch, self.crop, strict=True)), self.window, self.floor)

    def seam_planes(self) -> list[list[int]]:
        """Per axis, the planes (index ``i`` = between voxels ``i−1`` and ``i``) where a core starts or
        ends inside the volume: where a seam would show (see :func:`cellsynth.evaluate.seams.seam_score`)."""
        planes = []
        for axis in range(3):
            edges = {t.core[axis].start for t in self.tiles} | {t.core[axis].stop for t in self.tiles}
            planes.append(sorted(e for e in edges if 0 < e < self.volume_shape[axis]))
        return planes

    @property
    def redundancy(self) -> float:
        """Voxels run through the callable / voxels produced."""
        return len(self.tiles) * float(np.prod(self.patch)) / float(np.prod(self.volume_shape))

    @cached_property
    def weight_sums(self) -> np.ndarray:
        """Σ of the core windows over the volume (the blend's denominator), float32 ZYX."""
        sums = np.zeros(self.volume_shape, np.float32)
        for tile in self.tiles:
            sums[tile.core] += self.weights[tuple(slice(0, s.stop - s.start) for s in tile.core)]
        return sums

    def extract(self, volume, tile: Tile):
        """The input tile ``(C, *patch)`` of a ``(C, Z, Y, X)`` numpy/torch/zarr volume (reflect-padded)."""
        if tile.window_slices is not None:
            return volume[(slice(None), *tile.window_slices)]
        low = [int(i.min()) for i in tile.source]
        high = [int(i.max()) + 1 for i in tile.source]
        block = volume[:, low[0]:high[0], low[1]:high[1], low[2]:high[2]]  # one read, then index within it
        z, y, x = (i - lo for i, lo in zip(tile.source, low, strict=True))
        if _is_torch(block):
            import torch

            z, y, x = (torch.as_tensor(a, device=block.device) for a in (z, y, x))
            return block[:, z[:, None, None], y[None, :, None], x[None, None, :]]
        return np.asarray(block)[:, z[:, None, None], y[None, :, None], x[None, None, :]]

    def apply(self, fn: Callable, volume, *, batch_size: int = 1, out_channels: int | None = None, out=None,
              progress: bool = False):
        """Run ``fn`` over every tile of ``volume`` and blend the cropped outputs.

        Parameters
        ----------
        fn : callable
            ``(B, C_in, *patch) → (B, C_out, *patch)``, numpy in → numpy out, torch in → torch out.
        volume : ndarray, torch.Tensor or zarr array, shape (C_in, Z, Y, X)
            The input (a ZYX array is taken as one channel).
        batch_size : int
            Tiles per call.
        out_channels : int, optional
            Channels of ``fn``'s output; default as many as it returns for the first batch.
        out : ndarray or zarr array, shape (C_out, Z, Y, X), optional
            Where to write the result (a zarr array for volumes larger than memory: the weighted
            sums go through it tile by tile; only the one-channel weight sums stay in memory).
            Default a new float32 array, or tensor for torch input.
        progress : bool
            Show a progress bar over tiles.

        Returns
        -------
        ndarray, torch.Tensor or ``out``
            ``(C_out, Z, Y, X)``; a ZYX input gives a ZYX output when ``C_out`` is 1.
        """
        if batch_size < 1:
            raise InputError(f"batch size must be >= 1; got {batch_size}")
        squeeze = len(volume.shape) == 3
        if squeeze:
            volume = volume[None]
        if tuple(volume.shape[1:]) != self.volume_shape:
            raise InputError(f"volume shape {tuple(volume.shape[1:])} differs from the plan's {self.volume_shape}")
        torch_mode = _is_torch(volume)
        weights, sums = self._on_device(volume.device) if torch_mode else (self.weights, self.weight_sums)
        stack = _torch_stack if torch_mode else np.stack
        accumulator = None
        from tqdm.auto import tqdm

        bar = tqdm(total=len(self.tiles), desc="tiles", unit="tile", disable=True if not progress else None)
        for first in range(0, len(self.tiles), batch_size):
            batch = self.tiles[first:first + batch_size]
            inputs = [self.extract(volume, tile) for tile in batch]
            stacked = stack(inputs)
            outputs = fn(stacked)
            if accumulator is None:
                accumulator = self._buffer(out_channels or outputs.shape[1], volume, torch_mode, out)
            for tile, output in zip(batch, outputs, strict=True):
                core = output[(slice(None), *tile.keep)]
                w = weights[tuple(slice(0, s.stop - s.start) for s in tile.core)]
                region = (slice(None), *tile.core)
                if torch_mode:
                    accumulator[region].addcmul_(core.to(accumulator.dtype), w)
                elif isinstance(accumulator, np.ndarray):
                    accumulator[region] += np.asarray(core, np.float32) * w
                else:  # zarr: read, add, write back
                    accumulator[region] = accumulator[region] + np.asarray(core, np.float32) * w
            bar.update(len(batch))
        bar.close()
        if torch_mode or isinstance(accumulator, np.ndarray):
            accumulator /= sums
        else:  # zarr: divide slab by slab
            for z in range(0, self.volume_shape[0], accumulator.chunks[1]):
                slab = slice(z, z + accumulator.chunks[1])
                accumulator[:, slab] = accumulator[:, slab] / sums[slab]
        return accumulator[0] if squeeze and accumulator.shape[0] == 1 else accumulator

    def _on_device(self, device) -> tuple:
        """The window and the weight sums as tensors on ``device``, copied once per plan and device
        (per-step fusion calls :meth:`apply` once per diffusion step)."""
        import torch

        cache = self.__dict__.setdefault("_device_arrays", {})
        if str(device) not in cache:
            cache[str(device)] = (torch.as_tensor(self.weights, device=device),
                                  torch.as_tensor(self.weight_sums, device=device))
        return cache[str(device)]

    def _buffer(self, channels: int, volume, torch_mode: bool, out):
        shape = (channels, *self.volume_shape)
        if torch_mode:
            import torch

            return torch.zeros(shape, dtype=torch.float32, device=volume.device)
        if out is None:
            return np.zeros(shape, np.float32)
        if tuple(out.shape) != shape:
            raise InputError(f"output array has shape {tuple(out.shape)}; expected {shape}")
        out[...] = 0
        return out


def _torch_stack(tensors):
    import torch

    return torch.stack(tensors)


def _is_torch(array) -> bool:
    return type(array).__module__.startswith("torch")


def apply_patched(fn: Callable, volume, *, patch=DEFAULT_PATCH, overlap=DEFAULT_OVERLAP, crop=DEFAULT_CROP,
                  window: str = DEFAULT_WINDOW, floor: float = DEFAULT_FLOOR, multiple: int | None = DEFAULT_MULTIPLE,
                  batch_size: int = 1, out_channels: int | None = None, out=None, progress: bool = False):
    """One call: plan the tiles for ``volume`` and apply ``fn`` (see :class:`PatchPlan`).

    ``patch`` is the largest tile; with ``multiple`` (default 8) it is shrunk by :func:`fit_patch`
    to the smallest multiple of ``multiple`` that needs no more tiles. ``multiple=None`` uses
    ``patch`` as given.

    Parameters
    ----------
    fn : callable
        Maps a batch of tiles (a first axis B, then the volume's axes) to outputs of the same spatial size.
    volume : ndarray
        ``(C, Z, Y, X)`` or ``(Z, Y, X)``.
    patch, overlap, crop : int or 3 ints
        See :class:`PatchPlan`.
    window : str
        Blending window (:data:`WINDOWS`).
    floor : float
        Least weight of any voxel of a core.
    multiple : int, optional
        Tile sizes are multiples of it (a network's divisor).
    batch_size : int
        Tiles per call of ``fn``.
    out_channels : int, optional
        Channels of ``fn``'s output (default: the input's).
    out : ndarray, optional
        Where to write the result.
    progress : bool
        Show progress bars (only on a terminal).

    Returns
    -------
    (result, info)
        ``info`` holds ``n_tiles``, ``patch`` and ``redundancy``.

    Examples
    --------
    >>> import numpy as np
    >>> result, info = apply_patched(lambda tiles: 2 * tiles, np.ones((20, 40, 40), np.float32), patch=(24, 32, 32))
    >>> float(result.max()), info["n_tiles"]
    (2.0, 8)
    """
    shape = tuple(volume.shape[-3:])
    if multiple is not None:
        patch = fit_patch(shape, patch, overlap, crop, multiple)
    plan = PatchPlan(shape, patch, overlap, crop, window, floor)
    result = plan.apply(fn, volume, batch_size=batch_size, out_channels=out_channels, out=out, progress=progress)
    return result, {"n_tiles": len(plan.tiles), "patch": list(plan.patch), "redundancy": round(plan.redundancy, 4)}
