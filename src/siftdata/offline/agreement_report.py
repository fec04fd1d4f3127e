"""The rank-agreement report: how well one scoring of a dataset ranks it like another.

Two sets of per-example scores, keyed by score name (``{"entropy": tensor, "el2n": tensor}``),
typically a proxy's and the target's, every score oriented so that **higher = kept first**:

- :func:`agreement_rows`: per score in both, Spearman's ρ, Kendall's τ-b and the top-k overlap
  ``|top_k(a) ∩ top_k(b)| / k`` at a few keep fractions (``k = round(f·N)``, at least 1);
- :func:`format_agreement_table`: those rows as a markdown table;
- :func:`plot_agreement`: one scatter panel of percentile ranks per score (PNG);
- :func:`agreement_matrix` / :func:`format_agreement_matrix`: the pairwise agreement of many
  rankings of one score (proxies of different sizes and epochs, and the target).

Plots are built on :class:`matplotlib.figure.Figure` (its own Agg canvas, no pyplot): matplotlib
is the ``report`` extra, imported when plotting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .._validation import check_int_range
from ..core.rank_stats import average_ranks, kendall_tau, spearman, top_k_overlap

__all__ = [
    "agreement_rows",
    "format_agreement_table",
    "plot_agreement",
    "agreement_matrix",
    "format_agreement_matrix",
]

_METHODS = {"spearman": spearman, "kendall": kendall_tau}


def _vector(x, label: str) -> Tensor:
    """A finite 1-D float64 CPU copy of one score vector; ``label`` names it in errors."""
    x = torch.as_tensor(x).detach().cpu()
    if x.dim() != 1:
        raise ValueError(f"{label} must be 1-D (one score per example), got shape {tuple(x.shape)}")
    x = x.double()
    n_bad = int((~torch.isfinite(x)).sum())
    if n_bad:
        raise ValueError(f"{label} has {n_bad} NaN or infinite value(s); scores must be finite")
    return x


def _check_names(names: Sequence[str]) -> tuple[str, str]:
    if isinstance(names, str) or len(names) != 2 or not all(isinstance(n, str) for n in names):
        raise ValueError(f"names must be two strings (for a and b), got {names!r}")
    return names[0], names[1]


def _common_pairs(
    a: Mapping[str, Tensor], b: Mapping[str, Tensor], names: tuple[str, str]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per score in both mappings (in ``a``'s order), the two checked vectors of one length."""
    common = [s for s in a if s in b]
    if not common:
        raise ValueError(
            f"no score is in both {names[0]} ({sorted(a)}) and {names[1]} ({sorted(b)}); "
            "key both mappings by the same score names"
        )
    pairs = {}
    for score in common:
        x, y = (
            _vector(a[score], f"{names[0]} {score!r}"),
            _vector(b[score], f"{names[1]} {score!r}"),
        )
        if x.numel() != y.numel():
            raise ValueError(
                f"score {score!r} has {x.numel()} values in {names[0]} and {y.numel()} in "
                f"{names[1]}; both must score the same examples in the same order"
            )
        if x.numel() < 2:
            raise ValueError(f"score {score!r} has {x.numel()} value(s); agreement needs >= 2")
        pairs[score] = (x, y)
    return pairs


def _fraction_key(f: float) -> str:
    return f"top_{100 * f:g}%"


def agreement_rows(
    a: Mapping[str, Tensor],
    b: Mapping[str, Tensor],
    *,
    names: Sequence[str] = ("proxy", "target"),
    top_fractions: Sequence[float] = (0.1, 0.3, 0.5),
) -> list[dict]:
    """One row per score present in both ``a`` and ``b`` (in ``a``'s order).

    Each row: ``{"score", "a", "b", "n", "spearman", "kendall", "top_10%", ...}`` where ``"a"`` and
    ``"b"`` are the two ``names`` and ``top_{100f}%`` is ``|top_k(a) ∩ top_k(b)| / k`` with
    ``k = max(1, round(f·N))`` (higher scores first, ties broken by position). Raises
    ``ValueError`` for no common score, unequal lengths or a non-finite score.
    """
    names = _check_names(names)
    fractions = [float(f) for f in top_fractions]
    for f in fractions:
        if not 0 < f <= 1:
            raise ValueError(f"top_fractions must each be in (0, 1], got {f}")
    if len(set(map(_fraction_key, fractions))) != len(fractions):
        raise ValueError(f"top_fractions must be distinct, got {list(top_fractions)}")
    rows = []
    for score, (x, y) in _common_pairs(a, b, names).items():
        n = x.numel()
        row = {"score": score, "a": names[0], "b": names[1], "n": n}
        row |= {"spearman": spearman(x, y), "kendall": kendall_tau(x, y)}
        for f in fractions:
            row[_fraction_key(f)] = top_k_overlap(x, y, max(1, round(f * n)))
        rows.append(row)
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])


