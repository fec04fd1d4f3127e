"""The SVP scenarios and commands end to end on a few hundred Fashion-MNIST images: rows, resume,
the labeled sets of active learning, and the command line's bad-input errors."""

import dataclasses
import json

import pytest
import torch

import siftdata.bench.svp_active as active_mod
import siftdata.bench.svp_coreset as coreset_mod
from siftdata.bench.svp import SvpConfig
from siftdata.bench.svp_active import ActiveConfig, parse_strategy, run_svp_active
from siftdata.bench.svp_coreset import CoresetConfig, run_svp_coreset
from siftdata.cli.main import main
from siftdata.data import load_fashion_mnist
from siftdata.offline import load_score, load_selection

TINY = {
    "seeds": 1,
    "pool_size": 300,
    "target_model": "cnn",
    "target_width": 0.25,
    "target_epochs": 1,
    "proxy_width": 0.1,
    "proxy_epochs": 1,
    "batch_size": 64,
    "progress": False,
}


def _counting(monkeypatch, module):
    calls = []
    real = module.fit

    def counted(*args, **kwargs):
        calls.append(args[1].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "fit", counted)
    return calls


def test_coreset_scenario_rows_summary_and_resume(tmp_path, monkeypatch):
    svp = SvpConfig(**TINY)
    coreset = CoresetConfig(
        keep=(0.5,),
        scores=("el2n", "kcenter"),
        rank_scores=("el2n", "margin", "kcenter"),
        stratified=("el2n",),
        el2n_runs=1,
        proxy_variants=("mlp:0.05:1",),
    )
    summary = run_svp_coreset(tmp_path, svp, coreset)
    methods = {r["method"] for r in summary["core_sets"]}
    assert methods == {"el2n", "el2n/stratified", "kcenter", "random"}
    assert all(r["keep"] == 0.5 and 0 < r["test_acc"] <= 1 for r in summary["core_sets"])
    assert {a["score"] for a in summary["agreement"]} == {"el2n", "margin", "kcenter"}
    assert summary["selection_time"]["el2n"]["selection_time_ratio"] > 0
    sel = load_selection(tmp_path / "selections" / "seed0" / "keep0.5" / "el2n")
    assert len(sel) == 150 and sel.meta["score"] == "el2n" and sel.meta["policy"] == "hardest"
    stored = load_score(tmp_path / "scores" / "seed0" / "proxy" / "margin")
    assert stored.manifest["meta"]["direction"] == "higher-prune"
    report = (tmp_path / "report.md").read_text()
    assert "## Rank agreement" in report and "proxies and the target: el2n" in report
    matrix = summary["proxy_matrices"]["margin"]
    assert len(matrix["names"]) == 3 and matrix["spearman"][1][1] == pytest.approx(1.0)
    # a rerun into the same folder trains nothing: scores and rows come from disk
    fits = _counting(monkeypatch, coreset_mod)
    import siftdata.offline.proxy_scores as proxy_scores

    score_fits = _counting(monkeypatch, proxy_scores)
    again = run_svp_coreset(tmp_path, svp, coreset)
    assert fits == [] and score_fits == []
    assert again["core_sets"] == summary["core_sets"]
    assert load_selection(tmp_path / "selections" / "seed0" / "keep0.5" / "el2n-stratified")
    deeper = dataclasses.replace(coreset, keep=(0.5, 0.7))  # k-center would need more picks
    with pytest.raises(ValueError, match="kcenter_picks"):
        run_svp_coreset(tmp_path, svp, deeper)
    with pytest.raises(ValueError, match="target_epochs: 1 there, 2 now"):
        run_svp_coreset(tmp_path, SvpConfig(**{**TINY, "target_epochs": 2}), coreset)


def test_active_scenario_grows_disjoint_labeled_sets_and_resumes(tmp_path, monkeypatch):
    svp = SvpConfig(**TINY)
    active = ActiveConfig(
        initial=40,
        round_size=30,
        rounds=2,
        min_steps=5,
        strategies=("random", "proxy:margin", "proxy:kcenter", "target:margin"),
    )
    summary = run_svp_active(tmp_path, svp, active)
    for strategy in active.strategies:
        folder = tmp_path / "labeled" / "seed0" / strategy.replace(":", "-")
        sets = [load_selection(folder / f"round{r}").ids for r in range(3)]
        assert [len(s) for s in sets] == [40, 70, 100]
        for before, after in zip(sets, sets[1:], strict=False):
            assert torch.equal(after[: len(before)], before)  # earlier labels kept, in order
            assert after.unique().numel() == len(after)  # new ones are new
    curves = summary["curves"]
    first = {curves[s][0]["test_acc"] for s in active.strategies}
    assert len(first) == 1  # round 0: the same seed set, the same target fit for every strategy
    assert summary["strategies"]["random"]["selection_seconds_per_round"] == 0.0
    assert summary["strategies"]["target:margin"]["selection_seconds_per_round"] > 0
    assert summary["selection_time_ratio"]["margin"] > 0
    assert "target / proxy" in (tmp_path / "report.md").read_text()
    fits = _counting(monkeypatch, active_mod)
    assert run_svp_active(tmp_path, svp, active)["curves"] == curves and fits == []


