"""Proxy scores and selections on disk, keyed by example id: two kinds of score store.

Both are score stores (:func:`~siftdata.store.save_scores`: atomic, checksummed, with the dataset
fingerprint and the time of writing in ``manifest.json``; ``.npy`` or Parquet rows). What makes
each kind is its manifest ``meta``:

- ``kind="proxy-score"``: one score per example id. ``meta`` holds ``score`` (its name, e.g.
  ``"entropy"``), ``direction``, ``model`` (the proxy, e.g. ``{"name", "width", "epochs"}``) and
  ``seconds`` (what it cost, e.g. ``{"train", "score"}``).
- ``kind="selection"``: the selected ids, unique, in selection order; the score column holds each
  id's position in that order (0, 1, 2, …), so the order survives any file format. ``meta``
  holds ``policy``, ``keep`` or ``budget`` (the other is ``None``), ``size``, ``n_total``,
  ``score``, ``direction`` and ``source`` (e.g. the score store it came from, see
  :func:`source_of`).

**Direction.** Scores are not all "higher = harder": ``"higher-keep"`` means the ``"hardest"``
policy keeps the highest scores first (uncertainty, EL2N, forgetting counts), ``"higher-prune"``
means it prunes them first (e.g. a confidence, where high means easy). :func:`keep_priority`
orients a score so that higher is always kept first, which is the convention of
:func:`~siftdata.offline.subsets.select_subset`.

A loaded selection becomes a :class:`~torch.utils.data.Subset` (:func:`subset_of`) or a sampler
(:func:`selection_sampler`) for the target's training; both live in
:mod:`siftdata.offline.selection_data` and are re-exported here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..store import ScoreTable, load_scores, save_scores
from .selection_data import _unique_ids, selection_sampler, subset_of
from .subsets import subset_size

__all__ = [
    "DIRECTIONS",
    "SCORE_KIND",
    "SELECTION_KIND",
    "Selected",
    "keep_priority",
    "load_score",
    "load_selection",
    "save_score",
    "save_selection",
    "selection_sampler",
    "source_of",
    "subset_of",
]

DIRECTIONS = ("higher-keep", "higher-prune")
"""Which end of a score the ``"hardest"`` policy keeps first."""
SCORE_KIND, SELECTION_KIND = "proxy-score", "selection"
_SCORE_FIELDS = ("score", "direction", "model", "seconds")
_SELECTION_FIELDS = ("policy", "keep", "budget", "size", "n_total", "score", "direction", "source")


def _check_direction(direction: str, name: str = "direction") -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"{name} must be one of {DIRECTIONS}, got {direction!r}")
    return direction


def _check_name(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_dict(value: dict | None, name: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a dict or None, got {type(value).__name__}")
    return dict(value)


def _merge_meta(fields: dict, meta: dict | None) -> dict:
    """``fields`` plus the caller's ``meta``, which may not redefine a field."""
    meta = _check_dict(meta, "meta")
    clash = sorted(set(meta) & set(fields))
    if clash:
        raise ValueError(f"meta may not set {clash}: they are arguments of their own")
    return {**fields, **meta}


def _check_seconds(seconds: dict | None) -> dict:
    seconds = _check_dict(seconds, "seconds")
    for stage, value in seconds.items():
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (ok and math.isfinite(value) and value >= 0):
            raise ValueError(f"seconds[{stage!r}] must be a finite number >= 0, got {value!r}")
    return seconds


def keep_priority(scores: Tensor, direction: str) -> Tensor:
    """``scores`` oriented so that higher is kept first by the ``"hardest"`` policy.

    Parameters
    ----------
    scores : Tensor
        Floating scores, any shape.
    direction : {"higher-keep", "higher-prune"}
        The scores' direction: ``"higher-prune"`` negates them, ``"higher-keep"`` returns them.

    Returns
    -------
    Tensor
        ``scores`` or ``-scores``.
    """
    _check_direction(direction)
    if not isinstance(scores, Tensor) or not scores.is_floating_point():
        raise ValueError(f"scores must be a floating tensor, got {type(scores).__name__}")
    return scores if direction == "higher-keep" else -scores


