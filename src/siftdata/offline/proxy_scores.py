"""SVP's scores of a whole dataset by one trained recipe (a proxy or the target), every stage timed.

:func:`score_with_recipe` trains the recipe once (tracking forgetting events on the way), scores
the data with the uncertainty scorers and takes embeddings in one batched pass, averages EL2N over
a few short runs, and ranks by greedy k-center. Scores are returned raw, each with its
:data:`SCORE_DIRECTIONS` entry: ``"higher-keep"`` (the hardest policy keeps high values) or
``"higher-prune"`` (the margin: a high margin is a confident, easy example).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .._seeding import derive_seed
from .._validation import check_int_range
from ..scoring.scorers import Entropy, GradNormBound, LeastConfidence, Margin
from .fit import Fitted, fit, sync
from .forgetting import ForgettingTracker
from .kcenter import k_center_greedy
from .recipe import Recipe
from .scoring import ScoredDataset, score_dataset

ScorePass = Callable[..., ScoredDataset]
"""Has :func:`score_dataset`'s signature: the engine that runs the main scoring pass."""

__all__ = [
    "SCORE_NAMES",
    "SCORE_DIRECTIONS",
    "OUTPUT_SCORERS",
    "ScoreRun",
    "parse_score_names",
    "forgetting_scores",
    "kcenter_scores",
    "score_with_recipe",
]

SCORE_NAMES = ("least-confidence", "entropy", "margin", "el2n", "forgetting", "kcenter")
"""The scores SVP ranks a dataset by."""

SCORE_DIRECTIONS = {name: "higher-keep" for name in SCORE_NAMES} | {"margin": "higher-prune"}
"""Which end of each raw score the ``hardest`` policy keeps."""

OUTPUT_SCORERS = {"least-confidence": LeastConfidence, "entropy": Entropy, "margin": Margin}
"""The scores one no-grad forward gives (no labels needed: active learning scores unlabeled data)."""


def parse_score_names(names: str | Sequence[str]) -> tuple[str, ...]:
    """Score names from a comma-separated string or a sequence, checked against SCORE_NAMES."""
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in SCORE_NAMES]
    if not names or unknown:
        raise ValueError(
            f"scores must be a non-empty list from {', '.join(SCORE_NAMES)}; got {list(names)}"
        )
    return names


@dataclass
class ScoreRun:
    """One recipe's scores over a dataset and the wall-clock of each stage (seconds)."""

    recipe: Recipe
    scores: dict[str, Tensor]
    seconds: dict[str, float] = field(default_factory=dict)
    """``train`` and ``score`` (the recipe's run), ``el2n_train`` and ``el2n_score`` (its short
    runs), ``kcenter`` (the greedy picks: selection work)."""
    fitted: Fitted | None = None

    def cost(self, name: str) -> dict[str, float]:
        """What selecting by score ``name`` took: ``training``, ``scoring``, ``selection`` seconds.

        Forgetting needs only the training run; EL2N only its short runs; the uncertainty scores
        the run and one scoring pass; k-center that plus the greedy picks (its ``selection``).
        """
        s = self.seconds
        if name == "el2n":
            return {"training": s["el2n_train"], "scoring": s["el2n_score"], "selection": 0.0}
        scoring = 0.0 if name == "forgetting" else s.get("score", 0.0)
        picks = s.get("kcenter", 0.0) if name == "kcenter" else 0.0
        return {"training": s["train"], "scoring": scoring, "selection": picks}


def forgetting_scores(tracker: ForgettingTracker) -> Tensor:
    """Finite forgetting scores: the event count, and for a never-learned example its number of
    presentations, which exceeds any count it could have had (at most ``⌊presentations / 2⌋``),
    so never-learned examples rank as the most forgettable."""
    counts = tracker.forgotten.to(torch.float32)
    never = tracker.presented.to(torch.float32)
    return torch.where(tracker.ever_correct, counts, never).cpu()


def kcenter_scores(embeddings: Tensor, picks: int, *, seed: int) -> Tensor:
    """Greedy k-center as a ranking: the ``t``-th pick scores ``picks − t``, the rest 0.

    The first ``k`` picks of the greedy order are the greedy k-center core-set of size ``k``, so
    the ``hardest`` policy on these scores keeps exactly that set for any ``k ≤ picks``.
    """
    order = k_center_greedy(embeddings, picks, seed=seed).cpu()
    scores = torch.zeros(embeddings.shape[0])
    scores[order] = torch.arange(picks, 0, -1, dtype=torch.float32)
    return scores


