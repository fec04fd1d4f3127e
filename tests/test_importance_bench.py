"""The ``importance`` scenario end to end on a tiny budget (real Fashion-MNIST)."""

import json

import pytest

from siftdata.cli.main import main


def test_importance_bench_reports_passes_saved_gate_and_fixed_model_checks(tmp_path, capsys):
    out = tmp_path / "imp"
    argv = [
        "bench", "importance", "--model", "mlp", "--methods", "uniform,importance,infobatch",
        "--steps", "800", "--batch-size", "128", "--super-batch-factor", "3", "--seeds", "1",
        "--eval-every", "200", "--delta", "1", "--tau-threshold", "1.05",
        "--probe-size", "64", "--pool-eval-size", "1000", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    extra = summary["unbiased"]
    # 800 steps of 128 ≈ 2 epochs of 50k; infobatch: epoch 0 full (390 steps), epoch 1 pruned by
    # 0.5 · 0.5 of the pool (δ = 1): 37 500 examples, 292 steps; uniform trained 800
    assert extra["infobatch"]["passes_saved"] == pytest.approx(1 - (390 + 292) / 800)
    assert extra["importance"]["passes_saved"] == 0
    gate = extra["importance"]["gate"]
    assert 0 < gate["on_share"] <= 1 and gate["trace"][-1]["tau"] > 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("pool_loss" in r for r in records)
    checks = summary["fixed_model"]
    assert checks["variance"]["reduction"] > 1 and checks["bound_vs_gradient_spearman"] > 0.5


def test_importance_bench_refuses_too_few_epochs_for_infobatch(capsys):
    argv = ["bench", "importance", "--methods", "infobatch", "--steps", "100", "--no-progress"]
    assert main(argv) == 2
    assert "at least 2" in capsys.readouterr().err
