"""Offline scoring on Ray Data: the scorer as a callable class for ``Dataset.map_batches``.

::

    import ray
    from siftdata.integrations.ray_scoring import RayScorer, score_with_ray

    ds = ray.data.from_items(...)          # columns: "id", "image" (and "label")
    scored = ds.map_batches(RayScorer, fn_constructor_kwargs=dict(model=..., scorers=...),
                            batch_format="numpy", concurrency=4, num_gpus=1)   # an actor pool
    scored.write_parquet("scores/")         # one Parquet file per block: "id" and a column a score

Each actor builds its model once (from the picklable model given, or a builder and a state-dict
file: nothing is downloaded) and scores its batches in eval mode with no autograd, as
:func:`siftdata.offline.scoring.score_dataset` does. :func:`score_with_ray` runs it and turns the
Parquet files into siftdata score stores (``proxy-score``, keyed by id) that ``siftdata select``
reads; :func:`stores_from_parquet` does the second half for files written elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..offline.stored import save_score
from ..online.step import forward_for_scoring
from ..scoring.scorers import Scorer

__all__ = ["RayScorer", "score_with_ray", "stores_from_parquet"]

ID, INPUT, LABEL = "id", "image", "label"


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "Ray Data scoring needs the ray extra: pip install 'siftdata[ray]'"
        ) from err
    return ray


class RayScorer:
    """Scores a batch of a Ray dataset (``{"id", "image", "label"}`` numpy columns) with a model.

    Parameters
    ----------
    model:
        The model itself (pickled to every actor), or a builder ``() -> nn.Module`` used with
        ``state_dict_path``.
    scorers:
        ``{name: Scorer}``, e.g. ``{"entropy": Entropy(), "el2n": GradNormBound()}``.
    state_dict_path:
        Weights to load into ``model()`` on each actor (a local or shared file).
    device:
        ``"auto"`` (the actor's GPU when Ray gave it one), ``"cpu"`` or ``"cuda"``.
    """

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        scorers: Mapping[str, Scorer],
        *,
        state_dict_path: str | os.PathLike | None = None,
        device: str = "auto",
    ) -> None:
        if state_dict_path is not None:
            model = model()
            model.load_state_dict(
                torch.load(state_dict_path, map_location="cpu", weights_only=True)
            )
        if not isinstance(model, nn.Module):
            raise ValueError("model must be an nn.Module, or a builder with state_dict_path")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.scorers = dict(scorers)
        self.needs = frozenset().union(*(s.needs for s in self.scorers.values()))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(np.ascontiguousarray(batch[ID])).to(torch.int64)
        x = torch.from_numpy(np.ascontiguousarray(batch[INPUT])).to(self.device, torch.float32)
        y = None
        if LABEL in batch:
            y = torch.from_numpy(np.ascontiguousarray(batch[LABEL])).to(self.device, torch.int64)
        scored = forward_for_scoring(self.model, x, y, ids.to(self.device), needs=self.needs)
        out = {ID: ids.numpy()}
        for name, scorer in self.scorers.items():
            out[name] = scorer(scored).float().cpu().numpy()
        return out


def score_with_ray(
    dataset: Any,
    model: nn.Module | Callable[[], nn.Module],
    scorers: Mapping[str, Scorer],
    out: str | os.PathLike,
    *,
    fingerprint: dict,
    directions: Mapping[str, str],
    proxy: dict,
    concurrency: int = 1,
    num_gpus: float = 0,
    batch_size: int = 4096,
    **options: Any,
) -> dict[str, Path]:
    """Score ``dataset`` on an actor pool of ``concurrency`` :class:`RayScorer`s (``num_gpus``
    each), write ``out/parquet/``, then one score store per score in ``out/<name>/``."""
    _require_ray()
    scored = dataset.map_batches(
        RayScorer,
        fn_constructor_args=(model, dict(scorers)),
        fn_constructor_kwargs=options,
        batch_format="numpy",
        batch_size=batch_size,
        concurrency=concurrency,
        num_gpus=num_gpus,
    )
    parquet = Path(out) / "parquet"
    scored.write_parquet(str(parquet))
    return stores_from_parquet(
        parquet,
        out,
        scores=list(scorers),
        fingerprint=fingerprint,
        directions=directions,
        proxy=proxy,
    )


def stores_from_parquet(
    parquet: str | os.PathLike,
    out: str | os.PathLike,
    *,
    scores: list[str],
    fingerprint: dict,
    directions: Mapping[str, str],
    proxy: dict,
) -> dict[str, Path]:
    """Join Parquet score files by id into one score store per score (``out/<name>/``).

    Every id must appear exactly once across the files (``ValueError`` naming the count of
    repeats otherwise: a block scored twice, or two datasets mixed).
    """
    import pyarrow.parquet as pq

    table = pq.read_table(str(parquet))
    ids = torch.from_numpy(table.column(ID).to_numpy()).to(torch.int64)
    repeats = ids.numel() - ids.unique().numel()
    if repeats:
        raise ValueError(f"{parquet}: {repeats} id(s) scored more than once")
    order = torch.argsort(ids)
    stores = {}
    for name in scores:
        values = torch.from_numpy(table.column(name).to_numpy()).index_select(0, order)
        stores[name] = save_score(
            Path(out) / name,
            ids.index_select(0, order),
            values,
            score=name,
            direction=directions[name],
            model=proxy,
            fingerprint=fingerprint,
            meta={"engine": "ray"},
        )
    return stores
