"""LossMemory: lookups, updates, state round trip and bad input."""

import math

import pytest
import torch

from siftdata.online import LossMemory, build_method


def test_unseen_examples_hold_the_initial_loss_and_updates_stick():
    mem = LossMemory(6, initial=math.log(10))
    assert torch.allclose(mem.lookup(torch.tensor([0, 5])), torch.full((2,), math.log(10)))
    mem.update(torch.tensor([1, 4]), torch.tensor([0.5, 2.0]))
    assert torch.equal(mem.lookup(torch.tensor([4, 1, 0])), torch.tensor([2.0, 0.5, math.log(10)]))
    assert float(mem.seen_fraction()) == pytest.approx(2 / 6)


def test_update_detaches_and_state_round_trips():
    mem = LossMemory(4, initial=1.0)
    losses = torch.tensor([3.0, 4.0], requires_grad=True)
    mem.update(torch.tensor([2, 3]), losses * 1)
    assert not mem.losses.requires_grad
    other = LossMemory(4, initial=0.0)
    other.load_state_dict(mem.state_dict())
    assert torch.equal(other.losses, mem.losses) and torch.equal(other.seen, mem.seen)
    with pytest.raises(ValueError, match="examples"):
        LossMemory(5, initial=0.0).load_state_dict(mem.state_dict())


@pytest.mark.parametrize(
    "ids, losses, message",
    [
        (torch.tensor([0, 9]), torch.tensor([1.0, 1.0]), "in \\[0, 4\\)"),
        (torch.tensor([-1]), torch.tensor([1.0]), "in \\[0, 4\\)"),
        (torch.tensor([0.0]), torch.tensor([1.0]), "integer"),
        (torch.tensor([0, 1]), torch.tensor([1.0]), "one value per id"),
        (torch.tensor([0, 1]), torch.tensor([1.0, float("nan")]), "non-finite"),
    ],
)
def test_bad_updates_raise_and_change_nothing(ids, losses, message):
    mem = LossMemory(4, initial=1.0)
    with pytest.raises(ValueError, match=message):
        mem.update(ids, losses)
    assert torch.equal(mem.losses, torch.ones(4)) and not mem.seen.any()


def test_bad_construction_raises():
    with pytest.raises(ValueError):
        LossMemory(0, initial=1.0)
    with pytest.raises(ValueError, match="finite"):
        LossMemory(3, initial=float("inf"))


def test_stale_suffix_builds_stale_variants_only_for_learner_loss_methods():
    m = build_method("learnability+stale")
    assert m.learner_scores == "stale" and m.name == "learnability+stale" and not m.scores_fresh
    assert build_method("hard-learner+stale").needs_learner_loss
    for name in ("uniform+stale", "easy-reference+stale"):
        with pytest.raises(ValueError, match="learner's loss"):
            build_method(name)
    with pytest.raises(ValueError, match="unknown method"):
        build_method("magic+stale")


def test_learner_loss_cap_reaches_the_learnability_rule_only():
    learner, reference = torch.tensor([5.0, 1.0]), torch.tensor([3.0, 0.5])
    capped = build_method("learnability+stale", learner_loss_cap=2.0)
    assert torch.equal(capped.score(learner, reference), torch.tensor([-1.0, 0.5]))
    hard = build_method("hard-learner", learner_loss_cap=2.0)
    assert torch.equal(hard.score(learner, None), learner)
    with pytest.raises(ValueError, match="learner_loss_cap"):
        build_method("learnability", learner_loss_cap=-1.0)
