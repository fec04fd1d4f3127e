"""Run folders: checked up front, locked so that two runs never write into the same one, and
claimed through ``run.json`` so that one run never silently replaces another's finished work."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .._files import atomic_write_text, fs_errors

__all__ = [
    "RUN_FILE",
    "RunFolderBusy",
    "claim_run_folder",
    "finish_run_folder",
    "open_run_folder",
    "prepare_run_folder",
    "run_folder_lock",
]

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


RUN_FILE = "run.json"
"""A run folder's record of what runs there: the command, its options, running or finished."""
_FORMAT = "siftdata-run"


def _flat(options: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in options.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _differences(stored: dict, current: dict, additive: tuple[str, ...]) -> tuple[list, list]:
    """The options that differ, split into (fixed, additive) by their leaf name."""
    old, new = _flat(stored), _flat(current)
    fixed, extra = [], []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "(absent)") != new.get(key, "(absent)"):
            text = f"{key}: {old.get(key, '(absent)')!r} there, {new.get(key, '(absent)')!r} now"
            (extra if key.rsplit(".", 1)[-1] in additive else fixed).append(text)
    return fixed, extra


def _read_run_file(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        msg = f"{path} could not be read ({err}); use --overwrite or another --out"
        raise ValueError(msg) from err
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a siftdata run record; use another --out")
    for key in ("command", "options", "status"):
        if key not in record:
            raise ValueError(f"{path} has no {key!r} field; use --overwrite or another --out")
    return record


def _check_clearable(folder: Path, path: Path) -> None:
    """``--overwrite`` clears only what siftdata wrote: a record it cannot read, or one another
    tool wrote, is refused."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path} could not be read ({err}), so {folder} may not be a siftdata run folder; "
            "refusing to clear it (--overwrite): remove it yourself or use another --out"
        ) from err
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(
            f"{path} is not a siftdata run record; refusing to clear {folder} (--overwrite): "
            "use another --out"
        )


def _clear(folder: Path) -> None:
    """Remove everything in a siftdata run folder but its lock files."""
    for entry in folder.iterdir():
        if entry.name.endswith(".lock"):
            continue
        with fs_errors(entry):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def _results_without_record(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def claim_run_folder(
    folder: Path,
    *,
    command: str,
    options: dict,
    resume: bool = False,
    overwrite: bool = False,
    additive: tuple[str, ...] = (),
) -> str:
    """Check what ``folder`` holds against this run and record it there as running.

    Returns how the run starts: ``"new"``, ``"resume"`` (an interrupted run of the same options),
    ``"reopen"`` (a finished one, with ``resume``) or ``"overwrite"``. Raises ``ValueError``,
    naming what is there and how to go on, for a finished run without ``resume``, for another
    command or other options (``additive`` ones, such as more seeds, are allowed with ``resume``),
    and for a non-empty folder that holds no run record.
    """
    options = json.loads(json.dumps(options))  # compare in the JSON-normalised form
    path, how = folder / RUN_FILE, "new"
    if not path.exists():
        found = _results_without_record(folder)
        if found:  # another tool's files, or an older version's run: never written into
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            refused = "refusing to clear it (--overwrite)" if overwrite else "refusing to use it"
            raise ValueError(
                f"{folder} is not empty ({shown}) but holds no {RUN_FILE}, so it is not a "
                f"siftdata run folder (or one from a version before run records); {refused}: "
                "use another --out"
            )
    elif overwrite:
        _check_clearable(folder, path)
        _clear(folder)
        how = "overwrite"
    else:
        how = _check_record(folder, _read_run_file(path), command, options, resume, additive)
    record = {"format": _FORMAT, "command": command, "options": options, "status": "running"}
    record["started"] = _now()
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return how


def _check_record(folder, record, command, options, resume, additive) -> str:
    was = f"a {record['status']} `siftdata {record['command']}` run"
    if record["command"] != command:
        raise ValueError(
            f"{folder} holds {was}, not `siftdata {command}`; use another --out, or --overwrite "
            "to replace it"
        )
    fixed, extra = _differences(record["options"], options, additive)
    if fixed or (extra and not resume):
        shown = "; ".join((fixed or extra)[:6]) + ("; ..." if len(fixed or extra) > 6 else "")
        hint = "" if fixed else " (options that only add work: add --resume to extend it)"
        raise ValueError(
            f"{folder} holds {was} made with other options ({shown}){hint}; use the same options "
            "to continue it, another --out, or --overwrite to replace it"
        )
    if record["status"] == "finished" and not resume:
        raise ValueError(
            f"{folder} holds {was} with these options, finished; use --resume to reopen it (its "
            "results are kept and finished work is skipped), another --out, or --overwrite to "
            "run it again"
        )
    return "reopen" if record["status"] == "finished" else "resume"


def finish_run_folder(folder: Path) -> None:
    """Mark the run recorded in ``folder`` finished."""
    path = folder / RUN_FILE
    record = _read_run_file(path)
    record.update(status="finished", finished=_now())
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


_SAY = {
    "resume": "continuing the interrupted run in {folder} (finished work is kept)",
    "reopen": "reopening the finished run in {folder} (finished work is skipped)",
    "overwrite": "replaced the earlier run in {folder} (--overwrite)",
}


@contextmanager
def open_run_folder(
    path: str | os.PathLike,
    *,
    command: str,
    options: dict,
    resume: bool = False,
    overwrite: bool = False,
    additive: tuple[str, ...] = (),
) -> Iterator[Path]:
    """Lock the folder (:func:`run_folder_lock`), claim it for this run
    (:func:`claim_run_folder`, saying on stderr how it starts) and mark it finished when the block
    ends without an error; an interrupted run stays recorded as running, to be resumed."""
    with run_folder_lock(path) as folder:
        how = claim_run_folder(
            folder,
            command=command,
            options=options,
            resume=resume,
            overwrite=overwrite,
            additive=additive,
        )
        if how in _SAY:
            print(f"siftdata: {_SAY[how].format(folder=folder)}", file=sys.stderr)
        yield folder
        finish_run_folder(folder)
