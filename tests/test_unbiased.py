"""Importance weights and τ against exact enumeration and hand computation."""

import itertools
import math

import pytest
import torch

from siftdata.diagnostics import count_host_syncs
from siftdata.unbiased import importance_weights, variance_reduction_tau


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
