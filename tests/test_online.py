"""Online selectors: invariants, exactness against slow reference code, state round trips, errors."""

import math

import pytest
import torch

from siftdata.core.sampling import gumbel_top_k
from siftdata.online import (
    DEFAULT_LEARNABILITY,
    METHOD_NAMES,
    AlwaysScore,
    GeneratorOwner,
    RankSelector,
    ScoreAfter,
    SelectionConfig,
    SelectiveBackpropSelector,
    SoftmaxSampler,
    TopKSelector,
    UniformSelector,
    build_method,
    parse_method,
)
from siftdata.scoring.scorers import Need, RememberedLoss, ScoringBatch
from siftdata.store import ScoreTable
from siftdata.training.diagnostics import count_host_syncs

# chi-square 0.999 quantiles by degrees of freedom (from standard tables)
CHI2_999 = {2: 13.82, 4: 18.47, 5: 20.52, 7: 24.32}


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def _scores(n=50, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


SELECTOR_FACTORIES = [
    lambda **kw: TopKSelector(**kw),
    lambda **kw: UniformSelector(seed=1, **kw),
    lambda **kw: SoftmaxSampler(seed=1, **kw),
    lambda **kw: SoftmaxSampler(temperature=0.3, seed=1, **kw),
    lambda **kw: SelectiveBackpropSelector(seed=1, history_size=64, **kw),
    lambda **kw: RankSelector(seed=1, **kw),
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
def test_non_finite_scores_raise_with_check_values(make, bad):
    s = _scores()
    s[3] = bad
    with pytest.raises(ValueError, match="non-finite"):
        make(check_values=True).select(s, 5)


@pytest.mark.parametrize("make", SELECTOR_FACTORIES)
def test_select_makes_no_host_sync_by_default(make):
    selector = make()
    with count_host_syncs() as syncs:
        for seed in range(3):
            selector.select(_scores(seed=seed), 12)
    assert syncs.total == 0, syncs.counts
    with count_host_syncs() as syncs:
        make(check_values=True).select(_scores(), 12)
    assert syncs.total > 0


@pytest.mark.parametrize("make", SELECTOR_FACTORIES)
def test_bad_k_and_shape_raise(make):  # argument checks run without check_values
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\] \(the super-batch size\)"):
        make().select(_scores(10), 11)
    with pytest.raises(ValueError, match="k must be"):
        make().select(_scores(10), 0)
    with pytest.raises(ValueError, match="1-D"):
        make().select(torch.zeros(4, 3), 2)
    with pytest.raises(ValueError, match="floating"):
        make().select(torch.arange(10), 2)


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
    with pytest.raises(ValueError, match="not both"):
        SoftmaxSampler(temperature=0.3, temperature_scale=0.5)


def test_softmax_sampler_defaults_to_half_std():
    sampler = SoftmaxSampler()
    assert sampler.temperature is None and sampler.temperature_scale == 0.5
    fixed = SoftmaxSampler(temperature=0.3)
    assert fixed.temperature == 0.3 and fixed.temperature_scale is None
    s = _scores()
    assert torch.equal(fixed.select(s, 3).stats["temperature"], torch.tensor(0.3))


@pytest.mark.parametrize("value", [0.0, 1000.0, -250.0])
def test_softmax_sampler_on_constant_scores_is_uniform(value):
    # std 0: τ = 1 (not 0.5 · 0, which would make every key ±inf or NaN) and a uniform draw
    sampler = SoftmaxSampler(seed=0)
    scores = torch.full((6,), value)
    first = sampler.select(scores, 2)
    assert float(first.stats["temperature"]) == 1.0
    counts = torch.zeros(6)
    for _ in range(6000):
        counts[sampler.select(scores, 2).indices[0]] += 1
    assert _chi2(counts, torch.full((6,), 1 / 6)) < CHI2_999[5]


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
    history = [0.5, 0.9, 1.3, 2.0, 0.2, 0.4, 3.0, 0.05]  # 9 losses seen, the oldest dropped
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


def _slow_average_ranks(scores):
    """Rank from the top (0 = highest); tied scores share the mean of the ranks they span."""
    values = scores.tolist()
    ranks = []
    for v in values:
        above = sum(u > v for u in values)
        tied = sum(u == v for u in values)
        ranks.append(above + (tied - 1) / 2)
    return ranks


def test_rank_ties_share_the_average_rank():
    s = torch.tensor([0.5, 2.0, 0.5, -1.0, 2.0, 0.5, 3.0])
    r = RankSelector(selection_pressure=20.0, seed=0)
    ranks = _slow_average_ranks(s)
    assert ranks == [4.0, 1.5, 4.0, 6.0, 1.5, 4.0, 0.0]
    slow = [-math.log(20.0) * rank / 6 for rank in ranks]
    weights = r.rank_log_weights(s)
    assert weights.tolist() == pytest.approx(slow)
    assert weights[0] == weights[2] == weights[5] and weights[1] == weights[4]


def test_rank_tied_scores_are_drawn_first_equally_often():
    s = torch.tensor([1.0, 0.0, 1.0, 1.0, -2.0])
    r = RankSelector(selection_pressure=4.0, seed=2)
    probs = torch.tensor([-math.log(4.0) * rank / 4 for rank in _slow_average_ranks(s)]).exp()
    probs /= probs.sum()
    counts = torch.zeros(5)
    for _ in range(9000):
        counts[r.select(s, 2).indices[0]] += 1
    assert _chi2(counts, probs) < CHI2_999[4]
    tied = counts[[0, 2, 3]]  # equally likely among themselves
    assert _chi2(tied, torch.full((3,), 1 / 3)) < CHI2_999[2]


def test_rank_argument_errors():
    with pytest.raises(ValueError, match="selection_pressure"):
        RankSelector(selection_pressure=0.5)


class _Owner(GeneratorOwner):
    def select(self, scores, k):
        return torch.randperm(scores.shape[0], generator=self.generator)[:k]


def test_generator_state_saves_the_device_type():
    state = _Owner(seed=4).state_dict()
    assert state["device_type"] == "cpu" and isinstance(state["generator"], torch.Tensor)


def test_state_from_another_device_type_warns_reseeds_and_keeps_working():
    state = _Owner(seed=4).state_dict()
    state["device_type"] = "cuda"  # as if saved by a GPU run
    owner = _Owner(seed=4)
    owner.generator.manual_seed(123)
    with pytest.warns(UserWarning, match="cuda generator"):
        owner.load_state_dict(state)
    draws = owner(torch.zeros(20), 5)
    assert draws.shape == (5,) and draws.unique().numel() == 5
    again = _Owner(seed=4)
    with pytest.warns(UserWarning):
        again.load_state_dict(state)
    assert torch.equal(again(torch.zeros(20), 5), draws)  # the fresh seed is deterministic
    # a real selector too, through its own state (history kept, generator reseeded)
    sb = SelectiveBackpropSelector(seed=1, history_size=8)
    sb.select(_scores(6), 2)
    sb_state = sb.state_dict()
    sb_state["device_type"] = "cuda"
    other = SelectiveBackpropSelector(seed=1, history_size=8)
    with pytest.warns(UserWarning, match="SelectiveBackpropSelector"):
        other.load_state_dict(sb_state)
    assert torch.equal(other.history, sb.history) and other.filled == 6
    assert other.select(_scores(10), 3).indices.shape == (3,)


def test_state_without_device_type_loads_as_cpu_without_warning(recwarn):
    a = _Owner(seed=5)
    state = {"generator": a.generator.get_state()}  # a checkpoint from before device_type
    first = a(torch.zeros(30), 6)
    b = _Owner(seed=9)
    b.load_state_dict(state)
    assert torch.equal(b(torch.zeros(30), 6), first)
    assert not recwarn.list


# --------------------------------------------------------------------------- named methods

NUM_CLASSES = 4
LOG_C = math.log(NUM_CLASSES)  # the default learner-loss cap, 'logC'
LEARNER = torch.tensor([1.0, 2.0, 3.0])
REFERENCE = torch.tensor([0.5, 2.5, 1.0])
IDS = torch.tensor([30, 10, 20])  # pool ids, not positions


def _built(name, **config):
    table = ScoreTable(torch.tensor([10, 20, 30, 40]), torch.tensor([2.5, 1.0, 0.5, 9.0]))
    return build_method(
        name,
        config=SelectionConfig(**config),
        reference=table,
        example_ids=torch.tensor([40, 30, 20, 10]),
        num_classes=NUM_CLASSES,
        seed=0,
    )


def _expected_scores(rule, cap=LOG_C):
    learner = LEARNER if cap is None else LEARNER.clamp(max=cap)
    return {
        "learner-loss": LEARNER,
        "easy-reference": -REFERENCE,
        "learnability": learner - REFERENCE,
    }[rule]


def _score(method):
    """Score IDS with the method's scorer; stale scorers first remember the learner's losses."""
    if method.scorer.remembers:
        method.scorer.observe(IDS, LEARNER)
        return method.scorer(ScoringBatch(ids=IDS))  # no loss: a stale scorer needs no forward
    return method.scorer(ScoringBatch(ids=IDS, loss=LEARNER))


EXPECTED_RULES = {
    "hard-learner": ("learner-loss", TopKSelector),
    "easy-reference": ("easy-reference", TopKSelector),
    "learnability": ("learnability", SoftmaxSampler),
    "learnability-topk": ("learnability", TopKSelector),
    "learnability-sampled": ("learnability", SoftmaxSampler),
    "learnability-unbiased": ("learnability", SoftmaxSampler),
    "selective-backprop": ("learner-loss", SelectiveBackpropSelector),
    "rank": ("learner-loss", RankSelector),
}


def test_method_names_are_all_covered():
    assert set(METHOD_NAMES) == {"uniform", "importance", "importance-always", *EXPECTED_RULES}
    assert DEFAULT_LEARNABILITY == "learnability-sampled"


@pytest.mark.parametrize("name", list(EXPECTED_RULES))
def test_build_method_rules_and_scores(name):
    rule, selector_type = EXPECTED_RULES[name]
    spec = parse_method(name)
    assert spec.rule == rule and spec.selects and not spec.stale
    method = _built(name)
    assert method.name == name and method.selects
    assert isinstance(method.selector, selector_type)
    assert isinstance(method.policy, AlwaysScore)
    assert method.needs_forward == spec.scores_fresh == (rule != "easy-reference")
    torch.testing.assert_close(_score(method), _expected_scores(rule), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name", [n for n, (rule, _) in EXPECTED_RULES.items() if rule != "easy-reference"]
)
def test_stale_variants_score_remembered_losses_without_a_forward(name):
    rule, selector_type = EXPECTED_RULES[name]
    spec = parse_method(name + "+stale")
    assert spec.stale and not spec.scores_fresh and spec.rule == rule
    method = _built(name + "+stale")
    assert not method.needs_forward and method.scorer.needs == frozenset({Need.IDS})
    assert isinstance(method.selector, selector_type)
    torch.testing.assert_close(_score(method), _expected_scores(rule), rtol=0, atol=1e-6)
    # unseen examples hold log C, the loss of an untrained classifier
    unseen = method.scorer(ScoringBatch(ids=torch.tensor([40])))
    learner = torch.tensor([math.log(NUM_CLASSES)])
    expected = learner if rule == "learner-loss" else learner - 9.0
    torch.testing.assert_close(unseen, expected)


def test_learnability_cap_follows_the_config():
    uncapped = _built("learnability-topk", learner_loss_cap=None)
    torch.testing.assert_close(_score(uncapped), LEARNER - REFERENCE)
    fixed = _built("learnability-topk", learner_loss_cap=1.5)
    torch.testing.assert_close(_score(fixed), _expected_scores("learnability", cap=1.5))
    assert SelectionConfig(learner_loss_cap="logC").cap_for(10) == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="num_classes"):
        build_method("learnability", reference=ScoreTable(IDS, REFERENCE))


