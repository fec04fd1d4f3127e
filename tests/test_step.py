"""The selection step: forwards only when needed, never changes the model, passes stats through,
and makes no host sync after the first call; scoring policies."""

import math

import pytest
import torch
from torch import nn

from siftdata.core.scores import per_example_loss
from siftdata.online import (
    AlwaysScore,
    JointSelector,
    PairwiseScores,
    RankSelector,
    ScoreAfter,
    Selection,
    SelectiveBackpropSelector,
    SoftmaxSampler,
    TopKSelector,
    UniformSelector,
    forward_for_scoring,
    scoring_mode,
    select_batch,
)
from siftdata.scoring.loss_memory import LossMemory
from siftdata.scoring.scorers import (
    Entropy,
    GradNormBound,
    Learnability,
    LearnerLoss,
    Need,
    Negated,
    ReferenceLoss,
    RememberedLoss,
    ScoringBatch,
)
from siftdata.store import ScoreTable
from siftdata.training.diagnostics import count_host_syncs

B, D, C, K = 16, 5, 3, 4
POOL_IDS = 100 + torch.randperm(40, generator=torch.Generator().manual_seed(0))


def _super_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g)
    y = torch.randint(0, C, (B,), generator=g)
    ids = POOL_IDS[torch.randperm(40, generator=g)[:B]]
    return x, y, ids


def _model(seed=0):
    with torch.random.fork_rng():  # seeded initial weights; the global RNG is left as it was
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(D, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, C)
        )


def _reference():
    losses = torch.rand(40, generator=torch.Generator().manual_seed(1))
    return ReferenceLoss(ScoreTable(POOL_IDS, losses))