def test_active_options_bad_input():
    with pytest.raises(ValueError, match="initial"):
        ActiveConfig(initial=0)
    with pytest.raises(ValueError, match="strategy"):
        ActiveConfig(strategies=("proxy:el2n",))
    assert parse_strategy("target:kcenter") == ("target", "kcenter")
    assert (
        main(
            [
                "bench",
                "svp-active",
                "--initial",
                "59000",
                "--round-size",
                "1000",
                "--rounds",
                "2",
                "--out",
                "unused",
            ]
        )
        == 2
    )


def test_coreset_options_bad_input():
    for bad in (
        {"keep": (0.0,)},
        {"keep": (1.5,)},
        {"scores": ("grand",)},
        {"stratified": ("kcenter",)},
        {"scores": ("el2n",), "rank_scores": ("margin",)},
        {"proxy_variants": ("mlp:0.5",)},
        {"proxy_variants": ("vgg:1:2",)},
    ):
        with pytest.raises(ValueError):
            CoresetConfig(**bad)


def test_score_and_select_commands(tmp_path, capsys):
    out = tmp_path / "scores"
    rc = main(
        [
            "score",
            "--out",
            str(out),
            "--pool-size",
            "200",
            "--epochs",
            "1",
            "--scores",
            "el2n,margin",
            "--el2n-runs",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0 and (out / "el2n" / "manifest.json").exists()
    pq = tmp_path / "parquet"
    assert (
        main(
            [
                "score",
                "--out",
                str(pq),
                "--pool-size",
                "200",
                "--epochs",
                "1",
                "--scores",
                "margin",
                "--file-format",
                "parquet",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (pq / "margin" / "table.parquet").exists()
    assert torch.equal(load_score(pq / "margin").scores, load_score(out / "margin").scores)
    meta = json.loads((out / "margin" / "manifest.json").read_text())["meta"]
    assert meta["direction"] == "higher-prune" and set(meta["seconds"]) >= {"train", "score"}
    sel = tmp_path / "sel"
    assert (
        main(
            ["select", str(out / "margin"), "--out", str(sel), "--keep", "0.25", "--class-balanced"]
        )
        == 0
    )
    kept = load_selection(sel)
    assert len(kept) == 50 and kept.meta["direction"] == "higher-prune"
    per_class = torch.bincount(load_fashion_mnist("train")[1][kept.ids], minlength=10)
    assert int(per_class.max() - per_class.min()) <= 1  # class-balanced: 5 per class
    margins = load_score(out / "margin")
    # the direction was honoured: without class balance it keeps the 50 smallest margins
    assert (
        main(["select", str(out / "margin"), "--out", str(tmp_path / "s2"), "--budget", "50"]) == 0
    )
    plain = margins.lookup(load_selection(tmp_path / "s2").ids)
    assert float(plain.max()) <= float(torch.sort(margins.scores).values[49])
    capsys.readouterr()
    # select never replaces a score store (its input or a sibling), nor a selection unasked
    el2n = (out / "el2n" / "manifest.json").read_text()
    for target, extra, message in (
        (out / "margin", ["--overwrite"], "is the score store being read"),
        (out / "el2n", ["--overwrite"], "a selection never replaces it"),
        (tmp_path / "s2", [], "add --overwrite to replace it"),
    ):
        argv = ["select", str(out / "margin"), "--out", str(target), "--budget", "40", *extra]
        assert main(argv) == 2
        assert message in capsys.readouterr().err
    assert (out / "el2n" / "manifest.json").read_text() == el2n
    assert load_score(out / "margin").scores.equal(margins.scores)
    argv = ["select", str(out / "margin"), "--out", str(tmp_path / "s2"), "--budget", "40"]
    assert main([*argv, "--overwrite"]) == 0
    assert len(load_selection(tmp_path / "s2").ids) == 40
    for args in (
        ["--keep", "0"],
        ["--keep", "1.5"],
        ["--budget", "201"],
        [],
        ["--keep", "0.5", "--budget", "3"],
    ):
        assert main(["select", str(out / "margin"), "--out", str(tmp_path / "bad"), *args]) == 2
    assert "exactly one" in capsys.readouterr().err
    kc = tmp_path / "kc"
    scoring = ["--pool-size", "200", "--epochs", "1", "--scores", "kcenter", "--no-progress"]
    assert main(["score", "--out", str(kc), "--kcenter-keep", "0.3", *scoring]) == 0
    assert not (kc / ".shards").exists()  # removed once the stores are written
    assert (
        main(["select", str(kc / "kcenter"), "--out", str(tmp_path / "k1"), "--keep", "0.3"]) == 0
    )
    capsys.readouterr()
    assert (
        main(["select", str(kc / "kcenter"), "--out", str(tmp_path / "k2"), "--keep", "0.5"]) == 2
    )
    assert "ranks only its first 60 picks" in capsys.readouterr().err
    # a rerun with another k-center depth does not reuse the stores silently
    assert main(["score", "--out", str(kc), "--kcenter-keep", "0.5", *scoring]) == 2
    assert "kcenter_keep: 0.3 there, 0.5 now" in capsys.readouterr().err
    assert (
        main(["select", str(tmp_path / "nothing"), "--out", str(tmp_path / "bad"), "--keep", "0.5"])
        == 2
    )
