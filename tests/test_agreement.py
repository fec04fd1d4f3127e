"""Rank agreement: Spearman and Kendall τ-b against slow definitions and scipy; the report's rows,
tables, matrix and scatter plot; bad input."""

import itertools
import sys

import pytest
import torch

from siftdata.core.rank_stats import (
    _inversions,
    _kendall_tau_exact,
    kendall_tau,
    spearman,
    top_k_overlap,
)
from siftdata.offline.agreement_report import (
    agreement_matrix,
    agreement_rows,
    format_agreement_matrix,
    format_agreement_table,
    plot_agreement,
)


def _slow_kendall_b(a, b):
    concordant = discordant = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        sa, sb = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
        if sa == 0:
            ties_a += 1
        if sb == 0:
            ties_b += 1
        if sa * sb > 0:
            concordant += 1
        elif sa * sb < 0:
            discordant += 1
    n0 = len(a) * (len(a) - 1) / 2
    denominator = ((n0 - ties_a) * (n0 - ties_b)) ** 0.5
    return (concordant - discordant) / denominator if denominator else float("nan")


def _slow_spearman(a, b):
    def ranks(x):
        return [sum(y < v for y in x) + (sum(y == v for y in x) + 1) / 2 for v in x]

    ra, rb = torch.tensor(ranks(a)), torch.tensor(ranks(b))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def _tied_pair(n, levels, seed):
    """Two related score vectors with many ties (``levels`` distinct values in ``a``)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, levels, (n,), generator=g).double()
    return a, a + torch.randint(-2, 3, (n,), generator=g)


# --- Kendall τ-b and Spearman ---------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 23, 120])
@pytest.mark.parametrize("levels", [2, 5, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_kendall_matches_all_pairs_definitions(n, levels, seed):
    a, b = _tied_pair(n, levels, seed)
    slow = _slow_kendall_b(a.tolist(), b.tolist())
    close = pytest.approx(slow, abs=1e-12, nan_ok=True)  # nan: a constant draw (n = 2)
    assert kendall_tau(a, b) == close and kendall_tau(b, a) == close  # symmetric
    for chunk_size in (1, 7, 1000):
        assert _kendall_tau_exact(a, b, chunk_size=chunk_size) == close
    expected = _slow_spearman(a.tolist(), b.tolist())
    assert spearman(a, b) == pytest.approx(expected, nan_ok=True)


def test_perfect_and_reversed_agreement_with_ties():
    a, _ = _tied_pair(50, 5, seed=3)
    for f in (kendall_tau, spearman):
        assert f(a, a) == pytest.approx(1.0) and f(a, -a) == pytest.approx(-1.0)
        assert f(a, 2 * a + 7) == pytest.approx(1.0)  # ranks only
    pair = torch.tensor([1.0, 2.0])
    assert kendall_tau(pair, pair) == 1.0 and kendall_tau(pair, pair.flip(0)) == -1.0


def test_constant_scoring_gives_nan_and_one_example_is_refused():
    a = torch.arange(6.0)
    assert torch.isnan(torch.tensor(kendall_tau(a, torch.ones(6))))
    assert torch.isnan(torch.tensor(kendall_tau(torch.ones(6), a)))
    assert torch.isnan(torch.tensor(spearman(a, torch.zeros(6))))
    with pytest.raises(ValueError, match="at least 2 examples"):
        kendall_tau(torch.ones(1), torch.ones(1))


def test_inversions_match_brute_force():
    g = torch.Generator().manual_seed(0)
    for n, m in [(1, 1), (5, 1), (40, 3), (200, 17), (300, 1000)]:
        x = torch.randint(0, m, (n,), generator=g)
        brute = sum(int(x[i] > x[j]) for i, j in itertools.combinations(range(n), 2))
        assert _inversions(x) == brute
    assert _inversions(torch.arange(100).flip(0)) == 100 * 99 // 2


@pytest.mark.parametrize("ties", [False, True])
def test_agreement_against_scipy_where_present(ties):
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(1)
    n = 20_000  # large enough that float sums of pair counts would drift; the counts are exact
    a = torch.randn(n, generator=g, dtype=torch.float64)
    b = a + torch.randn(n, generator=g, dtype=torch.float64)
    if ties:
        a, b = (a * 2).round(), (b * 3).round()
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)


def test_top_k_overlap_and_bad_input():
    a = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    b = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0])
    assert top_k_overlap(a, b, 2) == 0.5 and top_k_overlap(a, b, 5) == 1.0
    with pytest.raises(ValueError, match="one length"):
        spearman(a, b[:3])
    with pytest.raises(ValueError, match="NaN"):
        kendall_tau(a, torch.tensor([1.0, float("nan"), 0, 0, 0]))
    with pytest.raises(ValueError, match="k must be in"):
        top_k_overlap(a, b, 6)
    with pytest.raises(ValueError, match="a must be a torch.Tensor"):
        kendall_tau([1.0, 2.0], b)


# --- the report -----------------------------------------------------------------------------

# Ten examples, example 0 scored highest by the proxy; the target swaps examples 0 and 9.
# ρ = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·162/990; τ = (45 − 2·17)/45 (17 discordant pairs);
# top 10%: {0} vs {9}; top 30%: {0,1,2} vs {9,1,2}; top 50%: 4 of 5.
PROXY = torch.arange(10.0).flip(0)
TARGET = PROXY[[9, 1, 2, 3, 4, 5, 6, 7, 8, 0]]
RHO, TAU = 1 - 6 * 162 / 990, 11 / 45


def test_agreement_rows_on_hand_made_scores():
    proxy = {"entropy": PROXY, "margin": PROXY, "forgetting": torch.tensor([3, 0, 0, 1, 2])}
    target = {"forgetting": torch.tensor([3, 1, 0, 0, 2]), "entropy": TARGET, "el2n": PROXY}
    rows = agreement_rows(proxy, target)
    assert [r["score"] for r in rows] == ["entropy", "forgetting"]  # in both, in proxy's order
    entropy, forgetting = rows
    assert list(entropy) == [
        "score", "a", "b", "n", "spearman", "kendall", "top_10%", "top_30%", "top_50%"
    ]  # fmt: skip
    assert entropy["a"] == "proxy" and entropy["b"] == "target" and entropy["n"] == 10
    assert entropy["spearman"] == pytest.approx(RHO) and entropy["kendall"] == pytest.approx(TAU)
    assert (entropy["top_10%"], entropy["top_30%"], entropy["top_50%"]) == (0.0, 2 / 3, 0.8)
    # integer counts (forgetting events) with ties: compared as ranks
    assert forgetting["kendall"] == pytest.approx(_slow_kendall_b([3, 0, 0, 1, 2], [3, 1, 0, 0, 2]))
    rows = agreement_rows(
        {"s": PROXY}, {"s": TARGET}, names=("mlp-2ep", "cnn"), top_fractions=(0.05, 1.0)
    )
    assert rows[0]["a"] == "mlp-2ep" and rows[0]["top_5%"] == 0.0  # k = max(1, round(0.5)) = 1
    assert rows[0]["top_100%"] == 1.0


def test_agreement_table_contains_the_numbers():
    rows = agreement_rows({"entropy": PROXY}, {"entropy": TARGET})
    rows.append({**rows[0], "score": "flat", "spearman": float("nan")})
    table = format_agreement_table(rows).splitlines()
    assert table[0] == "| score | a | b | n | spearman | kendall | top_10% | top_30% | top_50% |"
    assert table[1] == "|---|---|---|---|---|---|---|---|---|"
    assert table[2] == "| entropy | proxy | target | 10 | 0.018 | 0.244 | 0.000 | 0.667 | 0.800 |"
    assert table[3].startswith("| flat | proxy | target | 10 | nan | 0.244 |")


def test_agreement_report_bad_input():
    with pytest.raises(ValueError, match=r"'entropy' has 10 values in proxy and 9 in target"):
        agreement_rows({"entropy": PROXY}, {"entropy": TARGET[:9]})
    with pytest.raises(ValueError, match=r"target 'entropy' has 1 NaN"):
        agreement_rows({"entropy": PROXY}, {"entropy": torch.tensor([float("nan")] + [0.0] * 9)})
    with pytest.raises(ValueError, match=r"no score is in both proxy \(\['margin'\]\)"):
        agreement_rows({"margin": PROXY}, {"entropy": TARGET})
    with pytest.raises(ValueError, match=r"top_fractions must each be in \(0, 1\]"):
        agreement_rows({"s": PROXY}, {"s": TARGET}, top_fractions=(0.0,))
    with pytest.raises(ValueError, match="names must be two strings"):
        agreement_rows({"s": PROXY}, {"s": TARGET}, names="proxy")
    with pytest.raises(ValueError, match="1-D"):
        agreement_rows({"s": PROXY[None]}, {"s": TARGET})
    with pytest.raises(ValueError, match="rows is empty"):
        format_agreement_table([])


def test_plot_agreement_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    g = torch.Generator().manual_seed(0)
    a = {s: torch.randn(300, generator=g) for s in ("entropy", "margin", "el2n", "forgetting")}
    b = {s: v + torch.randn(300, generator=g) for s, v in a.items()}
    path = plot_agreement(a, b, tmp_path / "sub" / "agreement.png", title="t", max_points=100)
    assert path == tmp_path / "sub" / "agreement.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="max_points must be in"):
        plot_agreement(a, b, tmp_path / "x.png", max_points=0)


def test_plot_agreement_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'siftdata\[report\]'"):
        plot_agreement({"s": PROXY}, {"s": TARGET}, tmp_path / "x.png")


def test_agreement_matrix_of_many_rankings():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(200, generator=g)
    rankings = {"proxy": target + 0.5 * torch.randn(200, generator=g), "target": target}
    rankings["reversed"] = -target
    names, rho = agreement_matrix(rankings)
    assert names == ["proxy", "target", "reversed"] and rho.dtype == torch.float64
    assert torch.equal(rho, rho.T) and torch.allclose(rho.diagonal(), torch.ones(3).double())
    assert rho[0, 1] == pytest.approx(spearman(rankings["proxy"], target))
    assert rho[1, 2] == pytest.approx(-1.0) and rho[0, 2] == pytest.approx(-rho[0, 1])
    _, tau = agreement_matrix(rankings, method="kendall")
    assert tau[0, 1] == pytest.approx(kendall_tau(rankings["proxy"], target))
    table = format_agreement_matrix(names, rho).splitlines()
    assert table[0] == "|  | proxy | target | reversed |"
    assert table[4] == f"| reversed | {float(rho[2, 0]):.3f} | -1.000 | 1.000 |"
    with pytest.raises(ValueError, match="method must be one of"):
        agreement_matrix(rankings, method="pearson")
    with pytest.raises(ValueError, match="same examples"):
        agreement_matrix({"a": target, "b": target[:5]})
    with pytest.raises(ValueError, match="rankings is empty"):
        agreement_matrix({})
    with pytest.raises(ValueError, match="matrix must be 2 x 2"):
        format_agreement_matrix(["a", "b"], rho)
