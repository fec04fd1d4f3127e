"""Pieces shared by benchmark scenarios: devices, seeded model construction, FLOPs per example."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .._seeding import seeded
from ..ledger import count_flops
from ..models import build_model
from ..offline.fit import sync

__all__ = [
    "DEVICES",
    "resolve_device",
    "seeded",
    "seeded_model",
    "forward_flops_per_example",
    "timed",
    "check_cache_options",
]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when a GPU is present, else ``cpu``; ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but torch sees no CUDA GPU; use cpu or auto")
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {name!r}")
    return torch.device(name)


def seeded_model(name: str, *, seed: int, width: float = 1.0, device="cpu") -> nn.Module:
    """Build model ``name`` with initial weights fixed by ``seed`` (see :func:`seeded`)."""
    return seeded(lambda: build_model(name, width=width), seed=seed, device=device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of ``fn()``, waiting for the GPU's work when ``device`` is CUDA."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def check_cache_options(built: dict, wanted: dict, cache: Path, what: str) -> None:
    """Refuse a cache in ``cache`` whose recorded options differ from ``wanted``, naming them."""
    diffs = [
        f"{k}: {built.get(k)!r} cached, {v!r} now" for k, v in wanted.items() if built.get(k) != v
    ]
    if diffs:
        raise ValueError(
            f"{cache} holds {what} built with other options ({'; '.join(diffs)}); use another "
            "--out or delete the cache"
        )


def forward_flops_per_example(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass per example, measured on a batch of 64 copies of ``example``."""
    batch = example.unsqueeze(0).expand(64, *example.shape).contiguous()
    with torch.no_grad():
        _, flops = count_flops(model, batch)
    return flops / 64


def selection_log_for(checkpoint: Path | None, config) -> Path | None:
    """Where a sweep run's selection log goes (``--record-selections``): ``out/selections/<run>``
    beside ``out/checkpoints/<run>.pt``; ``None`` when the run does not record one."""
    if checkpoint is None or not config.record_selections:
        return None
    return Path(checkpoint).parent.parent / "selections" / Path(checkpoint).stem