def format_agreement_table(rows: Sequence[Mapping]) -> str:
    """``rows`` (from :func:`agreement_rows`) as a markdown table, numbers to 3 decimals.

    The columns are the union of the rows' keys in order of first appearance (a row without one
    shows ``-``); ``nan`` (a constant scoring) is shown as ``nan``.
    """
    if not rows:
        raise ValueError("rows is empty: there is nothing to tabulate")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    body = [[_cell(row[c]) if c in row else "-" for c in columns] for row in rows]
    return _markdown(columns, body)


def _figure(n_panels: int):
    """A fresh Figure with a grid of square Axes (no pyplot, no backend switch)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'siftdata[report]'") from err
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(3.4 * cols, 3.4 * rows + 0.4), dpi=110)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def _percentiles(x: Tensor) -> Tensor:
    """Percentile ranks in (0, 100): ``100 (rank − ½) / N``, ties sharing their mean rank."""
    return 100 * (average_ranks(x) - 0.5) / x.numel()


def plot_agreement(
    a: Mapping[str, Tensor],
    b: Mapping[str, Tensor],
    path: str | Path,
    *,
    names: Sequence[str] = ("proxy", "target"),
    title: str | None = None,
    max_points: int = 5000,
    seed: int = 0,
) -> Path:
    """Write a PNG with one scatter panel per common score: percentile rank in ``a`` (x) against
    percentile rank in ``b`` (y), Spearman's ρ (over all examples) in each panel's title.

    At most ``max_points`` examples are drawn per panel, a subsample chosen by a generator seeded
    with ``seed`` (the same examples in every panel of one length). Returns ``path``.
    """
    names = _check_names(names)
    check_int_range(max_points, "max_points", low=1)
    check_int_range(seed, "seed", low=0)
    pairs = _common_pairs(a, b, names)
    fig, axes = _figure(len(pairs))
    for ax, (score, (x, y)) in zip(axes, pairs.items(), strict=False):
        keep = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(seed))
        keep = keep[:max_points]
        px, py = _percentiles(x)[keep], _percentiles(y)[keep]
        ax.scatter(px.numpy(), py.numpy(), s=3, alpha=0.3, linewidths=0)
        ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls="--")
        ax.set(xlim=(0, 100), ylim=(0, 100), aspect="equal")
        ax.set_xlabel(f"{names[0]} percentile rank", fontsize=8)
        ax.set_ylabel(f"{names[1]} percentile rank", fontsize=8)
        ax.set_title(f"{score}: Spearman ρ = {_cell(spearman(x, y))}", fontsize=9)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def agreement_matrix(
    rankings: Mapping[str, Tensor], *, method: str = "spearman"
) -> tuple[list[str], Tensor]:
    """The pairwise rank agreement of several scorings of the same examples.

    ``rankings`` maps a name (``"proxy-2ep"``, ``"target"``) to one score vector per example, all
    of one length. Returns the names and a symmetric ``(K, K)`` float64 matrix of Spearman's ρ or
    Kendall's τ-b (``method``); the diagonal is 1 (``nan`` for a constant scoring).
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
    if not rankings:
        raise ValueError("rankings is empty: need at least one named score vector")
    names = list(rankings)
    vectors = [_vector(rankings[name], f"ranking {name!r}") for name in names]
    lengths = {name: v.numel() for name, v in zip(names, vectors, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"rankings must all score the same examples; lengths are {lengths}")
    matrix = torch.empty(len(names), len(names), dtype=torch.float64)
    for i, x in enumerate(vectors):
        for j in range(i, len(names)):
            matrix[i, j] = matrix[j, i] = _METHODS[method](x, vectors[j])
    return names, matrix


def format_agreement_matrix(names: Sequence[str], matrix: Tensor) -> str:
    """``(names, matrix)`` from :func:`agreement_matrix` as a markdown table, 3 decimals."""
    if matrix.shape != (len(names), len(names)):
        raise ValueError(
            f"matrix must be {len(names)} x {len(names)} (one row per name), "
            f"got {tuple(matrix.shape)}"
        )
    body = [
        [name, *(_cell(float(v)) for v in row)] for name, row in zip(names, matrix, strict=True)
    ]
    return _markdown(["", *names], body)
