"""Malformed files given to ``report``, ``select`` and the SVP summaries: a clear error naming the
file and the field, never a traceback."""

from __future__ import annotations

import json

import pytest

from siftdata.bench.svp import Results
from siftdata.cli.main import main


@pytest.mark.parametrize(
    "scenario, field", [("svp-coreset", "'all_data'"), ("svp-active", "'curves'")]
)
def test_an_svp_summary_without_its_tables_names_the_file_and_field(
    tmp_path, capsys, scenario, field
):
    (tmp_path / "summary.json").write_text(json.dumps({"scenario": scenario}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"summary.json lacks or mistypes the field {field}" in err
    assert "Traceback" not in err


def test_a_result_row_without_its_key_names_the_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"key": "seed0/all", "seed": 0}\n{"seed": 1}\n')
    with pytest.raises(ValueError, match="results.jsonl line 2 has no 'key' field"):
        Results(path)


def test_a_metrics_line_without_its_fields_names_them(tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "method": "uniform"}\n')
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    assert "line 1 lacks or mistypes ['seed', 'test_acc'" in capsys.readouterr().err


def test_a_budget_that_is_not_a_number_names_the_file_and_line(tmp_path, capsys):
    good = {"method": "uniform", "seed": 0, "step": 0, "test_acc": 0.5, "flops": 1, "seconds": 1.0}
    bad = {**good, "step": 10, "budget": "half"}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    assert main(["report", str(tmp_path), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl: line 2 lacks or mistypes ['budget']" in err
