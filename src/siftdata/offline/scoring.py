"""Score a whole dataset with a trained model: batched, no grad, with a progress bar, resumable.

The scorers are the online path's (:mod:`siftdata.scoring.scorers`): each batch gets one no-grad forward
(logits, and the penultimate embeddings when asked for), the per-example loss when a scorer needs
it, and every scorer maps that :class:`~siftdata.scoring.scorers.ScoringBatch` to ``(b,)`` scores.

With ``shard_dir`` the work is cut into shards of ``shard_size`` examples, each saved atomically
(a temporary file, then a rename) as soon as it is done; a rerun after an interruption loads the
finished shards and scores only the rest. A ``key.json`` in the folder names the model (a hash of
its weights), the data (:func:`~siftdata.store.dataset_fingerprint`), the scorers and the shard
size, and a folder made for anything else is refused, not mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._files import atomic_write, atomic_write_text
from .._modes import eval_mode
from .._validation import check_int_range
from ..core.scores import per_example_loss
from ..scoring.scorers import Need, Scorer, ScoringBatch
from ..store import dataset_fingerprint
from .fit import sync

__all__ = [
    "ScoredDataset",
    "score_dataset",
    "score_rows",
    "check_finite_scores",
    "forward_with_embeddings",
    "model_digest",
]

Embed = Callable[[nn.Module, Tensor], tuple[Tensor, Tensor]]
_KEY = "key.json"


@dataclass
class ScoredDataset:
    """What :func:`score_dataset` returns (on the CPU, rows in the dataset's order)."""

    scores: dict[str, Tensor]
    embeddings: Tensor | None
    seconds: float
    """Wall-clock of the scoring, shards saved by an interrupted call included (as they took)."""
    resumed: int
    """How many examples came from shards saved by an earlier, interrupted call."""


def forward_with_embeddings(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits, embeddings)`` for a model with ``features(x)`` and a ``head`` layer (the
    package's MLP and CNN); pass your own ``embed`` to :func:`score_dataset` otherwise."""
    if not (hasattr(model, "features") and hasattr(model, "head")):
        raise ValueError(
            f"{type(model).__name__} has no features() and head to take embeddings from; pass "
            "embed=lambda model, x: (logits, embeddings)"
        )
    h = model.features(x)
    return model.head(h), h


def model_digest(model: nn.Module) -> str:
    """A sha256 of the model's parameters and buffers (names, shapes, dtypes and values)."""
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _check_inputs(inputs: Tensor, labels: Tensor | None, ids: Tensor | None) -> Tensor:
    n = inputs.shape[0] if inputs.dim() > 0 else 0
    if n < 1:
        raise ValueError(f"inputs must hold N >= 1 examples, got shape {tuple(inputs.shape)}")
    if labels is not None and labels.shape != (n,):
        raise ValueError(
            f"labels must have shape ({n},) to match inputs, got {tuple(labels.shape)}"
        )
    if ids is None:
        return torch.arange(n)
    ids = torch.as_tensor(ids)
    if ids.shape != (n,) or ids.is_floating_point():
        raise ValueError(f"ids must be {n} integers, got {ids.dtype} {tuple(ids.shape)}")
    return ids


def _check_scorers(scorers: Mapping[str, Scorer], embeddings: bool, labelled: bool) -> None:
    if not scorers and not embeddings:
        raise ValueError("nothing to compute: give at least one scorer or embeddings=True")
    for name, scorer in scorers.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"scorer names must be non-empty strings, got {name!r}")
        if not isinstance(scorer, Scorer):
            raise ValueError(f"scorer {name!r} is not a Scorer: {scorer!r}")
        if not labelled and Need.LOSS in scorer.needs:
            raise ValueError(f"scorer {name!r} needs the loss, so the labels; none were given")


class _Shards:
    """The shard folder: its key, and one ``shard-XXXXX.pt`` per finished shard."""

    def __init__(self, folder: Path, key: dict) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / _KEY
        if file.exists():
            try:
                stored = json.loads(file.read_text())
            except ValueError as err:
                raise ValueError(f"{file} is corrupt ({err}); delete {folder} to rescore") from err
            if stored != key:
                diffs = [k for k in sorted(set(stored) | set(key)) if stored.get(k) != key.get(k)]
                raise ValueError(
                    f"{folder} holds scores of another run (differs in: {', '.join(diffs)}); "
                    "use another folder or delete it to rescore"
                )
        else:
            atomic_write_text(file, json.dumps(key, sort_keys=True))

    def path(self, index: int) -> Path:
        return self.folder / f"shard-{index:05d}.pt"

    def load(self, index: int, start: int, stop: int) -> dict | None:
        path = self.path(index)
        if not path.exists():
            return None
        try:
            shard = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for a damaged file
            raise ValueError(f"{path} is corrupt ({err}); delete it to rescore that shard") from err
        if (
            not isinstance(shard, dict)
            or (shard.get("start"), shard.get("stop")) != (start, stop)
            or "seconds" not in shard
        ):
            raise ValueError(f"{path} does not hold rows {start}:{stop}; delete it to rescore")
        return shard

    def save(self, index: int, shard: dict) -> None:
        atomic_write(self.path(index), lambda f: torch.save(shard, f), binary=True)


@torch.no_grad()
def score_rows(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None,
    ids: Tensor,
    scorers: Mapping[str, Scorer],
    embed: Embed | None = None,
) -> dict[str, Tensor]:
    """One batch's ``{"score/<name>": (b,)}`` (and ``"embeddings"`` when ``embed`` is given),
    on the CPU; no grad (the caller puts the model in eval mode)."""
    loss_needed = any(Need.LOSS in s.needs for s in scorers.values())
    if embed is not None:
        logits, emb = embed(model, x)
    else:
        logits, emb = model(x), None
    loss = per_example_loss(logits, y) if loss_needed else None
    batch = ScoringBatch(ids=ids, labels=y, outputs=logits, loss=loss)
    out = {f"score/{name}": scorer(batch).float().cpu() for name, scorer in scorers.items()}
    if emb is not None:
        out["embeddings"] = emb.float().cpu()
    return out


def _score_shard(model, data, start, stop, scorers, embed, batch_size, device, bar) -> dict:
    inputs, labels, ids = data
    parts: list[dict] = []
    for first in range(start, stop, batch_size):
        last = min(first + batch_size, stop)
        x = inputs[first:last].to(device, non_blocking=True)
        y = None if labels is None else labels[first:last].to(device, non_blocking=True)
        batch_ids = ids[first:last].to(device, non_blocking=True)
        parts.append(score_rows(model, x, y, batch_ids, scorers, embed))
        bar.update(last - first)
    shard = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
    return {"start": start, "stop": stop, **shard}


def score_dataset(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor | None,
    scorers: Mapping[str, Scorer],
    *,
    ids: Tensor | None = None,
    embeddings: bool = False,
    embed: Embed | None = None,
    batch_size: int = 4096,
    shard_dir: str | os.PathLike | None = None,
    shard_size: int = 16384,
    progress: bool = True,
    desc: str = "scoring",
    share: tuple[int, int] = (0, 1),
) -> ScoredDataset | None:
    """Every named scorer's ``(N,)`` scores over the dataset (and the ``(N, D)`` embeddings).

    Parameters
    ----------
    model : nn.Module
        The trained model (a proxy or the target); run in eval mode on its own device.
    inputs, labels : Tensor
        The dataset, ``(N, ...)`` and ``(N,)``, moved to the model's device a batch at a time.
        ``labels`` may be ``None`` (unlabeled data, as in active learning) when no scorer needs
        them (uncertainty scores and embeddings do not).
    scorers : mapping of str to Scorer
        E.g. ``{"entropy": Entropy(), "el2n": GradNormBound()}``; each may need the outputs
        and/or the per-example loss (ids-only scorers work too).
    ids : Tensor, optional
        Example ids handed to the scorers (default ``0 … N−1``).
    embeddings : bool
        Also return the penultimate embeddings (for k-center), taken with ``embed``.
    embed : callable, optional
        ``embed(model, x) -> (logits, embeddings)``; default :func:`forward_with_embeddings`.
    batch_size : int
        Examples per forward.
    shard_dir : path, optional
        Save each finished shard there and resume from those already saved.
    shard_size : int
        Examples per shard (a multiple of nothing in particular; the last shard may be short).
    progress : bool
        Show a progress bar over examples.
    desc : str
        The bar's label.
    share : (int, int)
        ``(r, W)``: score only the shards ``i`` with ``i mod W = r`` into ``shard_dir`` and return
        ``None`` (one rank's part of a sharded scoring, see
        :func:`siftdata.distributed.score_dataset_on_ranks`); default ``(0, 1)``, all of them.
    """
    ids = _check_inputs(inputs, labels, ids)
    _check_scorers(scorers, embeddings, labels is not None)
    check_int_range(batch_size, "batch_size", low=1)
    check_int_range(shard_size, "shard_size", low=1)
    device = next(model.parameters()).device
    embed = (embed or forward_with_embeddings) if embeddings else None
    n = inputs.shape[0]
    rank, size = share
    if not 0 <= rank < size:
        raise ValueError(f"share must be (rank, world size) with 0 <= rank < size, got {share}")
    if size > 1 and shard_dir is None:
        raise ValueError("scoring a share of the shards needs shard_dir, where every share lands")
    shards = None
    if shard_dir is not None:
        key = _shard_key(model, (inputs, labels, ids), scorers, embeddings, shard_size)
        shards = _Shards(Path(shard_dir), key)
    bounds = [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]
    done: list[dict] = []
    bar = tqdm(total=n, desc=desc, disable=not progress, leave=False, unit="ex")
    resumed, seconds = 0, 0.0
    with eval_mode(model):
        for index, (start, stop) in enumerate(bounds):
            if index % size != rank:
                continue
            shard = shards.load(index, start, stop) if shards is not None else None
            if shard is not None:
                resumed += stop - start
                seconds += float(shard["seconds"])
                bar.update(stop - start)
            else:
                sync(device)
                t0 = time.perf_counter()
                shard = _score_shard(
                    model,
                    (inputs, labels, ids),
                    start,
                    stop,
                    scorers,
                    embed,
                    batch_size,
                    device,
                    bar,
                )
                shard["seconds"] = time.perf_counter() - t0  # .cpu() waited for the device
                seconds += shard["seconds"]
                if shards is not None:
                    shards.save(index, shard)
            done.append(shard)
    bar.close()
    if size > 1:
        return None
    return _assemble(done, scorers, embeddings, seconds, resumed)


def _shard_key(model, data, scorers, embeddings: bool, shard_size: int) -> dict:
    """What saved shards must have been made with (model, data, scorers, ...) to be reused."""
    inputs, labels, ids = data
    key = {
        "model_sha256": model_digest(model),
        "data": dataset_fingerprint(ids if labels is None else labels, inputs),
        "scorers": {name: repr(s) for name, s in scorers.items()},
        "embeddings": bool(embeddings),
        "shard_size": shard_size,
    }
    return json.loads(json.dumps(key))


def check_finite_scores(scores: Mapping[str, Tensor]) -> None:
    """Raise ``ValueError`` naming the scorer and the count if a dataset's scores hold NaN or
    inf (one host sync a scorer, once per dataset)."""
    for name, values in scores.items():
        n_bad = int((~torch.isfinite(values)).sum())
        if n_bad:
            raise ValueError(f"scorer {name!r} gave {n_bad} non-finite score(s) (NaN or inf)")


def _assemble(done: list[dict], scorers, embeddings: bool, seconds: float, resumed: int):
    scores = {name: torch.cat([d[f"score/{name}"] for d in done]) for name in scorers}
    check_finite_scores(scores)
    emb = torch.cat([d["embeddings"] for d in done]) if embeddings else None
    return ScoredDataset(scores, emb, seconds, resumed)