def test_config_reaches_selectors_and_policy():
    method = _built("learnability", temperature_scale=0.25, uniform_steps=3)
    assert method.selector.temperature_scale == 0.25
    assert isinstance(method.policy, ScoreAfter) and method.policy.steps == 3
    assert _built("selective-backprop", beta=3.0).selector.beta == 3.0
    assert _built("rank", selection_pressure=7.0).selector.selection_pressure == 7.0


def test_uniform_has_no_scorer():
    spec = parse_method("uniform")
    assert spec.rule == "none" and not spec.selects and not spec.uses_learner_loss
    method = build_method("uniform")
    assert method.scorer is None and method.selector is None
    assert not method.selects and not method.needs_forward and method.state_dict() == {}


def test_stale_method_state_round_trips():
    a = _built("learnability+stale")
    _score(a)
    a.selector.select(torch.randn(8), 3)
    state = a.state_dict()
    b = _built("learnability+stale")
    b.load_state_dict(state)
    assert isinstance(b.scorer.learner, RememberedLoss)
    torch.testing.assert_close(b.scorer(ScoringBatch(ids=IDS)), a.scorer(ScoringBatch(ids=IDS)))
    s = torch.randn(8)
    assert torch.equal(a.selector.select(s, 3).indices, b.selector.select(s, 3).indices)


