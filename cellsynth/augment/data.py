"""Training data: random patches of labelled volumes, augmented on the fly, reproducible per seed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from cellsynth.augment.diversify import local_std, normalize_percentiles
from cellsynth.augment.intensity import Diversify
from cellsynth.augment.transforms import Transform, as_item
from cellsynth.errors import InputError
from cellsynth.sample import Sample

Targets = Callable[[np.ndarray, tuple[float, float, float]], Mapping[str, np.ndarray]]
_MAX_FOREGROUND_CENTRES = 100_000


def load_labelled_images(source, *, percentiles: Sequence[float] | None = (0.1, 99.9)) -> list[Sample]:
    """Every labelled image of ``source``, intensities normalised per volume.

    Parameters
    ----------
    source : path-like, Sample or sequence
        Anything :func:`~cellsynth.dataset.samples.as_samples` reads with labels: a cellsynth dataset
        folder (its finished samples, checksums verified), OME-Zarr stores with label images, Samples.
    percentiles : (low, high) or None
        Per-volume percentile normalisation to [0, 1] (:func:`normalize_percentiles`); None
        keeps the intensities as they are.

    Returns
    -------
    list of Sample
        Image, labels, spacing and name of each.

    Examples
    --------
    >>> labels = np.zeros((4, 8, 8), np.uint16); labels[1:3, 2:6, 2:6] = 1
    >>> image = np.where(labels > 0, 500.0, 100.0)
    >>> items = load_labelled_images([Sample(labels, image, (1.0, 0.5, 0.5))], percentiles=(0, 100))
    >>> float(items[0].image.min()), float(items[0].image.max()), items[0].spacing
    (0.0, 1.0, (1.0, 0.5, 0.5))
    """
    from cellsynth.dataset.samples import as_samples  # reads dataset folders: imported when used

    items = [as_item(sample) for sample in as_samples(source, labels=True, need_spacing=False, what="training")]
    if percentiles is None:
        return items
    return [item.replace(image=normalize_percentiles(item.image, *percentiles)) for item in items]


def patch_start(shape: Sequence[int], patch: Sequence[int], *, centres: np.ndarray | None = None,
                foreground_fraction: float = 0.0, rng=None) -> list[int]:
    """Where a random patch starts (voxels): with probability ``foreground_fraction`` centred on one of
    ``centres`` (flat indices into ``shape``) and moved inside the volume, else uniformly where it fits
    (0 along an axis shorter than the patch). The one placement of every patch sampler here and in
    :mod:`cellsynth.training`.

    Parameters
    ----------
    shape : 3 ints
        The volume's shape (voxels).
    patch : 3 ints
        The patch's shape (voxels).
    centres : ndarray of int, optional
        Flat indices of object centres.
    foreground_fraction : float
        Probability of a patch centred on an object.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of int
        The patch's first voxel along z, y, x.

    Examples
    --------
    >>> patch_start((10, 20, 20), (4, 8, 8), rng=0)
    [5, 8, 6]
    >>> patch_start((10, 20, 20), (4, 8, 8), centres=np.array([0]), foreground_fraction=1.0, rng=0)
    [0, 0, 0]
    """
    rng = np.random.default_rng(rng)
    if centres is not None and len(centres) and rng.random() < foreground_fraction:
        centre = np.asarray(np.unravel_index(centres[rng.integers(len(centres))], tuple(shape)))
        top = np.maximum(np.asarray(shape) - np.asarray(patch), 0)
        return [int(s) for s in np.clip(centre - np.asarray(patch) // 2, 0, top)]
    return [int(rng.integers(max(n - p, 0) + 1)) for n, p in zip(shape, patch, strict=True)]


class PatchDataset:
    """Random training patches of labelled volumes with an on-the-fly augmentation.

    Item ``i`` of epoch ``e`` draws everything (volume, position, augmentation) from
    ``SeedSequence(seed, spawn_key=(e, i))``: the same seed gives the same patches whatever the
    number of DataLoader workers. Call :meth:`set_epoch` before each epoch (it also advances a
    diversification curriculum); with persistent DataLoader workers, recreate the loader.

    Parameters
    ----------
    source : path-like or sequence
        See :func:`load_labelled_images`; all volumes are held in memory.
    patch_size : 3 ints
        ZYX patch shape in voxels; smaller volumes are padded (image with its minimum, labels 0).
    transform : Transform, optional
        Applied to each patch. If it contains :class:`Diversify` transforms with one
        neighbourhood, ``σ_x`` is computed once per whole volume and cropped with the patch.
    samples_per_epoch : int, optional
        Length of an epoch (default: one patch per volume).
    foreground_fraction : float
        Probability that a patch is centred on a labelled voxel (else uniform).
    percentiles : (low, high) or None
        Per-volume normalisation (see :func:`load_labelled_images`).
    targets : callable, optional
        ``targets(labels, spacing)`` → extra arrays (e.g. foreground, boundary) added to the item.
    seed : int
        Base seed.
    weights : sequence of float, optional
        Relative probability of drawing each volume (default: all alike), e.g. to mix datasets in
        given proportions.

    Items are dicts: ``image`` float32 ``(1, Z, Y, X)``, ``labels`` int64 ``(Z, Y, X)`` and the
    targets as tensors.

    Examples
    --------
    >>> from cellsynth.sample import Sample
    >>> labels = np.zeros((8, 32, 32), np.uint16); labels[2:6, 8:20, 8:20] = 1
    >>> volume = Sample(labels, np.where(labels > 0, 0.8, 0.1), (1.0, 0.5, 0.5))
    >>> patches = PatchDataset([volume], (4, 16, 16), samples_per_epoch=3, seed=0)
    >>> len(patches), patches.patch(0).shape, sorted(patches[0])
    (3, (4, 16, 16), ['image', 'labels'])
    """

    def __init__(
        self,
        source,
        patch_size: Sequence[int],
        *,
        transform: Transform | None = None,
        samples_per_epoch: int | None = None,
        foreground_fraction: float = 0.5,
        percentiles: Sequence[float] | None = (0.1, 99.9),
        targets: Targets | None = None,
        seed: int = 0,
        weights: Sequence[float] | None = None,
    ):
        patch = tuple(int(p) for p in patch_size)
        if len(patch) != 3 or min(patch) < 1:
            raise InputError(f"patch_size must be three voxel counts >= 1 (z, y, x); got {tuple(patch_size)!r}")
        if not 0 <= foreground_fraction <= 1:
            raise InputError(f"foreground_fraction must lie in [0, 1]; got {foreground_fraction!r}")
        if transform is not None and not isinstance(transform, Transform):
            raise InputError(f"transform must be a cellsynth.augment transform; got {type(transform).__name__}")
        self.items = load_labelled_images(source, percentiles=percentiles)
        self.patch_size, self.transform, self.targets, self.seed = patch, transform, targets, int(seed)
        self.samples_per_epoch = len(self.items) if samples_per_epoch is None else int(samples_per_epoch)
        if self.samples_per_epoch < 1:
            raise InputError(f"samples_per_epoch must be >= 1; got {samples_per_epoch!r}")
        self.foreground_fraction = float(foreground_fraction)
        self.weights = None
        if weights is not None:
            weights = np.asarray(weights, np.float64)
            if weights.shape != (len(self.items),) or not np.isfinite(weights).all() or (weights < 0).any() \
                    or weights.sum() <= 0:
                raise InputError(f"weights must be {len(self.items)} finite numbers >= 0 (one per volume), not all 0")
            self.weights = weights / weights.sum()
        self.epoch = 0
        self._centres = [self._foreground_centres(item.labels) for item in self.items]
        self._precompute_local_std()

    def _precompute_local_std(self) -> None:
        diversifiers = [t for t in self.transform.walk() if isinstance(t, Diversify)] if self.transform else []
        for index, item in enumerate(self.items):
            sizes = {d.neighbourhood(item.spacing) for d in diversifiers}
            if len(sizes) == 1:
                self.items[index] = item.replace(local_std=local_std(item.image, sizes.pop()))

    @staticmethod
    def _foreground_centres(labels: np.ndarray) -> np.ndarray:
        flat = np.flatnonzero(labels)
        step = max(1, len(flat) // _MAX_FOREGROUND_CENTRES)
        return flat[::step]

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches to draw; passed on to the transform."""
        self.epoch = int(epoch)
        if self.transform is not None:
            self.transform.set_epoch(self.epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, index)))

    def patch(self, index: int) -> Sample:
        """Item ``index`` as an augmented :class:`~cellsynth.sample.Sample` (what :meth:`__getitem__` converts)."""
        if not 0 <= index < len(self):
            raise IndexError(f"patch index {index} out of range for {len(self)} patches per epoch")
        rng = self.rng(index)
        volume = int(rng.integers(len(self.items)) if self.weights is None else rng.choice(len(self.items),
                                                                                          p=self.weights))
        item = self.items[volume]
        starts = patch_start(item.image.shape, self.patch_size, centres=self._centres[volume],
                             foreground_fraction=self.foreground_fraction, rng=rng)
        patch = _crop_or_pad(item, np.asarray(starts), self.patch_size)
        return self.transform.apply(patch, rng) if self.transform is not None else patch

    def __getitem__(self, index: int) -> dict:
        """Patch ``index`` as torch tensors for a ``torch.utils.data.DataLoader`` (a map-style dataset:
        ``__len__`` and ``__getitem__``; torch is imported here, not with ``cellsynth.augment``)."""
        import torch

        patch = self.patch(index)
        result = {"image": torch.from_numpy(np.ascontiguousarray(patch.image))[None],
                  "labels": torch.from_numpy(patch.labels.astype(np.int64))}
        if self.targets is not None:
            for name, array in self.targets(patch.labels, patch.spacing).items():
                result[name] = torch.from_numpy(np.ascontiguousarray(array))
        return result


def _crop_or_pad(item: Sample, starts: np.ndarray, patch: tuple[int, ...]) -> Sample:
    window = tuple(slice(int(a), int(a) + p) for a, p in zip(starts, patch, strict=True))
    volumes = {}
    for name, value in item.volumes().items():
        value = value[window]
        missing = [(0, p - n) for n, p in zip(value.shape, patch, strict=True)]
        if any(m for _, m in missing):
            value = np.pad(value, missing, constant_values=float(item.image.min()) if name == "image" else 0)
        volumes[name] = np.ascontiguousarray(value)
    return item.replace(**volumes)
