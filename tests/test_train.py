"""The reference training loop: resume equality, accounting, mislabeled share, errors."""

import json

import pytest
import torch
from torch import nn

from siftdata.online import build_method
from siftdata.store import ScoreTable
from siftdata.train import SuperBatchStream, TrainConfig, TrainData, train


def _model(seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))


def _data(n=400, corrupted=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    y = (x[:, :4].argmax(1)).long()
    ref = ScoreTable(ids=torch.arange(n), scores=torch.rand(n, generator=g), manifest={})
    return TrainData(
        inputs=x,
        labels=y,
        test_inputs=x[:100],
        test_labels=y[:100],
        is_corrupted=corrupted,
        reference_losses=ref,
        reference_forward_flops=1000,
    )


def _config(**kw):
    base = dict(steps=30, batch_size=8, super_batch_factor=4, eval_every=10, seed=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "name", ["learnability", "learnability+stale", "selective-backprop", "uniform", "rank"]
)
def test_resumed_run_selects_exactly_what_an_uninterrupted_run_selects(tmp_path, name):
    full, resumed = [], []
    model_a = _model()
    train(
        model_a,
        build_method(name, seed=5),
        _data(),
        _config(),
        on_step=lambda s, ids: full.append(ids.clone()),
    )

    ckpt, metrics = tmp_path / "ck.pt", tmp_path / "m.jsonl"

    def crash(step, ids):
        resumed.append(ids.clone())
        if step == 17:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            _model(),
            build_method(name, seed=5),
            _data(),
            _config(checkpoint_every=10),
            checkpoint_path=ckpt,
            metrics_path=metrics,
            on_step=crash,
        )
    resumed = resumed[:10]  # steps after the checkpoint at 10 are redone on resume
    model_b = _model(seed=99)  # weights come from the checkpoint
    train(
        model_b,
        build_method(name, seed=5),
        _data(),
        _config(checkpoint_every=10),
        checkpoint_path=ckpt,
        metrics_path=metrics,
        on_step=lambda s, ids: resumed.append(ids.clone()),
    )
    assert len(resumed) == len(full) == 30
    for a, b in zip(full, resumed, strict=False):
        assert torch.equal(a, b)
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=False):
        assert torch.equal(p, q)
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [0, 10, 20, 30]


def test_records_account_every_phase_and_the_reference():
    res = train(_model(), build_method("learnability-topk"), _data(), _config())
    first, last = res.records[0], res.records[-1]
    assert first["step"] == 0 and last["step"] == 30
    assert first["flops_by_phase"]["reference"] == 1000  # cache fill charged up front
    # scoring forward on B=32 and training fwd+bwd on b=8: Linear layers 20*16+16*4 MACs
    macs = 20 * 16 + 16 * 4
    assert last["flops_by_phase"]["score"] == 30 * 2 * macs * 32
    # training: 2 FLOPs/MAC forward, 2 for the weight gradient, and 2 for the input gradient
    # except in the first layer, whose input needs none
    train_per_example = 2 * macs + 2 * macs + 2 * 16 * 4
    assert last["flops_by_phase"]["train"] == 30 * train_per_example * 8
    assert last["flops"] == sum(
        last["flops_by_phase"][p] for p in ("reference", "score", "select", "train")
    )
    assert all(r["flops"] <= s["flops"] for r, s in zip(res.records, res.records[1:], strict=False))


def test_uniform_scores_nothing():
    res = train(_model(), build_method("uniform"), _data(), _config())
    assert res.ledger["score"]["flops"] == 0 and res.ledger["reference"]["flops"] == 0


def test_mislabeled_share_counts_selected_corrupted_examples():
    corrupted = torch.zeros(400, dtype=torch.bool)
    corrupted[:200] = True
    data = _data(corrupted=corrupted)
    data.reference_losses.scores[:200] = (
        100.0  # easy-reference never picks these while others remain
    )
    res = train(_model(), build_method("easy-reference"), data, _config())
    assert res.records[-1]["mislabeled_selected"] == 0.0
    res = train(_model(), build_method("uniform"), data, _config(steps=200))
    assert 0.35 < res.records[-1]["mislabeled_selected"] < 0.65


def test_missing_reference_and_bad_config_raise():
    data = _data()
    data.reference_losses = None
    with pytest.raises(ValueError, match="reference"):
        train(_model(), build_method("learnability"), data, _config())
    for bad in (dict(steps=0), dict(super_batch_factor=0.5), dict(lr=0), dict(checkpoint_every=-1)):
        with pytest.raises(ValueError):
            _config(**bad)
    with pytest.raises(ValueError, match="labels"):
        TrainData(
            inputs=torch.zeros(5, 2),
            labels=torch.zeros(4, dtype=torch.long),
            test_inputs=torch.zeros(1, 2),
            test_labels=torch.zeros(1, dtype=torch.long),
        )


def test_super_batch_stream_covers_each_epoch_once():
    s = SuperBatchStream(10, 3, seed=0)
    epoch0 = torch.cat([s.next() for _ in range(3)])
    assert len(set(epoch0.tolist())) == 9
    s.next()
    assert s.epoch == 1
    with pytest.raises(ValueError, match="super-batch size"):
        SuperBatchStream(4, 5)


def test_stale_scoring_costs_no_scoring_flops_and_remembers_training_losses():
    seen = []
    res = train(
        _model(),
        build_method("learnability-topk+stale"),
        _data(),
        _config(),
        on_step=lambda s, ids: seen.append(ids.clone()),
    )
    assert res.ledger["score"]["flops"] == 0
    phases = res.records[-1]["flops_by_phase"]
    assert phases["train"] > 0 and phases["select"] == 0
    # top-k on stale scores: unseen examples (loss log C) beat seen ones of similar reference
    # loss, so the first steps never repeat an example
    early = torch.cat(seen[:5])
    assert early.unique().numel() == early.numel()


def test_reference_cache_missing_pool_ids_is_refused_before_training():
    data = _data()
    data.reference_losses = ScoreTable(ids=torch.arange(300), scores=torch.rand(300))
    with pytest.raises(ValueError, match="not in the table"):
        train(_model(), build_method("learnability"), data, _config())


class _Diverging(nn.Module):
    """Finite at first; after a few optimizer steps its output is NaN."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(20, 4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.linear(x)
        return out * float("nan") if self.calls > 12 and self.training else out


@pytest.mark.parametrize("name, message", [("uniform", "diverged"), ("learnability", "non-finite")])
def test_divergence_raises_and_keeps_the_last_good_checkpoint(tmp_path, name, message):
    ckpt = tmp_path / "ck.pt"
    with pytest.raises(ValueError, match=message):
        train(
            _Diverging(),
            build_method(name),
            _data(),
            _config(checkpoint_every=5, eval_every=5),
            checkpoint_path=ckpt,
        )
    state = torch.load(ckpt, weights_only=False)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert state["step"] in (5, 10)
