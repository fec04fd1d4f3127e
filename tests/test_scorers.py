"""Scorers: each against slow reference code on tiny tensors, what composed scorers need, missing
batch fields, state round trips and id checks."""

import math

import pytest
import torch

from siftdata.scoring.loss_memory import LossMemory
from siftdata.scoring.scorers import (
    Entropy,
    GradNormBound,
    Learnability,
    LearnerLoss,
    LeastConfidence,
    Margin,
    Need,
    Negated,
    ReferenceLoss,
    RememberedLoss,
    Scorer,
    ScoringBatch,
    needs_forward,
)
from siftdata.store import ScoreTable

N, C = 6, 4


def _batch(seed=0, ids=None):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(N, C, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (N,), generator=g)
    loss = torch.rand(N, generator=g, dtype=torch.float64) * 3
    ids = torch.arange(N) if ids is None else ids
    return ScoringBatch(ids=ids, labels=labels, outputs=logits, loss=loss)


def _softmax_row(z):
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def _rows(batch):
    return batch.outputs.tolist()


POOL_IDS = torch.tensor([710, 42, 9000, 3, 128, 55, 61])  # not positions, not sorted
REFERENCE = torch.tensor([0.7, 1.1, 0.2, 2.0, 0.05, 1.5, 0.9], dtype=torch.float64)


def _slow_reference(ids):
    table = dict(zip(POOL_IDS.tolist(), REFERENCE.tolist(), strict=True))
    return torch.tensor([table[i] for i in ids.tolist()], dtype=torch.float64)


def _reference_scorer():
    return ReferenceLoss(ScoreTable(POOL_IDS, REFERENCE))


BATCH_IDS = torch.tensor([9000, 3, 710, 61, 42, 128])


# --------------------------------------------------------------------- exactness vs slow code


def test_learner_loss_is_the_batch_loss():
    batch = _batch()
    assert torch.equal(LearnerLoss()(batch), batch.loss)


def test_grad_norm_bound_is_the_autograd_gradient_norm_at_the_logits():
    batch = _batch()
    slow = []
    for z, y in zip(batch.outputs, batch.labels, strict=True):
        z = z.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(z[None], y[None]).backward()
        slow.append(float(z.grad.norm()))
    torch.testing.assert_close(GradNormBound()(batch), torch.tensor(slow, dtype=torch.float64))


def test_entropy_least_confidence_and_margin_match_per_row_code():
    batch = _batch(1)
    probs = [_softmax_row(z) for z in _rows(batch)]
    entropy = [-sum(p * math.log(p) for p in row) for row in probs]
    least = [1 - max(row) for row in probs]
    margin = [sorted(row)[-1] - sorted(row)[-2] for row in probs]
    for scorer, slow in ((Entropy(), entropy), (LeastConfidence(), least), (Margin(), margin)):
        torch.testing.assert_close(scorer(batch), torch.tensor(slow, dtype=torch.float64))


def test_reference_loss_looks_up_non_position_ids():
    batch = _batch(ids=BATCH_IDS)
    torch.testing.assert_close(_reference_scorer()(batch), _slow_reference(BATCH_IDS))


