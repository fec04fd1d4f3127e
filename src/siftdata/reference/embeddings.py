"""The reference two-tower model's embeddings of every pair, cached by example id (JEST).

JEST scores a super-batch with ``L_learner − L_reference``; the reference is frozen, so its
embeddings of the whole pool are computed once (:func:`embed_pairs`) and looked up by example id
at every step (:class:`ReferenceEmbeddings`), with no reference forward during training. On disk
the cache is a score store (:mod:`siftdata.store`) of kind ``"reference-embeddings"``: one row
``[image | text]`` of width ``2d`` per id, the temperature, bias and width in the manifest's
``meta``, checksummed and tied to the dataset fingerprint.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._batch import check_pairs, model_device
from .._modes import eval_mode
from .._validation import check_bool, check_int_range
from ..core.pairwise import PairEmbeddings
from ..store import ScoreTable, load_scores, save_scores

__all__ = [
    "REFERENCE_EMBEDDINGS_KIND",
    "ReferenceEmbeddings",
    "embed_pairs",
    "save_reference_embeddings",
    "load_reference_embeddings",
]

REFERENCE_EMBEDDINGS_KIND = "reference-embeddings"
"""The store kind of a reference-embeddings cache."""
_RESERVED = ("width", "scale", "bias")  # meta keys the cache writes itself


def embed_pairs(
    model: nn.Module,
    images: Tensor,
    tokens: Tensor,
    *,
    batch_size: int = 2048,
    progress: bool = False,
) -> PairEmbeddings:
    """A two-tower model's embeddings of ``N`` pairs, batch by batch, without gradients.

    Parameters
    ----------
    model : nn.Module
        Maps ``(images, tokens)`` to :class:`~siftdata.core.pairwise.PairEmbeddings`; run in eval mode
        (each submodule's mode is restored afterwards).
    images, tokens : Tensor
        The pairs, examples along dim 0 (moved batch by batch to the model's device).
    batch_size : int, default 2048
        Pairs per forward.
    progress : bool, default False
        Show a tqdm bar over batches.

    Returns
    -------
    PairEmbeddings
        ``(N, d)`` image and text embeddings on the model's device, in the pairs' order, with the
        model's temperature and bias (detached).
    """
    check_int_range(batch_size, "batch_size", low=1)
    check_bool(progress, "progress")
    n = check_pairs(images, tokens)
    device = model_device(model)
    parts: list[PairEmbeddings] = []
    starts = range(0, n, batch_size)
    with eval_mode(model), torch.no_grad():
        for start in tqdm(starts, desc="embed", disable=not progress, leave=False):
            x = images[start : start + batch_size].to(device, non_blocking=True)
            t = tokens[start : start + batch_size].to(device, non_blocking=True)
            parts.append(model((x, t)).detach())
    first = parts[0]
    image = torch.cat([p.image for p in parts])
    text = torch.cat([p.text for p in parts])
    return PairEmbeddings(image, text, first.scale.reshape(()), first.bias.reshape(()))


class ReferenceEmbeddings:
    """A frozen reference's pair embeddings by example id, looked up on any device without a sync.

    Parameters
    ----------
    ids : Tensor
        Unique integer example ids, shape ``(N,)``.
    embeddings : PairEmbeddings
        The reference's ``(N, d)`` embeddings of those pairs (row ``i`` is ``ids[i]``), with its
        temperature and bias.
    manifest : dict or None, default None
        The store's manifest, when loaded from disk.
    """

    def __init__(
        self, ids: Tensor, embeddings: PairEmbeddings, *, manifest: dict | None = None
    ) -> None:
        if not isinstance(embeddings, PairEmbeddings):
            raise ValueError(f"embeddings must be PairEmbeddings, got {type(embeddings).__name__}")
        ids = torch.as_tensor(ids)
        if ids.dim() != 1 or ids.shape[0] != len(embeddings):
            raise ValueError(
                f"give one id per embedding: {tuple(ids.shape)} ids for {len(embeddings)} pairs"
            )
        rows = torch.cat([embeddings.image, embeddings.text], dim=1).detach()
        table = ScoreTable(ids, rows.to(ids.device), manifest=manifest)
        self._set(table, embeddings.scale.detach(), embeddings.bias.detach())

    def _set(self, table: ScoreTable, scale: Tensor, bias: Tensor) -> None:
        self.table = table
        dtype, device = table.scores.dtype, table.device
        self.scale = scale.reshape(()).to(device, dtype)
        self.bias = bias.reshape(()).to(device, dtype)
        self._digest: str | None = None

    @classmethod
    def from_table(cls, table: ScoreTable, *, scale: float, bias: float) -> ReferenceEmbeddings:
        """Wrap a loaded store's table of ``[image | text]`` rows."""
        out = cls.__new__(cls)
        out._set(table, torch.tensor(float(scale)), torch.tensor(float(bias)))
        return out

    def __len__(self) -> int:
        return len(self.table)

    @property
    def width(self) -> int:
        """The embedding width ``d``."""
        return int(self.table.scores.shape[1] // 2)

    @property
    def ids(self) -> Tensor:
        return self.table.ids

    @property
    def device(self) -> torch.device:
        return self.table.device

    @property
    def manifest(self) -> dict:
        return self.table.manifest

    def to(self, device: torch.device | str) -> ReferenceEmbeddings:
        """A copy on ``device`` (the lookup structures are moved, not rebuilt)."""
        out = ReferenceEmbeddings.__new__(ReferenceEmbeddings)
        out._set(self.table.to(device), self.scale, self.bias)
        return out

    def check_ids(self, ids: Tensor) -> None:
        """Raise ``ValueError`` unless every id has cached embeddings (one host sync)."""
        self.table.check_ids(ids)

    def check_missing(self) -> None:
        """Raise ``ValueError`` if a lookup since the last check met an unknown id (one sync)."""
        self.table.check_missing()

    def lookup(self, ids: Tensor, *, check_values: bool = False) -> PairEmbeddings:
        """The cached embeddings of ``ids`` (``(B,)``), with the reference's scale and bias; no
        host sync unless ``check_values`` (check a dataset's ids once with :meth:`check_ids`).
        An unknown id gets NaN embeddings (the joint sampler ranks it last) and is counted for
        :meth:`check_missing`."""
        rows = self.table.lookup(ids, check_values=check_values)
        d = self.width
        image, text = rows[:, :d].contiguous(), rows[:, d:].contiguous()
        return PairEmbeddings(image, text, self.scale, self.bias)

    def all(self) -> PairEmbeddings:
        """Every cached pair, in the table's row order."""
        d = self.width
        rows = self.table.scores
        return PairEmbeddings(rows[:, :d], rows[:, d:], self.scale, self.bias)

    def __repr__(self) -> str:
        """Names the content (a hash of ids, embeddings, scale and bias), so a resumed run that
        swapped in another reference of the same size is told apart."""
        if self._digest is None:
            h = hashlib.sha256()
            for t in (self.table.ids, self.table.scores, self.scale, self.bias):
                h.update(t.detach().cpu().contiguous().reshape(-1).numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return (
            f"ReferenceEmbeddings({len(self)} examples, width {self.width}, sha256 {self._digest})"
        )


def save_reference_embeddings(
    path: str | os.PathLike,
    ids: Tensor,
    emb: PairEmbeddings,
    *,
    fingerprint: dict,
    meta: dict | None = None,
) -> Path:
    """Cache a reference's embeddings by example id (a store of kind ``"reference-embeddings"``).

    Parameters
    ----------
    path : str or PathLike
        The store's directory (see :func:`~siftdata.store.save_scores`).
    ids : Tensor
        Unique integer example ids, shape ``(N,)``.
    emb : PairEmbeddings
        The reference's ``(N, d)`` embeddings of those pairs, in the ids' order.
    fingerprint : dict
        The :func:`~siftdata.store.dataset_fingerprint` of the pairs.
    meta : dict or None, default None
        Free-form JSON-serialisable notes; the keys ``width``, ``scale`` and ``bias`` are written
        by the cache itself and may not be given.

    Returns
    -------
    Path
        The store's directory.
    """
    if not isinstance(emb, PairEmbeddings):
        raise ValueError(f"emb must be PairEmbeddings, got {type(emb).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"meta must be a dict or None, got {type(meta).__name__}")
    clash = sorted(set(meta or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"meta may not set {clash}: the cache stores them from emb")
    scale, bias = float(emb.scale), float(emb.bias)
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(bias)):
        raise ValueError(f"emb must have a finite scale > 0 and a finite bias; got {scale}, {bias}")
    rows = torch.cat([emb.image, emb.text], dim=1)
    full_meta = {**(meta or {}), "width": emb.width, "scale": scale, "bias": bias}
    return save_scores(
        path, ids, rows, kind=REFERENCE_EMBEDDINGS_KIND, fingerprint=fingerprint, meta=full_meta
    )


def load_reference_embeddings(path: str | os.PathLike, *, fingerprint: dict) -> ReferenceEmbeddings:
    """Load a reference-embeddings cache, checking kind, checksums, fingerprint and layout.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a directory.
    ValueError
        If the store is not of kind ``"reference-embeddings"``, is corrupt, was built for other
        data (fingerprint), or its rows are not ``[image | text]`` of the width its meta states,
        or the meta lacks a valid scale or bias.
    """
    table = load_scores(path, kind=REFERENCE_EMBEDDINGS_KIND, fingerprint=fingerprint)
    meta = table.manifest.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    width, scale, bias = (_meta_number(meta, k, path) for k in _RESERVED)
    shape = tuple(table.scores.shape)
    if not float(width).is_integer() or width < 1 or len(shape) != 2 or shape[1] != 2 * width:
        raise ValueError(
            f"the store at {path} is not a valid reference-embeddings cache: its rows have shape "
            f"{shape}, but [image | text] of width {width} needs (N, {2 * width})"
        )
    if not scale > 0:
        raise ValueError(f"the store at {path} has scale {scale} in its meta; it must be > 0")
    return ReferenceEmbeddings.from_table(table, scale=scale, bias=bias)


def _meta_number(meta: dict[str, Any], key: str, path: Any) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(
            f"the store at {path} is not a valid reference-embeddings cache: its meta has "
            f"{key}={value!r}, a finite number is required; rebuild the cache"
        )
    return float(value)
