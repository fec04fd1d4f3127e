"""Tests for siftdata.offline.stored (proxy-score and selection stores) and selection_data."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from siftdata.offline.stored import (
    DIRECTIONS,
    Selected,
    keep_priority,
    load_score,
    load_selection,
    save_score,
    save_selection,
    selection_sampler,
    source_of,
    subset_of,
)
from siftdata.offline.subsets import select_subset
from siftdata.store import dataset_fingerprint, save_scores

N = 20
MODEL = {"name": "mlp", "width": 32, "epochs": 2}


def _fp(n=N, shift=0):
    return dataset_fingerprint(torch.arange(n) % 3 + shift)


def _score(tmp_path, name="s", **kw):
    g = torch.Generator().manual_seed(0)
    args = dict(score="entropy", direction="higher-keep", model=MODEL, fingerprint=_fp())
    args |= dict(seconds={"train": 1.5, "score": 0.25}) | kw
    return save_score(tmp_path / name, torch.arange(N) * 5, torch.rand(N, generator=g), **args)


def _selection(tmp_path, ids=(7, 2, 11, 0), name="sel", **kw):
    args = dict(policy="hardest", n_total=N, fingerprint=_fp(), keep=0.2) | kw
    return save_selection(tmp_path / name, torch.tensor(ids), **args)


# ---- proxy scores -----------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["npy", "parquet"])
def test_score_round_trip_keeps_its_fields(tmp_path, file_format):
    if file_format == "parquet":
        pytest.importorskip("pyarrow")
    ids, scores = torch.tensor([9, 3, 40, 1]), torch.tensor([0.5, 0.1, 0.9, 0.3])
    path = save_score(
        tmp_path / "s",
        ids,
        scores,
        score="margin",
        direction="higher-prune",
        model=MODEL,
        fingerprint=_fp(),
        seconds={"train": 2, "score": 0.5},
        meta={"seed": 3},
        file_format=file_format,
    )
    table = load_score(path, fingerprint=_fp(), score="margin")
    assert torch.equal(table.ids, ids) and torch.equal(table.scores, scores)
    assert torch.equal(table.lookup(torch.tensor([40, 9])), torch.tensor([0.9, 0.5]))
    m = table.manifest
    assert m["kind"] == "proxy-score" and m["file_format"] == file_format and m["created"]
    assert m["meta"] == {
        "score": "margin",
        "direction": "higher-prune",
        "model": MODEL,
        "seconds": {"train": 2, "score": 0.5},
        "seed": 3,
    }
    on_disk = json.loads((path / "manifest.json").read_text())
    assert on_disk["meta"]["model"] == MODEL and on_disk["fingerprint"] == _fp()


def test_load_score_checks(tmp_path):
    path = _score(tmp_path)
    assert load_score(path).manifest["meta"]["seconds"] == {"train": 1.5, "score": 0.25}
    with pytest.raises(ValueError, match="holds 'entropy' scores, not 'margin'"):
        load_score(path, score="margin")
    with pytest.raises(ValueError, match="fingerprint mismatch.*labels_sha256"):
        load_score(path, fingerprint=_fp(shift=1))
    with pytest.raises(ValueError, match="'selection' scores, not 'proxy-score'"):
        load_score(_selection(tmp_path))
    other = save_scores(
        tmp_path / "o", torch.arange(3), torch.zeros(3), kind="reference-loss", fingerprint=_fp()
    )
    with pytest.raises(ValueError, match="'reference-loss' scores, not 'proxy-score'"):
        load_score(other)


def _edit_meta(path, **changes):
    manifest = json.loads((path / "manifest.json").read_text())
    for key, value in changes.items():
        if value is None:
            del manifest["meta"][key]
        else:
            manifest["meta"][key] = value
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_load_score_refuses_a_bad_manifest(tmp_path):
    path = _score(tmp_path)
    _edit_meta(path, direction="sideways")
    with pytest.raises(ValueError, match="direction stored at .* must be one of"):
        load_score(path)
    _edit_meta(path, direction=None)
    with pytest.raises(ValueError, match=r"meta lacks \['direction'\]"):
        load_score(path)


def test_save_score_validation(tmp_path):
    bad = [
        (dict(direction="higher-better"), "direction must be one of"),
        (dict(score=""), "score must be a non-empty string"),
        (dict(model="mlp"), "model must be a dict"),
        (dict(seconds={"train": -1.0}), r"seconds\['train'\] must be a finite number >= 0"),
        (dict(seconds={"train": float("nan")}), r"seconds\['train'\]"),
        (dict(meta={"direction": "higher-keep"}), r"meta may not set \['direction'\]"),
    ]
    for kw, message in bad:
        with pytest.raises(ValueError, match=message):
            _score(tmp_path, **kw)
    nan = torch.tensor([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="1 non-finite value"):
        save_score(
            tmp_path / "n",
            torch.arange(3),
            nan,
            score="e",
            direction="higher-keep",
            model=MODEL,
            fingerprint=_fp(3),
        )
    with pytest.raises(ValueError, match="scores must be 1-D"):
        save_score(
            tmp_path / "n",
            torch.arange(3),
            torch.zeros(3, 2),
            score="e",
            direction="higher-keep",
            model=MODEL,
            fingerprint=_fp(3),
        )
    assert not any(tmp_path.iterdir())  # nothing was written


# ---- direction --------------------------------------------------------------------------------


def test_keep_priority_orients_scores():
    scores = torch.tensor([0.2, 0.9, -0.5, 0.4])
    assert DIRECTIONS == ("higher-keep", "higher-prune")
    assert torch.equal(keep_priority(scores, "higher-keep"), scores)
    assert torch.equal(keep_priority(scores, "higher-prune"), -scores)
    # "hardest" keeps the highest priority: the top scores, or the bottom ones for higher-prune
    top = select_subset(keep_priority(scores, "higher-keep"), policy="hardest", budget=2)
    bottom = select_subset(keep_priority(scores, "higher-prune"), policy="hardest", budget=2)
    assert top.tolist() == [1, 3] and bottom.tolist() == [0, 2]
    with pytest.raises(ValueError, match="direction must be one of"):
        keep_priority(scores, "lower-keep")
    with pytest.raises(ValueError, match="floating"):
        keep_priority(torch.tensor([1, 2]), "higher-prune")


# ---- selections -------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["npy", "parquet"])
def test_selection_round_trip_keeps_order_and_fields(tmp_path, file_format):
    if file_format == "parquet":
        pytest.importorskip("pyarrow")
    scores = load_score(_score(tmp_path))
    source = source_of(tmp_path / "s", scores)
    ids = torch.tensor([35, 5, 90, 0, 60])  # selection order, not sorted
    path = save_selection(
        tmp_path / "sel",
        ids,
        policy="hardest",
        n_total=N,
        fingerprint=_fp(),
        score="entropy",
        direction="higher-keep",
        budget=5,
        source=source,
        meta={"seed": 1},
        file_format=file_format,
    )
    selected = load_selection(path, fingerprint=_fp())
    assert isinstance(selected, Selected) and len(selected) == 5
    assert torch.equal(selected.ids, ids) and selected.ids.dtype == torch.int64
    assert selected.meta == {
        "policy": "hardest",
        "keep": None,
        "budget": 5,
        "size": 5,
        "n_total": N,
        "score": "entropy",
        "direction": "higher-keep",
        "source": source,
        "seed": 1,
    }
    assert source["sha256"] == scores.manifest["sha256"] and source["created"]
    assert selected.manifest["kind"] == "selection" and selected.manifest["created"]


def test_selection_order_survives_reordered_rows(tmp_path):
    # the positions column, not the row order, carries the selection order
    save_scores(
        tmp_path / "sel",
        torch.tensor([4, 8, 1]),
        torch.tensor([2.0, 0.0, 1.0]),
        kind="selection",
        fingerprint=_fp(),
        meta={
            "policy": "p",
            "keep": 0.15,
            "budget": None,
            "size": 3,
            "n_total": N,
            "score": None,
            "direction": None,
            "source": None,
        },
    )
    assert load_selection(tmp_path / "sel").ids.tolist() == [8, 1, 4]


def test_selection_with_bad_positions_or_size_refused(tmp_path):
    meta = {
        "policy": "p",
        "keep": 0.15,
        "budget": None,
        "size": 3,
        "n_total": N,
        "score": None,
        "direction": None,
        "source": None,
    }
    save_scores(
        tmp_path / "a",
        torch.tensor([4, 8, 1]),
        torch.tensor([0.0, 0.0, 1.0]),
        kind="selection",
        fingerprint=_fp(),
        meta=meta,
    )
    with pytest.raises(ValueError, match="corrupt: its positions"):
        load_selection(tmp_path / "a")
    path = _selection(tmp_path)
    _edit_meta(path, size=7)
    with pytest.raises(ValueError, match=r"size \(7\) is not its number of ids \(4\)"):
        load_selection(path)
    path = _selection(tmp_path, name="dir", direction="higher-keep")
    _edit_meta(path, direction="up")
    with pytest.raises(ValueError, match="direction stored at .* must be one of"):
        load_selection(path)


def test_load_selection_refuses_mismatch_and_kind(tmp_path):
    path = _selection(tmp_path)
    assert load_selection(path, fingerprint=_fp()).ids.tolist() == [7, 2, 11, 0]
    with pytest.raises(ValueError, match="count: stored 20 != expected 21"):
        load_selection(path, fingerprint=_fp(21))
    with pytest.raises(ValueError, match="'proxy-score' scores, not 'selection'"):
        load_selection(_score(tmp_path))


def test_save_selection_validation(tmp_path):
    bad = [
        (dict(ids=()), "the selection is empty"),
        (dict(ids=(3, 1, 3, 1, 5)), "ids has 2 duplicate id"),
        (dict(ids=tuple(range(21)), n_total=21, fingerprint=_fp(21)), None),  # valid: all of it
        (dict(ids=tuple(range(21))), "21 ids, more than n_total=20"),
        (dict(keep=0.0), r"keep must be a fraction in \(0, 1\], got 0.0"),
        (dict(keep=1.5), r"keep must be a fraction in \(0, 1\]"),
        (dict(keep=None, budget=0), r"budget must be in \[1, 20\], got 0"),
        (dict(keep=None, budget=21), r"budget must be in \[1, 20\], got 21"),
        (dict(keep=0.2, budget=4), "exactly one of keep"),
        (dict(keep=None), "exactly one of keep"),
        (dict(direction="up"), "direction must be one of"),
        (dict(policy=""), "policy must be a non-empty string"),
        (dict(n_total=0, fingerprint={}), "n_total must be an int >= 1"),
        (dict(n_total=25), "n_total=25 differs from the fingerprint's count 20"),
        (dict(meta={"size": 3}), r"meta may not set \['size'\]"),
        (dict(ids=(0.0, 1.0)), "ids must be a 1-D integer tensor"),
    ]
    for kw, message in bad:
        if message is None:
            assert len(load_selection(_selection(tmp_path, name="ok", **kw))) == 21
            continue
        with pytest.raises(ValueError, match=message):
            _selection(tmp_path, name="bad", **kw)
    assert not (tmp_path / "bad").exists()


# ---- subsets and samplers ---------------------------------------------------------------------


def _dataset(n=10):
    return TensorDataset(torch.arange(n) * 10.0, torch.arange(n))


def test_subset_of_positions_and_ids():
    data = _dataset()
    subset = subset_of(data, torch.tensor([7, 2, 9]))
    assert [int(subset[j][1]) for j in range(len(subset))] == [7, 2, 9]
    # non-contiguous ids, shuffled relative to positions: id 100 + 7 * p lives at position p
    dataset_ids = 100 + 7 * torch.arange(10)
    dataset_ids = dataset_ids[torch.tensor([3, 0, 9, 1, 4, 8, 2, 6, 5, 7])]
    wanted = dataset_ids[torch.tensor([5, 0, 8])]
    subset = subset_of(data, wanted, dataset_ids=dataset_ids)
    assert subset.indices == [5, 0, 8]
    assert torch.equal(torch.stack([subset[j][1] for j in range(3)]), torch.tensor([5, 0, 8]))


def test_subset_of_refuses_unknown_ids():
    data, dataset_ids = _dataset(), torch.arange(10) * 3
    with pytest.raises(ValueError, match=r"2 selected id\(s\) are not in the dataset.*\[4, 1000\]"):
        subset_of(data, torch.tensor([3, 4, 1000]), dataset_ids=dataset_ids)
    with pytest.raises(ValueError, match=r"1 selected id\(s\) .*positions 0..9"):
        subset_of(data, torch.tensor([3, 10]))
    with pytest.raises(ValueError, match=r"1 selected id\(s\)"):
        subset_of(data, torch.tensor([-1, 3]))
    with pytest.raises(ValueError, match="duplicate"):
        subset_of(data, torch.tensor([3, 3]))
    with pytest.raises(ValueError, match=r"one id per example \(10\), got 9"):
        subset_of(data, torch.tensor([3]), dataset_ids=dataset_ids[:9])
    with pytest.raises(ValueError, match="unique"):
        subset_of(data, torch.tensor([3]), dataset_ids=torch.zeros(10, dtype=torch.long))


def test_subset_of_a_loaded_selection_trains_on_the_right_rows(tmp_path):
    data = _dataset(N)
    selected = load_selection(_selection(tmp_path, ids=(19, 4, 0, 13)), fingerprint=_fp())
    labels = torch.cat([y for _, y in DataLoader(subset_of(data, selected.ids), batch_size=3)])
    assert labels.tolist() == [19, 4, 0, 13]


def test_selection_sampler_yields_the_selected_positions():
    dataset_ids = torch.tensor([50, 10, 40, 20, 30])
    sampler = selection_sampler(torch.tensor([40, 10]), dataset_ids=dataset_ids)
    assert sorted(sampler) == [1, 2] and len(sampler) == 2
    plain = selection_sampler(torch.tensor([6, 1, 3]), generator=torch.Generator().manual_seed(0))
    draws = [list(plain) for _ in range(5)]
    assert all(sorted(d) == [1, 3, 6] for d in draws)
    again = selection_sampler(torch.tensor([6, 1, 3]), generator=torch.Generator().manual_seed(0))
    assert [list(again) for _ in range(5)] == draws  # its own generator decides the order
    with pytest.raises(ValueError, match=r"1 selected id\(s\) are not in the dataset"):
        selection_sampler(torch.tensor([40, 45]), dataset_ids=dataset_ids)
    with pytest.raises(ValueError, match=r"\(positions >= 0\), e\.g\. \[-2\]"):
        selection_sampler(torch.tensor([-2, 1]))
