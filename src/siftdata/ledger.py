"""Honest compute accounting: FLOPs and wall-clock seconds per phase of a run.

Selection only pays if it saves compute *counting everything*: the scoring forward on the
super-batch, the reference forward (or its cached, amortised cost), the reference's training, the
selection itself, and the forward+backward on the selected batch. :class:`ComputeLedger` keeps one
running total per phase; :func:`count_flops` measures a single call.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
multiplications and convolutions (and attention) at 2 FLOPs per multiply-add; element-wise work
(activations, normalisation, optimizer updates) counts as zero. A backward pass is counted when it
runs inside the measured block (for a layer whose input also needs a gradient it costs about twice
the forward, so a training step is about 3x the forward).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["PHASES", "ComputeLedger", "count_flops"]

PHASES = ("score", "reference", "train", "reference_train", "select", "remember", "eval")
"""The phases a ledger accounts for: learner scoring forwards, reference forwards, learner training
(forward+backward on the selected batch), reference training, selection, remembering training
losses (stale scoring's memory update), and evaluation."""


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Call ``fn(*args, **kwargs)`` under a FLOP counter.

    Parameters
    ----------
    fn : callable
        What to measure (a module, a function, a closure doing forward and backward).
    *args, **kwargs
        Passed to ``fn``.

    Returns
    -------
    tuple
        ``(result, flops)``: what ``fn`` returned, and the matmul/conv FLOPs it ran
        (2 per multiply-add; backward included if it ran inside ``fn``).
    """
    with FlopCounterMode(display=False) as counter:
        result = fn(*args, **kwargs)
    return result, int(counter.get_total_flops())


def _freeze(key: Any) -> Hashable:
    """Lists (as JSON gives back) become tuples, so keys survive a state_dict round trip."""
    if isinstance(key, (list, tuple)):
        return tuple(_freeze(k) for k in key)
    return key


def _thaw(key: Any) -> Any:
    if isinstance(key, tuple):
        return [_thaw(k) for k in key]
    return key


def _empty() -> dict[str, float | int]:
    return {"flops": 0, "seconds": 0.0, "calls": 0}


class ComputeLedger:
    """Running FLOPs, seconds and call counts per phase (see :data:`PHASES`).

    Parameters
    ----------
    device : torch.device or str, default "cpu"
        Where the tracked work runs. On CUDA, blocks are timed with CUDA events recorded on the
        current stream, so tracking never stalls the GPU: the events are read when they have
        completed, or when :meth:`totals` (or :meth:`seconds`) is called, which waits for the last
        one. Seconds are then GPU time of the block's kernels. On the CPU, blocks are timed with
        the host clock.

    Notes
    -----
    :meth:`track` runs the block under :class:`~torch.utils.flop_counter.FlopCounterMode` only the
    first time a ``(phase, key)`` pair is seen and caches the count; later blocks with that pair add
    the cached FLOPs without the counter's overhead. Choose ``key`` so that equal keys mean equal
    work (e.g. the batch shape). FlopCounterMode counts matmul/conv FLOPs at 2 per multiply-add; a
    backward pass is counted when it runs inside the block. The first, counted block's seconds
    include the counter's overhead. Blocks must not be nested (their FLOPs would count twice).
    """

    def __init__(self, *, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._use_events = self.device.type == "cuda"
        self._totals = {p: _empty() for p in PHASES}
        self._flop_cache: dict[tuple[str, Hashable], int] = {}
        self._pending: deque[tuple[str, Any, Any]] = deque()  # (phase, start, end) CUDA events
        self._active = False

    @staticmethod
    def _check_phase(phase: str) -> str:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return phase

    @contextmanager
    def track(self, phase: str, key: Hashable = None) -> Iterator[None]:
        """Time the block and add its FLOPs to ``phase``.

        Parameters
        ----------
        phase : str
            One of :data:`PHASES`.
        key : hashable, default None
            Identifies the block's work (e.g. a batch-shape tuple). FLOPs are counted the first time
            a ``(phase, key)`` pair is seen and reused afterwards.
        """
        self._check_phase(phase)
        if self._active:
            raise RuntimeError(
                "ComputeLedger.track blocks cannot be nested (FLOPs would count twice)"
            )
        cache_key = (phase, _freeze(key))
        cached = self._flop_cache.get(cache_key)
        self._active = True
        try:
            clock = self._start_clock()
            if cached is None:
                with FlopCounterMode(display=False) as counter:
                    yield
                cached = int(counter.get_total_flops())
                self._flop_cache[cache_key] = cached
            else:
                yield
            elapsed = self._stop_clock(phase, clock)
        finally:
            self._active = False
        self._record(phase, cached, elapsed, 1)

    def _start_clock(self) -> Any:
        if not self._use_events:
            return time.perf_counter()
        start = torch.cuda.Event(enable_timing=True)
        start.record()
        return start

    def _stop_clock(self, phase: str, start: Any) -> float:
        """Seconds for the CPU clock; for CUDA events 0 now, added when the events are read."""
        if not self._use_events:
            return time.perf_counter() - start
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._pending.append((phase, start, end))
        self._drain(wait=False)
        return 0.0

    def _drain(self, *, wait: bool) -> None:
        """Add the seconds of completed event pairs, in order; ``wait`` waits for all of them."""
        while self._pending:
            phase, start, end = self._pending[0]
            if wait:
                end.synchronize()
            elif not end.query():
                return
            self._totals[phase]["seconds"] += start.elapsed_time(end) / 1000.0
            self._pending.popleft()

    def add(self, phase: str, *, flops: float = 0, seconds: float = 0.0, calls: int = 1) -> None:
        """Add a manual entry (e.g. a reference's training cost, amortised over a run).

        Parameters
        ----------
        phase : str
            One of :data:`PHASES`.
        flops : float, default 0
            FLOPs to add (>= 0; rounded to an integer).
        seconds : float, default 0.0
            Wall-clock seconds to add (>= 0).
        calls : int, default 1
            How many calls the entry stands for (>= 0).
        """
        self._check_phase(phase)
        if not math.isfinite(float(flops)) or float(flops) < 0:
            raise ValueError(f"flops must be a finite number >= 0, got {flops}")
        if not math.isfinite(float(seconds)) or float(seconds) < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds}")
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise ValueError(f"calls must be an int >= 0, got {calls!r}")
        self._record(phase, round(float(flops)), float(seconds), calls)

    def _record(self, phase: str, flops: int, seconds: float, calls: int) -> None:
        entry = self._totals[phase]
        entry["flops"] += int(flops)
        entry["seconds"] += float(seconds)
        entry["calls"] += int(calls)

    def totals(self) -> dict[str, dict[str, float | int]]:
        """A copy of the totals: ``{phase: {"flops": int, "seconds": float, "calls": int}}``.

        On CUDA this waits for the pending timing events (one sync, not one per block).
        """
        self._drain(wait=True)
        return {p: dict(v) for p, v in self._totals.items()}

    def _phases(self, phases: Iterable[str] | None) -> tuple[str, ...]:
        if phases is None:
            return PHASES
        if isinstance(phases, str):
            phases = (phases,)
        return tuple(self._check_phase(p) for p in phases)

    def flops(self, phases: Iterable[str] | None = None) -> int:
        """Total FLOPs over ``phases`` (all phases if None)."""
        return int(sum(self._totals[p]["flops"] for p in self._phases(phases)))

    def seconds(self, phases: Iterable[str] | None = None) -> float:
        """Total seconds over ``phases`` (all phases if None)."""
        self._drain(wait=True)
        return float(sum(self._totals[p]["seconds"] for p in self._phases(phases)))

    def state_dict(self) -> dict[str, Any]:
        """Totals and the per-key FLOPs cache, as plain (JSON-serialisable) Python objects."""
        cache = [[phase, _thaw(key), flops] for (phase, key), flops in self._flop_cache.items()]
        return {"totals": self.totals(), "flop_cache": cache}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore totals and the FLOPs cache saved by :meth:`state_dict`."""
        totals = {p: _empty() for p in PHASES}
        for phase, entry in state["totals"].items():
            self._check_phase(phase)
            totals[phase] = {
                "flops": int(entry["flops"]),
                "seconds": float(entry["seconds"]),
                "calls": int(entry["calls"]),
            }
        cache = {}
        for phase, key, flops in state["flop_cache"]:
            cache[(self._check_phase(phase), _freeze(key))] = int(flops)
        self._totals, self._flop_cache = totals, cache
