"""Online selectors: invariants, exactness against slow reference code, state round trips, errors."""

import math

import pytest
import torch

from siftdata.online import (
    METHOD_NAMES,
    RankSelector,
    ScoreRule,
    SelectiveBackpropSelector,
    SoftmaxSampler,
    TopKSelector,
    UniformSelector,
    build_method,
)
from siftdata.sampling import gumbel_top_k

# chi-square 0.999 quantiles by degrees of freedom (from standard tables)
CHI2_999 = {4: 18.47, 5: 20.52, 7: 24.32}


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def _scores(n=50, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


SELECTOR_FACTORIES = [
    lambda: TopKSelector(),
    lambda: UniformSelector(seed=1),
    lambda: SoftmaxSampler(seed=1),
    lambda: SoftmaxSampler(temperature=0.3, seed=1),
    lambda: SelectiveBackpropSelector(seed=1, history_size=64),
    lambda: RankSelector(seed=1),
]


@pytest.mark.parametrize("make", SELECTOR_FACTORIES)
def test_returns_k_distinct_in_range(make):
    sel = make().select(_scores(), 12)
    assert sel.indices.dtype == torch.long and sel.indices.shape == (12,)
    assert len(set(sel.indices.tolist())) == 12
    assert int(sel.indices.min()) >= 0 and int(sel.indices.max()) < 50
    assert sel.weights is None
    assert all(v.dim() == 0 for v in sel.stats.values())


@pytest.mark.parametrize("make", SELECTOR_FACTORIES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_raise(make, bad):
    s = _scores()
    s[3] = bad
    with pytest.raises(ValueError, match="non-finite"):
        make().select(s, 5)


@pytest.mark.parametrize("make", SELECTOR_FACTORIES)
def test_bad_k_and_shape_raise(make):
    with pytest.raises(ValueError, match="k must be"):
        make().select(_scores(10), 11)
    with pytest.raises(ValueError, match="k must be"):
        make().select(_scores(10), 0)
    with pytest.raises(ValueError, match="1-D"):
        make().select(torch.zeros(4, 3), 2)


def test_topk_is_the_k_largest():
    s = _scores()
    got = set(TopKSelector().select(s, 7).indices.tolist())
    assert got == set(sorted(range(50), key=lambda i: -float(s[i]))[:7])


@pytest.mark.parametrize(
    "make",
    [
        lambda: UniformSelector(seed=3),
        lambda: SoftmaxSampler(seed=3),
        lambda: RankSelector(seed=3),
        lambda: SelectiveBackpropSelector(seed=3, history_size=40),
    ],
)
def test_state_dict_round_trip_repeats_the_draws(make):
    a = make()
    a.select(_scores(seed=1), 5)
    state = a.state_dict()
    first = [a.select(_scores(seed=i), 5).indices for i in range(2, 5)]
    b = make()
    b.load_state_dict(state)
    second = [b.select(_scores(seed=i), 5).indices for i in range(2, 5)]
    for x, y in zip(first, second, strict=False):
        assert torch.equal(x, y)


def test_softmax_sampler_uses_half_std_temperature():
    s = _scores()
    sel = SoftmaxSampler(temperature_scale=0.5, seed=7).select(s, 9)
    expected = gumbel_top_k(
        s, 9, temperature=0.5 * s.std(), generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(sel.indices, expected)
    assert torch.isclose(sel.stats["temperature"], 0.5 * s.std())


def test_softmax_sampler_argument_errors():
    with pytest.raises(ValueError, match="temperature"):
        SoftmaxSampler(temperature=0.0)
    with pytest.raises(ValueError, match="temperature_scale"):
        SoftmaxSampler(temperature_scale=-1.0)


def test_uniform_first_draw_is_uniform():
    sel = UniformSelector(seed=0)
    counts = torch.zeros(6)
    for _ in range(6000):
        counts[sel.select(torch.zeros(6), 1).indices[0]] += 1
    assert _chi2(counts, torch.full((6,), 1 / 6)) < CHI2_999[5]


def test_selective_backprop_keep_probability_matches_slow_percentile():
    sb = SelectiveBackpropSelector(beta=2.0, history_size=8, seed=0)
    sb.select(torch.tensor([0.1, 0.5, 0.9, 1.3, 2.0]), 2)
    sb.select(torch.tensor([0.2, 0.4, 3.0, 0.05]), 2)
    history = [
        0.1,
        0.5,
        0.9,
        1.3,
        2.0,
        0.2,
        0.4,
        3.0,
    ]  # only the last 8 survive? 9 > 8: drop oldest
    history = [0.5, 0.9, 1.3, 2.0, 0.2, 0.4, 3.0, 0.05]
    assert sorted(sb.history.tolist()) == pytest.approx(sorted(history))
    losses = torch.tensor([0.3, 1.0, 5.0])
    ref = history + losses.tolist()
    slow = [
        max(sum(v <= x for v in ref) / len(ref), 1 / (len(ref) + 1)) ** 2 for x in losses.tolist()
    ]
    assert sb.keep_probability(losses).tolist() == pytest.approx(slow)


def test_selective_backprop_prefers_high_loss():
    sb = SelectiveBackpropSelector(beta=3.0, seed=0)
    losses = torch.linspace(0, 1, 100)
    picked = torch.cat([sb.select(losses, 10).indices for _ in range(50)])
    assert picked.float().mean() > 70  # uniform would average 49.5


def test_selective_backprop_argument_errors():
    with pytest.raises(ValueError, match="beta"):
        SelectiveBackpropSelector(beta=0)
    with pytest.raises(ValueError, match="history_size"):
        SelectiveBackpropSelector(history_size=0)


def test_rank_weights_match_slow_formula_and_first_draw_distribution():
    s = torch.tensor([0.3, -1.0, 2.0, 0.0, 1.0])
    r = RankSelector(selection_pressure=10.0, seed=0)
    order = sorted(range(5), key=lambda i: -float(s[i]))
    slow = [0.0] * 5
    for rank, i in enumerate(order):
        slow[i] = -math.log(10.0) * rank / 4
    assert r.rank_log_weights(s).tolist() == pytest.approx(slow)
    probs = torch.tensor(slow).exp()
    probs /= probs.sum()
    counts = torch.zeros(5)
    for _ in range(8000):
        counts[r.select(s, 1).indices[0]] += 1
    assert _chi2(counts, probs) < CHI2_999[4]
    assert float(probs.max() / probs.min()) == pytest.approx(10.0)


def test_rank_argument_errors():
    with pytest.raises(ValueError, match="selection_pressure"):
        RankSelector(selection_pressure=0.5)


def test_build_method_rules_and_scores():
    learner, ref = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, 2.5, 1.0])
    expect = {
        "hard-learner": learner,
        "easy-reference": -ref,
        "learnability-topk": learner - ref,
        "learnability-sampled": learner - ref,
        "learnability": learner - ref,
        "selective-backprop": learner,
        "rank": learner,
    }
    for name in METHOD_NAMES:
        m = build_method(name)
        if name == "uniform":
            assert m.rule is ScoreRule.NONE and m.score(None, None) is None
            continue
        assert torch.equal(m.score(learner, ref), expect[name])
    assert build_method("easy-reference").needs_learner_loss is False
    with pytest.raises(ValueError, match="needs reference_loss"):
        build_method("learnability").score(learner, None)
    with pytest.raises(ValueError, match="unknown method"):
        build_method("hardest")
