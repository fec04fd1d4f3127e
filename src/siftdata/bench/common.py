"""Pieces shared by benchmark scenarios: seeded model construction and FLOPs per example."""

from __future__ import annotations

import torch
from torch import nn

from ..ledger import count_flops
from ..models import build_model

__all__ = ["seeded_model", "forward_flops_per_example"]


def seeded_model(name: str, *, seed: int, width: float = 1.0, device="cpu") -> nn.Module:
    """Build model ``name`` with initial weights fixed by ``seed``, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name, width=width)
    return model.to(device)


def forward_flops_per_example(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs of one forward pass per example, measured on a batch of 64 copies of ``example``."""
    batch = example.unsqueeze(0).expand(64, *example.shape).contiguous()
    with torch.no_grad():
        _, flops = count_flops(model, batch)
    return flops / 64
