"""Checksummed checkpoints and the check that a checkpoint belongs to the run resuming from it.

File format: one header line ``SIFTDATA-CHECKPOINT 1 sha256=<hex>\\n``, then the bytes of
:func:`torch.save`. Loading verifies the checksum before unpickling (with ``weights_only=True``),
so a truncated, empty or bit-flipped file is refused with a clear message instead of resuming from
damaged weights. Writes are atomic (temporary file + rename).

A checkpoint also stores the run's *identity*: the options, data fingerprint and model shapes that
determine what training does. Resuming under a different identity is refused, naming each option
that differs, because the continued run would be neither the old run nor a new one.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write

__all__ = [
    "RESTART_HINT",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "check_identity",
    "global_rng_state",
    "set_global_rng_state",
]

_MAGIC = b"SIFTDATA-CHECKPOINT 1 sha256="
RESTART_HINT = "delete it (or use another output folder) to start afresh"
_HINT = RESTART_HINT


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a siftdata checkpoint, or another run's."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically with a sha256 header; returns the path."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = _MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    # an interrupted or failed save never leaves a half-written checkpoint, nor a temporary file
    return atomic_write(path, lambda f: f.write(header + payload), binary=True)


def load_checkpoint(path: str | os.PathLike, *, expect_format: int | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, on the CPU.

    Parameters
    ----------
    path:
        The checkpoint file.
    expect_format:
        If given, the state's ``"format"`` entry must equal it (a state written by another
        version of the training loop is refused rather than misread).

    Raises
    ------
    CheckpointError
        If the file is empty, truncated, corrupt (checksum mismatch), not a siftdata checkpoint,
        or of another format.
    """
    path = Path(path)
    data = path.read_bytes()
    newline = data.find(b"\n")
    if not data.startswith(_MAGIC) or newline < 0:
        what = "empty" if not data else "not a siftdata checkpoint (or its header is damaged)"
        raise CheckpointError(f"{path} is {what}; {_HINT}")
    digest, payload = data[len(_MAGIC) : newline].decode(errors="replace"), data[newline + 1 :]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(
            f"{path} is corrupt or truncated (its sha256 does not match its header); {_HINT}"
        )
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # a checksummed file that still fails to unpickle: written elsewhere
        raise CheckpointError(f"{path} could not be read ({err}); {_HINT}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a siftdata training state; {_HINT}")
    if expect_format is not None and state.get("format") != expect_format:
        raise CheckpointError(
            f"{path} holds a training state of format {state.get('format')!r}, and this version "
            f"of siftdata reads format {expect_format}; {_HINT}"
        )
    return state


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_identity(saved: Any, current: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` naming every option where ``saved`` and ``current`` differ."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} records no run identity; {_HINT}")
    old, new = _flatten(saved), _flatten(current)
    diffs = [
        f"{key}: {_short(old.get(key, '(absent)'))} in the checkpoint, {_short(new.get(key, '(absent)'))} now"
        for key in sorted(set(old) | set(new))
        if old.get(key, "(absent)") != new.get(key, "(absent)")
    ]
    if diffs:
        raise CheckpointError(
            f"{path} was written by a different run, so it cannot be resumed: "
            + "; ".join(diffs[:8])
            + ("; ..." if len(diffs) > 8 else "")
            + f". Use the same options to resume, or {_HINT}."
        )


def global_rng_state() -> dict[str, Any]:
    """The global CPU (and, if initialised, CUDA) RNG states: dropout and the like draw from them."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`; CUDA states only onto as many CUDA devices as were saved."""
    torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
