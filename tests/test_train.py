"""The reference training loop: resume equality, accounting, weights, ids, policies, errors."""

import json

import pytest
import torch
from torch import nn

from siftdata.online import (
    METHOD_NAMES,
    Selection,
    SelectionConfig,
    SelectionMethod,
    build_method,
    parse_method,
)
from siftdata.scoring.scorers import LearnerLoss
from siftdata.store import ScoreTable
from siftdata.training.checkpoint import load_checkpoint
from siftdata.training.diagnostics import count_host_syncs
from siftdata.training.loop import ReferenceCost, TrainConfig, TrainData, train
from siftdata.training.recorder import DivergedError
from test_step import _DensePairwise

N = 400


def _model(seed=0, dropout=0.0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Flatten(), nn.Linear(20, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 4)
        )


def _data(n=N, corrupted=None, ids=None):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    y = x[:, :4].argmax(1)
    return TrainData(
        inputs=x,
        labels=y,
        test_inputs=x[:100],
        test_labels=y[:100],
        is_corrupted=corrupted,
        ids=ids,
    )


def _reference(ids=None, n=N):
    ids = torch.arange(n) if ids is None else ids
    return ScoreTable(ids=ids, scores=torch.rand(n, generator=torch.Generator().manual_seed(1)))


def _method(name, seed=5, ids=None, **config):
    spec = parse_method(name)
    return build_method(
        spec,
        config=SelectionConfig(**config),
        reference=_reference(ids) if spec.uses_reference else None,
        example_ids=N if ids is None else ids,
        num_classes=4,
        super_batch_factor=4,
        seed=seed,
    )


def _config(**kw):
    base = dict(steps=30, batch_size=8, super_batch_factor=4, eval_every=10, seed=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


class Interrupt(Exception):
    pass


def _run_interrupted_then_resumed(tmp_path, name, *, model_fn=_model, stop=17, **config):
    """Steps of a run crashed at ``stop`` (checkpoint at 10) and resumed, and its final model."""
    ckpt, metrics = tmp_path / "ck.pt", tmp_path / "m.jsonl"
    steps = []

    def crash(step, ids):
        steps.append(ids.clone())
        if step == stop:
            raise Interrupt

    cfg = _config(checkpoint_every=10, **config)
    with pytest.raises(Interrupt):
        train(model_fn(), _method(name), _data(), cfg, checkpoint_path=ckpt, on_step=crash)
    steps = steps[:10]  # steps after the checkpoint at 10 are redone on resume
    model = model_fn(seed=99)  # weights come from the checkpoint
    result = train(
        model,
        _method(name),
        _data(),
        cfg,
        checkpoint_path=ckpt,
        metrics_path=metrics,
        on_step=lambda s, ids: steps.append(ids.clone()),
    )
    assert result.resumed_from == 10
    return steps, model, metrics


@pytest.mark.parametrize(
    "name",
    [
        "learnability",
        "learnability+stale",
        "selective-backprop",
        "uniform",
        "rank",
        "hard-learner",
        "importance",
        "learnability-unbiased",
    ],
)
def test_resumed_run_selects_exactly_what_an_uninterrupted_run_selects(tmp_path, name):
    full, model_a = [], _model()
    train(
        model_a, _method(name), _data(), _config(), on_step=lambda s, ids: full.append(ids.clone())
    )
    resumed, model_b, metrics = _run_interrupted_then_resumed(tmp_path, name)
    assert len(resumed) == len(full) == 30
    assert all(torch.equal(a, b) for a, b in zip(full, resumed, strict=True))
    assert all(
        torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True)
    )
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == [0, 10, 20, 30]


def test_a_model_with_dropout_resumes_exactly(tmp_path):
    """The global RNG (dropout's) is checkpointed too, under a decaying schedule."""

    def dropout_model(seed=0):
        return _model(seed, dropout=0.5)

    cfg = dict(schedule="cosine", warmup_steps=3)
    with torch.random.fork_rng():
        torch.manual_seed(11)  # both runs start from the same global RNG state
        model_a = dropout_model()
        train(model_a, _method("learnability"), _data(), _config(**cfg))
    with torch.random.fork_rng():
        torch.manual_seed(11)
        _, model_b, _ = _run_interrupted_then_resumed(
            tmp_path, "learnability", model_fn=dropout_model, **cfg
        )
    assert all(
        torch.equal(p, q) for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True)
    )


