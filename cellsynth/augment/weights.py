"""Weight strategies of stacked and curriculum diversification (Eschweiler et al., diversification, §3).

:func:`single_weights` draws one ``(w_i, w_v)`` from a truncated normal around the neutral element;
:func:`random_weights` and :func:`structured_weights` draw a stack of them for
:func:`diversified_stack`, trained with :func:`robustness_loss`; :func:`curriculum_limits` widens the
limits over epochs; :func:`predict_with_tta` averages a model over diversified copies. The draw itself
is :func:`~cellsynth.augment.diversify.diversify`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from cellsynth.augment.diversify import (
    NEIGHBOURHOOD,
    NEUTRAL,
    W_I_LIMITS,
    W_V_LIMITS,
    diversify,
    local_std,
)
from cellsynth.checks import check_image
from cellsynth.errors import InputError


def check_limits(limits: Sequence[float], name: str) -> tuple[float, float]:
    """A ``(low, high)`` weight range: finite, >= 0, low <= high."""
    try:
        low, high = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise InputError(f"{name} limits must be two numbers (low, high); got {limits!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0:
        raise InputError(f"{name} limits must be finite and >= 0; got ({low:g}, {high:g})")
    if low > high:
        raise InputError(f"{name} limits are reversed: low {low:g} > high {high:g}; give (low, high)")
    return low, high


def truncated_normal(limits: Sequence[float], neutral: float, size=None, rng=None):
    """Draw from a normal centred on ``neutral``, truncated to ``limits``.

    The standard deviation puts the limit farthest from ``neutral`` at 3σ (Eschweiler et al., diversification §3, single
    augmentation); the range may be asymmetric around ``neutral`` or even exclude it.

    Parameters
    ----------
    limits : (low, high)
        Truncation limits.
    neutral : float
        The centre.
    size : int or tuple, optional
        Output shape (None: one float).
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> draws = truncated_normal((0.2, 1.8), 1.0, size=1000, rng=0)
    >>> bool(draws.min() >= 0.2 and draws.max() <= 1.8), round(float(draws.mean()), 1)
    (True, 1.0)
    """
    rng = np.random.default_rng(rng)
    low, high = limits
    scale = max(abs(low - neutral), abs(high - neutral)) / 3
    if scale == 0 or low == high:
        return np.full(size, low) if size is not None else float(low)
    draw = stats.truncnorm.rvs((low - neutral) / scale, (high - neutral) / scale, loc=neutral, scale=scale,
                               size=size, random_state=rng)
    return np.clip(draw, low, high) if size is not None else float(np.clip(draw, low, high))


def single_weights(w_i: Sequence[float] = W_I_LIMITS,
                   w_v: Sequence[float] = W_V_LIMITS, rng=None) -> tuple[float, float]:
    """Weights of the *single augmentation* strategy: each a truncated normal around its neutral value.

    Parameters
    ----------
    w_i, w_v : (low, high)
        Limits of the intensity and variance weights.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    (w_i, w_v)

    Examples
    --------
    >>> w_i, w_v = single_weights(rng=0)
    >>> bool(0.2 <= w_i <= 1.8 and 0.0 <= w_v <= 8.0)
    True
    """
    rng = np.random.default_rng(rng)
    return (truncated_normal(check_limits(w_i, "w_i"), NEUTRAL[0], rng=rng),
            truncated_normal(check_limits(w_v, "w_v"), NEUTRAL[1], rng=rng))


def random_weights(n: int, w_i: Sequence[float] = W_I_LIMITS,
                   w_v: Sequence[float] = W_V_LIMITS, rng=None) -> list[tuple[float, float]]:
    """``n`` weight pairs of the *random* strategy: uniform in the limits.

    Parameters
    ----------
    n : int
        Number of pairs.
    w_i, w_v : (low, high)
        Limits of the intensity and variance weights.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of (w_i, w_v)

    Examples
    --------
    >>> [(round(w_i, 2), round(w_v, 2)) for w_i, w_v in random_weights(2, rng=0)]
    [(1.22, 2.16), (0.27, 0.13)]
    """
    rng = np.random.default_rng(rng)
    (i_low, i_high), (v_low, v_high) = check_limits(w_i, "w_i"), check_limits(w_v, "w_v")
    _check_count(n, "n")
    return [(float(rng.uniform(i_low, i_high)), float(rng.uniform(v_low, v_high))) for _ in range(n)]


def structured_weights(n: int, w_i: Sequence[float] = W_I_LIMITS,
                       w_v: Sequence[float] = W_V_LIMITS) -> list[tuple[float, float]]:
    """``n`` weight pairs of the *structured* strategy: both limits and evenly spaced values between.

    ``w_i`` and ``w_v`` rise together, from ``(low, low)`` to ``(high, high)``. ``n = 1`` (a stack
    of ``b = 2`` with the original) gives the paper's default ``(1, 1)``.

    Parameters
    ----------
    n : int
        Number of pairs.
    w_i, w_v : (low, high)
        Limits of the intensity and variance weights.

    Returns
    -------
    list of (w_i, w_v)

    Examples
    --------
    >>> structured_weights(3)
    [(0.2, 0.0), (1.0, 4.0), (1.8, 8.0)]
    """
    (i_low, i_high), (v_low, v_high) = check_limits(w_i, "w_i"), check_limits(w_v, "w_v")
    _check_count(n, "n")
    if n == 1:
        return [(1.0, 1.0)]
    return [(float(a), float(b)) for a, b in zip(np.linspace(i_low, i_high, n), np.linspace(v_low, v_high, n),
                                                 strict=True)]


def _check_count(n: int, name: str) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"{name} must be a whole number >= 1; got {n!r}")


def curriculum_limits(limits: Sequence[float], neutral: float, epoch: int, epochs_to_full: int) -> tuple[float, float]:
    """Weight limits at ``epoch`` of a curriculum (Eschweiler et al., diversification §3, δ_full = ``epochs_to_full``).

    The limits move linearly from the neutral element (epoch 0) to ``limits`` (epoch δ_full and
    later); δ_full = 0 gives the full limits at once.

    Parameters
    ----------
    limits : (low, high)
        The full limits.
    neutral : float
        The weight that changes nothing.
    epoch : int
        The current epoch.
    epochs_to_full : int
        Epochs until the full limits (0: at once).

    Returns
    -------
    (low, high)
        The limits at ``epoch``.

    Examples
    --------
    >>> [curriculum_limits((0.0, 8.0), 0.0, epoch, epochs_to_full=4) for epoch in (0, 2, 4, 9)]
    [(0.0, 0.0), (0.0, 4.0), (0.0, 8.0), (0.0, 8.0)]
    """
    low, high = limits
    if epochs_to_full < 0 or epoch < 0:
        raise InputError(f"epoch and epochs_to_full must be >= 0; got {epoch}, {epochs_to_full}")
    fraction = 1.0 if epochs_to_full == 0 else min(epoch / epochs_to_full, 1.0)
    return neutral + fraction * (low - neutral), neutral + fraction * (high - neutral)


def diversified_stack(image: np.ndarray, std: np.ndarray, weights: Sequence[tuple[float, float]],
                      rng=None) -> np.ndarray:
    """The original image followed by one appearance per weight pair: shape ``(b, Z, Y, X)``, b = n + 1.

    Parameters
    ----------
    image : ndarray
        ZYX intensities in [0, 1].
    std : ndarray
        Local standard deviation σ_x of ``image``.
    weights : sequence of (w_i, w_v)
        One appearance per pair.
    rng : None, int or numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray, shape (n + 1, Z, Y, X)
        float32.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    >>> diversified_stack(image, local_std(image), structured_weights(3), rng=0).shape
    (4, 4, 16, 16)
    """
    image, rng = check_image(image).astype(np.float32, copy=False), np.random.default_rng(rng)
    return np.stack([image, *(diversify(image, std, w_i, w_v, rng) for w_i, w_v in weights)])


def robustness_loss(predictions, loss: Callable | None = None):
    """Consistency across a stack of predictions: mean of ``loss(p[k], p[k − 1])`` for k ≥ 1.

    Parameters
    ----------
    predictions : torch.Tensor or ndarray
        Predictions for the appearances of one stack, first axis ``b`` (the original first).
    loss : callable, optional
        ``loss(prediction, previous)``; default the mean squared difference.

    Returns
    -------
    float or tensor
        The mean consistency loss.

    Examples
    --------
    >>> stack = np.stack([np.zeros((2, 4, 4)), np.ones((2, 4, 4)), np.ones((2, 4, 4))])
    >>> float(robustness_loss(stack))
    0.5
    """
    if len(predictions) < 2:
        raise InputError(f"a robustness loss needs a stack of at least 2 predictions; got {len(predictions)}")
    loss = loss or (lambda a, b: ((a - b) ** 2).mean())
    return sum(loss(predictions[k], predictions[k - 1]) for k in range(1, len(predictions))) / (len(predictions) - 1)


def predict_with_tta(
    predict: Callable[[np.ndarray], object],
    image: np.ndarray,
    *,
    n_tta: int = 5,
    w_i: Sequence[float] = W_I_LIMITS,
    w_v: Sequence[float] = W_V_LIMITS,
    std: np.ndarray | None = None,
    size: int | Sequence[int] = NEIGHBOURHOOD,
    rng: np.random.Generator | int | None = 0,
):
    """Average the raw outputs of ``predict`` over ``n_tta`` structured appearances of ``image``.

    Parameters
    ----------
    predict : callable
        Any function of a ZYX float32 image returning an array or tensor (e.g. a network's
        probabilities); its outputs are averaged before any post-processing.
    image : ndarray
        ZYX intensities in [0, 1].
    n_tta : int
        Appearances (:func:`structured_weights`).
    w_i, w_v : (low, high)
        Weight limits.
    std : ndarray, optional
        Precomputed ``σ_x``; else computed with ``size``.
    rng : Generator or int or None
        Seeds the draws.
    size : int or 3 ints
        Neighbourhood of σ_x in voxels when ``std`` is not given.

    Returns
    -------
    ndarray or tensor
        The mean of the outputs.

    Examples
    --------
    >>> image = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    >>> averaged = predict_with_tta(lambda x: (x > 0.5).astype(np.float32), image, n_tta=3)
    >>> averaged.shape, bool(0 <= averaged.min() and averaged.max() <= 1)
    ((4, 16, 16), True)
    """
    std = local_std(image, size) if std is None else std
    rng = np.random.default_rng(rng)
    outputs = [predict(diversify(image, std, a, b, rng)) for a, b in structured_weights(n_tta, w_i, w_v)]
    return sum(outputs[1:], outputs[0]) / len(outputs)
