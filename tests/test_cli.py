"""CLI tests on a tiny budget (real Fashion-MNIST, real reference training) and its error paths."""

import json
import time

import pytest

from siftdata.cli.main import build_parser, main
from siftdata.training.loop import TrainConfig
from siftdata.training.run_folder import run_folder_lock

TINY = ["--steps", "20", "--eval-every", "10", "--reference-epochs", "2", "--no-progress"]


def test_bench_writes_summary_sweep_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["bench", "noisy-fmnist", "--methods", "learnability,hard-learner", "--seeds", "1"]
    argv += ["--super-batch-factor", "3", "--budgets", "0.5,1", "--schedule", "cosine"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["uniform", "learnability", "hard-learner"]
    assert summary["target"]["rule"].startswith("uniform's best 3-evaluation")
    uniform = summary["methods"]["uniform"]["to_target"]["100"]
    assert uniform["steps"]["speedup"] == 1.0 and uniform["seeds_reaching"] == 1
    for level in ("100", "98", "95"):
        assert set(summary["methods"]["learnability"]["to_target"][level]) >= {
            "steps",
            "flops",
            "flops_end_to_end",
            "seconds",
        }
    assert 0.3 < summary["methods"]["uniform"]["mislabeled_selected"] < 0.5  # 40% noise
    sweep = summary["budget_sweep"]
    assert [row["steps"] for row in sweep["methods"]["learnability"]] == [10, 20]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {(r["method"], r["budget"]) for r in records} == {
        (m, b) for m in ("uniform", "learnability", "hard-learner") for b in (0.5, 1.0)
    }
    assert all(r["lr"] < 1e-5 for r in records if r["step"] == r["steps_budget"])  # decayed
    for name in ("report.md", "accuracy_vs_steps.png", "final_accuracy_vs_budget.png"):
        assert (out / name).stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| learnability |" in printed and "Budget sweep" in printed
    assert main(["report", str(out), "--no-plots", "--methods", "uniform,learnability"]) == 0
    report = (out / "report.md").read_text()
    assert "| learnability |" in report and "| hard-learner |" not in report
    assert main(["report", str(out), "--no-plots", "--methods", "uniform,magic"]) == 2
    # the finished sweep is never silently redone or replaced
    metrics = (out / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main([*argv, "--out", str(out), *TINY]) == 2
    assert "finished; use --resume" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), *TINY, "--lr", "0.2", "--resume"]) == 2
    assert "train.lr: 0.001 there, 0.2 now" in capsys.readouterr().err
    assert main([*argv, "--out", str(out), *TINY, "--resume"]) == 0
    assert "6 of 6 runs finished earlier; kept and skipped" in capsys.readouterr().err
    assert (out / "metrics.jsonl").read_text() == metrics


def test_train_resumes_where_it_stopped_and_reports(tmp_path, capsys):
    out = tmp_path / "t"
    args = ["train", "--method", "learnability", "--out", str(out), "--checkpoint-every", "10"]
    assert main([*args, *TINY]) == 0
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20]
    longer = [a if a != "20" else "40" for a in TINY]
    assert main([*args, *longer]) == 2  # a finished run is not extended without being asked
    assert "steps: 20 there, 40 now" in capsys.readouterr().err
    assert main([*args, *longer, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming from step 20" in err and "reopening the finished run" in err
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20, 30, 40]
    assert main(["report", str(out), "--no-plots"]) == 0  # a train folder has no summary.json
    assert "learnability" in (out / "report.md").read_text()
    # another batch size is another run: refused, naming the option
    assert main([*args, *longer, "--batch-size", "32", "--resume"]) == 2
    assert "batch_size: 64 there, 32 now" in capsys.readouterr().err
    # a reference built with other reference options is another run too
    assert main([*args, *[a if a != "2" else "3" for a in longer], "--resume"]) == 2
    assert "reference_epochs: 2 there, 3 now" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "/nonexistent/run"], "not a"),
        (["bench", "noisy-fmnist", "--noise", "1.5"], "noise must be in"),
        (["bench", "noisy-fmnist", "--methods", "uniform,magic"], "unknown method"),
        (["bench", "noisy-fmnist", "--methods", "rank,rank"], "rank more than once"),
        (["bench", "noisy-fmnist", "--steps", "0"], "steps must be in [1, inf)"),
        (["bench", "noisy-fmnist", "--budgets", "0.5,0"], "each budget must be in (0, inf)"),
        (["bench", "noisy-fmnist", "--super-batch-factor", "1"], "would pay for scoring"),
        (["bench", "noisy-fmnist", "--budgets", "0.5,1"], "a budget sweep needs a learning rate"),
        (
            ["bench", "noisy-fmnist", "--learner-loss-cap", "cap"],
            "learner_loss_cap must be a number",
        ),
        (["bench", "noisy-fmnist", "--out", ""], "must not be empty"),
        (["demo", "--out", " "], "must not be empty"),
        (["train", "--method", "rank+stale+stale"], "unknown method"),
        (["train", "--checkpoint-every", "-1"], "checkpoint_every must be in [0, inf)"),
        (["train", "--method", "easy-reference+stale"], "means nothing"),
    ],
)
def test_errors_are_clear_and_come_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert time.perf_counter() - start < 5  # no data loaded, no reference trained
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("manifest.json"))


def test_out_that_is_a_file_and_a_busy_folder(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["bench", "noisy-fmnist", "--out", str(file), *TINY]) == 2
    assert "is a file" in capsys.readouterr().err
    busy = tmp_path / "busy"
    with run_folder_lock(busy):
        assert main(["bench", "noisy-fmnist", "--out", str(busy), *TINY]) == 2
    assert "in use by another siftdata run" in capsys.readouterr().err


def test_options_that_do_not_apply_are_rejected(capsys):
    for argv in (
        ["train", "--seeds", "2"],
        ["train", "--methods", "rank"],
        ["train", "--steps", "2.5"],
    ):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 2


def test_cli_defaults_come_from_the_configs():
    args = build_parser().parse_args(["train"])
    assert (
        args.steps == TrainConfig().steps
        and args.checkpoint_every == TrainConfig().checkpoint_every
    )
    assert build_parser().parse_args(["demo"]).steps == 4000  # the demo's own recipe


def test_malformed_summary_is_a_clear_error(tmp_path, capsys):
    record = {"method": "uniform", "seed": 0, "step": 0, "test_acc": 0.1, "flops": 0, "seconds": 0}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "summary.json").write_text("{not json")
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    assert "summary.json" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "shortest"),
    [(["train"], 20), (["bench", "noisy-fmnist", "--budgets", "0.5,1"], 10)],
)
def test_a_warm_up_covering_the_run_is_refused_before_the_folder_is_claimed(
    tmp_path, capsys, command, shortest
):
    out = tmp_path / "run"
    argv = [*command, "--out", str(out), *TINY, "--schedule", "cosine"]
    assert main([*argv, "--uniform-steps", str(shortest)]) == 2
    assert f"uniform_steps ({shortest}) must be below steps ({shortest}" in capsys.readouterr().err
    assert not out.exists()  # the corrected command can use the same --out


def test_commands_that_cannot_share_their_work_are_refused_under_torchrun(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["bench", "pairs-fmnist", "--out", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err
    assert "only `siftdata train`, `siftdata bench noisy-fmnist`, `siftdata score` share" in message
    assert not (tmp_path / "run").exists()
