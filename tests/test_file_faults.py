"""File-system faults (disk full, read-only, permission denied) give one line naming the path and
leave no partial or temporary file; stores are created with the user's umask."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import torch

from siftdata._files import FileSystemError, atomic_write_text
from siftdata.cli.main import main
from siftdata.store import load_scores, save_scores
from siftdata.training.checkpoint import save_checkpoint
from siftdata.training.recorder import write_records

FINGERPRINT = {"count": 3}


def _disk_full(monkeypatch, after: int = 0):
    """Make the ``after``-th and later ``os.replace`` calls fail as a full disk would."""
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: atomic_write_text(path, "new"),
        lambda path: write_records(path, [{"step": 1}]),
        lambda path: save_checkpoint(path, {"step": 1}),
    ],
)
def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path, monkeypatch, write):
    path = tmp_path / "file"
    path.write_text("old")
    _disk_full(monkeypatch)
    with pytest.raises(FileSystemError, match=f"cannot write {path}: No space left on device"):
        write(path)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_store_on_a_full_disk_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    ids, scores = torch.arange(3), torch.tensor([0.1, 0.2, 0.3])
    save_scores(tmp_path / "s", ids, scores, kind="k", fingerprint=FINGERPRINT)
    before = sorted(p.name for p in tmp_path.iterdir())
    _disk_full(monkeypatch)
    with pytest.raises(FileSystemError, match="No space left on device"):
        save_scores(tmp_path / "s", ids, scores * 2, kind="k", fingerprint=FINGERPRINT)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before

    assert load_scores(tmp_path / "s").scores.equal(scores)


def test_stores_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_scores(
            tmp_path / "s", torch.arange(3), torch.zeros(3), kind="k", fingerprint=FINGERPRINT
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755  # tempfile.mkdtemp would give 0700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in path.iterdir())


def test_the_cli_reports_a_file_system_fault_in_one_line(tmp_path, monkeypatch, capsys):
    _disk_full(monkeypatch, after=1)  # run.json is written; config.json is not
    argv = ["bench", "noisy-fmnist", "--steps", "4", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {tmp_path / 'config.json'}" in err
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_an_unwritable_folder_is_refused_before_any_work(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere: permission checks cannot fail")
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    assert main(["train", "--steps", "2", "--out", str(locked / "run"), "--no-progress"]) == 2
    assert "cannot create the output folder" in capsys.readouterr().err
