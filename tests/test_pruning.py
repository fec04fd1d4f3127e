"""InfoBatch-style epoch pruning: announced epoch lengths, the drop rule and its exact unbiasedness
by enumeration, per-batch LR schedules that end on time, mid-epoch resume, and bad input."""

import io
import itertools
import math
import warnings
from collections import Counter

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, TensorDataset

from siftdata.online.infobatch import InfoBatchSampler, InfoBatchSource
from siftdata.training.diagnostics import count_host_syncs


def _half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def _num_dropped(n: int, r: float, m: float) -> int:
    """``D = round(r·M)``, ``M = round(m·N)``, both half up; at most ``M − 1``."""
    big_m = _half_up(m * n)
    return min(_half_up(r * big_m), big_m - 1)


def _loss_table(n: int, seed: int = 0) -> torch.Tensor:
    """Distinct, right-skewed losses (most small, a long tail): exponential draws."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (-torch.log1p(-u)).float()


def _losses(indices: torch.Tensor, epoch: int, table: torch.Tensor) -> torch.Tensor:
    """Deterministic 'training losses' that shrink with the epoch."""
    return table[indices] / (1 + epoch)


def _roundtrip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


def _drop_set(sampler_or_source) -> frozenset[int]:
    state = sampler_or_source.state_dict()
    return frozenset(range(state["weights"].numel())) - set(state["order"].tolist())


CASES = [  # (N, E, r, delta, m)
    (40, 8, 0.5, 0.875, 0.5),
    (37, 7, 0.3, 0.5, 0.6),  # E·δ = 3.5: epochs 3 … 6 must be full with weights exactly 1
    (25, 5, 0.9, 1.0, 0.2),  # M = 5, round(4.5) = 5 capped at M − 1 = 4
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("via", ["batch_sampler", "data_loader"])
def test_announced_lengths_equal_the_iterated_ones(case, via):
    n, epochs, r, delta, m = case
    sampler = InfoBatchSampler(n, epochs=epochs, prune_ratio=r, delta=delta, low_share=m, seed=3)
    table = _loss_table(n)
    bs = 4
    loader = (
        BatchSampler(sampler, bs, drop_last=False)
        if via == "batch_sampler"
        else DataLoader(TensorDataset(torch.arange(n)), batch_size=bs, sampler=sampler)
    )
    served = []
    for epoch in range(epochs + 1):  # one past E: a full epoch
        announced_batches = len(loader)
        seen, batches = [], 0
        for batch in loader:
            idx = torch.as_tensor(batch[0] if via == "data_loader" else batch)
            seen += idx.tolist()
            batches += 1
            sampler.update(idx, _losses(idx, epoch, table))
        assert sampler.epoch == epoch and batches == announced_batches
        assert len(set(seen)) == len(seen) == sampler.epoch_length(epoch)
        weights = sampler.weights(torch.arange(n))
        if 1 <= epoch < math.floor(delta * epochs):
            assert len(seen) == n - _num_dropped(n, r, m)
        else:
            assert len(seen) == n and torch.equal(weights, torch.ones(n))
        served.append(len(seen))
    assert served[:epochs] == sampler.epoch_lengths()
    assert sampler.num_batches(bs) == sum(-(-length // bs) for length in served[:epochs])
    assert sampler.passes_saved() == pytest.approx(1 - sum(served[:epochs]) / (epochs * n))


def test_source_lengths_match_one_position_at_a_time():
    n, epochs = 37, 7
    source = InfoBatchSource(n, epochs=epochs, prune_ratio=0.3, delta=0.5, low_share=0.6)
    table, per_epoch = _loss_table(n), Counter()
    for _ in range(sum(source.epoch_lengths())):
        pos = source.next(1)
        per_epoch[source.epoch] += 1
        source.observe(pos, _losses(pos, source.epoch, table))
        if source.epoch >= 3:
            assert torch.equal(source.weights(torch.arange(n)), torch.ones(n))
    assert [per_epoch[e] for e in range(epochs)] == source.epoch_lengths()
    assert source.epoch_lengths() == [37, 30, 30, 37, 37, 37, 37]  # M = 22, D = 7
    assert source.steps_per_epoch(5) == [length // 5 for length in source.epoch_lengths()]


def test_dropped_examples_are_low_loss_and_kept_low_ones_are_upweighted():
    n, r, m = 30, 0.4, 0.5
    sampler = InfoBatchSampler(n, epochs=4, prune_ratio=r, low_share=m, delta=1.0, seed=1)
    table = _loss_table(n)
    sampler.update(torch.arange(n), table)
    sampler.set_epoch(1)
    big_m, d = _half_up(m * n), _num_dropped(n, r, m)
    low = set(torch.argsort(table)[:big_m].tolist())
    dropped = _drop_set(sampler)
    assert len(dropped) == d and dropped <= low
    weights = sampler.weights(torch.arange(n)).tolist()
    for i in range(n):
        expected = 0.0 if i in dropped else big_m / (big_m - d) if i in low else 1.0
        assert weights[i] == pytest.approx(expected)
    stats = sampler.epoch_stats()
    assert stats["num_dropped"] == d and stats["length"] == n - d == len(sampler)
    assert stats["dropped_at_or_above_mean"] == 0.0  # right-skewed: the low half is below the mean
    assert stats["mean_loss"] == pytest.approx(float(table.mean()))


def test_unseen_examples_rank_last():
    sampler = InfoBatchSampler(10, epochs=3, delta=1.0, low_share=0.5, prune_ratio=0.5)
    sampler.update(torch.tensor([7, 8, 9, 1, 2, 3]), torch.tensor([5.0, 4.0, 3.0, 2.0, 9.0, 1.0]))
    sampler.set_epoch(1)
    low = {3, 1, 9, 8, 7}
    assert _drop_set(sampler) <= low and sampler.epoch_stats()["unseen_in_low"] == 0
    fresh = InfoBatchSampler(10, epochs=3, delta=1.0, low_share=0.5, prune_ratio=0.5)
    fresh.update(torch.tensor([4, 5, 6]), torch.tensor([1.0, 2.0, 3.0]))
    fresh.set_epoch(1)
    assert fresh.epoch_stats()["unseen_in_low"] == 2  # only 3 of M = 5 have a loss


@pytest.mark.parametrize(("n", "r", "m", "big_m", "d"), [(6, 0.34, 0.5, 3, 1), (8, 0.5, 0.5, 4, 2)])
def test_weighted_epoch_sum_is_exactly_unbiased_by_enumeration(n, r, m, big_m, d):
    table = _loss_table(n, seed=5)
    values = torch.randn(n, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    low = frozenset(torch.argsort(table)[:big_m].tolist())
    weights_of, counts = {}, Counter()
    for seed in range(300):
        sampler = InfoBatchSampler(n, epochs=3, prune_ratio=r, low_share=m, delta=1.0, seed=seed)
        sampler.update(torch.arange(n), table)
        sampler.set_epoch(1)
        dropped = _drop_set(sampler)
        weights = sampler.weights(torch.arange(n)).double()
        assert torch.equal(weights_of.setdefault(dropped, weights), weights)  # set → weights
        counts[dropped] += 1
    every_subset = {frozenset(s) for s in itertools.combinations(sorted(low), d)}
    assert set(counts) == every_subset  # each drop set of size D from W appears
    expected = 1 / len(every_subset)
    assert all(abs(c / 300 - expected) < 0.1 for c in counts.values())
    # each drop set is equally likely by construction: the expectation is their plain mean
    mean_sum = sum(float(weights_of[s] @ values) for s in every_subset) / len(every_subset)
    assert mean_sum == pytest.approx(float(values.sum()), rel=1e-6, abs=1e-9)


def _linear_problem(n: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(n, generator=g)
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        model.weight.zero_(), model.bias.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return x, y, model, opt


def _final_one_cycle_lr(total: int, max_lr: float) -> tuple[float, torch.optim.Optimizer]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=max_lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    for _ in range(total):
        opt.step()
        scheduler.step()
    return scheduler.get_last_lr()[0]


def _step(model, opt, scheduler, x, y, w) -> torch.Tensor:
    per_example = (model(x).squeeze(1) - y).square()
    opt.zero_grad()
    (per_example * w).mean().backward()
    opt.step()
    scheduler.step()
    return per_example.detach()


@pytest.mark.parametrize("drop_last", [False, True])
def test_one_cycle_lr_ends_exactly_with_the_sampler(drop_last):
    n, epochs, bs = 50, 6, 7
    x, y, model, opt = _linear_problem(n)
    sampler = InfoBatchSampler(n, epochs=epochs, delta=0.75, seed=2)
    total = sampler.num_batches(bs, drop_last=drop_last)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)
    data = TensorDataset(x, y, torch.arange(n))
    loader = DataLoader(data, batch_size=bs, sampler=sampler, drop_last=drop_last)
    steps = 0
    for _ in range(epochs):
        for xb, yb, idx in loader:
            sampler.update(idx, _step(model, opt, scheduler, xb, yb, sampler.weights(idx)))
            steps += 1
    assert steps == total < epochs * math.ceil(n / bs)
    assert scheduler.get_last_lr()[0] == pytest.approx(_final_one_cycle_lr(total, 0.1))
    with pytest.raises(ValueError, match="Tried to step"):
        scheduler.step()


def test_one_cycle_lr_ends_exactly_with_the_source():
    n, epochs, size = 50, 6, 7
    x, y, model, opt = _linear_problem(n)
    source = InfoBatchSource(n, epochs=epochs, delta=0.75, seed=2)
    total = source.total_steps(size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total)
    per_epoch = Counter()
    for _ in range(total):
        pos = source.next(size)
        per_epoch[source.epoch] += 1
        source.observe(pos, _step(model, opt, scheduler, x[pos], y[pos], source.weights(pos)))
    assert [per_epoch[e] for e in range(epochs)] == source.steps_per_epoch(size)
    assert scheduler.get_last_lr()[0] == pytest.approx(_final_one_cycle_lr(total, 0.1))
    with pytest.raises(ValueError, match="Tried to step"):
        scheduler.step()


def _drive_sampler(sampler, table, epochs, bs, stop_after=None):
    """``epochs`` iter() calls through a BatchSampler; stop after ``stop_after`` batches."""
    record, batches = [], BatchSampler(sampler, bs, drop_last=False)
    for _ in range(epochs):
        for batch in batches:
            idx = torch.tensor(batch)
            record.append((batch, sampler.weights(idx).tolist()))
            sampler.update(idx, _losses(idx, sampler.epoch, table))
            if stop_after is not None and len(record) == stop_after:
                return record
    return record


def test_sampler_resumes_mid_epoch_exactly():
    n, epochs, bs = 30, 5, 4
    table, make = _loss_table(n), lambda: InfoBatchSampler(n, epochs=epochs, delta=1.0, seed=9)
    full = _drive_sampler(make(), table, epochs, bs)
    first = make()
    head = _drive_sampler(first, table, 2, bs, stop_after=8 + 3)  # epoch 0 (8 batches) + 3
    assert first.epoch == 1 and 0 < first.cursor < first.epoch_length(1)
    resumed = make()
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    assert len(resumed) == first.epoch_length(1)  # the full epoch's length, not the remainder
    tail = _drive_sampler(resumed, table, epochs - 1, bs)
    assert head + tail == full


def test_source_resumes_mid_epoch_exactly():
    n, epochs, size = 30, 5, 4
    table = _loss_table(n)

    def drive(source, steps):
        out = []
        for _ in range(steps):
            pos = source.next(size)
            out.append((pos.tolist(), source.weights(pos).tolist(), source.epoch))
            source.observe(pos, _losses(pos, source.epoch, table))
        return out

    def make():
        return InfoBatchSource(n, epochs=epochs, delta=1.0, seed=9)

    total, half = make().total_steps(size), 7 + 3  # epoch 0 has 7 steps of 4
    full = drive(make(), total)
    first = make()
    head = drive(first, half)
    resumed = make()
    resumed.load_state_dict(_roundtrip(first.state_dict()))
    assert head + drive(resumed, total - half) == full


def test_batch_sampler_plans_once_per_epoch_and_iter_mid_epoch_continues():
    n, epochs = 23, 4
    sampler = InfoBatchSampler(n, epochs=epochs, delta=1.0, seed=4)
    batches, table = BatchSampler(sampler, 5, drop_last=True), _loss_table(n)
    for epoch in range(epochs + 2):
        for _ in range(3):
            announced = len(batches)  # len() never plans
        served = [i for batch in batches for i in batch]
        assert sampler.epoch == epoch and len(served) == announced * 5
        assert served == sampler.state_dict()["order"].tolist()[: announced * 5]
        sampler.update(torch.tensor(served), _losses(torch.tensor(served), epoch, table))
    order = sampler.state_dict()["order"].tolist()
    sampler.set_epoch(sampler.epoch)
    first = iter(sampler)
    head = [next(first) for _ in range(4)]
    tail = list(iter(sampler))  # a second iter() mid-epoch continues from the cursor
    assert head + tail == sampler.state_dict()["order"].tolist() == order and list(first) == []
    stale = iter(sampler)  # the epoch was served: this iter() starts the next one
    assert sampler.epoch == epochs + 2 and next(stale) in range(n)
    with pytest.warns(RuntimeWarning, match=r"set_epoch\(1\) was called while epoch 6 is being"):
        sampler.set_epoch(1)  # the rest of epoch 6 is dropped: never without a word
    assert list(stale) == [] and sampler.epoch == 1 and sampler.cursor == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.set_epoch(2)  # between epochs: nothing to say
        again = iter(sampler)
        next(again)
        del again  # an iterator dropped part-way is closed: no warning either
        sampler.set_epoch(3)
    assert sampler.epoch == 3 and sampler.cursor == 0


def test_a_state_from_another_seed_is_refused():
    first = InfoBatchSampler(20, epochs=3, seed=1)
    other = InfoBatchSampler(20, epochs=3, seed=2)
    with pytest.raises(ValueError, match="planned with seed 1, this one has seed 2"):
        other.load_state_dict(first.state_dict())
    source = InfoBatchSource(20, epochs=3, seed=1)
    source.load_state_dict(InfoBatchSource(20, epochs=3, seed=1).state_dict())


def test_set_epoch_is_a_function_of_seed_epoch_and_losses_and_leaves_global_rng_alone():
    n, table = 40, _loss_table(40)
    rng_state = torch.random.get_rng_state()
    a = InfoBatchSampler(n, epochs=6, seed=11)
    b = InfoBatchSampler(n, epochs=6, seed=11)
    for s in (a, b):
        s.update(torch.arange(n), table)
        list(BatchSampler(s, 8, drop_last=False))
    a.set_epoch(2)
    plan = a.state_dict()
    a.set_epoch(2)
    b.set_epoch(2)
    for other in (a.state_dict(), b.state_dict()):
        assert torch.equal(other["order"], plan["order"])
        assert torch.equal(other["weights"], plan["weights"])
    a.set_epoch(3)
    assert not torch.equal(a.state_dict()["order"], plan["order"])
    source = InfoBatchSource(n, epochs=6, seed=11)
    for _ in range(20):
        source.observe(source.next(8), torch.rand(8, generator=torch.Generator()))
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_source_makes_no_host_sync_within_an_epoch():
    source = InfoBatchSource(64, epochs=4, delta=1.0)
    source.next(8)  # epoch 0 planned at construction
    with count_host_syncs() as syncs:
        for _ in range(6):
            pos = source.next(8)
            source.weights(pos)
            source.observe(pos, torch.ones(8))
    assert syncs.total == 0


def test_drop_count_keeps_one_well_learned_example():
    sampler = InfoBatchSampler(2, epochs=4, prune_ratio=0.9, low_share=0.5, delta=1.0)
    assert sampler.epoch_lengths() == [2, 2, 2, 2]  # M = 1: dropping it would leave no weight


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prune_ratio": 0.0}, "prune_ratio must be in \\(0, 1\\)"),
        ({"prune_ratio": 1.0}, "prune_ratio must be in \\(0, 1\\)"),
        ({"delta": 0.0}, "delta must be in \\(0, 1\\]"),
        ({"delta": 1.5}, "delta must be in \\(0, 1\\]"),
        ({"low_share": 1.0}, "low_share must be in \\(0, 1\\)"),
        ({"low_share": -0.1}, "low_share must be in \\(0, 1\\)"),
        ({"epochs": 0}, "epochs must be in \\[1"),
        ({"num_examples": 0}, "num_examples must be in \\[1"),
        ({"seed": 1.5}, "seed must be an int"),
    ],
)
@pytest.mark.parametrize("cls", [InfoBatchSampler, InfoBatchSource])
def test_bad_arguments_raise(cls, kwargs, match):
    args = {"num_examples": 10, "epochs": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        cls(args.pop("num_examples"), **args)


def test_bad_updates_sizes_and_states_raise():
    sampler = InfoBatchSampler(10, epochs=4)
    with pytest.raises(ValueError, match="one value per index"):
        sampler.update(torch.arange(3), torch.ones(4))
    with pytest.raises(ValueError, match="one value per index"):
        sampler.update(torch.arange(3), torch.ones(3, 1))
    with pytest.raises(ValueError, match="indices must be a 1-D integer tensor"):
        sampler.update(torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        sampler.update(torch.arange(2), torch.tensor([1.0, math.nan]), check_values=True)
    with pytest.raises(ValueError, match="batch_size must be in"):
        sampler.num_batches(0)
    with pytest.raises(ValueError, match="examples, this one has 10"):
        sampler.load_state_dict(InfoBatchSampler(11, epochs=4).state_dict())
    pruned = InfoBatchSampler(10, epochs=4, delta=1.0)
    pruned.set_epoch(1)
    with pytest.raises(ValueError, match="were prune_ratio"):
        InfoBatchSampler(10, epochs=4, delta=1.0, prune_ratio=0.2).load_state_dict(
            pruned.state_dict()
        )
    source = InfoBatchSource(10, epochs=4, delta=1.0)  # M = 5, D = round(2.5) = 3
    with pytest.raises(ValueError, match="size must be an int in \\[1, 7\\]"):
        source.next(9)
    with pytest.raises(ValueError, match="one value per index"):
        source.observe(source.next(4), torch.ones(5))
