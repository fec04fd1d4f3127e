"""Checkpoints: checksums, refusing another run's checkpoint, and run-folder locks."""

import pytest
import torch
from torch import nn

from siftdata.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from siftdata.training.loop import TrainData, train
from siftdata.training.run_folder import RunFolderBusy, prepare_run_folder, run_folder_lock
from test_train import _config, _data, _method, _model


def _checkpointed(tmp_path, name="learnability", **config):
    ckpt = tmp_path / "ck.pt"
    train(
        _model(),
        _method(name),
        _data(),
        _config(checkpoint_every=10, **config),
        checkpoint_path=ckpt,
    )
    return ckpt


def _resume(ckpt, name="learnability", model=None, data=None, **config):
    return train(
        model or _model(),
        _method(name),
        data or _data(),
        _config(checkpoint_every=10, **config),
        checkpoint_path=ckpt,
    )


def test_round_trip_and_header(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"a": torch.arange(3), "b": [1, "x", None]})
    assert path.read_bytes().startswith(b"SIFTDATA-CHECKPOINT 1 sha256=")
    state = load_checkpoint(path)
    assert torch.equal(state["a"], torch.arange(3)) and state["b"] == [1, "x", None]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-100], "corrupt or truncated"),
        (lambda b: b"", "empty"),
        (lambda b: b"PK\x03\x04 some zip", "not a siftdata checkpoint"),
        (lambda b: b[:200] + bytes([b[200] ^ 0x10]) + b[201:], "corrupt or truncated"),
    ],
)
def test_damaged_checkpoints_are_refused_with_what_to_do(tmp_path, damage, message):
    ckpt = _checkpointed(tmp_path)
    ckpt.write_bytes(damage(ckpt.read_bytes()))
    with pytest.raises(CheckpointError, match=message) as err:
        _resume(ckpt)
    assert "delete it" in str(err.value)


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(batch_size=4), "train.batch_size: 8 in the checkpoint, 4 now"),
        (dict(super_batch_factor=2), "train.super_batch_factor"),
        (dict(seed=4), "train.seed"),
        (dict(lr=0.01), "train.lr"),
        (dict(schedule="cosine"), "train.schedule"),
    ],
)
def test_a_checkpoint_from_other_options_is_refused_naming_them(tmp_path, change, named):
    ckpt = _checkpointed(tmp_path)
    with pytest.raises(CheckpointError, match="written by a different run") as err:
        _resume(ckpt, **change)
    assert named in str(err.value)


def test_a_checkpoint_for_another_method_data_or_architecture_is_refused(tmp_path):
    ckpt = _checkpointed(tmp_path)
    with pytest.raises(CheckpointError, match="method.name: 'learnability' in the checkpoint"):
        _resume(ckpt, name="rank")
    other = _data()
    other = TrainData(other.inputs, (other.labels + 1) % 4, other.test_inputs, other.test_labels)
    with pytest.raises(CheckpointError, match="data.labels_sha256"):
        _resume(ckpt, data=other)
    wider = nn.Sequential(
        nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0), nn.Linear(32, 4)
    )
    with pytest.raises(
        CheckpointError, match=r"model.1.weight: \[16, 20\] in the checkpoint, \[32, 20\]"
    ):
        _resume(ckpt, model=wider)


def test_constant_lr_runs_extend_but_never_shrink(tmp_path, capsys):
    ckpt = _checkpointed(tmp_path)  # 30 steps
    result = _resume(ckpt, steps=50)
    assert result.steps == 50 and [r["step"] for r in result.records][-1] == 50
    assert "resuming from step 30" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="at step 50, past steps=20"):
        _resume(ckpt, steps=20)


def test_a_decaying_schedule_cannot_change_its_budget_on_resume(tmp_path):
    ckpt = _checkpointed(tmp_path, schedule="cosine")
    with pytest.raises(CheckpointError, match="train.steps: 30 in the checkpoint, 50 now"):
        _resume(ckpt, steps=50, schedule="cosine")


def test_watching_options_may_change_on_resume(tmp_path):
    ckpt = _checkpointed(tmp_path)
    result = _resume(ckpt, steps=40, eval_every=5, progress=False)
    assert [r["step"] for r in result.records][-3:] == [30, 35, 40]


def test_a_second_run_on_the_same_folder_is_refused(tmp_path):
    with (
        run_folder_lock(tmp_path),
        pytest.raises(RunFolderBusy, match="in use by another siftdata run"),
        run_folder_lock(tmp_path),
    ):
        pass
    with run_folder_lock(tmp_path):  # released: free again
        pass


def test_a_second_train_on_the_same_checkpoint_is_refused(tmp_path):
    ckpt = tmp_path / "ck.pt"
    with run_folder_lock(tmp_path, name=".ck.pt.lock"), pytest.raises(RunFolderBusy):
        train(_model(), _method("uniform"), _data(), _config(), checkpoint_path=ckpt)


def test_bad_output_folders_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="must not be empty"):
        prepare_run_folder("")
    file = tmp_path / "f"
    file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        prepare_run_folder(file)
    with pytest.raises(ValueError, match="cannot create the output folder"):
        prepare_run_folder(file / "sub")


def test_a_checkpoint_from_other_selector_options_is_refused(tmp_path):
    """Library users get the same protection as the CLI: the selector's options are identity."""
    ckpt = tmp_path / "ck.pt"
    cfg = _config(checkpoint_every=10)
    train(_model(), _method("rank", selection_pressure=10.0), _data(), cfg, checkpoint_path=ckpt)
    with pytest.raises(
        CheckpointError, match="method.selector: 'RankSelector.selection_pressure=10.0"
    ):
        train(
            _model(), _method("rank", selection_pressure=50.0), _data(), cfg, checkpoint_path=ckpt
        )


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    ckpt = _checkpointed(tmp_path)
    state = load_checkpoint(ckpt)
    state["format"] = 0
    save_checkpoint(ckpt, state)
    with pytest.raises(
        CheckpointError, match="format 0, and this version of siftdata reads format 1"
    ):
        _resume(ckpt)
    del state["recorder"]
    state["format"] = 1
    save_checkpoint(ckpt, state)
    with pytest.raises(CheckpointError, match="could not be restored"):
        _resume(ckpt)


def test_a_run_that_never_checkpointed_refuses_other_options(tmp_path):
    ckpt = tmp_path / "ck.pt"
    metrics = tmp_path / "metrics.jsonl"
    config = _config(checkpoint_every=1000)  # ends before its first checkpoint
    train(_model(), _method("uniform"), _data(), config, checkpoint_path=ckpt, metrics_path=metrics)
    assert not ckpt.exists() and (tmp_path / "ck.pt.identity.json").exists()
    written = metrics.read_text()
    with pytest.raises(CheckpointError, match="train.batch_size: 8 in the checkpoint, 4 now"):
        train(
            _model(),
            _method("uniform"),
            _data(),
            _config(checkpoint_every=1000, batch_size=4),
            checkpoint_path=ckpt,
            metrics_path=metrics,
        )
    assert metrics.read_text() == written  # the first run's records are untouched
    # once a checkpoint is written it holds the identity, and the side file goes
    train(_model(), _method("uniform"), _data(), _config(checkpoint_every=5), checkpoint_path=ckpt)
    assert ckpt.exists() and not (tmp_path / "ck.pt.identity.json").exists()