class _Counting(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


class _Recording:
    """A selector that remembers the scores it was given and delegates to another."""

    def __init__(self, selector):
        self.selector, self.scores = selector, None

    def select(self, scores, k):
        self.scores = scores
        return self.selector.select(scores, k)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def _stale_learnability():
    memory = LossMemory(POOL_IDS, initial=math.log(C))
    return Learnability(RememberedLoss(memory), _reference(), learner_loss_cap=math.log(C))


# --------------------------------------------------------------------------------- forwards

FORWARD_SCORERS = {
    "learner loss": LearnerLoss,
    "fresh learnability": lambda: Learnability(LearnerLoss(), _reference()),
    "grad-norm bound": GradNormBound,
    "entropy": Entropy,
}
NO_FORWARD_SCORERS = {
    "reference": _reference,
    "easy reference": lambda: Negated(_reference()),
    "stale learnability": _stale_learnability,
}


@pytest.mark.parametrize("make", list(FORWARD_SCORERS.values()), ids=list(FORWARD_SCORERS))
def test_one_forward_when_the_scorer_needs_it(make):
    model = _Counting(_model())
    x, y, ids = _super_batch()
    sel = select_batch(model, x, y, ids, k=K, scorer=make(), selector=TopKSelector())
    assert model.calls == 1 and sel.indices.shape == (K,)


@pytest.mark.parametrize("make", list(NO_FORWARD_SCORERS.values()), ids=list(NO_FORWARD_SCORERS))
def test_no_forward_when_the_scorer_needs_none(make):
    model = _Counting(_model())
    x, y, ids = _super_batch()
    sel = select_batch(model, x, y, ids, k=K, scorer=make(), selector=TopKSelector())
    assert model.calls == 0 and sel.indices.shape == (K,)
    # the inputs need not even be loaded
    select_batch(model, None, None, ids, k=K, scorer=make(), selector=TopKSelector())
    assert model.calls == 0


def test_forward_for_scoring_provides_what_is_needed():
    model = _model().eval()
    x, y, ids = _super_batch()
    outputs_only = forward_for_scoring(model, x, y, ids, needs=frozenset({Need.OUTPUTS}))
    assert outputs_only.loss is None and outputs_only.outputs.shape == (B, C)
    with_loss = forward_for_scoring(model, x, y, ids, needs=frozenset({Need.LOSS}))
    torch.testing.assert_close(with_loss.loss, per_example_loss(model(x), y))
    ids_only = forward_for_scoring(model, x, y, ids, needs=frozenset({Need.IDS}))
    assert ids_only.outputs is None and ids_only.loss is None and ids_only.ids is ids
    with pytest.raises(ValueError, match="inputs is None"):
        forward_for_scoring(model, None, y, ids, needs=frozenset({Need.LOSS}))


def test_custom_loss_fn_is_used():
    model = _model().eval()
    x, y, ids = _super_batch()
    recording = _Recording(TopKSelector())

    def squared_error(outputs, labels):
        return (outputs - nn.functional.one_hot(labels, C)).pow(2).sum(dim=1)

    select_batch(
        model, x, y, ids, k=K, scorer=LearnerLoss(), selector=recording, loss_fn=squared_error
    )
    torch.testing.assert_close(recording.scores, squared_error(model(x), y).detach())


# ----------------------------------------------------------------------- the model unchanged


def _buffers(model):
    return {name: b.clone() for name, b in model.named_buffers()}


@pytest.mark.parametrize("training", [True, False])
def test_scoring_leaves_the_model_unchanged_and_uses_eval_losses(training):
    model = _model()
    model(torch.randn(32, D))  # some running statistics, not the initial ones
    model.train(training)
    before = _buffers(model)
    params = [p.clone() for p in model.parameters()]
    x, y, ids = _super_batch()
    recording = _Recording(TopKSelector())
    select_batch(model, x, y, ids, k=K, scorer=LearnerLoss(), selector=recording)
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    after = _buffers(model)
    assert set(after) == {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert all(torch.equal(p, q) for p, q in zip(params, model.parameters(), strict=True))
    assert not recording.scores.requires_grad
    model.eval()
    with torch.no_grad():
        expected = per_example_loss(model(x), y)
    assert torch.equal(recording.scores, expected)


def test_train_mode_scores_would_differ():  # guards the test above: dropout and batch stats matter
    model = _model()
    x, y, _ = _super_batch()
    with torch.no_grad():
        train_losses = per_example_loss(model.train()(x), y)
        eval_losses = per_example_loss(model.eval()(x), y)
    assert not torch.allclose(train_losses, eval_losses)


def test_scoring_mode_restores_train_mode_after_an_error():
    model = _model().train()
    with pytest.raises(RuntimeError, match="boom"), scoring_mode(model):
        assert not model.training and not torch.is_grad_enabled()
        raise RuntimeError("boom")
    assert model.training and torch.is_grad_enabled()


# ---------------------------------------------------------------------------------- stats


def test_stats_hold_the_selectors_and_the_score_means():
    model = _model()
    x, y, ids = _super_batch()
    recording = _Recording(SoftmaxSampler(seed=3))
    sel = select_batch(model, x, y, ids, k=K, scorer=Entropy(), selector=recording)
    scores = recording.scores.tolist()
    picked = sel.indices.tolist()
    assert set(sel.stats) == {
        "temperature",
        "selected_score_mean",
        "score_mean",
        "nonfinite_scores",
    }
    assert float(sel.stats["score_mean"]) == pytest.approx(sum(scores) / B)
    expected_selected = sum(scores[i] for i in picked) / K
    assert float(sel.stats["selected_score_mean"]) == pytest.approx(expected_selected)
    std = torch.tensor(scores).std()
    assert float(sel.stats["temperature"]) == pytest.approx(0.5 * float(std), rel=1e-5)
    assert all(v.dim() == 0 for v in sel.stats.values())


def test_weights_are_passed_through():
    class Weighted(TopKSelector):
        def select(self, scores, k):
            indices = super().select(scores, k).indices
            return Selection(indices=indices, weights=torch.full((k,), 2.0))

    x, y, ids = _super_batch()
    sel = select_batch(_model(), x, y, ids, k=K, scorer=_reference(), selector=Weighted())
    assert torch.equal(sel.weights, torch.full((K,), 2.0))
    assert {"selected_score_mean", "score_mean"} <= set(sel.stats)


class _DensePairwise:
    def __init__(self, matrix):
        self.matrix = matrix

    @property
    def size(self):
        return self.matrix.shape[0]

    def diagonal(self):
        return self.matrix.diagonal()

    def rows(self, index):
        return self.matrix[index]

    def columns(self, index):
        return self.matrix[:, index]


class _PairwiseScorer:
    needs = frozenset({Need.OUTPUTS})
    remembers = False

    def __call__(self, batch: ScoringBatch):
        return _DensePairwise(batch.outputs @ batch.outputs.T)

    def observe(self, ids, losses):
        return None

    def check_ids(self, ids):
        return None

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


class _GreedyJoint:
    """Greedy JEST-like choice: start from the best diagonal, add the largest pairwise gain."""

    def select(self, scores, k):
        chosen = [int(scores.diagonal().argmax())]
        while len(chosen) < k:
            index = torch.tensor(chosen)
            gain = scores.diagonal() + scores.rows(index).sum(0) + scores.columns(index).sum(1)
            gain[index] = -math.inf
            chosen.append(int(gain.argmax()))
        indices = torch.tensor(chosen)
        return Selection(
            indices=indices, stats={"set_score": scores.rows(indices)[:, indices].sum()}
        )

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        return None


def test_joint_selector_stats_are_passed_through():
    x, y, ids = _super_batch()
    model = _model()
    joint = _GreedyJoint()
    assert isinstance(joint, JointSelector) and isinstance(
        _PairwiseScorer()(ScoringBatch(ids=ids, outputs=torch.eye(B))), PairwiseScores
    )
    sel = select_batch(model, x, y, ids, k=K, scorer=_PairwiseScorer(), selector=joint)
    assert sel.indices.shape == (K,) and sel.indices.unique().numel() == K
    assert set(sel.stats) == {"set_score"}  # no per-example means of pairwise scores
    with torch.no_grad():
        embeddings = model.eval()(x)
    chosen = sel.indices
    expected = (embeddings[chosen] @ embeddings[chosen].T).sum()
    torch.testing.assert_close(sel.stats["set_score"], expected)


# ------------------------------------------------------------------------------- policies


def test_score_after_waits_the_given_steps():
    policy = ScoreAfter(3)
    assert [policy.should_score(step) for step in range(6)] == [False] * 3 + [True] * 3
    assert ScoreAfter(0).should_score(0)
    assert all(AlwaysScore().should_score(step) for step in range(5))
    assert policy.state_dict() == {} and AlwaysScore().state_dict() == {}
    with pytest.raises(ValueError, match="steps"):
        ScoreAfter(-1)


# ------------------------------------------------------------------------------ host syncs

SELECTORS = {
    "top-k": TopKSelector,
    "uniform": lambda: UniformSelector(seed=0),
    "softmax": lambda: SoftmaxSampler(seed=0),
    "rank": lambda: RankSelector(seed=0),
    "selective-backprop": lambda: SelectiveBackpropSelector(seed=0, history_size=64),
}
SCORERS = [
    pytest.param(lambda: Learnability(LearnerLoss(), _reference()), id="fresh learnability"),
    pytest.param(_stale_learnability, id="stale learnability"),
    pytest.param(_reference, id="reference"),
    pytest.param(GradNormBound, id="grad-norm bound"),
    pytest.param(Entropy, id="entropy"),
]


@pytest.mark.parametrize("make_scorer", SCORERS)
@pytest.mark.parametrize("make_selector", list(SELECTORS.values()), ids=list(SELECTORS))
def test_select_batch_makes_no_host_sync_after_the_first_call(make_scorer, make_selector):
    model, scorer, selector = _model(), make_scorer(), make_selector()

    def step(seed):
        x, y, ids = _super_batch(seed)
        sel = select_batch(model, x, y, ids, k=K, scorer=scorer, selector=selector)
        trained = ids.index_select(0, sel.indices)
        scorer.observe(trained, torch.rand(K))  # the training step's losses, remembered
        return sel

    step(0)  # warm-up
    with count_host_syncs() as syncs:
        for seed in (1, 2):
            step(seed)
    assert syncs.total == 0, syncs.counts


def test_scoring_keeps_a_frozen_submodule_frozen():
    """Restoring only the top module's mode would unfreeze a BatchNorm the user froze."""
    from siftdata.online import TopKSelector, select_batch
    from siftdata.scoring.scorers import LearnerLoss

    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    )
    model[1].eval()
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    select_batch(model, x, y, torch.arange(8), k=2, scorer=LearnerLoss(), selector=TopKSelector())
    assert model.training and model[0].training and not model[1].training


class _Pinned:
    """Stands for a pinned CPU tensor (pinning needs a GPU build; the counter only asks)."""

    device = torch.device("cpu")

    def __init__(self, pinned):
        self.pinned = pinned

    def is_pinned(self):
        return self.pinned


def test_the_sync_counter_ignores_only_asynchronous_pinned_copies():
    from siftdata.training.diagnostics import _crosses_devices

    to_copy = torch.ops.aten._to_copy.default
    cuda = {"device": torch.device("cuda")}
    assert not _crosses_devices(to_copy, (_Pinned(True),), {**cuda, "non_blocking": True})
    assert _crosses_devices(to_copy, (_Pinned(False),), {**cuda, "non_blocking": True})
    assert _crosses_devices(to_copy, (_Pinned(True),), cuda)  # blocking: the host waits
    assert not _crosses_devices(to_copy, (torch.zeros(2),), {"device": torch.device("cpu")})
