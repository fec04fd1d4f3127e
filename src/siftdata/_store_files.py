"""The row files of a score store (:mod:`siftdata.store`) in its two layouts: ``.npy`` or Parquet.

``"npy"`` writes ``ids.npy`` and ``scores.npy``; ``"parquet"`` writes one ``table.parquet`` (an
``id`` int64 column, then ``score`` or ``score_0 … score_{D-1}``) and needs pyarrow, which is
imported on first use. :func:`write_rows` returns each file's sha256 for the manifest and
:func:`read_rows` checks those digests before parsing, so a damaged file is refused by name.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

FILE_FORMATS = ("npy", "parquet")
"""How the rows are written: two ``.npy`` files, or one Parquet table (needs pyarrow)."""
IDS, SCORES, TABLE = "ids.npy", "scores.npy", "table.parquet"
ROW_FILES = (IDS, SCORES, TABLE)
"""Every file name either layout writes."""


def require_pyarrow():
    """``(pyarrow, pyarrow.parquet)``, imported on first use (an optional dependency)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise ImportError(
            "Parquet score stores need pyarrow: pip install 'siftdata[parquet]'"
        ) from err
    return pyarrow, pyarrow.parquet


def _score_columns(shape: tuple[int, ...]) -> list[str]:
    return ["score"] if len(shape) == 1 else [f"score_{j}" for j in range(shape[1])]


def to_array(scores: Tensor, file_format: str) -> np.ndarray:
    """``scores`` (on the CPU) as the array ``file_format`` stores, widened where it must be."""
    # no numpy bfloat16; Parquet float16 needs a newer pyarrow than the extra asks for
    widen = (torch.bfloat16, torch.float16) if file_format == "parquet" else (torch.bfloat16,)
    array = (scores.float() if scores.dtype in widen else scores).numpy()
    if file_format == "parquet" and array.ndim == 2 and array.shape[1] == 0:
        raise ValueError("a Parquet store needs at least one score column; got shape (N, 0)")
    return array


def _write_parquet(path: Path, ids: np.ndarray, array: np.ndarray) -> None:
    pa, pq = require_pyarrow()
    columns = [ids, *(array.T if array.ndim == 2 else [array])]
    arrays = [pa.array(np.ascontiguousarray(column)) for column in columns]
    pq.write_table(pa.table(arrays, names=["id", *_score_columns(array.shape)]), path)


def write_rows(directory: Path, ids: np.ndarray, array: np.ndarray, file_format: str) -> dict:
    """Write int64 ``ids`` and the score rows ``array`` into ``directory``: ``{file: sha256}``."""
    if file_format == "parquet":
        _write_parquet(directory / TABLE, ids, array)
        names = (TABLE,)
    else:
        np.save(directory / IDS, ids, allow_pickle=False)
        np.save(directory / SCORES, array, allow_pickle=False)
        names = (IDS, SCORES)
    return {name: hashlib.sha256((directory / name).read_bytes()).hexdigest() for name in names}


def _read_checked(path: Path, name: str, digest: Any) -> bytes:
    if not (path / name).is_file():
        raise ValueError(f"the store at {path} is corrupt: {name} is missing")
    data = (path / name).read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"the store at {path} is corrupt: the sha256 of {name} does not match")
    return data


def _read_npy(path: Path, name: str, digest: Any) -> np.ndarray:
    return np.load(io.BytesIO(_read_checked(path, name, digest)), allow_pickle=False)


def _read_parquet(path: Path, digest: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` from ``table.parquet``; scores 1-D for a ``score`` column, else 2-D."""
    pa, pq = require_pyarrow()
    table = pq.read_table(pa.BufferReader(_read_checked(path, TABLE, digest)))
    names = table.column_names
    expected = (["score"], _score_columns((0, len(names) - 1)))
    if len(names) < 2 or names[0] != "id" or names[1:] not in expected:
        raise ValueError(f"the store at {path} is corrupt: {TABLE} has columns {names}")
    if table.schema.field("id").type != pa.int64():
        raise ValueError(f"the store at {path} is corrupt: its id column is not int64")
    ids = table.column("id").to_numpy()
    columns = [table.column(name).to_numpy() for name in names[1:]]
    scores = columns[0] if names[1:] == ["score"] else np.stack(columns, axis=1)
    writable = ["WRITEABLE", "C_CONTIGUOUS"]  # torch.from_numpy warns on read-only arrays
    return np.require(ids, requirements=writable), np.require(scores, requirements=writable)


def read_rows(path: Path, file_format: Any, digests: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, scores)`` of the store at ``path``, their files checked against ``digests``."""
    if file_format == "npy":
        return _read_npy(path, IDS, digests.get(IDS)), _read_npy(path, SCORES, digests.get(SCORES))
    if file_format == "parquet":
        return _read_parquet(path, digests.get(TABLE))
    raise ValueError(f"the store at {path} has an unknown file_format {file_format!r}")
