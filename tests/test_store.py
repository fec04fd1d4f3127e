"""Tests for siftdata.store: round trips, lookup by id, validation, integrity and atomic saves."""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import torch

from siftdata.store import ScoreTable, dataset_fingerprint, load_scores, save_scores
from siftdata.training.diagnostics import count_host_syncs


def _data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, generator=g), torch.randint(0, 5, (n,), generator=g)


def _fp(n=50, seed=0):
    x, y = _data(n, seed)
    return dataset_fingerprint(y, x)


@pytest.mark.parametrize("shape", [(40,), (40, 3)])
def test_round_trip(tmp_path, shape):
    g = torch.Generator().manual_seed(1)
    ids = torch.randperm(100, generator=g)[:40]
    scores = torch.randn(*shape, generator=g)
    path = save_scores(tmp_path / "s", ids, scores, kind="k", fingerprint=_fp(), meta={"a": 1})
    table = load_scores(path, kind="k", fingerprint=_fp())
    assert torch.equal(table.ids, ids) and torch.equal(table.scores, scores)
    assert len(table) == 40
    m = table.manifest
    assert m["format"] == "siftdata-scores" and m["version"] == 1 and m["kind"] == "k"
    assert m["count"] == 40 and m["shape"] == list(shape) and m["dtype"] == "float32"
    assert m["meta"] == {"a": 1} and set(m["sha256"]) == {"ids.npy", "scores.npy"}


def _slow_lookup(ids, scores, query):
    table = {int(i): scores[k] for k, i in enumerate(ids)}
    return torch.stack([table[int(q)] for q in query])


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("shape", [(30,), (30, 2)])
def test_lookup_matches_dict(dense, shape):
    g = torch.Generator().manual_seed(2)
    ids = torch.arange(30) if dense else torch.randperm(1000, generator=g)[:30] * 7
    scores = torch.randn(*shape, generator=g)
    table = ScoreTable(ids, scores)
    assert (table.index.order is None) is dense
    query = ids[torch.randint(0, 30, (64,), generator=g)]
    assert torch.equal(table.lookup(query), _slow_lookup(ids, scores, query))
    assert torch.equal(table.lookup(query, check_values=True), _slow_lookup(ids, scores, query))
    assert torch.equal(table.to("cpu").lookup(query), table.lookup(query))
    grid = query[:12].reshape(3, 4)  # any shape of ids: the rows come back in that shape
    assert table.lookup(grid).shape == (3, 4, *shape[1:])
    assert torch.equal(table.lookup(grid).reshape(12, *shape[1:]), table.lookup(query[:12]))


@pytest.mark.parametrize("dense", [True, False])
def test_lookup_makes_no_host_sync_unless_checking(dense):
    ids = torch.arange(30) if dense else torch.randperm(30) * 7 + 3
    table = ScoreTable(ids, torch.randn(30))  # building the index may sync once
    query = ids[:10]
    with count_host_syncs() as syncs:
        table.lookup(query)
    assert syncs.total == 0, syncs.counts
    with count_host_syncs() as syncs:
        table.lookup(query, check_values=True)
    assert syncs.total > 0


def test_permuted_ids_not_dense():
    ids = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    scores = torch.arange(20.0) * 10
    table = ScoreTable(ids, scores)
    assert table.index.order is not None
    assert torch.equal(table.lookup(ids), scores)


@pytest.mark.parametrize("ids", [torch.arange(10), torch.arange(10) * 3])
def test_unknown_id(ids):
    table = ScoreTable(ids, torch.zeros(10))
    for unknown in (torch.tensor([3, 1000]), torch.tensor([-1]), torch.tensor([[0], [11]])):
        with pytest.raises(ValueError, match="not in the table"):
            table.lookup(unknown, check_values=True)
        with pytest.raises(ValueError, match="not in the table"):
            table.check_ids(unknown)
    table.check_ids(ids)  # every known id passes
    with pytest.raises(ValueError, match="integer"):  # the dtype is checked without check_values
        table.lookup(torch.tensor([1.0]))


def test_save_validation(tmp_path):
    fp = _fp()
    with pytest.raises(ValueError, match="unique"):
        save_scores(
            tmp_path / "a", torch.tensor([0, 1, 1]), torch.zeros(3), kind="k", fingerprint=fp
        )
    with pytest.raises(ValueError, match="ids and scores"):
        save_scores(tmp_path / "a", torch.arange(3), torch.zeros(4), kind="k", fingerprint=fp)
    with pytest.raises(ValueError, match="non-finite"):
        bad = torch.tensor([0.0, float("nan"), 1.0])
        save_scores(tmp_path / "a", torch.arange(3), bad, kind="k", fingerprint=fp)
    with pytest.raises(ValueError, match="ids must be a 1-D integer"):
        save_scores(tmp_path / "a", torch.arange(3.0), torch.zeros(3), kind="k", fingerprint=fp)
    with pytest.raises(ValueError, match="kind"):
        save_scores(tmp_path / "a", torch.arange(3), torch.zeros(3), kind="", fingerprint=fp)
    assert not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="unique"):
        ScoreTable(torch.tensor([5, 2, 5]), torch.zeros(3))


