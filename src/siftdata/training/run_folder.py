"""Run folders: checked up front, and locked so that two runs never write into the same one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["prepare_run_folder", "run_folder_lock", "RunFolderBusy"]

_LOCK_NAME = ".siftdata.lock"


class RunFolderBusy(ValueError):
    """Another process holds the run folder's lock."""


def prepare_run_folder(path: str | os.PathLike | None) -> Path:
    """Create ``path`` (and parents) if needed and check it is a writable folder.

    Raises ``ValueError`` with what to do for an empty path, a path that is a file, or a folder
    that cannot be created or written.
    """
    if path is None or str(path).strip() == "":
        raise ValueError("the output folder (--out) must not be empty; name a folder to write into")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the output folder {path} is a file; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the output folder {path}: {err.strerror}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"the output folder {path} is not writable; choose another")
    return path


@contextmanager
def run_folder_lock(path: str | os.PathLike, *, name: str = _LOCK_NAME) -> Iterator[Path]:
    r"""Hold an exclusive lock on the folder ``path`` for the block, or raise :class:`RunFolderBusy`.

    The lock is an advisory ``flock`` on ``path/name`` (released when the process ends, even if it
    crashes), so a second ``train``/``bench`` on the same folder is refused instead of silently
    overwriting the first one's metrics and checkpoint. Different ``name``\ s are independent locks.
    """
    import fcntl  # POSIX; imported here so that merely importing siftdata works everywhere

    path = prepare_run_folder(path)
    lock_file = path / name
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_file.read_text().strip() or "another process"
            raise RunFolderBusy(
                f"{path} is in use by another siftdata run ({holder}); wait for it to finish or "
                "choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock
