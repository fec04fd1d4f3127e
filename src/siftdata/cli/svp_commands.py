"""The ``siftdata score`` and ``siftdata select`` commands: rank Fashion-MNIST with a proxy into
score stores, then keep a core-set of it as a selection store.

``score`` trains one recipe (by default a cheap proxy), scores the 60,000 training images by each
score and writes one store per score (``OUT/<score>/``) with the model, the direction, the data's
fingerprint and the time of every stage in its manifest. Its scoring pass is saved in shards, and
a rerun into the same folder reuses finished stores. ``select`` reads one store and writes the
ids a policy keeps.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .._config import check_bool, check_choice, check_float_field, check_int_field, option
from .._store_files import FILE_FORMATS
from ..bench.common import DEVICES, resolve_device
from ..bench.svp import cached_score_run, load_split
from ..data import load_fashion_mnist
from ..distributed import World, follow_scoring_passes, scoring_led_by_rank0
from ..models import MODEL_NAMES
from ..offline.proxy_scores import SCORE_NAMES, parse_score_names
from ..offline.recipe import Recipe
from ..offline.scoring import score_dataset
from ..offline.stored import (
    SELECTION_KIND,
    keep_priority,
    load_score,
    save_selection,
    source_of,
)
from ..offline.subsets import POLICIES, select_subset, subset_size
from ..schedules import SCHEDULES
from ..store import dataset_fingerprint

__all__ = [
    "SCORE_ADDITIVE",
    "ScoreConfig",
    "SelectConfig",
    "check_engine",
    "run_score",
    "run_select",
]

SCORE_ADDITIVE = ("scores", "shard_size", "engine", "ray_workers", "ray_gpus")
"""``score`` options a rerun with ``--resume`` may change: more scores keep the finished stores,
and where the scoring pass runs does not change its scores."""

ENGINES = ("local", "ray")


@dataclass
class ScoreConfig:
    """The recipe that scores (a proxy by default), the scores, and how they are computed."""

    model: str = option("mlp", "the scoring network", choices=MODEL_NAMES)
    width: float = option(0.5, "its width multiplier")
    epochs: int = option(3, "its training epochs")
    batch_size: int = option(128, "training batch size")
    lr: float = option(2e-3, "AdamW learning rate")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    schedule: str = option("cosine", "LR schedule", choices=SCHEDULES)
    seed: int = option(0, "seeds training and k-center's first pick")
    scores: tuple[str, ...] = option(SCORE_NAMES, "comma-separated scores to compute")
    el2n_runs: int = option(2, "EL2N: short runs averaged")
    el2n_epochs: int = option(1, "EL2N: epochs of each short run")
    kcenter_keep: float = option(0.5, "k-center: rank this fraction (the largest core-set needed)")
    shard_size: int = option(16384, "examples per resumable scoring shard")
    file_format: str = option("npy", "how the score stores are written", choices=FILE_FORMATS)
    pool_size: int = option(0, "score the first N training images only (0: all 60,000)")
    device: str = option("auto", "auto, cpu or cuda", choices=DEVICES)
    engine: str = option(
        "local",
        "what runs the scoring pass: local (this process, or every rank's share under torchrun) "
        "or ray (a Ray Data actor pool on the running Ray, or a local one)",
        choices=ENGINES,
    )
    ray_workers: int = option(2, "ray: actors in the pool")
    ray_gpus: float = option(0.0, "ray: GPUs per actor")
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        self.recipe()
        check_int_field(self.seed, "seed", low=0)
        self.scores = parse_score_names(self.scores)
        check_int_field(self.el2n_runs, "el2n_runs", low=1)
        check_int_field(self.el2n_epochs, "el2n_epochs", low=1)
        check_float_field(self.kcenter_keep, "kcenter_keep", low=0.0, high=1.0, low_open=True)
        check_int_field(self.shard_size, "shard_size", low=1)
        check_choice(self.file_format, "file_format", FILE_FORMATS)
        check_int_field(self.pool_size, "pool_size", low=0, high=60000)
        check_choice(self.device, "device", DEVICES)
        check_choice(self.engine, "engine", ENGINES)
        check_int_field(self.ray_workers, "ray_workers", low=1)
        check_float_field(self.ray_gpus, "ray_gpus", low=0.0)
        check_bool(self.progress, "progress")

    def recipe(self) -> Recipe:
        return Recipe(
            model=self.model,
            width=self.width,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
        )


def run_score(out: Path, cfg: ScoreConfig, world: World | None = None) -> dict[str, dict] | None:
    """Score Fashion-MNIST into ``out/<score>/``; returns what each score took (see
    :meth:`~siftdata.offline.proxy_scores.ScoreRun.cost`).

    On several ranks (``world``), rank 0 trains the proxy, every rank scores its share of the
    scoring pass, and rank 0 writes the stores (``None`` on the others)."""
    world = world or World()
    check_engine(cfg, world)
    device = resolve_device(cfg.device)
    split = load_split(device, cfg.pool_size)
    if world.rank != 0:
        follow_scoring_passes(world, split.inputs, split.labels, device)
        return None
    with _score_pass(cfg, world) as score_pass:
        return _score_split(out, cfg, split, device, score_pass)


def check_engine(cfg: ScoreConfig, world: World) -> None:
    """The Ray engine scores from one process; under torchrun the ranks are the engine."""
    if world.distributed and cfg.engine != "local":
        raise ValueError(f"--engine {cfg.engine} runs on one process, not under torchrun")


@contextlib.contextmanager
def _score_pass(cfg: ScoreConfig, world: World) -> Iterator[Callable]:
    """What runs the scoring pass: this process, every rank's share, or a Ray actor pool."""
    if world.distributed:
        with scoring_led_by_rank0(world) as score_pass:
            yield score_pass
    elif cfg.engine == "ray":
        from ..integrations.ray_scoring import ray_score_pass

        yield ray_score_pass(concurrency=cfg.ray_workers, num_gpus=cfg.ray_gpus)
    else:
        yield score_dataset