def _saved(tmp_path, **kw):
    return save_scores(
        tmp_path / "s", torch.arange(50), torch.rand(50), kind="k", fingerprint=_fp(), **kw
    )


def test_corrupt_file(tmp_path):
    path = _saved(tmp_path)
    data = bytearray((path / "scores.npy").read_bytes())
    data[-1] ^= 0xFF
    data[-5] ^= 0x0F
    (path / "scores.npy").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_scores(path)


def test_shape_disagrees_with_manifest(tmp_path):
    path = _saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["shape"] = [50, 2]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="disagrees with its manifest"):
        load_scores(path)


def test_fingerprint_mismatch_count(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="count: stored 50 != expected 49.*rebuild"):
        load_scores(path, fingerprint=_fp(n=49))


def test_fingerprint_mismatch_labels(tmp_path):
    path = _saved(tmp_path)
    x, y = _data()
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 5
    with pytest.raises(ValueError, match="labels_sha256") as err:
        load_scores(path, fingerprint=dataset_fingerprint(y2, x))
    assert "items_sha256" not in str(err.value) and "count" not in str(err.value)
    x2 = x.clone()
    x2[0] += 1
    with pytest.raises(ValueError, match="items_sha256"):
        load_scores(path, fingerprint=dataset_fingerprint(y, x2))


def test_wrong_kind_and_format(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="'k' scores, not 'embedding'"):
        load_scores(path, kind="embedding")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="version"):
        load_scores(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="parsed"):
        load_scores(path)


def test_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_scores(tmp_path / "nope")
    path = _saved(tmp_path)
    (path / "manifest.json").unlink()
    with pytest.raises(ValueError, match="manifest.json is missing"):
        load_scores(path)


def test_atomic_replace(tmp_path):
    path = _saved(tmp_path, meta={"v": 1})
    new = torch.arange(10.0)
    save_scores(path, torch.arange(10), new, kind="k2", fingerprint=_fp(10), meta={"v": 2})
    table = load_scores(path, kind="k2", fingerprint=_fp(10))
    assert torch.equal(table.scores, new) and table.manifest["meta"] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temp or backup left


def test_failed_save_keeps_old_store(tmp_path):
    path = _saved(tmp_path)
    with pytest.raises(ValueError, match="JSON"):
        save_scores(
            path, torch.arange(3), torch.zeros(3), kind="k", fingerprint=_fp(), meta={"f": object()}
        )
    assert len(load_scores(path)) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_refuses_to_replace_other_directory(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match="not a score store"):
        save_scores(other, torch.arange(3), torch.zeros(3), kind="k", fingerprint=_fp())
    assert (other / "precious.txt").read_text() == "keep"


def test_fingerprint_fields():
    x, y = _data()
    fp = dataset_fingerprint(y, x, n_items=4)
    assert fp["count"] == 50 and len(fp["labels_sha256"]) == 64 and len(fp["items_sha256"]) == 64
    assert dataset_fingerprint(y)["items_sha256"] is None
    x2 = x.clone()
    x2[1] += 1  # not one of 4 evenly spaced rows (0, 16, 33, 49)
    assert dataset_fingerprint(y, x2, n_items=4) == fp
    with pytest.raises(ValueError, match="inputs"):
        dataset_fingerprint(y, x[:10])
    with pytest.raises(ValueError, match="n_items"):
        dataset_fingerprint(y, x, n_items=0)


def test_fingerprint_of_integer_labels_ignores_their_dtype():
    x, y = _data()
    for dtype in (torch.int32, torch.int16, torch.uint8):
        assert dataset_fingerprint(y.to(dtype), x) == dataset_fingerprint(y.to(torch.int64), x)
    y2 = y.clone()
    y2[7] = (y2[7] + 1) % 5
    assert dataset_fingerprint(y2.int(), x) != dataset_fingerprint(y, x)
    flags = torch.tensor([True, False, True])
    assert dataset_fingerprint(flags) == dataset_fingerprint(flags.long())


def test_fingerprint_of_float_labels_keeps_their_fraction():
    # float labels once went through int64, so 0.4 and 0.0 looked the same
    soft = torch.tensor([0.4, 1.0, 0.25])
    assert dataset_fingerprint(soft) != dataset_fingerprint(torch.tensor([0.0, 1.0, 0.25]))
    # exactly representable values hash alike in any float dtype
    exact = torch.tensor([0.5, 1.0, 0.25])
    assert dataset_fingerprint(exact.half()) == dataset_fingerprint(exact.double())


