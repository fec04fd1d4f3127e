"""Importance weights and τ against exact enumeration and hand computation."""

import itertools
import math

import pytest
import torch

from siftdata.core.sampling import gumbel_top_k, gumbel_top_k_with_threshold
from siftdata.core.unbiased import (
    horvitz_thompson_weights,
    importance_weights,
    inclusion_probabilities,
    threshold_inclusion,
    variance_reduction_tau,
    without_replacement_weights,
)
from siftdata.training.diagnostics import count_host_syncs


def test_weighted_mean_loss_is_unbiased_by_exact_enumeration():
    scores = torch.tensor([0.5, 2.0, 1.0, 0.25], dtype=torch.float64)
    losses = torch.tensor([1.0, -3.0, 4.0, 2.5], dtype=torch.float64)
    probs = scores / scores.sum()
    b, expectation = 2, 0.0
    for draw in itertools.product(range(4), repeat=b):  # every ordered draw with replacement
        index = torch.tensor(draw)
        p = float(probs[index].prod())
        weights = importance_weights(scores, index)
        expectation += p * float((weights * losses[index]).mean())
    assert expectation == pytest.approx(float(losses.mean()), rel=1e-12)


def test_uniform_scores_give_unit_weights_and_tau_one():
    scores = torch.full((8,), 3.0)
    assert torch.allclose(importance_weights(scores, torch.tensor([0, 0, 5])), torch.ones(3))
    assert float(variance_reduction_tau(scores)) == pytest.approx(1.0)


def test_tau_against_the_definition():
    scores = torch.tensor([1.0, 2.0, 3.0, 10.0])
    g = scores / scores.sum()
    u = torch.full_like(g, 0.25)
    by_definition = (1 - (g - u).square().sum() / g.square().sum()) ** -0.5
    assert float(variance_reduction_tau(scores)) == pytest.approx(float(by_definition), rel=1e-6)
    one_hot = torch.tensor([0.0, 0.0, 5.0, 0.0])
    assert float(variance_reduction_tau(one_hot)) == pytest.approx(math.sqrt(4))


def test_no_host_sync_and_bad_scores_refused():
    scores, index = torch.rand(64) + 0.1, torch.randint(0, 64, (16,))
    importance_weights(scores, index)
    with count_host_syncs() as syncs:
        importance_weights(scores, index)
        variance_reduction_tau(scores)
    assert syncs.total == 0, syncs.counts
    with pytest.raises(ValueError, match="nonnegative"):
        variance_reduction_tau(torch.tensor([1.0, -1.0]), check_values=True)
    with pytest.raises(ValueError, match="all be zero"):
        importance_weights(torch.zeros(3), torch.tensor([0]), check_values=True)
    with pytest.raises(ValueError, match="NaN"):
        variance_reduction_tau(torch.tensor([1.0, float("nan")]), check_values=True)


# --- without replacement --------------------------------------------------------------------


def _plackett_luce_sequences(log_weights, k):
    """Every ordered draw of k distinct items with its probability (brute force)."""
    w = torch.softmax(log_weights.double(), 0).tolist()
    for seq in itertools.permutations(range(len(w)), k):
        p, left = 1.0, 1.0
        for i in seq:
            p *= w[i] / left
            left -= w[i]
        yield seq, p


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_exact_inclusion_probabilities_match_enumeration(k):
    log_w = torch.tensor([0.3, -1.0, 2.0, 0.0, 0.7])
    brute = torch.zeros(5, dtype=torch.float64)
    for seq, p in _plackett_luce_sequences(log_w, k):
        brute[list(seq)] += p
    exact = inclusion_probabilities(log_w, k)
    assert torch.allclose(exact, brute, atol=1e-12)
    assert float(exact.sum()) == pytest.approx(k)


def test_horvitz_thompson_weights_are_unbiased_by_exact_enumeration():
    log_w = torch.tensor([1.5, -0.5, 0.0, 0.8, -2.0, 0.1])
    losses = torch.tensor([2.0, -1.0, 0.5, 4.0, 3.0, 1.0], dtype=torch.float64)
    k, pi = 3, inclusion_probabilities(log_w, 3)
    expectation = 0.0
    for seq, p in _plackett_luce_sequences(log_w, k):
        index = torch.tensor(seq)
        weights = horvitz_thompson_weights(pi, index)
        expectation += p * float((weights * losses[index]).mean())
    assert expectation == pytest.approx(float(losses.mean()), rel=1e-10)
    plain = sum(p * float(losses[list(s)].mean()) for s, p in _plackett_luce_sequences(log_w, k))
    assert abs(plain - float(losses.mean())) > 0.1  # unweighted, the draw is biased


@pytest.mark.parametrize("temperature", [1.0, 0.4])
def test_threshold_weights_are_unbiased(temperature):
    """E[Σ_S w_i ℓ_i / k] = mean ℓ, estimated from 200k draws made the sampler's way."""
    scores = torch.tensor([1.0, -0.5, 0.2, 2.0, 0.0], dtype=torch.float64)
    losses = torch.tensor([3.0, 0.5, -1.0, 6.0, 2.0], dtype=torch.float64)
    k, draws = 2, 200_000
    g = torch.Generator().manual_seed(0)
    gumbel = -torch.rand(draws, 5, generator=g, dtype=torch.float64).log().neg().log()
    keys = (scores - scores.max()) + temperature * gumbel
    top = torch.topk(keys, k + 1, dim=1)
    q = threshold_inclusion(scores, top.values[:, k : k + 1], temperature=temperature)
    chosen = top.indices[:, :k]
    estimate = (losses[chosen] / q.gather(1, chosen)).sum(1) / 5  # Σ_S ℓ_i / (B·q_i)
    stderr = float(estimate.std()) / draws**0.5
    assert abs(float(estimate.mean()) - float(losses.mean())) < 4 * stderr
    biased = losses[chosen].mean(1)
    assert abs(float(biased.mean()) - float(losses.mean())) > 0.2  # unweighted: biased


def test_threshold_weights_through_the_sampler_and_edge_cases():
    scores = torch.randn(50)
    g = torch.Generator().manual_seed(3)
    indices, kappa = gumbel_top_k_with_threshold(scores, 10, temperature=0.5, generator=g)
    same = gumbel_top_k(scores, 10, temperature=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(indices, same)
    weights = without_replacement_weights(scores, indices, kappa, temperature=0.5)
    assert weights.shape == (10,) and bool((weights > 0).all())
    everything, kappa = gumbel_top_k_with_threshold(scores, 50, generator=g)
    assert torch.allclose(without_replacement_weights(scores, everything, kappa), torch.ones(50))
    with count_host_syncs() as syncs:
        without_replacement_weights(scores, indices, kappa, temperature=0.5)
    assert syncs.total == 0, syncs.counts
    with pytest.raises(ValueError, match="at most 12"):
        inclusion_probabilities(torch.zeros(13), 2)
    with pytest.raises(ValueError, match="k must be in"):
        inclusion_probabilities(torch.zeros(4), 5)
