"""LossMemory: lookups and updates by id against a slow dict, state round trip, bad input, and the
stale methods built on it."""

import math

import pytest
import torch

import siftdata
from siftdata.online import SelectionConfig, build_method, parse_method
from siftdata.scoring.loss_memory import LossMemory
from siftdata.scoring.scorers import RememberedLoss, ScoringBatch
from siftdata.store import ScoreTable
from siftdata.training.diagnostics import count_host_syncs


def test_exported_from_the_package_and_online():
    assert siftdata.LossMemory is LossMemory and siftdata.online.LossMemory is LossMemory


def test_unseen_examples_hold_the_initial_loss_and_updates_stick():
    mem = LossMemory(6, initial=math.log(10))
    assert torch.allclose(mem.lookup(torch.tensor([0, 5])), torch.full((2,), math.log(10)))
    mem.update(torch.tensor([1, 4]), torch.tensor([0.5, 2.0]))
    assert torch.equal(mem.lookup(torch.tensor([4, 1, 0])), torch.tensor([2.0, 0.5, math.log(10)]))
    assert float(mem.seen_fraction()) == pytest.approx(2 / 6)


def test_arbitrary_ids_match_a_slow_dict():
    g = torch.Generator().manual_seed(0)
    ids = 1000 + torch.randperm(100, generator=g)  # ids 1000..1099, shuffled: not positions
    mem = LossMemory(ids, initial=2.5)
    assert mem.index.order is not None and len(mem) == 100
    slow = dict.fromkeys(ids.tolist(), 2.5)
    for _ in range(5):
        batch = ids[torch.randperm(100, generator=g)[:30]]
        losses = torch.rand(30, generator=g)
        mem.update(batch, losses)
        slow.update(zip(batch.tolist(), losses.tolist(), strict=True))
        query = ids[torch.randint(0, 100, (40,), generator=g)]
        expected = torch.tensor([slow[i] for i in query.tolist()])
        assert torch.equal(mem.lookup(query), expected)
        assert torch.equal(mem.lookup(query, check_values=True), expected)
    n_seen = sum(v != 2.5 for v in slow.values())
    assert float(mem.seen_fraction()) == pytest.approx(n_seen / 100)


def test_unknown_arbitrary_ids_raise_with_check_values():
    mem = LossMemory(1000 + torch.arange(100).flip(0), initial=1.0)
    for unknown in (torch.tensor([1000, 999]), torch.tensor([1100]), torch.tensor([0])):
        with pytest.raises(ValueError, match="not in the table"):
            mem.lookup(unknown, check_values=True)
        with pytest.raises(ValueError, match="not in the table"):
            mem.update(unknown, torch.ones(unknown.shape[0]), check_values=True)
    assert torch.equal(mem.losses, torch.ones(100)) and not mem.seen.any()


@pytest.mark.parametrize("ids", [8, 100 + torch.randperm(8)], ids=["positions", "arbitrary"])
def test_lookup_and_update_make_no_host_sync_by_default(ids):
    mem = LossMemory(ids, initial=1.0)  # building the id index may sync once
    known = mem.index.ids[:5]
    with count_host_syncs() as syncs:
        mem.update(known, torch.rand(5))
        mem.lookup(known)
        mem.seen_fraction()
    assert syncs.total == 0, syncs.counts
    with count_host_syncs() as syncs:
        mem.update(known, torch.rand(5), check_values=True)
    assert syncs.total > 0


def test_update_detaches_and_state_round_trips():
    mem = LossMemory(4, initial=1.0)
    losses = torch.tensor([3.0, 4.0], requires_grad=True)
    mem.update(torch.tensor([2, 3]), losses * 1)
    assert not mem.losses.requires_grad
    other = LossMemory(4, initial=0.0)
    other.load_state_dict(mem.state_dict())
    assert torch.equal(other.losses, mem.losses) and torch.equal(other.seen, mem.seen)
    other.update(torch.tensor([0]), torch.tensor([9.0]))  # the loaded state is a copy
    assert mem.losses[0] == 1.0
    with pytest.raises(ValueError, match="examples"):
        LossMemory(5, initial=0.0).load_state_dict(mem.state_dict())


