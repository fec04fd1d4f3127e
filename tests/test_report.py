"""Report: table cells, budget table, bench and train folders, malformed files, plots."""

import json
import sys

import pytest

from siftdata.bench.budget import summarize_budget_sweep
from siftdata.bench.report import format_budget_table, format_table, write_report
from siftdata.bench.summary import summarize


def run(method, seed, accs, *, budget=1.0, fps=10, ref=0, mislabeled=None):
    """Records of one run (evaluations every 100 steps, one second per step)."""
    out = []
    for i, a in enumerate(accs):
        step = 100 * i
        out.append(
            {
                "method": method,
                "seed": seed,
                "budget": budget,
                "steps_budget": round(100 * (len(accs) - 1)),
                "step": step,
                "test_acc": a,
                "flops": step * fps,
                "flops_end_to_end": step * fps + ref,
                "seconds": float(step),
                "seconds_by_phase": {
                    "score": 0.4 * step,
                    "select": 0.1 * step,
                    "train": 0.5 * step,
                },
                "mislabeled_selected": mislabeled if step else None,
                "selection_stats": {},
            }
        )
    return out


UNIFORM = [0.1, 0.2, 0.3, 0.4, 0.8, 0.8, 0.8, 0.8]  # reaches its target 0.8 at step 600


def _records(miss=False):
    m1 = [0.1] + [0.2] * 7 if miss else [0.1, 0.1] + [0.9] * 6
    recs = run("uniform", 0, UNIFORM, mislabeled=0.4) + run("uniform", 1, UNIFORM, mislabeled=0.4)
    recs += run("m", 0, [0.1] + [0.9] * 7, fps=40, ref=50_000, mislabeled=0.1)
    return recs + run("m", 1, m1, fps=40, ref=50_000, mislabeled=0.2)


def _rows(text):
    return [line for line in text.splitlines() if line.startswith("| ")]


def test_table_cells():
    rows = _rows(format_table(summarize(_records())))
    assert rows[2] == (
        "| m | 0.9000 [0.9000, 0.9000] | 0.9000 | 0.150 | 10.0% "
        "| 350 (1.71×) | 350 (1.71×) | 350 (1.71×) |"
    )
    # FLOPs: 6000 / mean(12000, 16000); e2e adds 50k; seconds as steps; spreads per seed
    flops, e2e, secs = "0.43× [0.38, 0.50]", "0.09× [0.09, 0.10]", "1.71× [1.50, 2.00]"
    assert rows[5] == f"| m | {' | '.join([flops] * 3 + [e2e] * 3 + [secs] * 3)} |"


def test_table_never_and_single_seed_without_spread():
    text = format_table(summarize(_records(miss=True)))
    assert _rows(text)[2].endswith("| never | never | never |")
    assert _rows(text)[5] == "| m |" + " never |" * 9
    assert "ratio" in text and "moving average" in text  # the footnote states both rules
    one = run("uniform", 0, UNIFORM) + run("m", 0, [0.1] + [0.9] * 7, fps=40)
    assert _rows(format_table(summarize(one)))[5].startswith("| m | 0.50× | 0.50× | 0.50× |")


def _sweep_records():
    recs = []
    for budget, acc in ((0.5, 0.6), (1.0, 0.7), (2.0, 0.8)):
        recs += run(
            "uniform", 0, [0.1, acc - 0.1, acc] + [acc] * round(4 * budget - 2), budget=budget
        )
    for budget, acc in ((0.5, 0.5), (1.0, 0.9)):
        recs += run("m", 0, [0.1, acc - 0.1, acc] + [acc] * round(4 * budget - 2), budget=budget)
    return recs


def test_budget_table_bounds():
    text = format_budget_table({"budget_sweep": summarize_budget_sweep(_sweep_records())})
    rows = _rows(text)
    cells = ["uniform", "0.5", "0.6000 [0.6000, 0.6000]", "-0.2000", "200", "2e+03", "2e+03"]
    assert rows[1] == "| " + " | ".join(cells + ["≤ 1.00×"] * 3) + " |"
    assert rows[2].endswith("| 1.00× | 1.00× | 1.00× |")
    # m at 0.5 is below uniform's smallest budget, m at 1.0 above its best
    assert rows[4].endswith("| ≤ 1.00× | ≤ 1.00× | ≤ 1.00× |")
    assert rows[5].endswith("| ≥ 2.00× | ≥ 2.00× | ≥ 2.00× |")
    assert "| +0.1000 |" in rows[5]  # 0.9 against uniform's best 0.8


