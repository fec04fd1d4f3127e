"""A command on several ranks (under torchrun): which commands may, and one run folder for all.

Rank 0 claims the run folder; the others use the folder it claimed (or raise the refusal it met),
so every rank starts the same run or stops with the same one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..distributed import share_from_leader
from .run_folders import open_run

__all__ = ["ON_RANKS", "check_one_process", "open_run_on_ranks"]

ON_RANKS = ("train", "bench noisy-fmnist", "score")
"""The commands that share their work across ranks under torchrun."""


def check_one_process(args: argparse.Namespace) -> None:
    """Under torchrun every rank would run the whole command and write the same files: only
    :data:`ON_RANKS` share their work, the others are refused (on every rank alike)."""
    command = args.command if args.command != "bench" else f"bench {args.scenario}"
    if command not in ON_RANKS and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            f"`siftdata {command}` runs on one process; under torchrun (WORLD_SIZE="
            f"{os.environ['WORLD_SIZE']}) only "
            + ", ".join(f"`siftdata {name}`" for name in ON_RANKS)
            + " share their work across ranks"
        )


@contextlib.contextmanager
def open_run_on_ranks(
    args: argparse.Namespace, command: str, configs: dict, additive: tuple[str, ...], world
) -> Iterator[Path]:
    """:func:`open_run` on rank 0, whose folder (or refusal) every rank then shares: the others
    neither lock nor claim it, and a refusal is the same one-line error on every rank."""
    if not world.distributed:
        with open_run(args, command, configs, additive) as out:
            yield out
        return
    with contextlib.ExitStack() as stack:
        out, failure = None, None
        if world.rank == 0:
            try:
                out = str(stack.enter_context(open_run(args, command, configs, additive)))
            except Exception as err:
                failure = err
        shared, message = share_from_leader((out, None if failure is None else str(failure)), world)
        if failure is not None:
            raise failure
        if message is not None:
            raise ValueError(message)
        yield Path(shared)