def save_score(
    path: str | os.PathLike,
    ids: Tensor,
    scores: Tensor,
    *,
    score: str,
    direction: str,
    model: dict,
    fingerprint: dict,
    seconds: dict | None = None,
    meta: dict | None = None,
    file_format: str = "npy",
) -> Path:
    """Store a proxy's scores by example id (a score store of kind ``"proxy-score"``).

    Parameters
    ----------
    path : str or PathLike
        The store's directory (see :func:`~siftdata.store.save_scores`).
    ids : Tensor
        Unique integer example ids, shape ``(N,)``.
    scores : Tensor
        Finite floating scores, shape ``(N,)``; ``scores[i]`` belongs to ``ids[i]``.
    score : str
        The score's name (``"entropy"``, ``"el2n"``, …).
    direction : {"higher-keep", "higher-prune"}
        Which end the ``"hardest"`` policy keeps (see :func:`keep_priority`).
    model : dict
        The proxy that made the scores, e.g. ``{"name": "mlp", "width": 64, "epochs": 2}``.
    fingerprint : dict
        The :func:`~siftdata.store.dataset_fingerprint` of the scored data.
    seconds : dict or None, default None
        Time per stage, e.g. ``{"train": 12.3, "score": 1.4}``; values finite and ``>= 0``.
    meta : dict or None, default None
        More JSON-serialisable notes; may not redefine the fields above.
    file_format : {"npy", "parquet"}, default "npy"
        How the rows are written (``"parquet"`` needs the ``parquet`` extra).

    Returns
    -------
    Path
        The store's directory.
    """
    _check_name(score, "score")
    _check_direction(direction)
    if not isinstance(model, dict):
        raise ValueError(f"model must be a dict describing the proxy, got {type(model).__name__}")
    scores = torch.as_tensor(scores)
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D (one per example), got shape {tuple(scores.shape)}")
    fields = {"score": score, "direction": direction, "model": dict(model)}
    fields["seconds"] = _check_seconds(seconds)
    return save_scores(
        path,
        ids,
        scores,
        kind=SCORE_KIND,
        fingerprint=fingerprint,
        meta=_merge_meta(fields, meta),
        file_format=file_format,
    )


def _meta_of(table_manifest: dict, fields: tuple[str, ...], path: Path) -> dict:
    meta = table_manifest.get("meta")
    missing = [f for f in fields if not isinstance(meta, dict) or f not in meta]
    if missing:
        raise ValueError(
            f"the store at {path} is not a valid {table_manifest.get('kind')!r} "
            f"store: its meta lacks {missing}"
        )
    return meta


def load_score(
    path: str | os.PathLike, *, fingerprint: dict | None = None, score: str | None = None
) -> ScoreTable:
    """Read a store written by :func:`save_score`, checking it before use.

    Parameters
    ----------
    path : str or PathLike
        The store's directory.
    fingerprint : dict or None, default None
        If given, the store's dataset fingerprint must equal it.
    score : str or None, default None
        If given, the stored score's name must equal it.

    Returns
    -------
    ScoreTable
        Ids and 1-D scores; the fields are in ``table.manifest["meta"]``.

    Raises
    ------
    ValueError
        If the store is not of kind ``"proxy-score"``, holds another score, has an unknown
        direction, is corrupt or was built for other data.
    """
    path = Path(path)
    table = load_scores(path, kind=SCORE_KIND, fingerprint=fingerprint)
    meta = _meta_of(table.manifest, _SCORE_FIELDS, path)
    _check_direction(meta["direction"], name=f"the direction stored at {path}")
    if score is not None and meta["score"] != score:
        raise ValueError(f"the store at {path} holds {meta['score']!r} scores, not {score!r}")
    if table.scores.dim() != 1:
        raise ValueError(f"the store at {path} holds scores of shape {tuple(table.scores.shape)}")
    return table


def source_of(path: str | os.PathLike, table: ScoreTable) -> dict:
    """Where a selection's scores came from: ``{"path", "kind", "created", "sha256"}`` of a
    loaded store, for :func:`save_selection`'s ``source``."""
    m = table.manifest
    return {
        "path": str(path),
        "kind": m.get("kind"),
        "created": m.get("created"),
        "sha256": m.get("sha256"),
    }


def _check_selection(ids: Tensor, n_total: int, keep: float | None, budget: int | None) -> Tensor:
    """Validate the selected ids (returned as int64) against ``n_total``, ``keep`` or ``budget``."""
    if torch.as_tensor(ids).numel() == 0:
        raise ValueError("the selection is empty: select at least one example")
    ids = _unique_ids(ids, "ids")
    if isinstance(n_total, bool) or not isinstance(n_total, int) or n_total < 1:
        raise ValueError(f"n_total must be an int >= 1 (the dataset size), got {n_total!r}")
    if ids.numel() > n_total:
        raise ValueError(f"the selection has {ids.numel()} ids, more than n_total={n_total}")
    subset_size(n_total, keep=keep, budget=budget)  # exactly one; keep in (0, 1], budget in range
    return ids


