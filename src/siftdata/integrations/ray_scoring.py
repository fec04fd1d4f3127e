"""Offline scoring on Ray Data: the scorer as a callable class for ``Dataset.map_batches``.

::

    import ray
    from siftdata.integrations.ray_scoring import RayScorer, dataset_from_tensors

    ds = dataset_from_tensors(images, labels)   # columns: "id", "image", "label"
    scored = ds.map_batches(RayScorer, fn_constructor_kwargs=dict(model=..., scorers=...),
                            batch_format="numpy", concurrency=4, num_gpus=1)   # an actor pool
    scored.write_parquet("scores/")         # one Parquet file per block: "id" and a column a score

Each actor builds its model once (from the picklable model given, or a builder and a state-dict
file: nothing is downloaded) and scores its batches in eval mode with no autograd through
:func:`siftdata.offline.scoring.score_rows`, the local scorer's own code, so the scores are the
local ones. :func:`score_with_ray` runs it and turns the Parquet files into siftdata score stores
(``proxy-score``, keyed by id) that ``siftdata select`` reads; :func:`stores_from_parquet` does
the second half for files written elsewhere; :func:`ray_score_pass` is a drop-in for
:func:`~siftdata.offline.scoring.score_dataset` (``siftdata score --engine ray``).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._modes import eval_mode
from ..offline.scoring import (
    ScoredDataset,
    check_finite_scores,
    forward_with_embeddings,
    score_rows,
)
from ..offline.stored import save_score
from ..scoring.scorers import Scorer

__all__ = [
    "RayScorer",
    "dataset_from_tensors",
    "ray_score_pass",
    "score_with_ray",
    "stores_from_parquet",
]

ID, INPUT, LABEL, EMBEDDING = "id", "image", "label", "embedding"


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
    embeddings:
        Also return the penultimate embeddings (column ``"embedding"``, for k-center).
    """

    def __init__(
        self,
        model: nn.Module | Callable[[], nn.Module],
        scorers: Mapping[str, Scorer],
        *,
        state_dict_path: str | os.PathLike | None = None,
        device: str = "auto",
        embeddings: bool = False,
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
        self.model = model.to(self.device)
        self.scorers = dict(scorers)
        self.embed = forward_with_embeddings if embeddings else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = torch.from_numpy(np.ascontiguousarray(batch[ID])).to(torch.int64)
        x = torch.from_numpy(np.ascontiguousarray(batch[INPUT])).to(self.device, torch.float32)
        y = None
        if LABEL in batch:
            y = torch.from_numpy(np.ascontiguousarray(batch[LABEL])).to(self.device, torch.int64)
        with eval_mode(self.model):
            rows = score_rows(self.model, x, y, ids.to(self.device), self.scorers, self.embed)
        out = {ID: ids.numpy()}
        for name in self.scorers:
            out[name] = rows[f"score/{name}"].numpy()
        if self.embed is not None:
            out[EMBEDDING] = rows["embeddings"].numpy()
        return out


def dataset_from_tensors(
    inputs: Tensor, labels: Tensor | None, ids: Tensor | None = None, *, block_size: int = 4096
):
    """A Ray dataset of ``{"id", "image"(, "label")}`` rows, ``block_size`` rows a block (Arrow
    tensor columns: no per-row Python objects); ``ids`` default ``0 … N−1``."""
    _require_ray()
    import pyarrow as pa
    import ray.data
    from ray.data.extensions import ArrowTensorArray

    n = inputs.shape[0]
    ids = torch.arange(n) if ids is None else ids
    blocks = []
    for start in range(0, n, block_size):
        part = slice(start, min(start + block_size, n))
        columns = {
            ID: pa.array(ids[part].to(torch.int64).numpy()),
            INPUT: ArrowTensorArray.from_numpy(inputs[part].to(torch.float32).numpy()),
        }
        if labels is not None:
            columns[LABEL] = pa.array(labels[part].to(torch.int64).numpy())
        blocks.append(pa.table(columns))
    return ray.data.from_arrow(blocks)


def ray_score_pass(*, concurrency: int = 1, num_gpus: float = 0) -> Callable[..., ScoredDataset]:
    """A drop-in for :func:`~siftdata.offline.scoring.score_dataset` that scores on an actor
    pool of ``concurrency`` :class:`RayScorer`s (``num_gpus`` each) of the running Ray (or a
    local one it starts). Ray retries failed tasks itself, so ``shard_dir`` is not used: an
    interrupted pass is scored again in full."""

    def score_pass(
        model: nn.Module,
        inputs: Tensor,
        labels: Tensor | None,
        scorers: Mapping[str, Scorer],
        *,
        ids: Tensor | None = None,
        embeddings: bool = False,
        batch_size: int = 4096,
        **_local_only: Any,  # shard_dir, progress, ...: Ray shows and retries its own work
    ) -> ScoredDataset:
        ray = _require_ray()
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)  # RAY_ADDRESS: a cluster
        n = inputs.shape[0]
        ids = torch.arange(n) if ids is None else ids
        start = time.perf_counter()
        block_size = min(batch_size, -(-n // concurrency))  # a block for every actor at least
        scored = dataset_from_tensors(inputs, labels, ids, block_size=block_size).map_batches(
            RayScorer,
            fn_constructor_args=(copy.deepcopy(model).cpu(), dict(scorers)),
            fn_constructor_kwargs={"embeddings": embeddings},
            batch_format="numpy",
            batch_size=block_size,
            concurrency=concurrency,
            num_gpus=num_gpus,
        )
        parts = list(scored.iter_batches(batch_format="numpy", batch_size=None))
        got = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        rows = _rows_in_order(torch.from_numpy(got[ID]), ids)
        result = ScoredDataset(
            scores={name: torch.from_numpy(got[name])[rows] for name in scorers},
            embeddings=torch.from_numpy(got[EMBEDDING])[rows] if embeddings else None,
            seconds=time.perf_counter() - start,
            resumed=0,
        )
        check_finite_scores(result.scores)
        return result

    return score_pass


def _rows_in_order(returned: Tensor, ids: Tensor) -> Tensor:
    """Where each of ``ids`` (the dataset's order) is among the ``returned`` ids; every id must
    come back exactly once."""
    same = returned.numel() == ids.numel() and torch.equal(
        returned.sort().values, ids.sort().values
    )
    if not same:
        raise ValueError(
            f"Ray returned {returned.numel()} rows for {ids.numel()} examples, not each id once"
        )
    by_id = torch.argsort(returned)
    return by_id[torch.argsort(torch.argsort(ids))]


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
