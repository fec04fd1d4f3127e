"""Choose indices from per-example scores: top-k, softmax sampling without replacement, sampling
with replacement in proportion to given probabilities, and uniform sampling.

Every function returns a ``LongTensor`` of positions on the input's device and makes no host
round-trip: arguments (shapes, dtypes, ``k``, a float temperature) are always checked, the *values*
(finiteness, sign) only with ``check_values=True``, where each check costs a host sync.
Randomness comes only from the ``generator`` passed in, which must live on the same device as
the scores; nothing touches the global RNG when a generator is given.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import (
    canonical_device,
    check_finite,
    check_int_range,
    check_k,
    check_positive,
    check_sampling_weights,
    check_vector,
)

__all__ = [
    "sanitise_scores",
    "top_k",
    "gumbel_top_k",
    "gumbel_top_k_with_threshold",
    "sample_with_replacement",
    "uniform_without_replacement",
]


def sanitise_scores(scores: Tensor) -> tuple[Tensor, Tensor]:
    """NaN and ±inf scores set below the lowest finite score of the batch (to 0 if none is finite),
    and how many there were (a 0-d tensor): on the device, with no host sync.

    A non-finite score is never preferred over a finite one (``torch.topk`` alone puts NaN
    first); a sampler ∝ scores gives the negative value no weight (see
    :class:`~siftdata.online.importance.ImportanceSampler`).
    """
    finite = torch.isfinite(scores)
    if scores.numel() == 0:  # a shape, not a value: the selector's own checks name the problem
        return scores, finite.sum()
    lowest = torch.where(finite, scores, torch.inf).amin()
    below = lowest - torch.clamp(lowest.abs(), min=1.0)  # strictly lower, even for huge scores
    below = torch.where(torch.isfinite(below), below, lowest)  # near the dtype's end (fp16)
    floor = torch.where(torch.isfinite(lowest), below, torch.zeros_like(lowest))
    return torch.where(finite, scores, floor), (~finite).sum()


def _check_scores(scores: Tensor, k: int, check_values: bool) -> None:
    check_vector(scores, "scores")
    check_k(k, scores.shape[0])
    if check_values:
        check_finite(scores, "scores")


def _check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    if generator is None or generator.device == device:
        return
    if canonical_device(generator.device) != canonical_device(device):
        raise ValueError(
            f"generator lives on {generator.device} but the scores are on {device}; "
            "create the generator on the scores' device"
        )


def _check_temperature(temperature: float | Tensor, scores: Tensor, check_values: bool) -> None:
    if not isinstance(temperature, Tensor):
        check_positive(temperature, "temperature")
        return
    if temperature.dim() != 0 or not temperature.is_floating_point():
        raise ValueError(
            "temperature must be a positive float or a 0-d floating tensor, "
            f"got shape {tuple(temperature.shape)} dtype {temperature.dtype}"
        )
    if temperature.device != scores.device:
        raise ValueError(
            f"temperature is on {temperature.device} but the scores are on {scores.device}"
        )
    if check_values and not bool(torch.isfinite(temperature) & (temperature > 0)):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")


def usable_temperature(temperature: Tensor) -> Tensor:
    """A 0-d τ that is ≤ 0 or not finite becomes the smallest positive float (the top-k limit) on
    the device, without a sync: a negative τ would invert the ranking and pick the lowest scores."""
    tiny = torch.finfo(temperature.dtype).tiny
    good = torch.isfinite(temperature) & (temperature > 0)
    return torch.where(good, temperature, torch.full_like(temperature, tiny))


def top_k(scores: Tensor, k: int, *, check_values: bool = False) -> Tensor:
    r"""Indices of the ``k`` largest scores, largest first.

    .. math:: \operatorname{argtop}_k\, s

    Ties are broken by ``torch.topk`` (implementation-defined).

    Parameters
    ----------
    scores : Tensor
        ``(N,)`` floating scores.
    k : int
        How many to keep, ``1 ≤ k ≤ N``.
    check_values : bool
        Also check finiteness (host sync); shape, dtype and ``k`` are always checked.

    Returns
    -------
    Tensor
        ``(k,)`` int64 indices on the scores' device.
    """
    _check_scores(scores, k, check_values)
    return torch.topk(sanitise_scores(scores)[0], k, sorted=True).indices


def gumbel_top_k(
    scores: Tensor,
    k: int,
    *,
    temperature: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
    check_values: bool = False,
) -> Tensor:
    r"""Draw ``k`` distinct indices from ``softmax(scores / τ)`` without replacement.

    The draws follow the Plackett–Luce model: the ``j``-th index is drawn from the not-yet-drawn
    set ``R_j`` with

    .. math:: P(i \mid R_j) = \frac{\exp(s_i / τ)}{\sum_{l \in R_j} \exp(s_l / τ)}

    and the indices are returned in draw order. Implemented with the Gumbel-top-k trick
    (Kool et al., 2019): with ``G_i = −log(−log U_i)``, ``U_i ~ Uniform[0, 1)`` i.i.d., the order
    of ``s_i / τ + G_i`` is a Plackett–Luce sample; we rank the equivalent keys
    ``(s_i − max s) + τ·G_i`` (same order since ``τ > 0``), which never overflow for small ``τ``
    and tend to :func:`top_k` as ``τ → 0``. Subtracting the maximum keeps the noise from being
    rounded away when the scores are large and nearly equal (equal scores then still give a
    uniform draw, however small ``τ``). ``U_i = 0`` gives ``G_i = −∞``, the exact limit. A few
    in-place tensor operations, no host sync.

    Parameters
    ----------
    scores : Tensor
        ``(N,)`` floating scores (log-weights up to the factor ``τ``).
    k : int
        How many to draw, ``1 ≤ k ≤ N``.
    temperature : float or Tensor
        ``τ > 0``. A 0-d tensor on the scores' device is accepted so that ``τ`` may depend on
        the scores (e.g. ``0.5 * scores.std()``) without a host sync; its value is only checked
        with ``check_values=True``. A float is always checked (no sync needed).
    generator : torch.Generator, optional
        Source of the uniform noise, on the scores' device; ``None`` uses the global RNG.
    check_values : bool
        Also check the finiteness of the scores and the value of a tensor ``τ`` (host syncs).

    Returns
    -------
    Tensor
        ``(k,)`` distinct int64 indices in draw order, on the scores' device.
    """
    keys = _gumbel_keys(scores, k, temperature, generator, check_values)
    return torch.topk(keys, k, sorted=True).indices


def gumbel_top_k_with_threshold(
    scores: Tensor,
    k: int,
    *,
    temperature: float | Tensor = 1.0,
    generator: torch.Generator | None = None,
    check_values: bool = False,
) -> tuple[Tensor, Tensor]:
    r""":func:`gumbel_top_k`, and the ``(k+1)``-th largest key ``κ`` (for unbiased weights).

    The keys are those of :func:`gumbel_top_k`, ``K_i = (s_i − max s) + τ·G_i``; the draws are the
    same as :func:`gumbel_top_k`'s for the same generator state. ``κ`` is what
    :func:`siftdata.core.unbiased.without_replacement_weights` conditions on; it is ``−∞`` when
    ``k = N`` (everything is drawn). Returns ``(indices, κ)``, ``κ`` a 0-d tensor; no host sync.
    """
    keys = _gumbel_keys(scores, k, temperature, generator, check_values)
    n = scores.shape[0]
    top = torch.topk(keys, min(k + 1, n), sorted=True)
    if k == n:
        return top.indices, keys.new_full((), -math.inf)
    return top.indices[:k], top.values[k]


def _gumbel_keys(scores, k, temperature, generator, check_values) -> Tensor:
    """``(s − max s) + τ·G`` with fresh Gumbel noise ``G`` (arguments checked first)."""
    # scores first: a τ derived from bad scores is bad for the same reason
    _check_scores(scores, k, check_values)
    _check_generator(generator, scores.device)
    _check_temperature(temperature, scores, check_values)
    # Noise in at least float32 so half-precision scores still get fine-grained Gumbel keys.
    dtype = torch.promote_types(scores.dtype, torch.float32)
    neg_gumbel = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=dtype)
    neg_gumbel.log_().neg_().log_()  # log(−log U) = −G
    clean = sanitise_scores(scores)[0].to(dtype)
    centred = clean - clean.max()
    if isinstance(temperature, Tensor):  # (s − max s) − τ·log(−log U) in one fused operation
        keys = torch.addcmul(
            centred, usable_temperature(temperature.to(dtype)), neg_gumbel, value=-1.0
        )
    else:
        keys = centred.add_(neg_gumbel, alpha=-float(temperature))
    return keys


def sample_with_replacement(
    probs: Tensor,
    k: int,
    *,
    generator: torch.Generator | None = None,
    check_values: bool = False,
) -> Tensor:
    r"""Draw ``k`` i.i.d. indices with ``P(i) = probs_i / Σ_j probs_j``.

    .. math:: I_1, \dots, I_k \overset{iid}{\sim} \operatorname{Categorical}(p / \textstyle\sum p)

    Used for importance sampling (draw ∝ gradient-norm bound, then weight each draw by
    ``1 / (N · P(i))``). ``k`` may exceed ``N`` since indices repeat.

    Parameters
    ----------
    probs : Tensor
        ``(N,)`` nonnegative, finite, unnormalised probabilities with a positive sum.
    k : int
        Number of draws, ``k ≥ 1``.
    generator : torch.Generator, optional
        Random source on the probs' device; ``None`` uses the global RNG.
    check_values : bool
        Also check finiteness, sign and a positive sum (host syncs); shape, dtype and ``k`` are
        always checked.

    Returns
    -------
    Tensor
        ``(k,)`` int64 indices (with repeats), on the probs' device.
    """
    check_vector(probs, "probs")
    check_int_range(k, "k", low=1)
    _check_generator(generator, probs.device)
    if check_values:
        check_sampling_weights(probs, "probs")
    return torch.multinomial(probs, k, replacement=True, generator=generator)


def uniform_without_replacement(
    n: int,
    k: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Draw ``k`` distinct indices from ``range(n)`` uniformly (a random ``k``-permutation).

    .. math:: P(I_1 = i_1, \dots, I_k = i_k) = \frac{(n - k)!}{n!}

    Implemented as the first ``k`` entries of ``torch.randperm(n)``.

    Parameters
    ----------
    n : int
        Pool size, ``n ≥ 1``.
    k : int
        How many to draw, ``1 ≤ k ≤ n``.
    generator : torch.Generator, optional
        Random source; ``None`` uses the global RNG.
    device : torch.device or str, optional
        Where the result lives; defaults to the generator's device, else CPU.

    Returns
    -------
    Tensor
        ``(k,)`` distinct int64 indices.
    """
    check_int_range(n, "n", low=1)
    check_k(k, n, of="n")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=device)[:k]
