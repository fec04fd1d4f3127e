"""The scenario protocol: every scenario is checked, prepared, swept and summarised one way."""

from __future__ import annotations

import json

import pytest

from siftdata.bench.protocol import run_scenario, sweep_runs
from siftdata.bench.sweep import SweepConfig
from siftdata.training.loop import TrainConfig


class FakeScenario:
    """Records what the protocol asks of it; its runs learn faster with more steps."""

    name = "fake"

    def __init__(self, fail_check: bool = False) -> None:
        self.calls: list = []
        self.fail_check = fail_check

    def config(self) -> dict:
        return {"fake": {"size": 3}}

    def check(self) -> None:
        self.calls.append("check")
        if self.fail_check:
            raise ValueError("options do not fit")

    def prepare(self, out) -> None:
        assert (out / "config.json").exists()  # the run's options are on disk before any work
        self.calls.append("prepare")

    def run_one(self, method: str, seed: int, budget: float) -> list[dict]:
        self.calls.append((method, seed, budget))
        steps = round(budget * 10)
        bonus = 0.01 if method == "learnability" else 0.0
        return [
            {
                "method": method,
                "seed": seed,
                "budget": budget,
                "steps_budget": steps,
                "base_steps": 10,
                "step": step,
                "test_acc": 0.5 + 0.04 * step + bonus,
                "flops": 1e6 * step,
                "flops_end_to_end": 1e6 * step,
                "seconds": 0.1 * step,
            }
            for step in range(1, steps + 1)
        ]

    def extras(self, records: list[dict]) -> dict:
        return {"runs_seen": len({(r["method"], r["seed"], r["budget"]) for r in records})}


def _sweep_and_train():
    sweep = SweepConfig(methods=("learnability",), seeds=2, budgets=(0.5, 1.0))
    return sweep, TrainConfig(steps=10, seed=7, schedule="cosine", progress=False)


def test_run_scenario_checks_prepares_runs_every_run_and_merges_extras(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    fake = FakeScenario()
    summary = run_scenario(tmp_path, fake, sweep, train_cfg)
    runs = sweep_runs(sweep, train_cfg)
    assert fake.calls == ["check", "prepare", *[(m, s, b) for s, m, b in runs]]
    assert [s for s, _, _ in runs] == [7, 7, 7, 7, 8, 8, 8, 8]  # seeds outermost, from --seed
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"name": "fake", "fake": {"size": 3}}
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored == json.loads(json.dumps(summary))
    assert summary["scenario"] == "fake" and summary["runs_seen"] == 8
    assert set(summary["methods"]) == {"uniform", "learnability"}
    assert "budget_sweep" in summary  # two budgets
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 * (5 + 10 + 5 + 10)


def test_run_scenario_writes_nothing_when_the_check_fails(tmp_path):
    sweep, train_cfg = _sweep_and_train()
    fake = FakeScenario(fail_check=True)
    with pytest.raises(ValueError, match="do not fit"):
        run_scenario(tmp_path, fake, sweep, train_cfg)
    assert fake.calls == ["check"] and list(tmp_path.iterdir()) == []
