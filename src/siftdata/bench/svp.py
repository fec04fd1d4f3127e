"""What the two SVP scenarios share: the recipes, Fashion-MNIST, score runs kept in score stores, and
result rows appended to a JSONL file so that an interrupted scenario resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._config import check_bool, check_choice, check_int_field, option
from ..data import load_fashion_mnist, to_float_images
from ..models import MODEL_NAMES
from ..offline.proxy_scores import SCORE_DIRECTIONS, ScoreRun, score_with_recipe
from ..offline.recipe import Recipe
from ..offline.stored import keep_priority, load_score, save_score
from ..schedules import SCHEDULES
from ..store import dataset_fingerprint
from .common import DEVICES

__all__ = [
    "SvpConfig",
    "FmnistSplit",
    "load_split",
    "Results",
    "check_same_run",
    "cached_score_run",
    "priorities",
]


@dataclass
class SvpConfig:
    """The target's recipe, the proxy's (narrower and shorter), seeds and device."""

    seeds: int = option(2, "seeds (each: its own proxy, target and subsets)")
    target_model: str = option("cnn", "the target's network", choices=MODEL_NAMES)
    target_width: float = option(1.0, "the target's width multiplier")
    target_epochs: int = option(6, "the target's epochs (on all data or on a core-set)")
    proxy_model: str = option("mlp", "the proxy's network", choices=MODEL_NAMES)
    proxy_width: float = option(0.5, "the proxy's width multiplier")
    proxy_epochs: int = option(3, "the proxy's epochs")
    batch_size: int = option(128, "training batch size (target and proxy)")
    lr: float = option(2e-3, "AdamW learning rate (target and proxy)")
    weight_decay: float = option(1e-2, "AdamW weight decay")
    schedule: str = option(
        "cosine", "LR schedule, decayed to each run's own length", choices=SCHEDULES
    )
    pool_size: int = option(
        0, "train on the first N of the 60,000 images only (0: all; quick runs)"
    )
    device: str = option("auto", "auto, cpu or cuda", choices=DEVICES)
    progress: bool = option(True, "show progress bars")

    def __post_init__(self) -> None:
        check_int_field(self.seeds, "seeds", low=1)
        check_int_field(self.pool_size, "pool_size", low=0, high=60000)
        check_choice(self.device, "device", DEVICES)
        check_bool(self.progress, "progress")
        self.target()
        self.proxy()

    def target(self) -> Recipe:
        return Recipe(
            model=self.target_model,
            width=self.target_width,
            epochs=self.target_epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            schedule=self.schedule,
        )

    def proxy(self) -> Recipe:
        return self.target().proxy(
            model=self.proxy_model, width=self.proxy_width, epochs=self.proxy_epochs
        )


@dataclass
class FmnistSplit:
    """Fashion-MNIST's 60k training images (the pool to select from) and 10k test images."""

    inputs: Tensor
    labels: Tensor
    test_inputs: Tensor
    test_labels: Tensor
    fingerprint: dict

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def load_split(device: torch.device, pool_size: int = 0) -> FmnistSplit:
    """Fashion-MNIST on ``device``, normalised, with the pool's fingerprint; ``pool_size > 0``
    keeps the first that many training images."""
    x, y = load_fashion_mnist("train")
    if pool_size:
        x, y = x[:pool_size], y[:pool_size]
    tx, ty = load_fashion_mnist("test")
    fingerprint = dataset_fingerprint(y, x)
    return FmnistSplit(
        to_float_images(x).to(device),
        y.to(device),
        to_float_images(tx).to(device),
        ty.to(device),
        fingerprint,
    )


