"""Pieces shared by benchmark scenarios: devices, seeded model construction, FLOPs per example."""

from __future__ import annotations

import torch
from torch import nn

from ..ledger import count_flops
from ..models import build_model

__all__ = ["DEVICES", "resolve_device", "seeded_model", "forward_flops_per_example"]

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
    """Build model ``name`` with initial weights fixed by ``seed``, leaving the global RNGs (CPU
    and every CUDA device's, which ``manual_seed`` reseeds too) as they were."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = build_model(name, width=width)
    return model.to(device)


def forward_flops_per_example(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass per example, measured on a batch of 64 copies of ``example``."""
    batch = example.unsqueeze(0).expand(64, *example.shape).contiguous()
    with torch.no_grad():
        _, flops = count_flops(model, batch)
    return flops / 64
