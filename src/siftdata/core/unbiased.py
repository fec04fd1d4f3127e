r"""Unbiased selection, the pure math: importance weights for draws with replacement, and τ.

Importance sampling (Katharopoulos & Fleuret, 2018) draws ``b`` of a super-batch of ``B`` with
replacement, ``P(i) = p_i``, and weights each draw by ``1 / (B·p_i)``, so the weighted mean loss
is an unbiased estimate of the super-batch mean:

.. math:: \mathbb{E}\Big[\tfrac{1}{b}\sum_{j=1}^{b} \frac{ℓ_{I_j}}{B\,p_{I_j}}\Big]
          = \sum_i p_i \frac{ℓ_i}{B\,p_i} = \frac{1}{B}\sum_i ℓ_i .

Whether it pays is estimated by τ, the factor by which sampling ∝ ``g`` (normalised per-example
gradient-norm bounds) shrinks the gradient estimate's variance against uniform ``u``:

.. math:: τ = \Big(1 - \frac{\lVert g - u\rVert^2}{\lVert g\rVert^2}\Big)^{-1/2}
          = \sqrt{B \textstyle\sum_i g_i^2} .

Draws *without* replacement (Gumbel-top-k) get Horvitz–Thompson weights ``k / (B·π_i)``: exact
inclusion probabilities ``π`` for tiny pools, and the threshold estimator of
:func:`without_replacement_weights` (also exactly unbiased) for any pool.

Everything used per step stays on the device (0-d tensors, no host sync).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_k, check_sampling_weights, check_vector
from .sampling import sanitise_scores, usable_temperature

__all__ = [
    "importance_weights",
    "variance_reduction_tau",
    "threshold_inclusion",
    "without_replacement_weights",
    "inclusion_probabilities",
    "horvitz_thompson_weights",
]


def _normalised(scores: Tensor, check_values: bool) -> Tensor:
    """``scores / Σ scores``, on the device with no sync: a non-finite score counts as 0, and an
    all-zero pool is uniform (so τ and the weights never become NaN)."""
    check_vector(scores, "scores")
    if check_values:
        check_sampling_weights(scores, "scores")
    clean = torch.where(torch.isfinite(scores), scores, torch.zeros_like(scores))
    total = clean.sum()
    uniform = torch.full_like(clean, 1.0 / max(clean.shape[0], 1))
    return torch.where(total > 0, clean / torch.where(total > 0, total, 1.0), uniform)


def importance_weights(scores: Tensor, indices: Tensor, *, check_values: bool = False) -> Tensor:
    """``1 / (B · p_i)`` for each drawn index, with ``p = scores / Σ scores`` over the pool of ``B``.

    Parameters
    ----------
    scores : Tensor
        ``(B,)`` nonnegative sampling weights with a positive sum (checked with ``check_values``).
    indices : Tensor
        The drawn positions (with repeats), e.g. from
        :func:`siftdata.core.sampling.sample_with_replacement`.
    """
    probs = _normalised(scores, check_values).index_select(0, indices)
    weights = (probs * scores.shape[0]).reciprocal()
    return torch.where(probs > 0, weights, torch.zeros_like(weights))  # never drawn: no weight


def variance_reduction_tau(scores: Tensor, *, check_values: bool = False) -> Tensor:
    """τ = √(B · Σ g_i²) for ``g = scores / Σ scores``: 1 for uniform scores, up to √B (0-d)."""
    g = _normalised(scores, check_values)
    return (g.square().sum() * scores.shape[0]).sqrt()


# --- draws without replacement (Gumbel-top-k: learnability, rank, selective backprop) ----------


def threshold_inclusion(
    scores: Tensor, threshold: Tensor, *, temperature: float | Tensor = 1.0
) -> Tensor:
    r"""``q_i = P(K_i > κ)``: the chance that key ``i`` beats the threshold ``κ``.

    With the keys of :func:`siftdata.core.sampling.gumbel_top_k_with_threshold`,
    ``K_i = (s_i − max s) + τ·G_i`` and ``G_i`` standard Gumbel,

    .. math:: q_i(κ) = 1 - \exp\!\big(-\exp\big((s_i - \max s - κ)/τ\big)\big).

    ``threshold`` broadcasts against ``scores`` (a 0-d tensor, or ``(R, 1)`` for ``R`` draws).
    """
    dtype = torch.promote_types(scores.dtype, torch.float32)
    clean = sanitise_scores(scores)[0].to(dtype)  # as the draw saw them
    if isinstance(temperature, Tensor):
        temperature = usable_temperature(temperature.to(dtype))
    centred = clean - clean.max()
    return torch.expm1(-torch.exp((centred - threshold) / temperature)).neg()


def without_replacement_weights(
    scores: Tensor,
    indices: Tensor,
    threshold: Tensor,
    *,
    temperature: float | Tensor = 1.0,
) -> Tensor:
    r"""Unbiased loss weights ``k / (B · q_i(κ))`` for ``k`` draws without replacement of ``B``.

    The inclusion probability of a Gumbel-top-k (Plackett–Luce) draw, ``π_i``, has no closed form
    beyond tiny pools (:func:`inclusion_probabilities` enumerates them). This is the threshold
    estimator instead (priority sampling, Duffield et al. 2007; Kool et al. 2019): conditioned on
    the other keys, ``i`` is drawn iff ``K_i`` beats the ``k``-th largest of them, which is then
    the ``(k+1)``-th largest key ``κ`` overall, so ``E[1{i drawn} / q_i(κ)] = 1`` exactly and

    .. math:: \mathbb{E}\Big[\frac{1}{k}\sum_{i \in S} \frac{k}{B\,q_i(κ)}\,ℓ_i\Big]
              = \frac{1}{B}\sum_{i=1}^{B} ℓ_i

    for any ``B``: the weighted mean loss of the drawn batch is unbiased for the super-batch mean,
    as the weights of :func:`importance_weights` make it for draws with replacement. Its variance
    is a little above that of Horvitz–Thompson weights with the exact ``π_i``.

    Parameters
    ----------
    scores, temperature:
        What was sampled from (``softmax(scores / τ)``), as given to the sampler.
    indices, threshold:
        The draw and its ``κ``, from :func:`siftdata.core.sampling.gumbel_top_k_with_threshold`.
    """
    check_vector(scores, "scores")
    q = threshold_inclusion(scores, threshold, temperature=temperature).index_select(0, indices)
    return (q * (scores.shape[0] / indices.shape[0])).reciprocal()


_EXACT_LIMIT = 12


def inclusion_probabilities(log_weights: Tensor, k: int) -> Tensor:
    r"""Exact ``π_i = P(i ∈ S)`` for ``k`` Plackett–Luce draws from ``softmax(log_weights)``.

    Dynamic programming over subsets: the chance that the first ``|A|`` draws are the set ``A``
    is ``P(A) = Σ_{i∈A} P(A∖i) · w_i / (W − w(A∖i))``, and ``π_i = Σ_{|A|=k, i∈A} P(A)``.
    ``O(2^B · B)`` on the host, so for ``B ≤ 12`` only: tests, and checking estimators.
    """
    check_vector(log_weights, "log_weights")
    n = log_weights.shape[0]
    if n > _EXACT_LIMIT:
        raise ValueError(f"exact inclusion probabilities are for pools of at most 12, got {n}")
    check_k(k, n)
    w = torch.softmax(log_weights.double().cpu(), 0).tolist()
    chance = [0.0] * (1 << n)
    chance[0] = 1.0
    pi = [0.0] * n
    for subset in range(1, 1 << n):
        members = [i for i in range(n) if subset >> i & 1]
        if len(members) > k:
            continue
        for i in members:
            rest = subset & ~(1 << i)
            left = 1.0 - sum(w[j] for j in range(n) if rest >> j & 1)
            chance[subset] += chance[rest] * w[i] / left
        if len(members) == k:
            for i in members:
                pi[i] += chance[subset]
    return torch.tensor(pi, dtype=torch.float64)


def horvitz_thompson_weights(inclusion: Tensor, indices: Tensor) -> Tensor:
    """``k / (B · π_i)`` for the ``k`` drawn indices, from exact inclusion probabilities ``π``."""
    check_vector(inclusion, "inclusion")
    return (
        inclusion.index_select(0, indices) * (inclusion.shape[0] / indices.shape[0])
    ).reciprocal()