def test_to_moves_the_memory_and_keeps_its_contents():
    mem = LossMemory(100 + torch.arange(5), initial=1.0)
    mem.update(torch.tensor([103]), torch.tensor([7.0]))
    assert mem.to("cpu") is mem and mem.device == torch.device("cpu")
    assert torch.equal(mem.lookup(torch.tensor([103, 100])), torch.tensor([7.0, 1.0]))


@pytest.mark.parametrize(
    "ids, losses, check_values, message",
    [
        (torch.tensor([0, 9]), torch.tensor([1.0, 1.0]), True, "not in the table"),
        (torch.tensor([-1]), torch.tensor([1.0]), True, "not in the table"),
        (torch.tensor([0, 1]), torch.tensor([1.0, float("nan")]), True, "non-finite"),
        # argument errors raise without check_values too
        (torch.tensor([0.0]), torch.tensor([1.0]), False, "integer"),
        (torch.tensor([0, 1]), torch.tensor([1.0]), False, "one value per id"),
        (torch.tensor([[0, 1]]), torch.tensor([[1.0, 1.0]]), False, "1-D"),
    ],
)
def test_bad_updates_raise_and_change_nothing(ids, losses, check_values, message):
    mem = LossMemory(4, initial=1.0)
    with pytest.raises(ValueError, match=message):
        mem.update(ids, losses, check_values=check_values)
    assert torch.equal(mem.losses, torch.ones(4)) and not mem.seen.any()


def test_bad_construction_raises():
    with pytest.raises(ValueError):
        LossMemory(0, initial=1.0)
    with pytest.raises(ValueError, match="finite"):
        LossMemory(3, initial=float("inf"))
    with pytest.raises(ValueError, match="unique"):
        LossMemory(torch.tensor([3, 1, 3]), initial=0.0)
    with pytest.raises(ValueError, match="integer"):
        LossMemory(torch.tensor([0.0, 1.0]), initial=0.0)


def test_stale_suffix_only_for_learner_loss_methods():
    spec = parse_method("learnability+stale")
    assert spec.stale and spec.name == "learnability+stale" and not spec.scores_fresh
    assert spec.uses_learner_loss and spec.uses_reference
    hard = parse_method("hard-learner+stale")
    assert hard.stale and hard.uses_learner_loss and not hard.scores_fresh
    for name in ("uniform+stale", "easy-reference+stale"):
        with pytest.raises(ValueError, match="learner's loss"):
            parse_method(name)
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("magic+stale")


def test_stale_method_remembers_losses_by_the_pool_ids():
    ids = 500 + torch.randperm(6, generator=torch.Generator().manual_seed(1))
    method = build_method("hard-learner+stale", example_ids=ids, num_classes=10)
    scorer = method.scorer
    assert isinstance(scorer, RememberedLoss) and not method.needs_forward and scorer.remembers
    batch = ScoringBatch(ids=torch.tensor([503, 500]))
    assert torch.allclose(scorer(batch), torch.full((2,), math.log(10)))  # unseen: log C
    scorer.observe(torch.tensor([500, 505]), torch.tensor([0.25, 3.0]))
    assert torch.equal(scorer(batch), torch.tensor([math.log(10), 0.25]).float())
    with pytest.raises(ValueError, match="example_ids and num_classes"):
        build_method("hard-learner+stale", num_classes=10)


def test_learner_loss_cap_reaches_the_learnability_rule_only():
    learner, reference = torch.tensor([5.0, 1.0]), torch.tensor([3.0, 0.5])
    config = SelectionConfig(learner_loss_cap=2.0)
    table = ScoreTable(torch.arange(2), reference)
    kw = {"config": config, "reference": table, "example_ids": 2, "num_classes": 3}
    capped = build_method("learnability+stale", **kw).scorer
    capped.observe(torch.arange(2), learner)
    assert torch.equal(capped(ScoringBatch(ids=torch.arange(2))), torch.tensor([-1.0, 0.5]))
    hard = build_method("hard-learner", **kw).scorer
    assert torch.equal(hard(ScoringBatch(ids=torch.arange(2), loss=learner)), learner)
    with pytest.raises(ValueError, match="learner_loss_cap"):
        SelectionConfig(learner_loss_cap=-1.0)
