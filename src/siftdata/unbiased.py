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

Everything here stays on the device (0-d tensors, no host sync).
"""

from __future__ import annotations

from torch import Tensor

from ._validation import check_finite, check_vector

__all__ = ["importance_weights", "variance_reduction_tau"]


def _normalised(scores: Tensor, check_values: bool) -> Tensor:
    check_vector(scores, "scores")
    if check_values:
        check_finite(scores, "scores")
        if bool((scores < 0).any()):
            raise ValueError("scores must be nonnegative (they are sampling weights)")
        if not bool(scores.sum() > 0):
            raise ValueError("scores must not all be zero: nothing to sample in proportion to")
    return scores / scores.sum()


def importance_weights(scores: Tensor, indices: Tensor, *, check_values: bool = False) -> Tensor:
    """``1 / (B · p_i)`` for each drawn index, with ``p = scores / Σ scores`` over the pool of ``B``.

    Parameters
    ----------
    scores : Tensor
        ``(B,)`` nonnegative sampling weights with a positive sum (checked with ``check_values``).
    indices : Tensor
        The drawn positions (with repeats), e.g. from
        :func:`siftdata.sampling.sample_with_replacement`.
    """
    probs = _normalised(scores, check_values)
    return (probs.index_select(0, indices) * scores.shape[0]).reciprocal()


def variance_reduction_tau(scores: Tensor, *, check_values: bool = False) -> Tensor:
    """τ = √(B · Σ g_i²) for ``g = scores / Σ scores``: 1 for uniform scores, up to √B (0-d)."""
    g = _normalised(scores, check_values)
    return (g.square().sum() * scores.shape[0]).sqrt()
