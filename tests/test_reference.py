"""Tests for siftdata.reference.losses: reference training, per-example losses, two-halves scoring, cache."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siftdata.ledger import ComputeLedger
from siftdata.reference import (
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
    two_halves_losses,
)
from siftdata.store import dataset_fingerprint, load_scores

C, D = 4, 8


def _blobs(n, seed):
    """A linearly separable problem: class means far apart in D dimensions."""
    g = torch.Generator().manual_seed(seed)
    means = torch.eye(C, D) * 4
    y = torch.randint(0, C, (n,), generator=g)
    return means[y] + 0.5 * torch.randn(n, D, generator=g), y


def _model(seed=0, hidden=16):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(D, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, C))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def test_training_lowers_val_loss():
    x, y = _blobs(256, 0)
    vx, vy = _blobs(64, 1)
    model = _model()
    before = compute_losses(model, vx, vy).mean().item()
    res = train_reference_model(
        model, x, y, val_inputs=vx, val_labels=vy, epochs=8, lr=1e-2, progress=False
    )
    assert res.best_val_loss < 0.5 * before
    assert res.history[-1]["val_acc"] > 0.9
    assert [h["epoch"] for h in res.history] == list(range(1, res.epochs_run + 1))
    assert set(res.history[0]) == {"epoch", "train_loss", "val_loss", "val_acc"}
    assert not res.model.training


def test_early_stopping_and_best_state_restored():
    x, y = _blobs(256, 0)
    vx, vy = _blobs(32, 1)
    vy = (vy + 1) % C  # flipped validation labels: val loss rises as the model learns
    res = train_reference_model(
        _model(),
        x,
        y,
        val_inputs=vx,
        val_labels=vy,
        epochs=50,
        lr=1e-2,
        patience=2,
        progress=False,
        check_chance=False,
    )
    assert res.epochs_run < 50
    assert res.epochs_run == res.best_epoch + 2
    val_losses = [h["val_loss"] for h in res.history]
    assert res.best_val_loss == min(val_losses) == val_losses[res.best_epoch - 1]
    assert res.history[-1]["val_loss"] > res.best_val_loss
    recomputed = compute_losses(res.model, vx, vy).mean().item()
    assert recomputed == pytest.approx(res.best_val_loss, abs=1e-6)


def test_training_is_seeded():
    x, y = _blobs(128, 0)
    vx, vy = _blobs(32, 1)

    def run(seed):
        res = train_reference_model(
            _model(),
            x,
            y,
            val_inputs=vx,
            val_labels=vy,
            epochs=2,
            seed=seed,
            progress=False,
            check_chance=False,
        )
        return [h["train_loss"] for h in res.history]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_compute_losses_matches_cross_entropy_and_restores_mode():
    x, y = _blobs(50, 2)
    model = _model()
    model.train()
    losses = compute_losses(model, x, y, batch_size=7)
    assert model.training
    model.eval()
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y, reduction="none")
    torch.testing.assert_close(losses, expected)
    compute_losses(model, x, y)
    assert not model.training
    assert losses.shape == (50,) and not losses.requires_grad


def test_argument_errors():
    x, y = _blobs(16, 0)
    with pytest.raises(ValueError, match="labels"):
        compute_losses(_model(), x, y.float())
    with pytest.raises(ValueError, match="inputs and labels"):
        compute_losses(_model(), x[:5], y)
    with pytest.raises(ValueError, match="batch_size"):
        compute_losses(_model(), x, y, batch_size=0)
    for bad in ({"epochs": 0}, {"lr": 0.0}, {"patience": 0}, {"weight_decay": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            train_reference_model(_model(), x, y, val_inputs=x, val_labels=y, progress=False, **bad)
    with pytest.raises(ValueError, match="val_fraction"):
        two_halves_losses(_model, x, y, val_fraction=1.0, progress=False)


def test_ledger_counts_reference_training_exactly():
    x, y = _blobs(64, 0)
    vx, vy = _blobs(16, 1)
    model = nn.Sequential(nn.Linear(D, C, bias=False))
    ledger = ComputeLedger()
    res = train_reference_model(
        model,
        x,
        y,
        val_inputs=vx,
        val_labels=vy,
        epochs=3,
        batch_size=16,
        ledger=ledger,
        progress=False,
        check_chance=False,
    )
    per_epoch = (
        2 * 2 * 64 * D * C + 2 * 16 * D * C
    )  # forward+backward(weight) on train, val forward
    totals = ledger.totals()["reference_train"]
    assert totals["flops"] == res.epochs_run * per_epoch
    assert totals["calls"] == res.epochs_run * (64 // 16 + 1)
    assert ledger.flops(["train", "score"]) == 0


class _IndexEmbedding(nn.Module):
    """Memorises by example index (column 0 of the input); rows start at zero, so an example the
    model never trained on has logits 0 and loss exactly log C."""

    def __init__(self, n, log):
        super().__init__()
        self.emb = nn.Embedding(n, C)
        nn.init.zeros_(self.emb.weight)
        self.log = log

    def forward(self, x):
        idx = x[:, 0].long()
        if self.training:
            self.log.update(idx.tolist())
        return self.emb(idx)


def _indexed(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.cat(
        [torch.arange(n, dtype=torch.float32)[:, None], torch.randn(n, 3, generator=g)], 1
    )
    return x, torch.randint(0, C, (n,), generator=g)  # random labels: only memorisable


def test_two_halves_scores_each_example_with_the_other_model():
    n = 60
    x, y = _indexed(n, 0)
    trained_on: list[set] = []

    def build():
        trained_on.append(set())
        return _IndexEmbedding(n, trained_on[-1])

    opts = dict(
        epochs=6,
        lr=0.5,
        weight_decay=0.0,
        batch_size=8,
        patience=2,
        progress=False,
        check_chance=False,
    )
    losses = two_halves_losses(build, x, y, val_fraction=0.2, seed=1, **opts)
    assert len(trained_on) == 2
    a, b = trained_on
    assert a and b and not (a & b) and len(a | b) < n  # disjoint halves; val slices not trained on
    assert losses.shape == (n,)
    torch.testing.assert_close(losses, torch.full((n,), math.log(C)))  # nobody scored its own data

    seen: set = set()
    full = train_reference_model(
        _IndexEmbedding(n, seen), x, y, val_inputs=x[:4], val_labels=y[:4], **opts
    )
    own = compute_losses(full.model, x, y)
    assert len(seen) == n and own.max() < 0.5 * math.log(C)  # a model that trained on all memorises
    again = two_halves_losses(
        lambda: _IndexEmbedding(n, set()), x, y, val_fraction=0.2, seed=1, **opts
    )
    torch.testing.assert_close(again, losses)


def test_two_halves_learns_from_other_half():
    x, y = _blobs(200, 3)
    losses = two_halves_losses(
        _model, x, y, epochs=5, lr=1e-2, batch_size=32, seed=0, progress=False
    )
    assert losses.shape == (200,) and torch.isfinite(losses).all()
    assert losses.mean() < 0.5 * math.log(C)  # separable: each half generalises to the other


def test_reference_loss_cache_round_trip(tmp_path):
    x, y = _blobs(30, 0)
    losses = compute_losses(_model(), x, y)
    fp = dataset_fingerprint(y, x)
    ids = torch.arange(30)
    save_reference_losses(tmp_path / "ref", ids, losses, fingerprint=fp, meta={"mode": "test"})
    table = load_reference_losses(tmp_path / "ref", fingerprint=fp)
    assert table.manifest["kind"] == "reference-loss" and table.manifest["meta"] == {"mode": "test"}
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(table.lookup(perm), losses[perm])
    with pytest.raises(ValueError, match="rebuild"):
        load_reference_losses(tmp_path / "ref", fingerprint=dataset_fingerprint(y[:29], x[:29]))
    with pytest.raises(ValueError, match="reference-loss"):
        load_scores(tmp_path / "ref", kind="embedding")


def test_global_rng_untouched():
    x, y = _blobs(64, 0)
    models = iter([_model(1), _model(2), _model(3)])  # nn.Linear's own init uses the global RNG
    state = torch.get_rng_state()
    train_reference_model(
        next(models), x, y, val_inputs=x, val_labels=y, epochs=1, progress=False, check_chance=False
    )
    two_halves_losses(lambda: next(models), x, y, epochs=1, progress=False, check_chance=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_compute_losses_temperature_sharpens_logits():
    x, y = _blobs(40, 3)
    model = _model().eval()
    losses = compute_losses(model, x, y, temperature=1 / 3)
    with torch.no_grad():
        expected = F.cross_entropy(model(x) * 3, y, reduction="none")
    torch.testing.assert_close(losses, expected)
    with pytest.raises(ValueError, match="temperature"):
        compute_losses(model, x, y, temperature=0)


def test_a_diverged_reference_raises_instead_of_being_returned():
    x, y = _blobs(64, 0)
    vx, vy = _blobs(16, 1)
    x[0] = float("nan")  # every weight turns NaN after the first step
    with pytest.raises(ValueError, match="reference model diverged"):
        train_reference_model(
            _model(), x, y, val_inputs=vx, val_labels=vy, epochs=3, progress=False
        )


def test_two_halves_seeds_its_split_and_models_apart():
    """The split and each half's model get their own derived seeds: seed s's split is not the
    permutation that torch.randperm(n) with seed s gives (what a shared seed would produce)."""
    x, y = _blobs(80, 0)
    losses = two_halves_losses(
        lambda: _model(), x, y, seed=3, epochs=2, batch_size=16, progress=False, check_chance=False
    )
    again = two_halves_losses(
        lambda: _model(), x, y, seed=3, epochs=2, batch_size=16, progress=False, check_chance=False
    )
    assert torch.equal(losses, again)
    from siftdata._seeding import derive_seed
    from siftdata.reference.two_halves import _split_halves

    plans = _split_halves(80, 0.1, derive_seed(3, "two-halves-split"))
    naive = _split_halves(80, 0.1, 3)
    assert not torch.equal(plans[0][2].sort().values, naive[0][2].sort().values)


def test_a_reference_that_never_beats_chance_is_refused():
    """A finite but absurd validation loss (here: labels the model cannot learn) must not become
    a cache of plausible-looking reference losses."""
    x, y = _blobs(128, 0)
    vx, vy = _blobs(32, 1)
    vy = (vy + 1) % C  # validation labels that contradict the training labels
    with pytest.raises(ValueError, match=r"never beat chance.*ln\(4\) = 1.386"):
        train_reference_model(
            _model(), x, y, val_inputs=vx, val_labels=vy, epochs=5, lr=1e-2, progress=False
        )


def test_labels_outside_the_class_range_are_named_with_the_class_count():
    x, y = _blobs(32, 0)
    y[3] = C  # one past the last class
    with pytest.raises(ValueError, match=r"training labels holds 1 label.*4 classes.*e\.g\. 4"):
        train_reference_model(_model(), x, y, val_inputs=x, val_labels=y.clamp(max=C - 1))
