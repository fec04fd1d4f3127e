"""Importance sampling: the with-replacement sampler, the τ gate, and both through the loop."""

import pytest
import torch

from siftdata.core.unbiased import variance_reduction_tau
from siftdata.online import SelectionConfig, build_method
from siftdata.online.importance import (
    ImportanceSampler,
    VarianceReductionGate,
    paper_tau_threshold,
)
from siftdata.online.rank import RankSelector
from siftdata.online.sampled import SoftmaxSampler
from siftdata.online.selective_backprop import SelectiveBackpropSelector
from siftdata.training.diagnostics import count_host_syncs
from siftdata.training.loop import train
from test_train import _config, _data, _method, _model


def test_sampler_weights_are_one_over_b_p():
    scores = torch.tensor([1.0, 3.0, 0.0, 4.0])
    sel = ImportanceSampler(seed=1).select(scores, 64)
    p = scores / scores.sum()
    assert torch.allclose(sel.weights, 1 / (4 * p[sel.indices]))
    assert not bool((sel.indices == 2).any())  # zero bound: never drawn without smoothing
    assert float(sel.stats["tau_batch"]) == pytest.approx(float(variance_reduction_tau(scores)))
    smoothed = ImportanceSampler(smoothing=1.0, seed=1).select(scores, 64)
    p = (scores + 1) / (scores + 1).sum()
    assert torch.allclose(smoothed.weights, 1 / (4 * p[smoothed.indices]))


def test_sampler_draws_in_proportion_to_the_scores():
    scores = torch.tensor([1.0, 2.0, 7.0])
    sel = ImportanceSampler(seed=0).select(scores, 100_000)
    share = torch.bincount(sel.indices, minlength=3).float() / 100_000
    assert torch.allclose(share, scores / 10, atol=0.01)


def test_all_zero_scores_are_drawn_uniformly_or_refused_when_checked():
    sel = ImportanceSampler(seed=0).select(torch.zeros(5), 10)
    assert torch.allclose(sel.weights, torch.ones(10))
    checked = ImportanceSampler(check_values=True)
    with pytest.raises(ValueError, match="all zero"):
        checked.select(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="nonnegative"):
        checked.select(torch.tensor([1.0, -0.5]), 2)
    with pytest.raises(ValueError, match="NaN"):
        checked.select(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="smoothing"):
        ImportanceSampler(smoothing=-1.0)


def test_paper_threshold_and_bad_gate_options():
    assert paper_tau_threshold(640, 64) == pytest.approx((640 + 192) / 192)
    assert paper_tau_threshold(10, 1) == paper_tau_threshold(640, 64)
    for bad in (1.0, 0.5):
        with pytest.raises(ValueError, match="must be > 1"):
            VarianceReductionGate(threshold=bad)
    with pytest.raises(ValueError, match="momentum"):
        VarianceReductionGate(threshold=2.0, momentum=1.0)
    with pytest.raises(ValueError, match="lag"):
        VarianceReductionGate(threshold=2.0, lag=0)
    with pytest.raises(ValueError, match="tau_threshold"):
        SelectionConfig(tau_threshold=1.0)
    with pytest.raises(ValueError, match="super_batch_factor"):
        build_method("importance", num_classes=4)


def test_gate_averages_tau_and_decides_lag_steps_late():
    gate = VarianceReductionGate(threshold=1.5, momentum=0.5, lag=2)
    batches = [torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([0.0, 0.0, 0.0, 4.0])] * 3
    expected, ema, decisions = [], 0.0, []
    for step, scores in enumerate(batches):
        decisions.append(gate.should_score(step))
        gate.observe(scores)
        ema = 0.5 * ema + 0.5 * float(variance_reduction_tau(scores))
        expected.append(ema / (1 - 0.5 ** (step + 1)))  # bias-corrected
        assert float(gate.tau) == pytest.approx(expected[-1])
    # step t decides with τ after step t − 2 (0 before that)
    assert decisions == [False, False] + [e > 1.5 for e in expected[:4]]


def test_gate_state_round_trip_makes_the_same_decisions():
    def run(gate, steps):
        out = []
        for step in steps:
            out.append(gate.should_score(step))
            gate.observe(torch.rand(8, generator=torch.Generator().manual_seed(step)) ** 4)
        return out

    a = VarianceReductionGate(threshold=1.2, momentum=0.3, lag=3)
    whole = run(a, range(12))
    b = VarianceReductionGate(threshold=1.2, momentum=0.3, lag=3)
    first = run(b, range(6))
    c = VarianceReductionGate(threshold=1.2, momentum=0.3, lag=3)
    c.load_state_dict(b.state_dict())
    assert first + run(c, range(6, 12)) == whole
    assert any(whole) and not all(whole)


def _score_flops(result):
    return result.records[-1]["flops_by_phase"]["score"]


def test_gate_off_skips_the_scoring_forward_and_logs_tau():
    off = train(_model(), _method("importance", tau_threshold=1e9), _data(), _config())
    assert _score_flops(off) == 0
    stats = off.records[-1]["selection_stats"]
    assert stats["importance_on"] == 0 and stats["tau"] >= 0.5  # τ estimated from trained batches
    on = train(_model(), _method("importance", tau_threshold=1.0001), _data(), _config())
    assert _score_flops(on) > 0
    assert on.records[-1]["selection_stats"]["importance_on"] == 1  # on once τ's average arrived
    assert on.records[1]["selection_stats"]["importance_on"] < 1  # off for the first `lag` steps


def test_importance_always_scores_every_step():
    result = train(_model(), _method("importance-always"), _data(), _config())
    assert result.records[-1]["selection_stats"]["weight_max"] >= 1


@pytest.mark.parametrize(
    "selector",
    [
        SoftmaxSampler(temperature=0.5, unbiased=True, seed=2),
        RankSelector(unbiased=True, seed=2),
        SelectiveBackpropSelector(unbiased=True, seed=2),
    ],
    ids=repr,
)
def test_sampled_selectors_in_unbiased_mode_return_weights_without_syncing(selector):
    scores = torch.rand(64, generator=torch.Generator().manual_seed(0))
    selector.select(scores, 16)
    with count_host_syncs() as syncs:
        sel = selector.select(scores, 16)
    assert syncs.total == 0, syncs.counts
    assert sel.weights.shape == (16,) and bool((sel.weights > 0).all())
    assert "unbiased=True" in repr(selector)


def test_the_importance_methods_are_built_from_their_names():
    from siftdata.online import AlwaysScore, parse_method
    from siftdata.scoring.scorers import GradNormBound

    gated = build_method("importance", super_batch_factor=3, num_classes=4)
    assert isinstance(gated.scorer, GradNormBound) and isinstance(gated.selector, ImportanceSampler)
    assert isinstance(gated.policy, VarianceReductionGate)
    assert gated.policy.threshold == pytest.approx(2.0)  # (B + 3b)/(3b) with B = 3b
    explicit = build_method("importance", config=SelectionConfig(tau_threshold=1.5))
    assert explicit.policy.threshold == 1.5
    always = build_method("importance-always")
    assert isinstance(always.policy, AlwaysScore) and always.needs_forward
    unbiased = build_method("learnability-unbiased", reference=_reference_table(), num_classes=4)
    assert unbiased.selector.unbiased
    with pytest.raises(ValueError, match="means nothing"):
        parse_method("importance+stale")


def _reference_table():
    from test_train import _reference

    return _reference()
