"""The run-folder flags every run command shares (``--resume``, ``--overwrite``) and the options
a folder's ``run.json`` records."""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path

from ..training.config import WATCH_OPTIONS
from ..training.run_folder import open_run_folder

__all__ = ["SWEEP_ADDITIVE", "add_out", "open_run", "recorded_options"]

SWEEP_ADDITIVE = ("methods", "seeds", "budgets", "uniform_budgets")
"""Sweep options that only add runs: finished runs stay valid, so ``--resume`` may change them."""

_NOT_RECORDED = (*WATCH_OPTIONS, "device")
"""Options that change how a run is watched or where it runs, not what it computes."""


def add_out(p: argparse.ArgumentParser, default: str | None) -> None:
    """``--out``, ``--resume`` and ``--overwrite``."""
    shown = default or "runs/<command>-<time>"
    p.add_argument("--out", default=default, help=f"run folder (default {shown})")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reopen the finished run in --out (finished work is skipped), or extend it with "
        "more seeds, methods or budgets; an interrupted run resumes without it",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run in --out and start again (only in a folder siftdata made)",
    )


def recorded_options(configs: dict) -> dict:
    """Each config group as plain data, without the options that do not change the results."""
    found = {}
    for key, value in configs.items():
        if is_dataclass(value):
            value = {k: v for k, v in asdict(value).items() if k not in _NOT_RECORDED}
        found["train" if key == "train_cfg" else key] = value
    return found


def _out(args: argparse.Namespace) -> str | Path:
    """The run folder: ``--out`` as given (an empty one is refused when it is prepared)."""
    if args.out is None:
        return Path("runs") / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    return args.out


def open_run(
    args: argparse.Namespace, command: str, configs: dict, additive: tuple[str, ...] = ()
) -> contextlib.AbstractContextManager[Path]:
    """The locked, claimed run folder of ``args`` (see
    :func:`~siftdata.training.run_folder.open_run_folder`)."""
    if args.resume and args.overwrite:
        raise ValueError("give at most one of --resume and --overwrite")
    return open_run_folder(
        _out(args),
        command=command,
        options=recorded_options(configs),
        resume=args.resume,
        overwrite=args.overwrite,
        additive=additive,
    )
