"""Run folders never lose finished work: run.json records what runs there; one run after another
is checked against it (the lock stops two at once)."""

from __future__ import annotations

import json

import pytest

from siftdata.training.run_folder import RUN_FILE, claim_run_folder, open_run_folder

OPTIONS = {"train": {"steps": 20, "lr": 0.1}, "sweep": {"seeds": 1}}


def _finished(folder, options=OPTIONS, command="bench noisy-fmnist"):
    with open_run_folder(folder, command=command, options=options, additive=("seeds",)):
        (folder / "metrics.jsonl").write_text("{}\n")
    return folder


def _other(key, value):
    return {**OPTIONS, "train": {**OPTIONS["train"], key: value}}


def test_a_new_folder_is_recorded_running_then_finished(tmp_path):
    folder = tmp_path / "run"
    with open_run_folder(folder, command="train", options=OPTIONS):
        record = json.loads((folder / RUN_FILE).read_text())
        assert record["status"] == "running" and record["options"] == OPTIONS
    assert json.loads((folder / RUN_FILE).read_text())["status"] == "finished"


def test_an_interrupted_run_stays_running_and_resumes_without_asking(tmp_path, capsys):
    folder = tmp_path / "run"
    with (
        pytest.raises(KeyboardInterrupt),
        open_run_folder(folder, command="train", options=OPTIONS),
    ):
        raise KeyboardInterrupt
    assert json.loads((folder / RUN_FILE).read_text())["status"] == "running"
    assert claim_run_folder(folder, command="train", options=OPTIONS) == "resume"


def test_a_finished_run_is_refused_unless_reopened_or_overwritten(tmp_path):
    folder = _finished(tmp_path / "run")
    kwargs = {"command": "bench noisy-fmnist", "options": OPTIONS}
    with pytest.raises(ValueError, match="finished; use --resume to reopen it"):
        claim_run_folder(folder, **kwargs)
    assert claim_run_folder(folder, **kwargs, resume=True) == "reopen"
    assert (folder / "metrics.jsonl").exists()  # reopening keeps the results
    assert claim_run_folder(folder, **kwargs, overwrite=True) == "overwrite"
    assert sorted(p.name for p in folder.iterdir()) == [".siftdata.lock", RUN_FILE]


def test_other_options_or_another_command_are_refused_naming_them(tmp_path):
    folder = _finished(tmp_path / "run")
    with pytest.raises(ValueError, match=r"other options \(train.lr: 0.1 there, 0.2 now\)"):
        claim_run_folder(folder, command="bench noisy-fmnist", options=_other("lr", 0.2))
    with pytest.raises(ValueError, match="holds a finished `siftdata bench noisy-fmnist` run, not"):
        claim_run_folder(folder, command="train", options=OPTIONS, resume=True)
    with pytest.raises(ValueError, match="other options"):  # --resume does not waive them
        claim_run_folder(
            folder, command="bench noisy-fmnist", options=_other("lr", 0.2), resume=True
        )
    assert (folder / "metrics.jsonl").read_text() == "{}\n"


def test_options_that_only_add_work_need_resume(tmp_path):
    folder = _finished(tmp_path / "run")
    more = {**OPTIONS, "sweep": {"seeds": 3}}
    kwargs = {"command": "bench noisy-fmnist", "options": more, "additive": ("seeds",)}
    with pytest.raises(ValueError, match="add --resume to extend it"):
        claim_run_folder(folder, **kwargs)
    assert claim_run_folder(folder, **kwargs, resume=True) == "reopen"
    assert json.loads((folder / RUN_FILE).read_text())["options"]["sweep"]["seeds"] == 3


def test_a_folder_with_other_files_and_no_record_is_not_taken_over(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match=r"not empty \(thesis.tex\) but holds no run.json"):
        claim_run_folder(folder, command="train", options=OPTIONS)
    with pytest.raises(ValueError, match="refusing to clear it"):
        claim_run_folder(folder, command="train", options=OPTIONS, overwrite=True)
    with pytest.raises(ValueError, match="refusing to use it"):  # --resume cannot adopt it
        claim_run_folder(folder, command="train", options=OPTIONS, resume=True)
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) == [
        "thesis.tex"
    ]
    assert (folder / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("record", ['{"format": "other-tool", "status": "done"}', "{not json"])
def test_overwrite_never_clears_a_folder_whose_run_json_siftdata_did_not_write(tmp_path, record):
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / RUN_FILE).write_text(record)
    (folder / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="refusing to clear"):
        claim_run_folder(folder, command="train", options=OPTIONS, overwrite=True)
    assert (folder / "thesis.tex").read_text() == "precious"


def test_a_damaged_run_record_is_refused_naming_the_file(tmp_path):
    folder = _finished(tmp_path / "run")
    (folder / RUN_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="run.json could not be read"):
        claim_run_folder(folder, command="bench noisy-fmnist", options=OPTIONS)
    (folder / RUN_FILE).write_text(json.dumps({"format": "siftdata-run", "command": "train"}))
    with pytest.raises(ValueError, match="has no 'options' field"):
        claim_run_folder(folder, command="train", options=OPTIONS)


def test_options_are_compared_as_json(tmp_path):
    folder = _finished(tmp_path / "run", options={"sweep": {"budgets": (0.5, 1.0)}})
    same = {"sweep": {"budgets": [0.5, 1.0]}}
    assert claim_run_folder(folder, command="bench noisy-fmnist", options=same, resume=True)