def save_selection(
    path: str | os.PathLike,
    ids: Tensor,
    *,
    policy: str,
    n_total: int,
    fingerprint: dict,
    score: str | None = None,
    direction: str | None = None,
    keep: float | None = None,
    budget: int | None = None,
    source: dict | None = None,
    meta: dict | None = None,
    file_format: str = "npy",
) -> Path:
    """Store a selection: the chosen example ids in selection order (kind ``"selection"``).

    Parameters
    ----------
    path : str or PathLike
        The store's directory (see :func:`~siftdata.store.save_scores`).
    ids : Tensor
        The selected example ids, unique, non-empty, in selection order (1-D integer).
    policy : str
        How they were chosen (``"hardest"``, ``"stratified"``, ``"random"``, ``"k-center"``, …).
    n_total : int
        How many examples they were chosen from; at least ``len(ids)``, and equal to the
        fingerprint's ``count`` when it has one.
    fingerprint : dict
        The :func:`~siftdata.store.dataset_fingerprint` of the dataset the ids belong to.
    score, direction : str or None, default None
        The score the policy ranked by and its direction (one of ``DIRECTIONS``), if any.
    keep, budget : float or int or None, default None
        The size asked for: exactly one of a fraction ``keep`` in (0, 1] or a count ``budget``
        in ``[1, n_total]``.
    source : dict or None, default None
        Where the scores came from, e.g. :func:`source_of` of the score store.
    meta : dict or None, default None
        More JSON-serialisable notes; may not redefine the fields above.
    file_format : {"npy", "parquet"}, default "npy"
        How the rows are written.

    Returns
    -------
    Path
        The store's directory.
    """
    _check_name(policy, "policy")
    ids = _check_selection(ids, n_total, keep, budget)
    count = fingerprint.get("count") if isinstance(fingerprint, dict) else None
    if isinstance(count, int) and count != n_total:
        raise ValueError(f"n_total={n_total} differs from the fingerprint's count {count}")
    if score is not None:
        _check_name(score, "score")
    if direction is not None:
        _check_direction(direction)
    fields = {"policy": policy, "keep": keep, "budget": budget, "size": int(ids.numel())}
    fields |= {"n_total": n_total, "score": score, "direction": direction}
    fields["source"] = _check_dict(source, "source") if source is not None else None
    order = torch.arange(ids.numel(), dtype=torch.float64)  # exact positions up to 2**53
    return save_scores(
        path,
        ids,
        order,
        kind=SELECTION_KIND,
        fingerprint=fingerprint,
        meta=_merge_meta(fields, meta),
        file_format=file_format,
    )


@dataclass(frozen=True)
class Selected:
    """A loaded selection."""

    ids: Tensor
    """The selected example ids, int64, in selection order."""
    manifest: dict
    """The store's manifest; the selection's fields are in ``manifest["meta"]``."""

    def __len__(self) -> int:
        return int(self.ids.numel())

    @property
    def meta(self) -> dict:
        """The selection's fields (policy, keep, budget, size, n_total, score, …)."""
        return self.manifest["meta"]


def load_selection(path: str | os.PathLike, *, fingerprint: dict | None = None) -> Selected:
    """Read a store written by :func:`save_selection`, checking it before use.

    Parameters
    ----------
    path : str or PathLike
        The store's directory.
    fingerprint : dict or None, default None
        If given, the store's dataset fingerprint must equal it.

    Returns
    -------
    Selected
        The ids in selection order and the manifest.

    Raises
    ------
    ValueError
        If the store is not of kind ``"selection"``, is corrupt, disagrees with its meta or was
        built for other data.
    """
    path = Path(path)
    table = load_scores(path, kind=SELECTION_KIND, fingerprint=fingerprint)
    meta = _meta_of(table.manifest, _SELECTION_FIELDS, path)
    if meta["direction"] is not None:
        _check_direction(meta["direction"], name=f"the direction stored at {path}")
    position = table.scores
    order = torch.argsort(position) if position.dim() == 1 else None
    expected = torch.arange(len(table), dtype=position.dtype)
    if order is None or not torch.equal(position[order], expected) or meta["size"] != len(table):
        raise ValueError(
            f"the store at {path} is corrupt: its positions are not 0..size-1 "
            f"or its size ({meta['size']!r}) is not its number of ids ({len(table)})"
        )
    return Selected(ids=table.ids[order], manifest=table.manifest)
