"""The whole step on CUDA (run with `pytest -m gpu` on a machine with a GPU; skipped without one)."""

import pytest
import torch

from siftdata.ledger import ComputeLedger
from siftdata.online import METHOD_NAMES
from siftdata.training.checkpoint import load_checkpoint
from siftdata.training.diagnostics import count_host_syncs
from siftdata.training.loop import train
from test_train import _config, _data, _model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("name", METHOD_NAMES + ("learnability+stale",))
def test_every_method_trains_on_cuda_without_host_syncs(name):
    from siftdata.online import SelectionConfig, build_method, parse_method
    from test_train import N, _reference

    spec = parse_method(name)
    method = build_method(
        spec,
        config=SelectionConfig(),
        reference=_reference() if spec.uses_reference else None,  # a CPU table: moved once
        example_ids=N,
        num_classes=4,
        super_batch_factor=4,
        seed=5,
        device="cuda",
    )
    counts = []
    with count_host_syncs() as counter:
        result = train(
            _model().cuda(),
            method,
            _data(),  # CPU data: moved to the model's device once
            _config(steps=60, eval_every=100),  # past an epoch boundary
            on_step=lambda step, ids: counts.append(counter.total) if step >= 2 else None,
        )
    assert counts[0] == counts[-1], counter.counts
    assert result.records[-1]["test_acc"] > 0.25
    assert result.ledger["train"]["seconds"] > 0  # CUDA events were read


def test_a_cuda_checkpoint_resumes_on_cpu(tmp_path):
    from siftdata.online import build_method
    from test_train import _reference

    ckpt = tmp_path / "ck.pt"
    method = build_method("learnability", reference=_reference(), num_classes=4, device="cuda")
    train(_model().cuda(), method, _data(), _config(checkpoint_every=10), checkpoint_path=ckpt)
    assert load_checkpoint(ckpt)["step"] == 30
    cpu_method = build_method("learnability", reference=_reference(), num_classes=4)
    with pytest.warns(UserWarning, match="saved random state is from a cuda generator"):
        result = train(
            _model(),
            cpu_method,
            _data(),
            _config(steps=40, checkpoint_every=10),
            checkpoint_path=ckpt,
        )
    assert result.resumed_from == 30 and result.steps == 40


def test_a_cpu_checkpoint_resumes_on_cuda(tmp_path):
    from siftdata.online import build_method
    from test_train import _reference

    ckpt = tmp_path / "ck.pt"
    method = build_method("learnability", reference=_reference(), num_classes=4)
    train(_model(), method, _data(), _config(checkpoint_every=10), checkpoint_path=ckpt)
    cuda_method = build_method("learnability", reference=_reference(), num_classes=4, device="cuda")
    with pytest.warns(UserWarning, match="saved random state is from a cpu generator"):
        result = train(
            _model().cuda(),
            cuda_method,
            _data(),
            _config(steps=40, checkpoint_every=10),
            checkpoint_path=ckpt,
        )
    assert result.resumed_from == 30 and result.steps == 40


def test_ledger_times_cuda_blocks_with_events():
    ledger = ComputeLedger(device="cuda")
    x = torch.randn(2048, 2048, device="cuda")
    for _ in range(5):
        with ledger.track("train", ("mm",)):
            x = x @ x / 2048
    totals = ledger.totals()["train"]
    assert totals["calls"] == 5 and totals["seconds"] > 0 and totals["flops"] == 5 * 2 * 2048**3


@pytest.mark.parametrize("name", ["jest", "jest-flexi"])
def test_jest_trains_on_cuda_without_host_syncs(name):
    from siftdata.core.pairwise import per_example_sigmoid_loss
    from siftdata.online.pair_methods import PairSelectionConfig, build_pair_method
    from test_pair_training import _config as pair_config
    from test_pair_training import _data as pair_data
    from test_pair_training import _evaluator, _towers

    data, reference = pair_data()
    reference.emb = reference.emb.to("cuda")
    reference.index = reference.index.to("cuda")
    method = build_pair_method(
        name, config=PairSelectionConfig(chunks=4), reference=reference, device="cuda"
    )
    counts = []
    with count_host_syncs() as counter:
        train(
            _towers().cuda(),
            method,
            data,
            pair_config(steps=30, eval_every=100),
            loss_fn=per_example_sigmoid_loss,
            evaluator=_evaluator,
            on_step=lambda step, ids: counts.append(counter.total) if step >= 2 else None,
        )
    assert counts[0] == counts[-1], counter.counts


def test_the_tau_gate_and_infobatch_run_on_cuda_without_host_syncs():
    """The gate's τ crosses to the host through pinned memory and events; the pruning source
    plans on the CPU once per epoch (a sync then, by design) and hands out positions on CUDA."""
    from siftdata.online import SelectionConfig, build_method
    from siftdata.online.infobatch import InfoBatchSource
    from test_train import N

    method = build_method(
        "importance", config=SelectionConfig(tau_threshold=1.0001), super_batch_factor=4,
        seed=5, device="cuda",
    )  # fmt: skip
    counts = []
    with count_host_syncs() as counter:
        result = train(
            _model().cuda(),
            method,
            _data(),
            _config(steps=30, eval_every=100),
            on_step=lambda step, ids: counts.append(counter.total) if step >= 4 else None,
        )
    assert counts[0] == counts[-1], counter.counts
    assert result.records[-1]["selection_stats"]["importance_on"] == 1
    source = InfoBatchSource(N, epochs=4, delta=1.0, seed=0, device="cuda")
    uniform = build_method("uniform")
    steps = source.total_steps(8)
    result = train(_model().cuda(), uniform, _data(), _config(steps=steps), source=source)
    assert result.steps == steps and source.passes_saved() > 0
