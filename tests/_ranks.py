"""Run a function on W real processes joined by a gloo process group (loopback, a file store).

``run_ranks(fn, world_size, *args)`` calls ``fn(rank, world_size, *args)`` in each process and
returns what each returned (via ``torch.save``), in rank order. A rank that raises makes the run
fail with its traceback (a process that gloo aborts while its peer tears the group down, after
every rank saved its result, does not: the run itself finished); a run that does not finish
within ``timeout`` seconds is killed, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank, world_size, fn, args, folder):
    torch.set_num_threads(1)
    store = dist.FileStore(str(Path(folder) / "store"), world_size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        dist.barrier()  # no rank leaves while another still reads from it
        torch.save(result, Path(folder) / f"rank{rank}.pt")
    except BaseException:
        (Path(folder) / f"rank{rank}.err").write_text(traceback.format_exc())
        raise
    finally:
        dist.destroy_process_group()


def run_ranks(fn, world_size: int, *args, timeout: float = 120.0) -> list:
    """``[fn(0, W, *args), …, fn(W−1, W, *args)]``, each computed in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(
            _entry,
            args=(world_size, fn, args, folder),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline, finished = time.monotonic() + timeout, False
        try:
            while not finished and time.monotonic() < deadline:
                finished = context.join(timeout=max(deadline - time.monotonic(), 0.01))
        except mp.ProcessExitedException as error:
            if _all_saved(folder, world_size):  # gloo may abort a process as its peer tears down
                return _results(folder, world_size)
            errors = sorted(Path(folder).glob("rank*.err"))
            detail = "\n".join(p.read_text() for p in errors) or str(error)
            raise AssertionError(f"a rank failed:\n{detail}") from None
        except mp.ProcessRaisedException as error:
            raise AssertionError(f"a rank failed:\n{error}") from None
        if not finished:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"the ranks did not finish within {timeout:.0f} s (a hang?)")
        return _results(folder, world_size)


def _all_saved(folder: str, world_size: int) -> bool:
    """Every rank returned and saved its result, and none raised: the run itself finished."""
    saved = all((Path(folder) / f"rank{r}.pt").exists() for r in range(world_size))
    return saved and not list(Path(folder).glob("rank*.err"))


def _results(folder: str, world_size: int) -> list:
    return [torch.load(Path(folder) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