class Results:
    """Result rows in ``results.jsonl``, one line each, appended as they are made.

    A row's ``key`` names the work it records; :meth:`get` finds a row made by an earlier
    (interrupted) run of the same scenario, so that work is not redone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as err:
                    raise ValueError(
                        f"{path} line {number} is not JSON ({err}); delete that line or the "
                        "file to redo its work"
                    ) from err
                if not isinstance(row, dict) or "key" not in row:
                    raise ValueError(
                        f"{path} line {number} has no 'key' field; delete that line or the "
                        "file to redo its work"
                    )
                self.rows[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, row: dict) -> dict:
        self.rows[row["key"]] = row
        with open(self.path, "a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return row


ADDITIVE = (
    "seeds",
    "progress",
    "keep",
    "scores",
    "rank_scores",
    "stratified",
    "proxy_variants",
    "rounds",
    "strategies",
)
"""Options a rerun into the same folder may change: they add (or only show) work, and rows
already made stay valid."""


def check_same_run(out: Path, *configs) -> None:
    """Record the options that decide a scenario's results in ``out/identity.json``; refuse to
    resume a folder made with other values (naming them), since its rows would be mixed in."""
    identity = {
        key: value
        for config in configs
        for key, value in asdict(config).items()
        if key not in ADDITIVE
    }
    identity = json.loads(json.dumps(identity))
    path = out / "identity.json"
    if path.exists():
        stored = json.loads(path.read_text())
        diffs = [
            f"{k}: {stored.get(k)!r} there, {identity.get(k)!r} now"
            for k in sorted(set(stored) | set(identity))
            if stored.get(k) != identity.get(k)
        ]
        if diffs:
            raise ValueError(
                f"{out} holds a run made with other options ({'; '.join(diffs)}); use another "
                "--out, or the same options to resume it"
            )
    else:
        path.write_text(json.dumps(identity, indent=2, sort_keys=True) + "\n")


_SCORING_OPTIONS = ("el2n_runs", "el2n_epochs", "kcenter_picks")
"""Options of :func:`score_with_recipe` that change the scores (recorded with them)."""


def _made_by(recipe: Recipe, seed: int, options: dict) -> dict:
    """What made a score store: the recipe, the seed and the options that change the scores."""
    made = {k: options[k] for k in _SCORING_OPTIONS if options.get(k) is not None}
    return {**recipe.describe(), "seed": seed, **made}


def _load_run(folder: Path, stores: dict, recipe: Recipe, split, made_by: dict) -> ScoreRun:
    tables = {n: load_score(p, fingerprint=split.fingerprint, score=n) for n, p in stores.items()}
    meta = next(iter(tables.values())).manifest["meta"]
    if meta["model"] != made_by:
        diffs = [
            k
            for k in sorted(set(meta["model"]) | set(made_by))
            if meta["model"].get(k) != made_by.get(k)
        ]
        raise ValueError(
            f"{folder} holds scores made otherwise (differs in: {', '.join(diffs)}); delete it "
            "to rescore, or use another --out"
        )
    return ScoreRun(recipe, {n: t.scores for n, t in tables.items()}, dict(meta["seconds"]))


def cached_score_run(
    folder: Path,
    recipe: Recipe,
    split: FmnistSplit,
    names: Sequence[str],
    *,
    seed: int,
    device: torch.device,
    after_training: Callable[[ScoreRun], None] | None = None,
    file_format: str = "npy",
    **options,
) -> ScoreRun:
    """``score_with_recipe``, or its scores loaded from the score stores in ``folder`` (one per
    score) that an earlier run saved with the same recipe, seed and scoring options.

    ``after_training(run)`` sees a freshly computed run before its scores are saved (e.g. to
    evaluate the trained model); ``file_format`` is the stores' (``"npy"`` or ``"parquet"``).
    Once the stores are written, the scoring shards (``options["shard_dir"]``) are removed: they
    only serve a resume before that point.
    """
    stores = {name: folder / name for name in names}
    made_by = _made_by(recipe, seed, options)
    if all((path / "manifest.json").exists() for path in stores.values()):
        return _load_run(folder, stores, recipe, split, made_by)
    run = score_with_recipe(
        recipe, split.inputs, split.labels, names, seed=seed, device=device, **options
    )
    if after_training is not None:
        after_training(run)
    ids = torch.arange(len(split))
    for name, path in stores.items():
        save_score(
            path,
            ids,
            run.scores[name],
            score=name,
            direction=SCORE_DIRECTIONS[name],
            model=made_by,
            fingerprint=split.fingerprint,
            seconds=run.seconds,
            file_format=file_format,
        )
    if options.get("shard_dir") is not None:
        shutil.rmtree(options["shard_dir"], ignore_errors=True)
    return run


def priorities(run: ScoreRun) -> dict[str, Tensor]:
    """Each score of ``run`` oriented so that higher is kept first (see :data:`SCORE_DIRECTIONS`)."""
    return {
        name: keep_priority(s.float(), SCORE_DIRECTIONS[name]) for name, s in run.scores.items()
    }