def _score_split(out: Path, cfg: ScoreConfig, split, device, score_pass) -> dict[str, dict]:
    run = cached_score_run(
        out,
        cfg.recipe(),
        split,
        cfg.scores,
        seed=cfg.seed,
        device=device,
        el2n_runs=cfg.el2n_runs,
        el2n_epochs=cfg.el2n_epochs,
        kcenter_picks=subset_size(len(split), keep=cfg.kcenter_keep),
        shard_dir=out / ".shards",
        shard_size=cfg.shard_size,
        progress=cfg.progress,
        file_format=cfg.file_format,
        score_pass=score_pass,
    )
    return {name: run.cost(name) for name in run.scores}


@dataclass
class SelectConfig:
    """Which examples to keep from one score store."""

    policy: str = option("hardest", "which end or band of the score to keep", choices=POLICIES)
    keep: float | None = option(None, "fraction kept, in (0, 1] (or give --budget)")
    budget: float | None = option(None, "number kept (or give --keep)")
    class_balanced: bool = option(False, "balance the kept set over the classes")
    bins: int = option(50, "stratified: score bins")
    drop_hardest: float = option(0.0, "stratified: share of the hardest dropped first")
    seed: int = option(0, "stratified: the draw's seed")
    file_format: str = option("npy", "how the selection is written", choices=FILE_FORMATS)

    def __post_init__(self) -> None:
        check_choice(self.policy, "policy", POLICIES)
        if (self.keep is None) == (self.budget is None):
            raise ValueError("give exactly one of --keep (a fraction) and --budget (a count)")
        if self.keep is not None:
            check_float_field(self.keep, "keep", low=0.0, high=1.0, low_open=True)
        if self.budget is not None:
            if float(self.budget) != int(self.budget):
                raise ValueError(f"budget must be a whole number, got {self.budget}")
            self.budget = check_int_field(int(self.budget), "budget", low=1)
        check_bool(self.class_balanced, "class_balanced")
        check_int_field(self.bins, "bins", low=1)
        check_float_field(self.drop_hardest, "drop_hardest", low=0.0, high=0.99)
        check_int_field(self.seed, "seed", low=0)
        check_choice(self.file_format, "file_format", FILE_FORMATS)


def _labels_for(table) -> torch.Tensor:
    """Fashion-MNIST's labels for the store's ids, after checking the store was made on it."""
    count = table.manifest["fingerprint"].get("count")
    images, labels = load_fashion_mnist("train")
    images, labels = images[:count], labels[:count]
    expected = dataset_fingerprint(labels, images)
    if table.manifest["fingerprint"] != expected:
        raise ValueError(
            "--class-balanced needs the labels, but the store was not made on (the first "
            f"{count} images of) Fashion-MNIST's training set"
        )
    return labels[table.ids]


def _check_ranked_far_enough(meta: dict, size: int) -> None:
    """k-center ranks only its first ``kcenter_picks`` picks (the rest tie at 0): a larger core-set
    would be filled by position, so it is refused."""
    picks = meta["model"].get("kcenter_picks") if isinstance(meta.get("model"), dict) else None
    if meta["score"] == "kcenter" and picks is not None and size > picks:
        raise ValueError(
            f"this k-center store ranks only its first {picks} picks, fewer than the {size} to "
            "keep; rescore with a larger --kcenter-keep"
        )


def _check_select_out(store: Path, out: Path, overwrite: bool) -> None:
    """``out`` may be new, or (with ``overwrite``) a selection store; never a score store."""
    if out.resolve() == Path(store).resolve():
        raise ValueError(f"--out {out} is the score store being read; name a new folder")
    manifest = out / "manifest.json"
    if not out.exists():
        return
    try:
        kind = json.loads(manifest.read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind not in (None, SELECTION_KIND):
        raise ValueError(f"--out {out} holds a {kind!r} store; a selection never replaces it")
    if kind is None and any(out.iterdir()):
        raise ValueError(f"--out {out} exists and is not a selection store; name a new folder")
    if kind == SELECTION_KIND and not overwrite:
        raise ValueError(f"--out {out} holds a selection already; add --overwrite to replace it")


def run_select(store: Path, out: Path, cfg: SelectConfig, *, overwrite: bool = False) -> dict:
    """Keep ``cfg``'s share of the examples in ``store`` by its score; write them to ``out``
    (a new folder, or with ``overwrite`` an earlier selection: never a score store)."""
    _check_select_out(store, out, overwrite)
    table = load_score(store)
    meta = table.manifest["meta"]
    _check_ranked_far_enough(meta, subset_size(len(table), keep=cfg.keep, budget=cfg.budget))
    labels = _labels_for(table) if cfg.class_balanced else None
    rows = select_subset(
        keep_priority(table.scores.float(), meta["direction"]),
        policy=cfg.policy,
        keep=cfg.keep,
        budget=cfg.budget,
        labels=labels,
        bins=cfg.bins,
        drop_hardest=cfg.drop_hardest,
        seed=cfg.seed,
    )
    ids = table.ids[rows]
    save_selection(
        out,
        ids,
        policy=cfg.policy,
        n_total=len(table),
        fingerprint=table.manifest["fingerprint"],
        score=meta["score"],
        direction=meta["direction"],
        keep=cfg.keep,
        budget=cfg.budget,
        source=source_of(store, table),
        meta={"class_balanced": cfg.class_balanced},
        file_format=cfg.file_format,
    )
    return {"size": int(ids.numel()), "of": len(table), "score": meta["score"], "path": str(out)}
