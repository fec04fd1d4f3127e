"""CLI smoke tests on a tiny budget (real Fashion-MNIST, real reference training)."""

import json

import pytest

from siftdata.cli import main

TINY = [
    "--steps",
    "20",
    "--eval-every",
    "10",
    "--seeds",
    "1",
    "--reference-epochs",
    "2",
    "--no-progress",
]


def test_bench_writes_summary_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "bench",
            "noisy-fmnist",
            "--methods",
            "learnability,hard-learner",
            "--super-batch-factor",
            "3",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["methods"]) == {"uniform", "learnability", "hard-learner"}
    assert summary["target"]["rule"].startswith("uniform's best 3-evaluation")
    for key in (
        "best",
        "final",
        "steps_to_target",
        "flops_to_target",
        "seconds_to_target",
        "speedup_steps",
        "speedup_flops",
        "speedup_seconds",
        "steps_to_target_98",
        "speedup_steps_98",
        "speedup_flops_98",
        "speedup_seconds_98",
        "mislabeled_selected",
    ):
        assert key in summary["methods"]["learnability"]
    assert summary["methods"]["uniform"]["speedup_steps"] == 1.0
    assert (
        0.3 < summary["methods"]["uniform"]["mislabeled_selected"] < 0.5
    )  # 40% noise, b=64 × 20 steps
    for name in (
        "report.md",
        "accuracy_vs_steps.png",
        "accuracy_vs_flops.png",
        "accuracy_vs_seconds.png",
    ):
        assert (out / name).stat().st_size > 0
    assert "| learnability |" in capsys.readouterr().out
    assert main(["report", str(out), "--no-plots"]) == 0
    assert main(["report", str(out), "--no-plots", "--methods", "uniform,learnability"]) == 0
    report = (out / "report.md").read_text()
    assert "| learnability |" in report and "| hard-learner |" not in report
    assert main(["report", str(out), "--no-plots", "--methods", "uniform,magic"]) == 2


def test_train_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "t"
    args = [
        "train",
        "--methods",
        "learnability",
        "--out",
        str(out),
        "--checkpoint-every",
        "10",
        *TINY,
    ]
    assert main(args) == 0
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20]
    longer = [a if a != "20" else "40" for a in args]
    assert main(longer) == 0
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 10, 20, 30, 40]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "/nonexistent/run"], "not a benchmark run folder"),
        (["bench", "noisy-fmnist", "--noise", "1.5", "--steps", "1"], "noise must be in"),
        (["bench", "noisy-fmnist", "--methods", "uniform,magic", "--steps", "1"], "unknown method"),
        (["train", "--methods", "uniform,rank", "--steps", "1"], "one method"),
    ],
)
def test_errors_are_clear(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