def test_records_account_every_phase_and_the_reference():
    cost = ReferenceCost(forward_flops=1000, train_flops=5000, train_seconds=2.0)
    res = train(_model(), _method("learnability-topk"), _data(), _config(), reference_cost=cost)
    first, last = res.records[0], res.records[-1]
    assert first["step"] == 0 and last["step"] == 30
    assert first["flops_by_phase"]["reference"] == 1000  # cache fill charged up front
    assert first["flops_end_to_end"] == first["flops"] + 5000
    assert last["seconds_end_to_end"] == pytest.approx(last["seconds"] + 2.0)
    # scoring forward on B=32 and training fwd+bwd on b=8: Linear layers 20*16+16*4 MACs
    macs = 20 * 16 + 16 * 4
    assert last["flops_by_phase"]["score"] == 30 * 2 * macs * 32
    # training: 2 FLOPs/MAC forward, 2 for the weight gradient, and 2 for the input gradient
    # except in the first layer, whose input needs none
    train_per_example = 2 * macs + 2 * macs + 2 * 16 * 4
    assert last["flops_by_phase"]["train"] == 30 * train_per_example * 8
    assert last["flops"] == sum(
        last["flops_by_phase"][p] for p in ("reference", "score", "select", "remember", "train")
    )
    assert all(r["flops"] <= s["flops"] for r, s in zip(res.records, res.records[1:], strict=False))
    assert res.ledger["select"]["calls"] == 30 and res.ledger["remember"]["calls"] == 0


def test_uniform_draws_b_and_scores_nothing():
    res = train(_model(), _method("uniform"), _data(), _config())
    assert res.ledger["score"]["flops"] == 0 and res.ledger["select"]["calls"] == 0
    assert res.ledger["reference"]["flops"] == 0
    assert res.records[-1]["selection_stats"] == {}


def test_stale_scoring_costs_no_scoring_flops_and_remembers_in_its_own_phase():
    seen = []
    res = train(
        _model(),
        _method("learnability-topk+stale"),
        _data(),
        _config(),
        on_step=lambda s, ids: seen.append(ids.clone()),
    )
    assert res.ledger["score"]["flops"] == 0
    assert res.ledger["remember"]["calls"] == 30 and res.ledger["remember"]["seconds"] > 0
    # top-k on stale scores: unseen examples (loss log C) beat seen ones of similar reference
    # loss, so the first steps never repeat an example
    early = torch.cat(seen[:5])
    assert early.unique().numel() == early.numel()


def test_selection_stats_reach_the_metrics_log():
    res = train(_model(), _method("learnability"), _data(), _config())
    stats = res.records[-1]["selection_stats"]
    assert set(stats) >= {"temperature", "selected_score_mean", "score_mean"}
    assert stats["selected_score_mean"] > stats["score_mean"]  # learnability prefers high scores
    assert stats["temperature"] > 0


def test_mislabeled_share_counts_selected_corrupted_examples():
    corrupted = torch.zeros(N, dtype=torch.bool)
    corrupted[:200] = True
    table = _reference()
    table.scores[:200] = 100.0  # easy-reference never picks these while others remain
    method = build_method("easy-reference", reference=table)
    res = train(_model(), method, _data(corrupted=corrupted), _config())
    assert res.records[-1]["mislabeled_selected"] == 0.0
    res = train(_model(), _method("uniform"), _data(corrupted=corrupted), _config(steps=200))
    assert 0.35 < res.records[-1]["mislabeled_selected"] < 0.65