def _el2n(recipe, inputs, labels, *, runs, epochs, seed, device, progress) -> tuple[Tensor, dict]:
    """EL2N, ``‖softmax − onehot‖``, averaged over ``runs`` short runs of ``epochs`` epochs."""
    short = recipe.proxy(epochs=epochs)
    total = torch.zeros(labels.shape[0])
    seconds = {"el2n_train": 0.0, "el2n_score": 0.0}
    for run in range(runs):
        fitted = fit(
            short,
            inputs,
            labels,
            seed=derive_seed(seed, f"el2n-{run}"),
            device=device,
            progress=progress,
            desc=f"el2n run {run + 1}/{runs}",
        )
        scored = score_dataset(
            fitted.model, inputs, labels, {"el2n": GradNormBound()}, progress=progress, desc="el2n"
        )
        total += scored.scores["el2n"]
        seconds["el2n_train"] += fitted.seconds
        seconds["el2n_score"] += scored.seconds
    return total / runs, seconds


def score_with_recipe(
    recipe: Recipe,
    inputs: Tensor,
    labels: Tensor,
    names: Sequence[str],
    *,
    seed: int,
    device: torch.device | str = "cpu",
    el2n_runs: int = 2,
    el2n_epochs: int = 1,
    kcenter_picks: int | None = None,
    shard_dir: str | Path | None = None,
    shard_size: int = 16384,
    progress: bool = True,
    score_pass: ScorePass = score_dataset,
) -> ScoreRun:
    """Train ``recipe`` on the data and score every example by each of ``names``.

    Parameters
    ----------
    recipe : Recipe
        The proxy's (or the target's) recipe.
    inputs, labels : Tensor
        The dataset to rank.
    names : sequence of str
        From :data:`SCORE_NAMES`.
    seed : int
        Seeds the training runs and k-center's first pick.
    el2n_runs, el2n_epochs : int
        EL2N is averaged over this many runs of this many epochs each.
    kcenter_picks : int, optional
        How far to run greedy k-center (default all ``N``: it costs ``O(N·D)`` per pick, so
        stop at the largest core-set you need).
    shard_dir : path, optional
        Resumable shards of the main scoring pass (see :func:`score_dataset`).
    shard_size : int
        Examples per shard.
    progress : bool
        Show progress bars.
    score_pass : callable
        Runs the main scoring pass, with :func:`score_dataset`'s signature (the default): e.g.
        every rank's share under torchrun (:func:`siftdata.distributed.scoring_led_by_rank0`)
        or a Ray actor pool (:func:`siftdata.integrations.ray_scoring.ray_score_pass`).
    """
    names = parse_score_names(names)
    check_int_range(el2n_runs, "el2n_runs", low=1)
    check_int_range(el2n_epochs, "el2n_epochs", low=1)
    n = labels.shape[0]
    picks = (
        n
        if kcenter_picks is None
        else check_int_range(kcenter_picks, "kcenter_picks", low=1, high=n)
    )
    fitted = fit(
        recipe,
        inputs,
        labels,
        seed=seed,
        device=device,
        track_forgetting="forgetting" in names,
        progress=progress,
        desc=f"train {recipe.label()}",
    )
    run = ScoreRun(recipe, {}, {"train": fitted.seconds}, fitted)
    if any(name in OUTPUT_SCORERS for name in names) or "kcenter" in names:
        _score_pass(
            run,
            inputs,
            labels,
            names,
            picks=picks,
            seed=seed,
            device=device,
            shard_dir=shard_dir,
            shard_size=shard_size,
            progress=progress,
            score_pass=score_pass,
        )
    if "forgetting" in names:
        run.scores["forgetting"] = forgetting_scores(fitted.forgetting)
    if "el2n" in names:
        run.scores["el2n"], seconds = _el2n(
            recipe,
            inputs,
            labels,
            runs=el2n_runs,
            epochs=el2n_epochs,
            seed=seed,
            device=device,
            progress=progress,
        )
        run.seconds.update(seconds)
    run.scores = {name: run.scores[name] for name in names}
    return run


def _score_pass(
    run: ScoreRun, inputs, labels, names, *, picks, seed, device, score_pass, **options
) -> None:
    """The one scoring pass of the trained model (output scores, embeddings), then k-center."""
    scorers = {name: OUTPUT_SCORERS[name]() for name in names if name in OUTPUT_SCORERS}
    scored = score_pass(
        run.fitted.model,
        inputs,
        labels,
        scorers,
        embeddings="kcenter" in names,
        desc=f"score {run.recipe.label()}",
        **options,
    )
    run.scores.update(scored.scores)
    run.seconds["score"] = scored.seconds
    if "kcenter" in names:
        device = torch.device(device)
        embeddings = scored.embeddings.to(device)
        sync(device)
        start = time.perf_counter()
        run.scores["kcenter"] = kcenter_scores(embeddings, picks, seed=derive_seed(seed, "kcenter"))
        run.seconds["kcenter"] = time.perf_counter() - start
