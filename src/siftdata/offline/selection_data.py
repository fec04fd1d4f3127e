"""A selection's examples for training the target: a :class:`~torch.utils.data.Subset` or a sampler.

The selected ids (e.g. :attr:`~siftdata.offline.stored.Selected.ids` of a loaded selection) are
mapped to dataset positions with :class:`~siftdata._ids.IdIndex`, without a Python loop over
examples. An example's id is its position unless ``dataset_ids`` says otherwise; an id that is
not in the dataset, or that repeats, is refused.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Subset, SubsetRandomSampler

from .._ids import IdIndex, is_integer_tensor

__all__ = ["selection_sampler", "subset_of"]


def _unique_ids(ids: Tensor, name: str) -> Tensor:
    """``ids`` as a 1-D int64 CPU tensor; refused if not integer or if any id repeats."""
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or not is_integer_tensor(ids):
        raise ValueError(f"{name} must be a 1-D integer tensor, got {ids.dtype} {tuple(ids.shape)}")
    ids = ids.to("cpu", torch.int64)
    n_dup = ids.numel() - ids.unique().numel()
    if n_dup:
        raise ValueError(f"{name} has {n_dup} duplicate id(s); a selection's ids must be unique")
    return ids


def _rows_in(dataset_ids: Tensor, ids: Tensor, n: int | None) -> tuple[Tensor, Tensor]:
    """``(rows, known)``: each id's row in ``dataset_ids`` and whether it is there at all."""
    index = IdIndex(torch.as_tensor(dataset_ids).to("cpu"))
    if n is not None and len(index) != n:
        raise ValueError(f"dataset_ids must have one id per example ({n}), got {len(index)}")
    if len(index) == 0:
        return ids, torch.zeros_like(ids, dtype=torch.bool)
    rows = index.rows(ids).clamp(0, len(index) - 1)
    return rows, index.ids.index_select(0, rows) == ids


def _positions(selected_ids: Tensor, dataset_ids: Tensor | None, n: int | None) -> Tensor:
    """Dataset positions of ``selected_ids``: the ids themselves (in ``[0, n)``), or their rows
    in ``dataset_ids``; unknown or repeated ids are refused."""
    ids = _unique_ids(selected_ids, "selected_ids")
    if dataset_ids is not None:
        (rows, known), where = _rows_in(dataset_ids, ids, n), "dataset_ids"
    else:
        rows, known = ids, (ids >= 0) & (ids < (n if n is not None else torch.inf))
        where = "positions >= 0" if n is None else f"positions 0..{n - 1}"
    if not bool(known.all()):
        missing = ids[~known]
        raise ValueError(
            f"{missing.numel()} selected id(s) are not in the dataset ({where}), "
            f"e.g. {missing[:5].tolist()}; was the selection made for this dataset?"
        )
    return rows


def subset_of(dataset, selected_ids: Tensor, *, dataset_ids: Tensor | None = None) -> Subset:
    """The selected examples of ``dataset``, as a :class:`~torch.utils.data.Subset`.

    Parameters
    ----------
    dataset : Dataset
        A map-style dataset with ``len``.
    selected_ids : Tensor
        Unique integer example ids (e.g. :attr:`~siftdata.offline.stored.Selected.ids`); the
        subset keeps their order.
    dataset_ids : Tensor or None, default None
        The id of each example of ``dataset`` (one per position, unique); ``None`` means an
        example's id is its position ``0 … len(dataset)-1``.

    Returns
    -------
    Subset
        ``subset[j]`` is the example whose id is ``selected_ids[j]``.

    Raises
    ------
    ValueError
        If an id is not in the dataset (the message says how many) or repeats.
    """
    return Subset(dataset, _positions(selected_ids, dataset_ids, len(dataset)).tolist())


def selection_sampler(
    selected_ids: Tensor,
    *,
    dataset_ids: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> SubsetRandomSampler:
    """A sampler drawing the selected examples' positions in a random order each epoch.

    Parameters
    ----------
    selected_ids : Tensor
        Unique integer example ids.
    dataset_ids : Tensor or None, default None
        The id of each dataset position (unique); ``None`` means ids are positions.
    generator : torch.Generator or None, default None
        The sampler's own generator (for a reproducible order).

    Returns
    -------
    SubsetRandomSampler
        Yields each selected example's position once per epoch; pass it as a DataLoader's
        ``sampler``.

    Raises
    ------
    ValueError
        If an id is negative, not in ``dataset_ids``, or repeats.
    """
    rows = _positions(selected_ids, dataset_ids, None)
    return SubsetRandomSampler(rows.tolist(), generator=generator)
