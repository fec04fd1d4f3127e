"""Scores keyed by example id, on disk, with a manifest and a dataset fingerprint.

A *score store* is a directory::

    ids.npy        int64 example ids, shape (N,)
    scores.npy     one row per id, shape (N,) or (N, D)
    manifest.json  {"format": "siftdata-scores", "version": 1, "kind", "file_format", "count",
                    "shape", "dtype", "fingerprint", "sha256": {file: digest}, "meta", "created"}

or, with ``file_format="parquet"`` (the ``parquet`` extra, pyarrow), ``table.parquet`` in place of
the two ``.npy`` files: an ``id`` int64 column and a ``score`` column (scores ``(N,)``) or
``score_0 … score_{D-1}`` (scores ``(N, D)``). A manifest without ``file_format`` is ``"npy"``.

It holds reference losses (``kind="reference-loss"``), offline proxy scores or cached embeddings.
:func:`save_scores` writes atomically (temporary directory + rename), so an interrupted save never
leaves half a store. :func:`load_scores` checks format, kind, checksums, shapes and the dataset
fingerprint, so a cache built for other data is refused, not misused. :class:`ScoreTable` looks
rows up by example id on any device without a Python loop over examples.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._files import fs_errors, new_temp_dir, swap_into_place
from ._ids import IdIndex, is_integer_tensor
from ._store_files import FILE_FORMATS, ROW_FILES, read_rows, require_pyarrow, to_array, write_rows
from ._validation import check_same_length

__all__ = [
    "FILE_FORMATS",
    "FORMAT",
    "VERSION",
    "ScoreTable",
    "dataset_fingerprint",
    "load_scores",
    "save_scores",
]

FORMAT = "siftdata-scores"
VERSION = 1
_MANIFEST = "manifest.json"


def _sha256(data: bytes | Tensor) -> str:
    """The sha256 of bytes, or of a tensor's raw bytes (contiguous, on the CPU; any dtype)."""
    if isinstance(data, Tensor):
        data = data.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def dataset_fingerprint(
    labels: Tensor, inputs: Tensor | tuple[Tensor, ...] | None = None, *, n_items: int = 16
) -> dict:
    """A cheap fingerprint of a dataset, to check that a cache was built for the same data.

    Parameters
    ----------
    labels : Tensor
        Labels, one per example (shape ``(N,)``); hashed in full, integer (and bool) labels as
        int64, floating ones (soft or regression targets) as float64, so that 0.4 and 0.0
        differ.
    inputs : Tensor, tuple of Tensors, or None, default None
        Inputs with examples along dim 0 (every part of a tuple is hashed). Only ``n_items``
        evenly spaced rows are hashed (their raw bytes, contiguous on the CPU), so fingerprinting
        a large dataset stays cheap.
    n_items : int, default 16
        How many rows of ``inputs`` to hash (fewer if there are fewer examples).

    Returns
    -------
    dict
        ``{"count": N, "labels_sha256": str, "items_sha256": str or None}``.
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D (one per example), got shape {tuple(labels.shape)}")
    if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1:
        raise ValueError(f"n_items must be an int >= 1, got {n_items!r}")
    n = labels.shape[0]
    items = None
    if inputs is not None:
        rows = torch.linspace(0, max(n - 1, 0), min(n_items, n)).round().long().unique()
        parts = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        digests = [_sampled_rows_sha256(torch.as_tensor(p), rows, n) for p in parts]
        items = digests[0] if len(digests) == 1 else _sha256("".join(digests).encode())
    wide = torch.float64 if labels.is_floating_point() else torch.int64
    return {
        "count": int(n),
        "labels_sha256": _sha256(labels.to(wide)),
        "items_sha256": items,
    }


def _sampled_rows_sha256(inputs: Tensor, rows: Tensor, n: int) -> str:
    if inputs.dim() == 0 or inputs.shape[0] != n:
        raise ValueError(f"inputs must have one row per label ({n}), got {tuple(inputs.shape)}")
    return _sha256(inputs.index_select(0, rows.to(inputs.device)))


def _check_ids_scores(ids: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Validate and return ``(ids, scores)`` as detached CPU tensors (ids int64)."""
    ids, scores = torch.as_tensor(ids), torch.as_tensor(scores)
    if ids.dim() != 1 or not is_integer_tensor(ids):
        raise ValueError(f"ids must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}")
    if scores.dim() not in (1, 2) or not scores.is_floating_point():
        raise ValueError(f"scores must be a float (N,) or (N, D) tensor, got {scores.dtype}")
    check_same_length(ids, scores, "ids", "scores")
    ids = ids.detach().to("cpu", torch.int64)
    n_dup = ids.numel() - ids.unique().numel()
    if n_dup:
        raise ValueError(f"ids must be unique; found {n_dup} duplicate(s)")
    scores = scores.detach().to("cpu")
    n_bad = int((~torch.isfinite(scores)).sum())
    if n_bad:
        raise ValueError(f"scores has {n_bad} non-finite value(s) (NaN or inf)")
    return ids, scores


