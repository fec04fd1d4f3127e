"""Writing files safely: atomically (never a half-written file in place), with the user's umask,
and with a one-line error naming the path when the file system refuses."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "FileSystemError",
    "atomic_write",
    "atomic_write_text",
    "fs_errors",
    "new_temp_dir",
    "swap_into_place",
]


class FileSystemError(ValueError):
    """The file system refused a read or write (permission, read-only, disk full); names the path."""


def _describe(err: OSError, path: Path) -> str:
    return f"cannot write {path}: {err.strerror or err}"


@contextlib.contextmanager
def fs_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` inside the block into a :class:`FileSystemError` naming ``path``."""
    try:
        yield
    except FileSystemError:
        raise
    except OSError as err:
        raise FileSystemError(_describe(err, Path(path))) from err


def _temp_name(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False):
    """Write ``path`` through ``write(file)`` into a temporary sibling, then rename it into place.

    On any failure the temporary file is removed and ``path`` keeps its old content; an
    ``OSError`` becomes a :class:`FileSystemError` naming the path. Returns ``path``.
    """
    path = Path(path)
    tmp = _temp_name(path, "tmp")
    try:
        with fs_errors(path):
            with open(tmp, "wb" if binary else "w") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text))


def new_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new, empty folder in ``parent`` created with the user's umask (``tempfile.mkdtemp``
    makes it 0700, so a teammate could not read what is later renamed out of it)."""
    parent = Path(parent)
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            with fs_errors(parent):
                path.mkdir()
            return path
        except FileSystemError as err:
            if not isinstance(err.__cause__, FileExistsError):
                raise
    raise FileSystemError(f"cannot create a temporary folder in {parent}")


def swap_into_place(tmp: Path, path: Path) -> None:
    """Rename the folder ``tmp`` to ``path``, replacing an existing one (restored if the rename
    fails)."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = new_temp_dir(path.parent, f".{path.name}.old-")
    old.rmdir()
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
