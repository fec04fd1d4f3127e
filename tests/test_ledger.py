"""Tests for siftdata.ledger: exact FLOP counts, caching by key, totals and state round trips."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from siftdata.ledger import PHASES, ComputeLedger, count_flops


def _linear(bias=True):
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(784, 512, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(512, 784, generator=g) * 0.01)
    return layer


def test_forward_flops_exact():
    x = torch.randn(64, 784)
    with torch.no_grad():
        out, flops = count_flops(_linear(), x)
    assert out.shape == (64, 512)
    assert flops == 2 * 64 * 784 * 512


def test_training_step_is_three_forwards():
    layer = _linear(bias=False)
    x = torch.randn(64, 784, requires_grad=True)  # backward computes grad input and grad weight

    def step():
        layer(x).square().mean().backward()

    _, fwd = count_flops(layer, x)
    _, total = count_flops(step)
    assert total == 3 * fwd == 3 * 2 * 64 * 784 * 512


def test_track_counts_once_per_key():
    ledger = ComputeLedger()
    layer, x = _linear(), torch.randn(64, 784)
    modes = []
    for _ in range(3):
        with ledger.track("score", (64,)), torch.no_grad():
            modes.append(len(_get_current_dispatch_mode_stack()))
            layer(x)
    assert modes == [1, 0, 0]  # the counter runs only for the first entry
    totals = ledger.totals()["score"]
    assert totals["flops"] == 3 * 2 * 64 * 784 * 512 and totals["calls"] == 3
    assert totals["seconds"] > 0
    with ledger.track("score", (32,)), torch.no_grad():
        modes.append(len(_get_current_dispatch_mode_stack()))
        layer(x[:32])
    assert modes[-1] == 1  # a new key is counted
    assert ledger.flops("score") == 3 * 2 * 64 * 784 * 512 + 2 * 32 * 784 * 512


def test_add_totals_and_sums():
    ledger = ComputeLedger(device="cpu")
    ledger.add("reference_train", flops=1000, seconds=2.5)
    ledger.add("train", flops=10.4, seconds=0.5, calls=3)
    totals = ledger.totals()
    assert set(totals) == set(PHASES)
    assert totals["train"] == {"flops": 10, "seconds": 0.5, "calls": 3}
    assert totals["eval"] == {"flops": 0, "seconds": 0.0, "calls": 0}
    assert ledger.flops() == 1010 and ledger.flops(["train"]) == 10
    assert ledger.seconds() == pytest.approx(3.0)
    assert ledger.seconds(("reference_train", "eval")) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="flops"):
        ledger.add("train", flops=-1)
    with pytest.raises(ValueError, match="seconds"):
        ledger.add("train", seconds=float("nan"))
    with pytest.raises(ValueError, match="calls"):
        ledger.add("train", calls=1.5)


def test_unknown_phase():
    ledger = ComputeLedger()
    with pytest.raises(ValueError, match="phase"):
        ledger.add("warmup", flops=1)
    with pytest.raises(ValueError, match="phase"), ledger.track("warmup"):
        pass
    with pytest.raises(ValueError, match="phase"):
        ledger.flops(["nope"])


def test_nested_track_refused_and_failed_block_not_recorded():
    ledger = ComputeLedger()
    with pytest.raises(RuntimeError, match="nested"), ledger.track("train"), ledger.track("score"):
        pass
    with pytest.raises(KeyError), ledger.track("eval", "k"):
        raise KeyError("boom")
    assert ledger.totals()["eval"]["calls"] == 0
    with ledger.track("eval", "k"):  # the ledger is usable again
        pass
    assert ledger.totals()["eval"]["calls"] == 1


def test_state_dict_round_trip():
    ledger = ComputeLedger()
    layer, x = _linear(), torch.randn(8, 784)
    with ledger.track("train", (8, ("a", 1))), torch.no_grad():
        layer(x)
    ledger.add("reference", flops=5, seconds=1.0)
    state = json.loads(json.dumps(ledger.state_dict()))  # JSON-serialisable
    restored = ComputeLedger()
    restored.load_state_dict(state)
    assert restored.totals() == ledger.totals()
    with restored.track("train", (8, ("a", 1))):
        depth = len(_get_current_dispatch_mode_stack())
    assert depth == 0  # the FLOPs cache survived, so no counter runs
    assert restored.flops("train") == 2 * 2 * 8 * 784 * 512