def test_reference_loss_moves_its_table_to_the_ids_device():
    scorer = _reference_scorer()
    out = scorer(ScoringBatch(ids=BATCH_IDS.to("meta")))  # a second device without a GPU
    assert out.device.type == "meta" and out.shape == (N,)
    assert scorer.table.device.type == "meta"
    assert scorer(ScoringBatch(ids=BATCH_IDS.to("meta"))).device.type == "meta"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_reference_and_remembered_loss_follow_ids_to_cuda():
    ids = BATCH_IDS.cuda()
    reference = _reference_scorer()
    torch.testing.assert_close(reference(ScoringBatch(ids=ids)).cpu(), _slow_reference(BATCH_IDS))
    remembered = RememberedLoss(LossMemory(POOL_IDS, initial=1.0))
    remembered.observe(ids[:2], torch.tensor([0.5, 0.25], device="cuda"))
    out = remembered(ScoringBatch(ids=ids))
    assert out.device.type == "cuda" and remembered.memory.device.type == "cuda"
    assert out.tolist() == [0.5, 0.25, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("cap", [None, 1.0, math.log(C)])
def test_learnability_is_capped_learner_minus_reference(cap):
    batch = _batch(2, ids=BATCH_IDS)
    scorer = Learnability(LearnerLoss(), _reference_scorer(), learner_loss_cap=cap)
    reference = _slow_reference(BATCH_IDS).tolist()
    slow = [
        (v if cap is None else min(v, cap)) - r
        for v, r in zip(batch.loss.tolist(), reference, strict=True)
    ]
    torch.testing.assert_close(scorer(batch), torch.tensor(slow, dtype=torch.float64))


def test_cap_changes_the_scores():  # guards the test above: the batch has losses above the cap
    batch = _batch(2, ids=BATCH_IDS)
    assert float(batch.loss.max()) > 1.0
    capped = Learnability(LearnerLoss(), _reference_scorer(), learner_loss_cap=1.0)
    uncapped = Learnability(LearnerLoss(), _reference_scorer())
    assert not torch.equal(capped(batch), uncapped(batch))


def test_negated_flips_the_sign_and_forwards_everything():
    batch = _batch(3, ids=BATCH_IDS)
    negated = Negated(_reference_scorer())
    torch.testing.assert_close(negated(batch), -_slow_reference(BATCH_IDS))
    assert torch.equal(Negated(Margin())(batch), -Margin()(batch))
    memory = LossMemory(POOL_IDS, initial=1.0)
    stale = Negated(RememberedLoss(memory))
    assert stale.remembers and stale.needs == frozenset({Need.IDS})
    stale.observe(torch.tensor([42]), torch.tensor([0.5]))
    assert stale(ScoringBatch(ids=torch.tensor([42, 3]))).tolist() == [-0.5, -1.0]
    with pytest.raises(ValueError, match="not in the table"):
        stale.check_ids(torch.tensor([43]))


def test_remembered_loss_observe_then_lookup():
    memory = LossMemory(POOL_IDS, initial=math.log(C))
    scorer = RememberedLoss(memory)
    slow = dict.fromkeys(POOL_IDS.tolist(), math.log(C))
    g = torch.Generator().manual_seed(4)
    for _ in range(4):
        trained = POOL_IDS[torch.randperm(7, generator=g)[:3]]
        losses = torch.rand(3, generator=g)
        scorer.observe(trained, losses)
        slow.update(zip(trained.tolist(), losses.tolist(), strict=True))
        expected = torch.tensor([slow[i] for i in BATCH_IDS.tolist()])
        assert torch.equal(scorer(ScoringBatch(ids=BATCH_IDS)), expected)


# ------------------------------------------------------------------------- needs and errors


def test_needs_of_single_and_composed_scorers():
    memory = LossMemory(POOL_IDS, initial=1.0)
    stale = Learnability(RememberedLoss(memory), _reference_scorer())
    fresh = Learnability(LearnerLoss(), _reference_scorer())
    expected = [
        (LearnerLoss(), {Need.LOSS}, True),
        (GradNormBound(), {Need.OUTPUTS}, True),
        (Entropy(), {Need.OUTPUTS}, True),
        (LeastConfidence(), {Need.OUTPUTS}, True),
        (Margin(), {Need.OUTPUTS}, True),
        (_reference_scorer(), {Need.IDS}, False),
        (RememberedLoss(memory), {Need.IDS}, False),
        (Negated(_reference_scorer()), {Need.IDS}, False),
        (Negated(LearnerLoss()), {Need.LOSS}, True),
        (stale, {Need.IDS}, False),
        (fresh, {Need.LOSS, Need.IDS}, True),
    ]
    for scorer, needs, forward in expected:
        assert isinstance(scorer, Scorer)
        assert scorer.needs == frozenset(needs), scorer
        assert needs_forward(scorer) is forward, scorer
    assert stale.remembers and not fresh.remembers


def test_stale_learnability_scores_from_ids_alone():
    memory = LossMemory(POOL_IDS, initial=2.0)
    scorer = Learnability(RememberedLoss(memory), _reference_scorer(), learner_loss_cap=1.5)
    scorer.observe(torch.tensor([710, 3]), torch.tensor([0.25, 4.0], dtype=torch.float64))
    ids = torch.tensor([710, 3, 42])
    got = scorer(ScoringBatch(ids=ids))  # no labels, outputs or loss
    expected = torch.tensor([0.25, 1.5, 1.5], dtype=torch.float64) - _slow_reference(ids)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(
    "scorer, missing",
    [
        (LearnerLoss(), "loss"),
        (GradNormBound(), "outputs"),
        (Entropy(), "outputs"),
        (LeastConfidence(), "outputs"),
        (Margin(), "outputs"),
        (Negated(LearnerLoss()), "loss"),
        (Learnability(LearnerLoss(), ReferenceLoss(ScoreTable(POOL_IDS, REFERENCE))), "loss"),
    ],
)
def test_a_missing_batch_field_is_a_clear_error(scorer, missing):
    with pytest.raises(ValueError, match=f"needs the batch's {missing}, which is missing"):
        scorer(ScoringBatch(ids=BATCH_IDS))


def test_grad_norm_bound_needs_labels():
    batch = _batch()
    with pytest.raises(ValueError, match="labels, which is missing"):
        GradNormBound()(ScoringBatch(ids=batch.ids, outputs=batch.outputs))


def test_bad_construction_raises():
    with pytest.raises(ValueError, match="LossMemory"):
        RememberedLoss(torch.zeros(3))
    with pytest.raises(ValueError, match="ScoreTable"):
        ReferenceLoss({3: 1.0})
    with pytest.raises(ValueError, match="one value per id"):
        ReferenceLoss(ScoreTable(torch.arange(3), torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="cap"):
        Learnability(LearnerLoss(), _reference_scorer(), learner_loss_cap=0.0)


def test_check_ids_raises_for_unknown_ids():
    known, unknown = POOL_IDS[:4], torch.tensor([3, 4])
    memory = LossMemory(POOL_IDS, initial=1.0)
    checked = [
        _reference_scorer(),
        RememberedLoss(memory),
        Negated(_reference_scorer()),
        Learnability(LearnerLoss(), _reference_scorer()),
        Learnability(
            RememberedLoss(memory), ReferenceLoss(ScoreTable(POOL_IDS[:5], REFERENCE[:5]))
        ),
    ]
    for scorer in checked:
        scorer.check_ids(known)
        with pytest.raises(ValueError, match="not in the table"):
            scorer.check_ids(unknown)
    # the reference side of a learnability scorer is checked too
    with pytest.raises(ValueError, match="not in the table"):
        checked[-1].check_ids(POOL_IDS)
    for scorer in (LearnerLoss(), GradNormBound(), Entropy()):  # nothing cached by id
        scorer.check_ids(unknown)


# ----------------------------------------------------------------------------------- state


def test_remembered_loss_state_round_trips_inside_learnability():
    def make():
        memory = LossMemory(POOL_IDS, initial=1.0)
        return Learnability(RememberedLoss(memory), _reference_scorer(), learner_loss_cap=2.0)

    a = make()
    a.observe(torch.tensor([9000, 55, 61]), torch.tensor([0.5, 3.0, 1.25]))
    state = a.state_dict()
    assert set(state) == {"learner", "reference"} and state["reference"] == {}
    b = make()
    assert not torch.equal(b(ScoringBatch(ids=POOL_IDS)), a(ScoringBatch(ids=POOL_IDS)))
    b.load_state_dict(state)
    assert torch.equal(b(ScoringBatch(ids=POOL_IDS)), a(ScoringBatch(ids=POOL_IDS)))
    a.observe(torch.tensor([9000]), torch.tensor([0.0]))  # the saved state was a copy
    b_memory = b.learner.memory
    assert float(b_memory.lookup(torch.tensor([9000]))) == 0.5
    assert torch.equal(b_memory.seen, a.learner.memory.seen)


def test_stateless_scorers_have_empty_state():
    for scorer in (LearnerLoss(), GradNormBound(), Entropy(), _reference_scorer()):
        assert scorer.state_dict() == {} and not scorer.remembers
        scorer.load_state_dict({})
        scorer.observe(BATCH_IDS, torch.rand(N))  # ignored