class _Weighted:
    """A selector that keeps the first k examples with weights 0, 1, 2, ... (to test the loss)."""

    def select(self, scores, k):
        return Selection(torch.arange(k), weights=torch.arange(k, dtype=torch.float32))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_selector_weights_weight_the_training_loss():
    """One step with weights w: the gradient is that of mean(w · loss) on the kept examples."""
    data, model = _data(), _model()
    reference = _model()
    reference.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    method = SelectionMethod("weighted", scorer=LearnerLoss(), selector=_Weighted())
    positions = []
    cfg = _config(steps=1, super_batch_factor=2)
    train(model, method, data, cfg, optimizer=opt, on_step=lambda s, ids: positions.append(ids))
    kept = positions[0]
    losses = nn.functional.cross_entropy(
        reference(data.inputs[kept]), data.labels[kept], reduction="none"
    )
    (losses * torch.arange(8.0)).mean().backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    assert all(
        torch.allclose(p, q)
        for p, q in zip(model.parameters(), reference.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", ["learnability", "learnability+stale"])
def test_non_position_example_ids_give_the_same_run(name):
    """Ids 1000 + a permutation, with caches keyed by them, train exactly as position ids do."""
    ids = 1000 + torch.randperm(N, generator=torch.Generator().manual_seed(7))
    plain, relabelled = [], []
    train(_model(), _method(name), _data(), _config(), on_step=lambda s, i: plain.append(i))
    method = _method(name, ids=ids)
    method.scorer.reference.table = ScoreTable(ids, _reference().scores)  # same values, new keys
    train(_model(), method, _data(ids=ids), _config(), on_step=lambda s, i: relabelled.append(i))
    assert all(torch.equal(ids[a], b) for a, b in zip(plain, relabelled, strict=True))


def test_uniform_steps_policy_skips_scoring_at_first():
    res = train(_model(), _method("learnability", uniform_steps=10), _data(), _config())
    macs = 20 * 16 + 16 * 4
    assert res.ledger["score"]["flops"] == 20 * 2 * macs * 32  # only steps 10..29 score
    assert res.ledger["select"]["calls"] == 20


def test_cosine_schedule_decays_to_the_budget():
    res = train(_model(), _method("uniform"), _data(), _config(schedule="cosine", lr=0.01))
    lrs = [r["lr"] for r in res.records]
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lrs == sorted(lrs, reverse=True)


@pytest.mark.parametrize("name", METHOD_NAMES + ("learnability+stale", "hard-learner+stale"))
def test_a_step_makes_no_host_sync(name):
    """After the first step (FLOP counting, caches), steps never wait for the device."""
    counts = []

    def count_between_steps(step, ids):
        if step >= 2:
            counts.append(counter.total)

    with count_host_syncs() as counter:
        train(
            _model(),
            _method(name),
            _data(),
            _config(steps=60, eval_every=100),  # past an epoch boundary: the order is re-drawn
            on_step=count_between_steps,
        )
    # the count may rise only at the last step's evaluation, never between steps
    assert counts[0] == counts[-1], counter.counts


def test_a_diverging_learner_is_reported_as_diverged_with_its_step(tmp_path):
    ckpt = tmp_path / "ck.pt"

    class Diverging(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.calls = nn.Linear(20, 4), 0

        def forward(self, x):
            self.calls += self.training
            out = self.linear(x)
            return out * float("nan") if self.calls > 12 else out

    for name in ("uniform", "learnability"):
        with pytest.raises(
            DivergedError, match="diverged: its training loss was NaN or inf at step 13"
        ):
            train(
                Diverging(),
                _method(name),
                _data(),
                _config(checkpoint_every=5, eval_every=5),
                checkpoint_path=ckpt,
            )
        state = load_checkpoint(ckpt)
        assert all(torch.isfinite(v).all() for v in state["model"].values())
        assert state["step"] == 10
        ckpt.unlink()


def test_check_values_mode_raises_at_the_bad_step():
    data = _data()
    data.inputs[3] = float("nan")
    with pytest.raises(ValueError, match="step 1: the scores hold NaN"):
        train(
            _model(),
            _method("learnability"),
            data,
            _config(check_values=True, super_batch_factor=50),
        )


def test_missing_reference_and_bad_config_raise():
    with pytest.raises(ValueError, match="needs reference losses"):
        build_method("learnability")
    for bad in (
        dict(steps=0),
        dict(steps=2.5),
        dict(super_batch_factor=0.5),
        dict(lr=0),
        dict(checkpoint_every=-1),
        dict(schedule="step"),
        dict(warmup_steps=30),
        dict(progress="yes"),
    ):
        with pytest.raises(ValueError):
            _config(**bad)
    with pytest.raises(ValueError, match="select nothing"):
        train(_model(), _method("learnability"), _data(), _config(super_batch_factor=1.0))
    with pytest.raises(ValueError, match="labels"):
        TrainData(
            inputs=torch.zeros(5, 2),
            labels=torch.zeros(4, dtype=torch.long),
            test_inputs=torch.zeros(1, 2),
            test_labels=torch.zeros(1, dtype=torch.long),
        )


def test_reference_cache_missing_pool_ids_is_refused_before_training():
    method = build_method("learnability", reference=_reference(n=300), num_classes=4)
    with pytest.raises(ValueError, match="not in the table"):
        train(_model(), method, _data(), _config())


def test_recorder_finds_the_first_non_finite_step_across_buffer_folds():
    from siftdata.ledger import ComputeLedger
    from siftdata.training.recorder import Recorder

    recorder = Recorder(
        ledger=ComputeLedger(),
        evaluator=lambda model: {"test_acc": 0.5},
        device=torch.device("cpu"),
        batch_size=1,
    )
    losses = torch.arange(2500, dtype=torch.float32)
    for i, loss in enumerate(losses):
        bad = i in (1500, 2200)
        recorder.after_step(torch.tensor(float("nan")) if bad else loss, torch.zeros(1).long(), {})
        if i == 1200:  # folded once (1024 entries), all finite so far
            recorder.check_finite()
            assert recorder.record(_model(), step=i + 1, lr=0.1)["train_loss"] == pytest.approx(
                600.0
            )
    with pytest.raises(DivergedError, match="at step 1501"):
        recorder.check_finite()


class _PairwiseLoss(LearnerLoss):
    def __call__(self, batch):
        loss = batch.loss
        return _DensePairwise(loss[:, None] + loss[None, :])


class _GreedyJoint:
    """Keeps the k largest diagonal entries and reports one stat."""

    def select(self, scores, k):
        keep = torch.topk(scores.diagonal(), k).indices
        return Selection(keep, stats={"joint_gain": scores.rows(keep).sum()})

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_a_joint_selector_trains_through_the_loop():
    method = SelectionMethod("joint", scorer=_PairwiseLoss(), selector=_GreedyJoint())
    res = train(_model(), method, _data(), _config())
    assert res.steps == 30 and "joint_gain" in res.records[-1]["selection_stats"]
    assert "score_mean" not in res.records[-1]["selection_stats"]  # no per-example scores


class _ConstantStat:
    def select(self, scores, k):
        return Selection(torch.topk(scores, k).indices, stats={"one": torch.ones(())})

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def test_selection_stats_average_over_the_steps_that_selected():
    from siftdata.online import ScoreAfter

    method = SelectionMethod("s", LearnerLoss(), _ConstantStat(), policy=ScoreAfter(25))
    res = train(_model(), method, _data(), _config())
    assert res.records[-1]["selection_stats"]["one"] == 1.0  # 5 scoring steps of the last 10
    assert res.records[-2]["selection_stats"] == {}  # steps 11-20 never scored


def test_the_loop_keeps_a_frozen_batchnorm_frozen():
    model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    model[1].eval()  # frozen by the user: running statistics must not move
    before = model[1].running_mean.clone()
    train(model, _method("learnability"), _data(), _config())
    assert not model[1].training and model.training
    assert torch.equal(model[1].running_mean, before)


def test_a_hand_built_method_resumes(tmp_path):
    """Parts without a __repr__ are named by class, not by a per-process memory address."""

    class Mine(LearnerLoss):
        pass

    class Pick(_ConstantStat):
        pass

    ckpt = tmp_path / "ck.pt"
    for steps in (10, 20):
        method = SelectionMethod("mine", scorer=Mine(), selector=Pick())
        result = train(
            _model(),
            method,
            _data(),
            _config(steps=steps, checkpoint_every=10),
            checkpoint_path=ckpt,
        )
    assert result.resumed_from == 10 and result.steps == 20


def test_another_reference_table_of_the_same_size_is_another_run(tmp_path):
    from siftdata.training.checkpoint import CheckpointError

    ckpt = tmp_path / "ck.pt"
    cfg = _config(steps=10, checkpoint_every=10)
    train(_model(), _method("learnability"), _data(), cfg, checkpoint_path=ckpt)
    method = _method("learnability")
    method.scorer.reference.table = ScoreTable(torch.arange(N), torch.zeros(N))
    with pytest.raises(CheckpointError, match="method.scorer"):
        train(
            _model(), method, _data(), _config(steps=20, checkpoint_every=10), checkpoint_path=ckpt
        )


def test_labels_outside_the_models_classes_are_named_before_the_first_step():
    data = _data()
    data.labels[7] = 4  # the model has 4 outputs: classes 0 … 3
    with pytest.raises(ValueError, match=r"pool's labels holds 1 label.*4 classes.*e\.g\. 4"):
        train(_model(), _method("uniform"), data, _config())
    data = _data()
    test_labels = data.test_labels.clone()
    test_labels[0] = -1
    data = TrainData(data.inputs, data.labels, data.test_inputs, test_labels)
    with pytest.raises(ValueError, match=r"test labels holds 1 label.*e\.g\. -1"):
        train(_model(), _method("hard-learner"), data, _config())


@pytest.mark.parametrize("uniform_steps", [30, 31])
def test_a_uniform_warm_up_covering_every_step_is_refused(uniform_steps):
    method = _method("hard-learner", uniform_steps=uniform_steps)
    with pytest.raises(ValueError, match=rf"uniform_steps \({uniform_steps}\) must be below steps"):
        train(_model(), method, _data(), _config(steps=30))
    train(_model(), _method("hard-learner", uniform_steps=29), _data(), _config(steps=30))
