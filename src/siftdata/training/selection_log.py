"""The selection log of a run: which examples every step offered and selected, kept compact.

``selections/steps-<first>-<last>.npy`` holds the global selected example ids of steps
``first … last`` (int64, one row of ``b`` per step; every rank's share, in selection order), one
file per checkpoint interval; ``selections/counts.npz`` holds, per pool example (``ids``), how
often it was offered (in a super-batch that was scored) and selected. The counts live on the
device and the ids of the steps since the last write in a small device buffer: a step adds to
them with no host sync; they are written (rank 0) when the run checkpoints and when it ends, and
a resumed run drops the files of steps after its checkpoint, so the log matches an uninterrupted
run's. The visual report reads it for its galleries.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._files import atomic_write

__all__ = ["SelectionLog", "read_selection_log"]

_CHUNK = "steps-{first:08d}-{last:08d}.npy"


class SelectionLog:
    """Per-step selected ids and per-example offered/selected counts of one run.

    Parameters
    ----------
    folder:
        Where the files go (created on the first write).
    ids:
        ``(N,)`` example ids of the pool, by position.
    write:
        Whether this process writes (rank 0); every rank may keep the same log.
    """

    def __init__(self, folder: str | Path, ids: Tensor, *, write: bool = True) -> None:
        self.folder, self.ids, self.write = Path(folder), ids, write
        self.offered = torch.zeros(ids.shape[0], dtype=torch.int64, device=ids.device)
        self.selected = torch.zeros_like(self.offered)
        self.pending: list[Tensor] = []
        self.first_pending = 0  # the step of pending[0]

    def after_step(self, offered: Tensor, selected: Tensor, scored: bool) -> None:
        """Count one step: pool positions ``offered`` (when scored) and ``selected`` (no sync)."""
        if scored:
            self.offered.index_add_(0, offered, torch.ones_like(offered))
        self.selected.index_add_(0, selected, torch.ones_like(selected))
        self.pending.append(self.ids.index_select(0, selected))

    def flush(self, step: int) -> None:
        """Write the pending steps (up to ``step``) and the counts (one copy to the host)."""
        if self.write and self.pending:
            self.folder.mkdir(parents=True, exist_ok=True)
            rows = torch.stack(self.pending).cpu().numpy()
            name = _CHUNK.format(first=self.first_pending + 1, last=step)
            atomic_write(self.folder / name, lambda f: np.save(f, rows), binary=True)
        if self.write:
            self._write_counts()
        self.pending, self.first_pending = [], step

    def _write_counts(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "ids": self.ids.cpu().numpy(),
            "offered": self.offered.cpu().numpy(),
            "selected": self.selected.cpu().numpy(),
        }
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        atomic_write(self.folder / "counts.npz", lambda f: f.write(buffer.getvalue()), binary=True)

    def state_dict(self) -> dict[str, Any]:
        return {"offered": self.offered.clone(), "selected": self.selected.clone()}

    def load_state_dict(self, state: dict[str, Any], step: int) -> None:
        """Resume at ``step``: its counts, and no file of a later step (it will be rewritten)."""
        self.offered.copy_(state["offered"])
        self.selected.copy_(state["selected"])
        self.pending, self.first_pending = [], step
        if self.write and self.folder.exists():
            for path in self.folder.glob("steps-*.npy"):
                if int(path.stem.split("-")[1]) > step:
                    path.unlink()


def read_selection_log(folder: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(selected, counts)``: the ``(steps, b)`` selected ids of every step in order, and the
    per-example ``ids``, ``offered`` and ``selected`` counts; ``ValueError`` if steps are missing."""
    folder = Path(folder)
    chunks = sorted(folder.glob("steps-*.npy"))
    if not chunks:
        raise ValueError(
            f"{folder} holds no selection log (steps-*.npy); record one with --record-selections"
        )
    rows, expected = [], 1
    for path in chunks:
        first, last = (int(x) for x in path.stem.split("-")[1:])
        if first != expected:
            raise ValueError(
                f"{folder}: the log jumps from step {expected - 1} to {first} ({path.name})"
            )
        part = np.load(path)
        if part.shape[0] != last - first + 1:
            raise ValueError(
                f"{path} holds {part.shape[0]} steps, its name says {last - first + 1}"
            )
        rows.append(part)
        expected = last + 1
    with np.load(folder / "counts.npz") as counts:
        return np.concatenate(rows), {k: counts[k] for k in counts.files}