@pytest.mark.parametrize(
    "name, message",
    [
        ("hardest", "unknown method"),
        ("learnability+stale+stale", "unknown method"),
        ("easy-reference+stale", "learner's loss"),
        ("uniform+stale", "learner's loss"),
        (3, "string"),
    ],
)
def test_bad_method_names_raise(name, message):
    with pytest.raises(ValueError, match=message):
        parse_method(name)
    with pytest.raises(ValueError, match=message):
        build_method(name)


def test_methods_needing_a_reference_or_ids_say_so():
    for name in ("learnability", "easy-reference", "learnability-topk+stale"):
        with pytest.raises(ValueError, match="reference"):
            build_method(name, num_classes=NUM_CLASSES, example_ids=4)
    with pytest.raises(ValueError, match="example_ids"):
        build_method("rank+stale")


def test_per_shard_selection_is_each_shares_own_top_k():
    from siftdata.online.per_shard import PerShardSelector

    scores = torch.tensor([9.0, 8.0, 7.0, 6.0, 0.1, 0.2, 0.3, 0.4])
    selection = PerShardSelector(TopKSelector(), 2).select(scores, 4)
    assert sorted(selection.indices.tolist()) == [0, 1, 6, 7]  # global top-4 would be 0-3
    with pytest.raises(ValueError, match="multiples of the number of shards"):
        PerShardSelector(TopKSelector(), 3).select(scores, 4)


def test_local_shards_builds_per_rank_selection_and_is_checked_before_training():
    from siftdata.online.per_shard import PerShardSelector

    method = build_method(
        "learnability-topk",
        config=SelectionConfig(local_shards=4),
        reference=ScoreTable(torch.arange(10), torch.zeros(10)),
        num_classes=3,
    )
    assert isinstance(method.selector, PerShardSelector) and method.selector.shards == 4
