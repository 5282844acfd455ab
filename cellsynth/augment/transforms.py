"""Label-safe 3D augmentations: one transform, one class, applied jointly to image and labels.

This module holds what every transform shares (:class:`Transform`, :func:`as_item`, the checks of
their parameters) and the combiners; the transforms themselves are in :mod:`.intensity` (image
only) and :mod:`.spatial` (every volume through one mapping).

Every transform maps a :class:`~cellsynth.sample.Sample` (image, optional instance labels and
other label-like volumes, voxel spacing, optional cached local std for :class:`Diversify`) to a
new one of the same shape, drawing its randomness from the ``numpy.random.Generator`` it is called
with, so the same seed gives the same output. Geometric transforms move every volume with one
mapping: images with linear interpolation (``image_order``), labels with nearest neighbour, so instance ids are only
ever kept or lost at the border, never blended or invented. Physical parameters are in µm and use
the item's spacing (a rotation of an anisotropic stack turns the physical volume, not the voxel
grid).

Combiners (Chen, augmentations): :class:`Stacked` applies each transform with probability ``p`` (``p = 1``
composes), :class:`RandomChoice` applies one. Put :class:`Diversify` before noise and intensity
jitter: it needs intensities in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from cellsynth.errors import InputError
from cellsynth.sample import Sample, as_sample


def as_item(item: Sample | np.ndarray) -> Sample:
    """``item`` ready for the transforms: a :class:`~cellsynth.sample.Sample` with a float32 image.

    A bare array becomes a sample's image. A sample without spacing keeps none: the transforms
    whose parameters are in µm (rotations, elastic, blur, diversification) then refuse it in one
    line, and the others (flips, intensity, noise) apply.

    Parameters
    ----------
    item : Sample or ndarray
        A sample with an image, or a bare image.

    Returns
    -------
    Sample

    Examples
    --------
    >>> item = as_item(np.zeros((2, 4, 4), np.uint16))
    >>> item.image.dtype, item.spacing
    (dtype('float32'), None)
    """
    item = as_sample(item)
    if item.image is None:
        raise InputError("augmentations need the sample's image; got labels only (render the sample first)")
    return item.replace(image=item.image.astype(np.float32)) if item.image.dtype != np.float32 else item


class Transform:
    """Base class: ``transform(item, rng)`` returns a new :class:`~cellsynth.sample.Sample`.

    ``item`` may also be a bare image array (see :func:`as_item`); ``rng`` a Generator, an int seed
    or None. As TorchIO does, a transform draws its parameters for the item (:meth:`make_params`:
    angles, factors, which axes) and then applies them (:meth:`apply_params`), so the same parameters
    can be applied again, or undone where the transform is invertible (:meth:`inverse`); what was drawn
    is appended to the result's ``params["augmentations"]`` as ``{"transform": name, **params}``.
    Bulk randomness (a noise field, an elastic displacement) is drawn inside :meth:`apply_params` from
    the same ``rng``; a subclass may also override :meth:`apply` alone.

    Examples
    --------
    >>> class Invert(Transform):
    ...     def apply_params(self, item, params, rng=None):
    ...         return item.replace(image=1 - item.image)
    >>> out = Invert()(np.zeros((2, 4, 4)), rng=0)
    >>> float(out.image.max()), out.params["augmentations"]
    (1.0, [{'transform': 'Invert'}])
    """

    def __call__(self, item: Sample | np.ndarray, rng: np.random.Generator | int | None = None) -> Sample:
        return self.apply(as_item(item), np.random.default_rng(rng))

    def apply(self, item: Sample, rng: np.random.Generator) -> Sample:
        """Draw the parameters for ``item``, apply them and record them (see the class doc).

        Parameters
        ----------
        item : Sample
            With a float32 image (:func:`as_item`).
        rng : numpy.random.Generator
            Source of randomness.

        Returns
        -------
        Sample
        """
        params = self.make_params(item, rng)
        out = self.apply_params(item, params, rng)
        return out.replace(params={**out.params, "augmentations": [*out.params.get("augmentations", ()),
                                                                   {"transform": type(self).__name__, **params}]})

    def make_params(self, item: Sample, rng: np.random.Generator) -> dict:
        """The parameters drawn for ``item``: plain numbers and lists (they go into the sample's params).

        Parameters
        ----------
        item : Sample
        rng : numpy.random.Generator

        Returns
        -------
        dict
            Empty for a transform that draws nothing.
        """
        return {}

    def apply_params(self, item: Sample, params: dict, rng: np.random.Generator | None = None) -> Sample:
        """``item`` transformed with the drawn ``params`` (deterministic, but for bulk noise from ``rng``).

        Parameters
        ----------
        item : Sample
        params : dict
            From :meth:`make_params`.
        rng : numpy.random.Generator, optional
            For the bulk randomness of noise transforms.

        Returns
        -------
        Sample
        """
        raise NotImplementedError

    def inverse(self, item: Sample, params: dict) -> Sample:
        """Undo :meth:`apply_params` with the same ``params`` (spatial transforms that can be undone exactly).

        Parameters
        ----------
        item : Sample
        params : dict
            What was drawn (a record of ``params["augmentations"]``).

        Returns
        -------
        Sample
        """
        raise InputError(f"{type(self).__name__} cannot be undone exactly")

    def set_epoch(self, epoch: int) -> None:
        """Called once per training epoch (a curriculum uses it); no-op by default."""

    def walk(self) -> Iterator[Transform]:
        """This transform and every transform nested in it."""
        yield self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Identity(Transform):
    """Returns the item unchanged (no augmentation: ``--augment none``).

    Examples
    --------
    >>> float(Identity()(np.ones((2, 4, 4)), rng=0).image.sum())
    32.0
    """

    def apply(self, item, rng):
        return item


class _Combiner(Transform):
    """What the combiners share: their transforms, each told the epoch and walked."""

    def __init__(self, transforms: Sequence[Transform]):
        transforms = list(transforms)
        if not transforms or not all(isinstance(t, Transform) for t in transforms):
            raise InputError("a combiner needs a non-empty list of cellsynth.augment transforms")
        self.transforms = transforms

    def set_epoch(self, epoch: int) -> None:
        for transform in self.transforms:
            transform.set_epoch(epoch)

    def walk(self):
        yield self
        for transform in self.transforms:
            yield from transform.walk()


class Stacked(_Combiner):
    """Apply each transform in order with probability ``p`` (Chen, augmentations: stacked; ``p = 1`` composes).

    Examples
    --------
    >>> from cellsynth.augment import RandomFlip, GaussianNoise
    >>> transform = Stacked([RandomFlip(), GaussianNoise(std=(0.0, 0.02))], p=0.5)
    >>> transform(np.full((4, 8, 8), 0.5), rng=0).image.shape
    (4, 8, 8)
    """

    def __init__(self, transforms: Sequence[Transform], p: float = 0.5):
        super().__init__(transforms)
        self.p = check_probability(p)

    def apply(self, item, rng):
        for transform in self.transforms:
            if rng.random() < self.p:
                item = transform.apply(item, rng)
        return item


class RandomChoice(_Combiner):
    """Apply one of ``transforms``, chosen with ``weights`` (default uniform; Chen, augmentations: random choice).

    Examples
    --------
    >>> from cellsynth.augment import RandomFlip, RandomRotate90
    >>> transform = RandomChoice([RandomFlip(), RandomRotate90()], weights=[3, 1])
    >>> transform(np.full((4, 8, 8), 0.5), rng=0).image.shape
    (4, 8, 8)
    """

    def __init__(self, transforms: Sequence[Transform], weights: Sequence[float] | None = None):
        super().__init__(transforms)
        weights = np.ones(len(self.transforms)) if weights is None else np.asarray(weights, float)
        if weights.shape != (len(self.transforms),) or (weights < 0).any() or weights.sum() <= 0:
            raise InputError(f"random-choice weights must be {len(self.transforms)} numbers >= 0, not all 0; "
                             f"got {weights.tolist()}")
        self.weights = weights / weights.sum()

    def apply(self, item, rng):
        return self.transforms[int(rng.choice(len(self.transforms), p=self.weights))].apply(item, rng)


def check_range_pair(values: Sequence[float], name: str, *, positive: bool = False,
           nonnegative: bool = False) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a range (low, high); got {values!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise InputError(f"{name} must be a finite range with low <= high; got ({low:g}, {high:g})")
    if positive and low <= 0:
        raise InputError(f"{name} must be > 0; got ({low:g}, {high:g})")
    if nonnegative and low < 0:
        raise InputError(f"{name} must be >= 0; got ({low:g}, {high:g})")
    return low, high


def check_probability(p: float, name: str = "p") -> float:
    if not 0 <= p <= 1:
        raise InputError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return float(p)


def log_uniform(low: float, high: float, rng=None) -> float:
    rng = np.random.default_rng(rng)
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def check_axes(axes: Sequence[int]) -> tuple[int, ...]:
    axes = tuple(axes)
    if not axes or any(a not in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
        raise InputError(f"axes must be distinct values among 0 (z), 1 (y), 2 (x); got {axes!r}")
    return axes
