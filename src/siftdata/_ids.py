"""Rows of a table from example ids: direct indexing for ids ``0 … N−1``, a sorted search otherwise."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["IdIndex", "is_integer_tensor"]


def is_integer_tensor(x: Tensor) -> bool:
    """Integer dtype (not floating, complex or bool)."""
    return not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)


class IdIndex:
    """Maps example ids to row positions ``0 … N−1`` without a Python loop over examples.

    Parameters
    ----------
    ids : Tensor
        Unique integer ids, shape ``(N,)``; row ``i`` belongs to ``ids[i]``.

    Notes
    -----
    Ids exactly ``0..N-1`` are rows themselves; others are sorted once here and found with
    :func:`torch.searchsorted`. Building the index makes one host sync (the ``0..N-1`` and
    uniqueness checks); :meth:`rows` makes none unless ``check_values=True``. An id that is not
    in the index is counted on the device (:attr:`missing`) and reported by
    :meth:`check_missing`, the one sync a caller makes when it looks anyway (a log, a
    checkpoint).
    """

    def __init__(self, ids: Tensor) -> None:
        ids = torch.as_tensor(ids)
        if ids.dim() != 1 or not is_integer_tensor(ids):
            raise ValueError(
                f"ids must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}"
            )
        self.ids = ids.to(torch.int64)
        n = self.ids.shape[0]
        self.order: Tensor | None = None  # None: ids are 0..N-1, index directly
        self.sorted_ids = self.ids
        if not torch.equal(self.ids, torch.arange(n, device=self.ids.device)):
            self.sorted_ids, self.order = torch.sort(self.ids)
            if n > 1 and bool((self.sorted_ids[1:] == self.sorted_ids[:-1]).any()):
                raise ValueError("ids must be unique")
        with torch.inference_mode(False):  # counted into later, outside inference mode too
            self.missing = torch.zeros((), dtype=torch.int64, device=self.ids.device)
        """How many looked-up ids were not in the index since the last :meth:`check_missing`."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def device(self) -> torch.device:
        return self.ids.device

    def to(self, device: torch.device | str) -> IdIndex:
        """A copy on ``device`` (the lookup structures are moved, not rebuilt)."""
        index = IdIndex.__new__(IdIndex)
        index.ids, index.sorted_ids = self.ids.to(device), self.sorted_ids.to(device)
        index.order = None if self.order is None else self.order.to(device)
        index.missing = self.missing.to(device)
        return index

    def rows(self, ids: Tensor, *, check_values: bool = False) -> Tensor:
        """Row positions of ``ids`` (flattened), on the index's device.

        With ``check_values`` an id that is not in the index raises ``ValueError`` (one host
        sync). Without it, see :meth:`locate`: an unknown id is counted and given a row in range.
        """
        return self.locate(ids, check_values=check_values)[0]

    def locate(self, ids: Tensor, *, check_values: bool = False) -> tuple[Tensor, Tensor]:
        """``(rows, known)`` of ``ids`` (flattened), on the index's device, with no host sync.

        ``known`` says which ids are in the index; an unknown id's row is some row in range (a
        caller must mask it out, never use it), and the id is added to :attr:`missing`.
        """
        ids = torch.as_tensor(ids)
        if not is_integer_tensor(ids):
            raise ValueError(f"ids must be an integer tensor, got {ids.dtype}")
        flat = ids.to(device=self.device, dtype=torch.int64).reshape(-1)
        n = len(self)
        if n == 0:
            known = torch.zeros_like(flat, dtype=torch.bool)
            rows = flat.clamp(0, 0)
        elif self.order is None:
            known = (flat >= 0) & (flat < n)
            rows = flat.clamp(0, n - 1)
        else:
            pos = torch.searchsorted(self.sorted_ids, flat).clamp_(max=n - 1)
            known = self.sorted_ids.index_select(0, pos) == flat
            rows = self.order.index_select(0, pos)
        if check_values:
            _check_known(flat, known)
        with torch.inference_mode(False):
            self.missing += (~known).sum()
        return rows, known

    def check_missing(self) -> None:
        """Raise ``ValueError`` if a lookup since the last check met an id not in the index
        (one host sync; the count is reset)."""
        count = int(self.missing)
        if count:
            self.missing.zero_()
            raise ValueError(
                f"{count} looked-up id(s) were not in the table (they got no value, never another "
                "id's); was the table built for this dataset? check_ids(dataset ids) names them"
            )


def _check_known(ids: Tensor, known: Tensor) -> None:
    if not bool(known.all()):  # one host sync
        missing = ids[~known].unique()
        raise ValueError(
            f"ids has {missing.numel()} id(s) not in the table, e.g. {missing[:5].tolist()}; "
            "was the table built for this dataset?"
        )
