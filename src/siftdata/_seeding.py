"""Independent seeds for independent purposes, derived from one user-facing seed.

Two generators seeded alike draw the same numbers: a pool order seeded like the noise injection
would visit exactly the corrupted examples first. Every consumer of randomness therefore derives
its own seed from the base seed and a purpose string; :func:`seeded` builds a model with seeded
initial weights without touching the global RNG state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch
from torch import nn

from ._validation import check_seed

__all__ = ["derive_seed", "seeded"]


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose``, a stable function of ``(seed, purpose)``.

    Parameters
    ----------
    seed : int
        The base seed a user chose.
    purpose : str
        What the randomness is for (``"pool-noise"``, ``"super-batch-order"``, ...); different
        purposes give unrelated seeds.

    Returns
    -------
    int
        A nonnegative seed below ``2**63``, the same on every platform and Python version.
    """
    seed = check_seed(seed)
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string, got {purpose!r}")
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seeded(build: Callable[[], nn.Module], *, seed: int, device="cpu") -> nn.Module:
    """``build()`` with initial weights fixed by ``seed``, leaving the global RNGs (CPU and every
    CUDA device's, which ``manual_seed`` reseeds too) as they were; moved to ``device``."""
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        model = build()
    return model.to(device)
