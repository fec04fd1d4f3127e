"""`siftdata bench pairs-fmnist` end to end on a tiny budget (real Fashion-MNIST and WordNet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from siftdata.bench.pairs_sweep import spearman
from siftdata.cli.main import main

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/wordnet/data.noun").exists(), reason="needs Debian's wordnet-base"
)

TINY = ["--pool-size", "3000", "--curated-size", "500", "--reference-steps", "20"]
TINY += ["--steps", "20", "--eval-every", "20", "--batch-size", "32", "--no-progress"]


def test_bench_pairs_fmnist_writes_summary_and_agreement(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["bench", "pairs-fmnist", "--methods", "jest-flexi,easy-reference", "--seeds", "1"]
    argv += ["--chunks", "4", "--captions", "fine", "--budgets", "0.5,1", "--schedule", "cosine"]
    assert main([*argv, "--out", str(out), *TINY]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "pairs-fmnist"
    assert list(summary["methods"]) == ["uniform", "jest-flexi", "easy-reference"]
    assert summary["methods"]["uniform"]["mislabeled_selected"] == pytest.approx(0.5, abs=0.05)
    assert set(summary["resolution_agreement"]) == {"uniform", "jest-flexi", "easy-reference"}
    assert "zero_shot_acc" in summary["reference"] and summary["reference"]["train_flops"] > 0
    assert "budget_sweep" in summary
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert all("recall_at_1" in r for r in records)
    assert "| jest-flexi |" in capsys.readouterr().out
    # the folder's cached reference embeddings are refused for other reference options
    for name in ("summary.json", "metrics.jsonl", "report.md", "config.json"):
        (out / name).unlink()
    assert main([*argv, "--out", str(out), *TINY, "--reference-steps", "21"]) == 2
    assert "other options" in capsys.readouterr().err


def test_bench_pairs_fmnist_refuses_bad_options_before_loading(capsys):
    assert main(["bench", "pairs-fmnist", "--methods", "learnability-topk"]) == 2
    assert "unknown pair method" in capsys.readouterr().err
    assert main(["bench", "pairs-fmnist", "--chunks", "64", "--batch-size", "32"]) == 2
    assert "chunks (64)" in capsys.readouterr().err
    assert main(["bench", "pairs-fmnist", "--filter-ratio", "1.2"]) == 2


def test_spearman_against_hand_values():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a * 10) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, torch.tensor([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
