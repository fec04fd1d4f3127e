"""The selection log: every step's selected ids and the offered/selected counts, exact through a
kill and resume, with ids above 2**24 kept exact."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from siftdata.training.loop import TrainData, train
from siftdata.training.selection_log import read_selection_log
from test_train import N, _config, _data, _method, _model

BIG = 2**40 + 7


class _Crash(Exception):
    pass


def _big_ids_data() -> TrainData:
    d = _data()
    ids = BIG + 3 * torch.arange(N)
    return TrainData(d.inputs, d.labels, d.test_inputs, d.test_labels, ids=ids)


def _run(folder, *, stop=None, steps=30, name="learnability+stale"):
    trained: list[torch.Tensor] = []

    def on_step(step, ids):
        trained.append(ids.clone())
        if step == stop:
            raise _Crash

    with contextlib.suppress(_Crash):
        train(
            _model(),
            _method(name, ids=BIG + 3 * torch.arange(N)),
            _big_ids_data(),
            _config(steps=steps, checkpoint_every=10),
            checkpoint_path=folder / "ck.pt",
            selection_log=folder / "selections",
            on_step=on_step,
        )
    return torch.stack(trained)


def test_the_log_holds_every_steps_selected_ids_and_the_counts(tmp_path):
    trained = _run(tmp_path)
    selected, counts = read_selection_log(tmp_path / "selections")
    assert np.array_equal(selected, trained.numpy())  # int64 ids above 2**24, exact
    assert selected.dtype == np.int64 and selected.min() > 2**24
    assert np.array_equal(counts["ids"], (BIG + 3 * torch.arange(N)).numpy())
    assert counts["selected"].sum() == selected.size
    assert counts["offered"].sum() == 30 * 32  # every step scored a super-batch of B = 32
    chosen = np.unique(selected)
    by_id = dict(zip(counts["ids"].tolist(), counts["selected"].tolist(), strict=True))
    assert all(by_id[i] > 0 for i in chosen.tolist())
    names = sorted(p.name for p in (tmp_path / "selections").iterdir())
    assert names == [  # one file per checkpoint interval, and the counts
        "counts.npz",
        "steps-00000001-00000010.npy",
        "steps-00000011-00000020.npy",
        "steps-00000021-00000030.npy",
    ]
    assert (counts["selected"] <= counts["offered"]).all()


def test_a_killed_and_resumed_run_logs_what_an_uninterrupted_run_logs(tmp_path):
    whole = tmp_path / "whole"
    _run(whole)
    parts = tmp_path / "parts"
    _run(parts, stop=25)  # checkpoint at 20: steps 21-25 were logged only in memory
    _run(parts)
    a, counts_a = read_selection_log(whole / "selections")
    b, counts_b = read_selection_log(parts / "selections")
    assert np.array_equal(a, b)
    for key in ("offered", "selected"):
        assert np.array_equal(counts_a[key], counts_b[key])


def test_a_log_with_a_gap_is_refused(tmp_path):
    _run(tmp_path)
    (tmp_path / "selections" / "steps-00000011-00000020.npy").unlink()
    with pytest.raises(ValueError, match="jumps from step 10 to 21"):
        read_selection_log(tmp_path / "selections")
