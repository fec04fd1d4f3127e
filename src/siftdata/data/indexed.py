"""A dataset wrapper that puts each example's id in front of the item, so ids reach the loop."""

from __future__ import annotations

import operator
from typing import Any

from torch.utils.data import Dataset

__all__ = ["WithIndex"]


class WithIndex(Dataset):
    """Wrap a map-style dataset so that item ``i`` becomes ``(i, *item)``.

    A tuple or list item ``(x, y)`` becomes ``(i, x, y)``; any other item ``x`` becomes
    ``(i, x)``. With PyTorch's default collate the ids arrive as an ``int64`` tensor, so a
    selector can key scores and caches by example id whatever the sampler's order.

    Parameters
    ----------
    dataset : Dataset
        Any map-style dataset with ``__len__`` and ``__getitem__``.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: Any) -> tuple:
        index = operator.index(i)
        item = self.dataset[index]
        if isinstance(item, (tuple, list)):
            return (index, *item)
        return (index, item)
