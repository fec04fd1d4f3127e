"""Independent seeds for independent purposes, derived from one user-facing seed.

Two generators seeded alike draw the same numbers: a pool order seeded like the noise injection
would visit exactly the corrupted examples first. Every consumer of randomness therefore derives
its own seed from the base seed and a purpose string.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


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
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {type(seed).__name__}")
    if not isinstance(purpose, str) or not purpose:
        raise ValueError(f"purpose must be a non-empty string, got {purpose!r}")
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
