"""Find host syncs: tensor operations that make the CPU wait for the device.

On a GPU, ``.item()``, ``float(t)``, ``bool(t)``, ``torch.equal``, data-dependent output shapes
(``nonzero``, boolean-mask indexing, ``unique``) and copies between the host and the device wait
for queued work, stalling the pipeline. :func:`count_host_syncs` records them on any device — on
the CPU too, where the first kinds cost nothing but show what would stall a GPU — so a test can
assert a training step makes none. Copies are counted when source and destination device types
differ (so only where a device exists), except ``non_blocking`` copies out of pinned host memory,
which are queued without waiting. Conversions that bypass the dispatcher (``.numpy()`` of
a CPU tensor) are not seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SYNCING_OPS", "HostSyncCounter", "count_host_syncs"]

_aten = torch.ops.aten
SYNCING_OPS = frozenset(
    {
        _aten._local_scalar_dense.default,  # .item(), float(t), int(t), bool(t)
        _aten.equal.default,
        _aten.nonzero.default,
        _aten.masked_select.default,
        _aten._unique2.default,
        _aten.unique_dim.default,
        _aten.unique_consecutive.default,
        _aten.repeat_interleave.Tensor,
    }
)
"""Operators that return data to the host or size their output by the data."""


def _asynchronous(source: Any, non_blocking: bool) -> bool:
    """A ``non_blocking`` copy out of pinned host memory: queued, the host does not wait."""
    return bool(non_blocking) and source.device.type == "cpu" and source.is_pinned()


def _crosses_devices(func: Any, args: tuple, kwargs: dict) -> bool:
    """A blocking copy between device types (``.to``, ``.cpu()``, ``.cuda()``, ``copy_``)."""
    if func is _aten._to_copy.default:
        target = kwargs.get("device")
        if target is None or torch.device(target).type == args[0].device.type:
            return False
        return not _asynchronous(args[0], kwargs.get("non_blocking", False))
    if func is _aten.copy_.default:
        if args[0].device.type == args[1].device.type:
            return False
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        return not _asynchronous(args[1], non_blocking)
    return False


def _is_bool_index(func: Any, args: tuple) -> bool:
    if func is not _aten.index.Tensor or len(args) < 2:
        return False
    return any(
        isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] if i is not None
    )


class HostSyncCounter(TorchDispatchMode):
    """A dispatch mode that counts host syncs by operator name (see :func:`count_host_syncs`)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (
            func in SYNCING_OPS
            or _is_bool_index(func, args)
            or _crosses_devices(func, args, kwargs)
        ):
            self.counts[str(func.overloadpacket.__name__)] += 1
        return func(*args, **kwargs)


@contextmanager
def count_host_syncs() -> Iterator[HostSyncCounter]:
    """Count the host syncs of the block: ``with count_host_syncs() as c: ...; c.total``."""
    counter = HostSyncCounter()
    with counter:
        yield counter
