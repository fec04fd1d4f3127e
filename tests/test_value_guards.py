"""Wrong values never silently give a plausible answer: NaN and ±inf scores are sanitised and
counted on the device, τ never becomes NaN, and the gradient-norm bound keeps float32 precision."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from siftdata.core.pairwise import EmbeddingPairScores, PairEmbeddings
from siftdata.core.sampling import gumbel_top_k, sanitise_scores, top_k
from siftdata.core.scores import grad_norm_bound
from siftdata.core.unbiased import importance_weights, variance_reduction_tau
from siftdata.online.greedy import TopKSelector
from siftdata.online.importance import ImportanceSampler, VarianceReductionGate
from siftdata.online.joint import JointSampler
from siftdata.online.rank import RankSelector
from siftdata.online.sampled import SoftmaxSampler
from siftdata.online.selective_backprop import SelectiveBackpropSelector
from siftdata.online.step import choose
from siftdata.scoring.loss_memory import LossMemory
from siftdata.store import ScoreTable
from siftdata.training.diagnostics import count_host_syncs
from siftdata.training.recorder import _warn_nonfinite
from siftdata.training.sources import SuperBatchStream

BAD = (math.nan, math.inf, -math.inf)


def test_a_nan_score_first_in_the_batch_is_never_picked_by_top_k():
    scores = torch.tensor([math.nan, 0.1, math.inf, 0.3, -math.inf, 0.2])
    assert sorted(top_k(scores, 3).tolist()) == [1, 3, 5]  # torch.topk alone puts NaN first


def test_choose_counts_the_non_finite_scores_on_the_device():
    scores = torch.tensor([math.nan, 1.0, 2.0, math.inf, 0.5])
    selection = choose(scores, 2, TopKSelector())
    assert sorted(selection.indices.tolist()) == [1, 2]
    count = selection.stats["nonfinite_scores"]
    assert isinstance(count, torch.Tensor) and int(count) == 2
    assert math.isfinite(float(selection.stats["score_mean"]))


def test_the_loop_warns_when_it_next_records():
    with pytest.warns(RuntimeWarning, match="0.5 NaN or infinite scores per step.*step 40"):
        _warn_nonfinite({"step": 40, "selection_stats": {"nonfinite_scores": 0.5}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_nonfinite({"step": 40, "selection_stats": {"nonfinite_scores": 0.0}})


def test_all_zero_or_non_finite_bounds_never_make_tau_nan():
    assert float(variance_reduction_tau(torch.zeros(8))) == pytest.approx(1.0)
    assert float(variance_reduction_tau(torch.full((4,), math.nan))) == pytest.approx(1.0)
    spiky = torch.tensor([1.0, math.inf, 1.0, math.nan])
    assert math.isfinite(float(variance_reduction_tau(spiky)))
    weights = importance_weights(torch.zeros(3), torch.tensor([0, 2]))
    assert torch.equal(weights, torch.ones(2))
    gate = VarianceReductionGate(threshold=1.2, momentum=0.5, lag=1)
    gate.observe(torch.zeros(16))  # a pool of already-learnt examples
    gate.observe(torch.tensor([10.0] + [0.0] * 15))
    assert math.isfinite(float(gate.tau))  # a NaN here would switch the gate off for good


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_grad_norm_bound_holds_to_float32_rounding_on_confident_examples(smoothing):
    logits = torch.tensor([[12.0, 0.0, 0.0, 0.0], [30.0, 1.0, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0, 3])
    low = grad_norm_bound(logits, labels, label_smoothing=smoothing)
    high = grad_norm_bound(logits.double(), labels, label_smoothing=smoothing)
    assert torch.allclose(
        low.double(), high, rtol=1e-6, atol=0
    )  # was 7e-3 relative at [12, 0, 0, 0]


@st.composite
def scores_with_bad_values(draw):
    n = draw(st.integers(2, 40))
    values = draw(st.lists(st.floats(-20, 20, width=32), min_size=n, max_size=n))
    bad = draw(st.lists(st.sampled_from(BAD), max_size=n - 1))
    positions = draw(st.permutations(range(n)))[: len(bad)]
    for p, v in zip(positions, bad, strict=True):
        values[p] = v
    k = draw(st.integers(1, n - len(bad)))
    return torch.tensor(values, dtype=torch.float32), k, len(bad)


@settings(max_examples=50, deadline=None)
@given(scores_with_bad_values(), st.integers(0, 2**31))
def test_no_non_finite_score_is_chosen_while_enough_finite_ones_exist(case, seed):
    scores, k, bad = case
    finite = torch.isfinite(scores)
    clean, count = sanitise_scores(scores)
    assert int(count) == bad and bool(torch.isfinite(clean).all())
    assert bool(finite[top_k(scores, k)].all())
    g = torch.Generator().manual_seed(seed)
    drawn = gumbel_top_k(scores, k, temperature=1e-3, generator=g)
    again = gumbel_top_k(scores, k, temperature=1e-3, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(drawn, again) and drawn.unique().numel() == k
    assert bool(finite[drawn].all())
    assert bool(clean[~finite].lt(clean[finite].min()).all())  # strictly the lowest priority


SELECTORS = {
    "top-k": lambda: TopKSelector(),
    "rank": lambda: RankSelector(selection_pressure=1e8),
    "softmax": lambda: SoftmaxSampler(temperature=1e-3),
    "softmax-std": lambda: SoftmaxSampler(temperature_scale=1e-3),
    "selective-backprop": lambda: SelectiveBackpropSelector(beta=50.0, history_size=16),
    "importance": lambda: ImportanceSampler(),
}


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_every_selector_ranks_nan_and_inf_scores_last(name):
    """Called directly (not through ``choose``), each selector still never prefers a bad score."""
    selector = SELECTORS[name]()
    scores = torch.tensor([math.nan, math.inf, -math.inf] + [5.0 + i for i in range(9)])
    for _ in range(5):  # a selector with a history (selective backprop) must stay sane
        selection = selector.select(scores, 4)
        assert bool((selection.indices >= 3).all()), selection.indices
        if selection.weights is not None:
            assert bool(torch.isfinite(selection.weights).all())


def _unit(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=1)


def test_the_joint_sampler_never_picks_pairs_with_nan_or_inf_embeddings():
    n, d = 24, 8
    image, text = _unit(n, d, 0), _unit(n, d, 1)
    learner = PairEmbeddings(image, text, torch.tensor(10.0), torch.tensor(-5.0))
    ref_image = _unit(n, d, 2)
    ref_image[0] = math.nan  # e.g. a lookup of an id the cache does not hold
    ref_image[5, 3] = math.nan  # one bad coordinate is enough
    reference = PairEmbeddings(ref_image, _unit(n, d, 3), torch.tensor(10.0), torch.tensor(-5.0))
    scores = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    selection = JointSampler(chunks=4).select(scores, 12)
    assert {0, 5}.isdisjoint(selection.indices.tolist())
    assert selection.indices.unique().numel() == 12
    assert int(selection.stats["nonfinite_scores"]) == 2
    assert math.isfinite(float(selection.stats["score_mean"]))


@pytest.mark.parametrize("ids", [torch.arange(6), torch.tensor([40, 10, 30, 20, 60, 50])])
def test_a_score_table_never_returns_another_ids_row_and_raises_at_the_next_check(ids):
    table = ScoreTable(ids, torch.arange(6, dtype=torch.float32) + 1.0)
    unknown = torch.tensor([7, -1]) if ids[0] == 0 else torch.tensor([35, 70])
    batch = torch.cat([ids[:2], unknown])
    with count_host_syncs() as syncs:
        values = table.lookup(batch)
    assert syncs.total == 0
    assert values[:2].tolist() == [1.0, 2.0] and bool(values[2:].isnan().all())
    with pytest.raises(ValueError, match="2 looked-up id"):
        table.check_missing()
    table.check_missing()  # reported once, then the count starts again


def test_a_loss_memory_drops_unknown_ids_without_touching_known_ones():
    memory = LossMemory(torch.tensor([10, 20, 30]), initial=2.0)
    with count_host_syncs() as syncs:
        memory.update(torch.tensor([20, 99, 5]), torch.tensor([0.5, 7.0, 8.0]))
        looked_up = memory.lookup(torch.tensor([10, 20, 99]))
    assert syncs.total == 0
    assert memory.losses.tolist() == [2.0, 0.5, 2.0]
    assert memory.seen.tolist() == [False, True, False]
    assert looked_up[:2].tolist() == [2.0, 0.5] and math.isnan(float(looked_up[2]))
    with pytest.raises(ValueError, match="3 looked-up id"):
        memory.state_dict()  # a checkpoint is when the host looks anyway
    assert memory.state_dict()["losses"].tolist() == [2.0, 0.5, 2.0]


@pytest.mark.parametrize("tau", [-1.0, 0.0, math.nan])
def test_a_bad_tensor_temperature_never_inverts_the_ranking(tau):
    """A 0-d τ from the device is not synced to be checked; ≤ 0 or NaN acts as the top-k limit."""
    scores = torch.tensor([0.1, 3.0, 0.2, 2.0, -1.0])
    drawn = gumbel_top_k(scores, 2, temperature=torch.tensor(tau))
    assert sorted(drawn.tolist()) == [1, 3]  # with τ = −1 the lowest scores were drawn
    with pytest.raises(ValueError, match="finite number > 0"):
        gumbel_top_k(scores, 2, temperature=torch.tensor(tau), check_values=True)


@pytest.mark.parametrize("seed", [1.5, "3", True, None])
def test_seeds_that_are_not_integers_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be an int"):
        SoftmaxSampler(seed=seed)
    with pytest.raises(ValueError, match="seed must be an int"):
        SuperBatchStream(100, seed=seed)


def test_numpy_integer_seeds_are_accepted():
    assert SoftmaxSampler(seed=np.int64(7)).seed == 7


def test_importance_smoothing_never_revives_a_non_finite_score():
    sampler = ImportanceSampler(smoothing=0.5, seed=0)
    scores = torch.tensor([math.nan, 1.0, math.inf, 2.0])
    drawn = sampler.select(scores, 400).indices
    assert set(drawn.tolist()) <= {1, 3}


def test_choose_keeps_the_selectors_own_check():
    with pytest.raises(ValueError, match="NaN or inf"):
        choose(torch.tensor([1.0, math.nan, 3.0]), 2, TopKSelector(check_values=True))


def test_a_table_built_in_inference_mode_still_counts_misses_outside_it():
    with torch.inference_mode():
        table = ScoreTable(torch.tensor([3, 1, 2]), torch.tensor([0.3, 0.1, 0.2]))
        table.lookup(torch.tensor([9]))
    table.lookup(torch.tensor([1, 8]))
    with pytest.raises(ValueError, match="2 looked-up id"):
        table.check_missing()


def test_half_precision_scores_near_the_end_of_the_range_stay_finite():
    scores = torch.tensor([-60000.0, math.nan, -50000.0], dtype=torch.float16)
    clean, count = sanitise_scores(scores)
    assert int(count) == 1 and bool(torch.isfinite(clean).all())
    assert top_k(scores, 1).tolist() == [2]


def test_an_inf_embedding_coordinate_cannot_give_a_plausible_pair_score():
    n, d = 24, 8
    learner = PairEmbeddings(_unit(n, d, 0), _unit(n, d, 1), torch.tensor(10.0), torch.tensor(-5.0))
    ref_image = _unit(n, d, 2)
    ref_image[3, 0] = math.inf  # its own pair's reference loss would be 0: a finite, high S_33
    reference = PairEmbeddings(ref_image, _unit(n, d, 3), torch.tensor(10.0), torch.tensor(-5.0))
    scores = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    for seed in range(5):
        selection = JointSampler(chunks=4, seed=seed).select(scores, 12)
        assert 3 not in selection.indices.tolist()
        assert int(selection.stats["nonfinite_scores"]) == 1


def test_an_integer_table_gives_an_unknown_id_its_lowest_value_not_another_row():
    table = ScoreTable(torch.tensor([40, 10, 30]), torch.tensor([4, 1, 3]))
    assert table.lookup(torch.tensor([35, 10])).tolist() == [torch.iinfo(torch.int64).min, 1]


def test_weights_of_a_draw_with_a_bad_tensor_temperature_match_the_draw():
    from siftdata.core.sampling import gumbel_top_k_with_threshold
    from siftdata.core.unbiased import without_replacement_weights

    scores = torch.tensor([0.1, 3.0, 0.2, 2.0])
    tau = torch.tensor(-1.0)
    indices, threshold = gumbel_top_k_with_threshold(scores, 2, temperature=tau)
    weights = without_replacement_weights(scores, indices, threshold, temperature=tau)
    assert bool(torch.isfinite(weights).all()) and bool((weights > 0).all())


def test_an_importance_weight_of_a_never_drawable_index_is_zero_not_inf():
    weights = importance_weights(torch.tensor([math.nan, 1.0, 1.0]), torch.tensor([0, 1]))
    assert weights.tolist() == [0.0, pytest.approx(2 / 3)]  # 1 / (B·p) with p = 1/2
