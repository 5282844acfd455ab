"""Named augmentation strategies for the segmenter (Chen, augmentations: single transforms, stacked, random choice).

Seed 002 found single augmentations help transfer to unseen cell types unevenly, while stacking
them or choosing one at random helps across them; :func:`augmentation` turns a strategy's name
into a :class:`~cellsynth.augment.transforms.Transform` (``evaluate syn2real --augment``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cellsynth.augment.intensity import BrightnessContrast, Diversify, Gamma, GaussianBlur, GaussianNoise, PoissonNoise
from cellsynth.augment.spatial import Elastic, RandomFlip, RandomRotate, RandomRotate90
from cellsynth.augment.transforms import Identity, RandomChoice, Stacked, Transform
from cellsynth.errors import InputError


def default_augmentation() -> Transform:
    """Flips, 90° rotations, diversification, intensity jitter and noise, each with probability 0.5.

    Returns
    -------
    Transform

    Examples
    --------
    >>> [type(t).__name__ for t in default_augmentation().transforms]
    ['RandomFlip', 'RandomRotate90', 'Diversify', 'BrightnessContrast', 'Gamma', 'GaussianNoise']
    """
    return Stacked([RandomFlip(), RandomRotate90(), Diversify(), BrightnessContrast(), Gamma(),
                    GaussianNoise(std=(0, 0.03))], p=0.5)


#: The single transforms ``--augment`` names, in the order ``stacked`` applies them (:mod:`cellsynth.augment`).
AUGMENTATIONS: dict[str, Callable[[], Transform]] = {
    "flip": RandomFlip, "rotate90": RandomRotate90, "rotate": RandomRotate, "elastic": Elastic, "diversify": Diversify,
    "intensity": BrightnessContrast, "gamma": Gamma, "blur": GaussianBlur,
    "noise": lambda: GaussianNoise(std=(0, 0.03)), "shot-noise": PoissonNoise,
}
#: Strategies (Chen, augmentations): the fixed default stack, none, every transform stacked, one of them at random.
STRATEGIES = ("default", "none", "stacked", "random-choice")


def augmentation(strategy: str | Sequence[str] | Transform = "default") -> Transform:
    """The segmenter's augmentation for a strategy name, one transform's name, or a list of names (a
    :class:`Transform` itself is returned as it is).

    ``default`` is :func:`default_augmentation`; ``none`` applies nothing; ``stacked`` applies every
    transform of :data:`AUGMENTATIONS` in turn, each with probability 0.5; ``random-choice`` one of
    them per patch; one name (``gamma``) that transform with probability 0.5; a list of names (or
    ``"flip,gamma"``) those, stacked. Every transform is label-safe (geometric ones move the labels
    with the image; the others change the image only).

    Parameters
    ----------
    strategy : str, sequence of str, or Transform
        ``default``, ``none``, ``stacked``, ``random-choice``, one transform's name, a list of names (or
        ``"flip,gamma"``), or a transform.

    Returns
    -------
    Transform

    Examples
    --------
    >>> augmentation("random-choice").transforms[0]
    RandomFlip(axes=(0, 1, 2))
    >>> [type(t).__name__ for t in augmentation("flip,blur").transforms]
    ['RandomFlip', 'GaussianBlur']
    >>> augmentation("sharpen")
    Traceback (most recent call last):
    ...
    cellsynth.errors.InputError: unknown augmentation 'sharpen'; accepted: default, none, stacked, ...
    """
    if isinstance(strategy, Transform):
        return strategy
    if isinstance(strategy, str) and strategy in STRATEGIES:
        return {"default": default_augmentation, "none": Identity,
                "stacked": lambda: Stacked([make() for make in AUGMENTATIONS.values()], p=0.5),
                "random-choice": lambda: RandomChoice([make() for make in AUGMENTATIONS.values()])}[strategy]()
    names = [n.strip() for n in strategy.split(",")] if isinstance(strategy, str) else list(strategy)
    unknown = [n for n in names if not isinstance(n, str) or n not in AUGMENTATIONS]
    if not names or unknown:
        raise InputError(f"unknown augmentation {unknown[0] if unknown else strategy!r}; accepted: "
                         f"{', '.join(STRATEGIES)}, one of {', '.join(AUGMENTATIONS)}, or a list of them"
                         if names else "an empty augmentation list; give a strategy or transform names")
    return Stacked([AUGMENTATIONS[n]() for n in names], p=0.5)