def _is_replaceable(path: Path) -> bool:
    """Only a directory holding store files alone (or none), or a score store, may be replaced."""
    if not path.is_dir():
        return False
    if all(p.name in (*ROW_FILES, _MANIFEST) for p in path.iterdir()):
        return True
    try:
        return json.loads((path / _MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _new_manifest(
    kind: str, array: np.ndarray, fingerprint: dict, meta: dict | None, file_format: str
) -> dict:
    """The manifest of a new store (checksums are filled in once the files are written)."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "file_format": file_format,
        "count": int(array.shape[0]),
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "fingerprint": fingerprint,
        "sha256": {},
        "meta": meta,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        json.dumps(manifest)
    except (TypeError, ValueError) as err:
        raise ValueError(f"fingerprint and meta must be JSON-serialisable: {err}") from err
    return manifest


def save_scores(
    path: str | os.PathLike,
    ids: Tensor,
    scores: Tensor,
    *,
    kind: str,
    fingerprint: dict,
    meta: dict | None = None,
    file_format: str = "npy",
) -> Path:
    """Write scores keyed by example id to the directory ``path``, atomically.

    Parameters
    ----------
    path : str or PathLike
        Target directory. An existing score store (or empty directory) there is replaced; any other
        existing path is refused.
    ids : Tensor
        Unique integer example ids, shape ``(N,)``.
    scores : Tensor
        Finite floating scores, shape ``(N,)`` or ``(N, D)``; row ``i`` belongs to ``ids[i]``.
    kind : str
        What the scores are (e.g. ``"reference-loss"``); :func:`load_scores` can require it.
    fingerprint : dict
        The :func:`dataset_fingerprint` of the data the scores were computed on.
    meta : dict or None, default None
        Free-form JSON-serialisable notes (how the scores were made, what they cost).
    file_format : {"npy", "parquet"}, default "npy"
        ``"parquet"`` writes one ``table.parquet`` (needs the ``parquet`` extra, pyarrow); float16
        and bfloat16 scores are stored there as float32 (bfloat16 also in ``"npy"``).

    Returns
    -------
    Path
        The store's directory.

    Raises
    ------
    ImportError
        If ``file_format="parquet"`` and pyarrow is not installed.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if not isinstance(fingerprint, dict):
        raise ValueError(f"fingerprint must be a dict, got {type(fingerprint).__name__}")
    if file_format not in FILE_FORMATS:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, got {file_format!r}")
    if file_format == "parquet":
        require_pyarrow()  # fail before writing anything
    ids, scores = _check_ids_scores(ids, scores)
    array = to_array(scores, file_format)
    manifest = _new_manifest(kind, array, fingerprint, meta, file_format)
    path = Path(path)
    if path.exists() and not _is_replaceable(path):
        raise ValueError(f"path {path} exists and is not a score store; refusing to replace it")
    with fs_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = new_temp_dir(path.parent, f".{path.name}.tmp-")
    try:
        with fs_errors(path):
            manifest["sha256"] = write_rows(tmp, ids.numpy(), array, file_format)
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _read_manifest(path: Path) -> dict:
    if not path.is_dir():
        raise FileNotFoundError(f"no score store at {path} (directory not found)")
    file = path / _MANIFEST
    if not file.is_file():
        raise ValueError(f"{path} is not a score store: {_MANIFEST} is missing")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{file} could not be parsed ({err}); the store is corrupt") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{file} is not a {FORMAT!r} manifest")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{file} has version {manifest.get('version')!r}; expected {VERSION}")
    return manifest


def _check_fingerprint(stored: Any, expected: dict, path: Path) -> None:
    expected = json.loads(json.dumps(expected))  # compare in the JSON-normalised form
    stored = stored if isinstance(stored, dict) else {}  # a damaged manifest differs everywhere
    diffs = [
        f"{k}: stored {stored.get(k)!r} != expected {expected.get(k)!r}"
        for k in sorted(set(stored) | set(expected))
        if stored.get(k) != expected.get(k)
    ]
    if diffs:
        detail = "fingerprint mismatch: " + "; ".join(diffs)
        raise ValueError(f"{path} was built for other data ({detail}); rebuild the cache")


def load_scores(
    path: str | os.PathLike, *, kind: str | None = None, fingerprint: dict | None = None
) -> ScoreTable:
    """Read a score store written by :func:`save_scores`, checking it before use.

    Parameters
    ----------
    path : str or PathLike
        The store's directory.
    kind : str or None, default None
        If given, the store's kind must equal it.
    fingerprint : dict or None, default None
        If given, the store's fingerprint must equal it (see :func:`dataset_fingerprint`).

    Returns
    -------
    ScoreTable
        The ids, scores and manifest, on the CPU.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory.
    ImportError
        If the store is a Parquet one and pyarrow is not installed.
    ValueError
        If the manifest is missing or unparsable, the format, version or kind is wrong, a file is
        corrupt, the shapes disagree with the manifest, or the fingerprint differs.
    """
    path = Path(path)
    manifest = _read_manifest(path)
    if kind is not None and manifest.get("kind") != kind:
        raise ValueError(f"the store at {path} holds {manifest.get('kind')!r} scores, not {kind!r}")
    if fingerprint is not None:
        _check_fingerprint(manifest.get("fingerprint"), fingerprint, path)
    file_format = manifest.get("file_format", "npy")  # none before the Parquet layout
    ids, scores = read_rows(path, file_format, manifest.get("sha256") or {})
    found = [list(ids.shape), list(scores.shape), str(scores.dtype)]
    declared = [[manifest.get("count")], manifest.get("shape"), manifest.get("dtype")]
    if found != declared:
        raise ValueError(
            f"the store at {path} disagrees with its manifest: ids shape, scores shape and dtype "
            f"are {found}, the manifest says {declared}"
        )
    return ScoreTable(torch.from_numpy(ids), torch.from_numpy(scores), manifest=manifest)


class ScoreTable:
    """Scores keyed by example id, with lookup by id on any device.

    Parameters
    ----------
    ids : Tensor
        Unique integer example ids, shape ``(N,)``.
    scores : Tensor
        Scores, shape ``(N,)`` or ``(N, D)``; row ``i`` belongs to ``ids[i]``.
    manifest : dict or None, default None
        The store's manifest (when loaded from disk).

    Notes
    -----
    Ids exactly ``0..N-1`` are looked up by direct indexing; others are sorted once here and found
    with :func:`torch.searchsorted` (see :class:`~siftdata._ids.IdIndex`). Neither loops over
    examples in Python, and :meth:`lookup` makes no host sync unless asked to check the ids.
    """

    def __init__(self, ids: Tensor, scores: Tensor, *, manifest: dict | None = None) -> None:
        ids, scores = torch.as_tensor(ids), torch.as_tensor(scores)
        self.index = IdIndex(ids)
        if scores.dim() == 0 or scores.shape[0] != ids.shape[0]:
            raise ValueError(f"scores must have one row per id ({len(ids)}), got {scores.shape}")
        self.scores = scores.to(ids.device)
        self.manifest = dict(manifest) if manifest is not None else {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def ids(self) -> Tensor:
        """The ids, row ``i`` belonging to ``ids[i]``."""
        return self.index.ids

    @property
    def device(self) -> torch.device:
        """The device the table lives on."""
        return self.index.device

    def to(self, device: torch.device | str) -> ScoreTable:
        """A copy of the table on ``device`` (the lookup structures are moved, not rebuilt)."""
        table = ScoreTable.__new__(ScoreTable)
        table.index, table.scores = self.index.to(device), self.scores.to(device)
        table.manifest = dict(self.manifest)
        return table

    def check_ids(self, ids: Tensor) -> None:
        """Raise ``ValueError`` unless every id in ``ids`` is in the table (one host sync).

        Check a dataset's ids once, then look batches up without checks.
        """
        self.index.rows(ids, check_values=True)

    def lookup(self, ids: Tensor, *, check_values: bool = False) -> Tensor:
        """The score rows for example ``ids``, on the table's device.

        Parameters
        ----------
        ids : Tensor
            Integer example ids, any shape; moved to the table's device.
        check_values : bool, default False
            Check that every id is in the table (one device-to-host sync). Without it there is
            no sync: an unknown id gets NaN (selectors rank NaN last; an integer table gives
            its dtype's minimum), never another id's row, and is counted;
            :meth:`check_missing` raises for it later.
            Check a dataset's ids once with :meth:`check_ids`.

        Returns
        -------
        Tensor
            Shape ``ids.shape + scores.shape[1:]``.
        """
        ids = torch.as_tensor(ids)
        rows, known = self.index.locate(ids, check_values=check_values)
        # index_select is several times cheaper than advanced indexing for small batches
        values = self.scores.index_select(0, rows)
        unknown = ~known.reshape(-1, *([1] * (values.dim() - 1)))
        if values.is_floating_point():
            values = values.masked_fill(unknown, float("nan"))
        elif values.dtype != torch.bool:  # no NaN in an integer table: its lowest value
            values = values.masked_fill(unknown, torch.iinfo(values.dtype).min)
        return values.reshape(*ids.shape, *self.scores.shape[1:])

    def check_missing(self) -> None:
        """Raise ``ValueError`` if a lookup since the last check met an unknown id (one sync)."""
        self.index.check_missing()