# ---- Parquet layout -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40,), (40, 3)])
def test_parquet_round_trip_equals_npy(tmp_path, shape):
    pytest.importorskip("pyarrow")
    g = torch.Generator().manual_seed(4)
    ids = torch.randperm(100, generator=g)[:40] * 3
    scores = torch.randn(*shape, generator=g, dtype=torch.float64)
    kw = dict(kind="k", fingerprint=_fp(), meta={"a": 1})
    npy = load_scores(save_scores(tmp_path / "n", ids, scores, **kw), fingerprint=_fp())
    path = save_scores(tmp_path / "p", ids, scores, file_format="parquet", **kw)
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "table.parquet"]
    table = load_scores(path, kind="k", fingerprint=_fp())
    assert torch.equal(table.ids, npy.ids) and torch.equal(table.scores, npy.scores)
    assert table.scores.dtype == torch.float64 and table.ids.dtype == torch.int64
    m = table.manifest
    assert m["file_format"] == "parquet" and npy.manifest["file_format"] == "npy"
    assert list(m["sha256"]) == ["table.parquet"] and len(m["sha256"]["table.parquet"]) == 64
    assert m["shape"] == list(shape) and m["meta"] == {"a": 1}
    import pyarrow.parquet as pq

    columns = pq.read_table(path / "table.parquet").column_names
    assert columns == (
        ["id", "score"] if len(shape) == 1 else ["id", "score_0", "score_1", "score_2"]
    )
    assert torch.equal(table.lookup(ids[:5]), scores[:5])


def test_parquet_half_scores_are_stored_as_float32(tmp_path):
    pytest.importorskip("pyarrow")
    scores = torch.tensor([0.5, -1.25, 3.0]).half()
    path = save_scores(
        tmp_path / "p", torch.arange(3), scores, kind="k", fingerprint=_fp(), file_format="parquet"
    )
    table = load_scores(path)
    assert table.scores.dtype == torch.float32 and torch.equal(table.scores, scores.float())


def test_parquet_corrupt_file_refused(tmp_path):
    pytest.importorskip("pyarrow")
    path = _saved(tmp_path, file_format="parquet")
    data = bytearray((path / "table.parquet").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "table.parquet").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt: the sha256 of table.parquet"):
        load_scores(path)
    (path / "table.parquet").unlink()
    with pytest.raises(ValueError, match="table.parquet is missing"):
        load_scores(path)


def test_parquet_with_wrong_columns_refused(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = _saved(tmp_path, file_format="parquet")
    pq.write_table(pa.table({"id": pa.array([0, 1]), "other": pa.array([0.0, 1.0])}), path / "x")
    data = (path / "x").read_bytes()
    (path / "x").unlink()
    (path / "table.parquet").write_bytes(data)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["sha256"]["table.parquet"] = hashlib.sha256(data).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"corrupt: table.parquet has columns \['id', 'other'\]"):
        load_scores(path)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    stored = _saved(tmp_path, file_format="parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'siftdata\[parquet\]'"):
        save_scores(
            tmp_path / "new",
            torch.arange(3),
            torch.zeros(3),
            kind="k",
            fingerprint=_fp(),
            file_format="parquet",
        )
    assert not (tmp_path / "new").exists()  # nothing written
    with pytest.raises(ImportError, match=r"siftdata\[parquet\]"):
        load_scores(stored)
    npy = save_scores(
        tmp_path / "npy", torch.arange(3), torch.zeros(3), kind="k", fingerprint=_fp()
    )
    assert len(load_scores(npy)) == 3  # the default layout needs no pyarrow


def test_unknown_file_format(tmp_path):
    with pytest.raises(ValueError, match="file_format must be one of"):
        _saved(tmp_path, file_format="csv")
    path = _saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["file_format"] = "csv"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="unknown file_format 'csv'"):
        load_scores(path)


def test_old_manifest_without_file_format_loads(tmp_path):
    path = _saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest.pop("file_format") == "npy"
    (path / "manifest.json").write_text(json.dumps(manifest))
    table = load_scores(path, kind="k", fingerprint=_fp())
    assert torch.equal(table.ids, torch.arange(50)) and "file_format" not in table.manifest


def test_replacing_across_layouts(tmp_path):
    pytest.importorskip("pyarrow")
    path = _saved(tmp_path, file_format="parquet")
    save_scores(path, torch.arange(4), torch.ones(4), kind="k", fingerprint=_fp())
    assert sorted(p.name for p in path.iterdir()) == ["ids.npy", "manifest.json", "scores.npy"]
    (path / "manifest.json").unlink()
    (path / "ids.npy").unlink()
    (path / "scores.npy").unlink()
    (path / "table.parquet").write_bytes(b"left over")  # a half-written parquet store
    save_scores(path, torch.arange(2), torch.ones(2), kind="k", fingerprint=_fp())
    assert len(load_scores(path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