def _folder(tmp_path, records, summary=None):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def test_report_on_a_train_folder(tmp_path):
    folder = _folder(tmp_path, run("m", 3, [0.1, 0.5, 0.7, 0.6], mislabeled=0.25))
    text = write_report(folder, plots=False).read_text()
    assert "| m | 3 | 300 | 0.7000 | 0.6000 | 3e+03 | 300.0 | 0.250 |" in text
    assert "Target" not in text and "×" not in text


def test_methods_subset_and_unknown(tmp_path):
    folder = _folder(tmp_path, _records(), summarize(_records()))
    text = write_report(folder, plots=False, methods=["m"]).read_text()
    assert "| m |" in text and "| uniform |" not in text
    with pytest.raises(ValueError, match=r"\['magic'\].*\['uniform', 'm'\]"):
        write_report(folder, plots=False, methods=["uniform", "magic"])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "cannot be read as JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"target": {"value": 0.8}}', "'methods'"),
        ('{"methods": {"m": {"to_target": {}}}}', "'target'"),
        ('{"target": {"value": "high"}, "methods": {}}', "'target'"),
        ('{"target": {"value": 0.8}, "methods": {"m": {"best": 0.9}}}', "older siftdata"),
        ('{"target": {"value": 0.8}, "methods": {"m": {"to_target": {}}}}', "expected shape"),
    ],
)
def test_malformed_summary_is_a_clear_error(tmp_path, content, problem):
    folder = _folder(tmp_path, _records())
    (folder / "summary.json").write_text(content)
    with pytest.raises(ValueError, match="summary.json") as err:
        write_report(folder, plots=False)
    assert problem in str(err.value) and "re-run the benchmark or delete it" in str(err.value)


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"method": "m", "seed": 0, "st', "line 2 is not valid JSON"),
        ('{"method": "m", "seed": 0, "step": 100}', "line 2 lacks or mistypes ['test_acc'"),
        (
            '{"method": "m", "seed": "zero", "step": 1, "test_acc": 0.1, "flops": 1, "seconds": 1}',
            "['seed']",
        ),
        ("[1]", "not a JSON object"),
    ],
)
def test_bad_metrics_line_is_a_clear_error(tmp_path, line, problem):
    folder = _folder(tmp_path, run("m", 0, [0.1]))
    with open(folder / "metrics.jsonl", "a") as f:
        f.write(line + "\n")
    with pytest.raises(ValueError, match="metrics.jsonl") as err:
        write_report(folder, plots=False)
    assert problem in str(err.value) and "delete" in str(err.value)


def test_not_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a benchmark run folder"):
        write_report(tmp_path)


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'siftdata\[report\]'"):
        write_report(_folder(tmp_path, run("m", 0, [0.1, 0.5, 0.7])))


def test_plots_leave_the_backend_alone(tmp_path, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    monkeypatch.delitem(sys.modules, "matplotlib.pyplot", raising=False)
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("matplotlib.use called"))
    recs = _sweep_records()
    folder = _folder(tmp_path, recs, summarize(recs))  # no budget_sweep: built from the records
    text = write_report(folder).read_text()
    assert "matplotlib.pyplot" not in sys.modules
    assert matplotlib.get_backend() == before
    assert "## Budget sweep" in text and "| m | 1 |" in text
    for stem in ("steps", "flops", "seconds"):
        assert (folder / f"accuracy_vs_{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"(accuracy_vs_{stem}.png)" in text
    for stem in ("budget", "flops"):
        assert (folder / f"final_accuracy_vs_{stem}.png").stat().st_size > 1000


def test_plots_of_a_train_folder(tmp_path):
    pytest.importorskip("matplotlib")
    folder = _folder(tmp_path, run("m", 0, [0.1, 0.5, 0.7]) + run("m", 1, [0.1, 0.4, 0.6]))
    write_report(folder)
    assert (folder / "accuracy_vs_seconds.png").stat().st_size > 1000
    assert not (folder / "final_accuracy_vs_budget.png").exists()


def test_bounds_are_rounded_away_from_the_claim():
    from siftdata.bench.report import _multiplier_cell

    assert _multiplier_cell({"value": 0.958, "bound": ">="}) == "≥ 0.95×"  # never shown as ≥ 1
    assert _multiplier_cell({"value": 0.121, "bound": "<="}) == "≤ 0.13×"
    assert _multiplier_cell({"value": 1.487, "bound": "="}) == "1.49×"
