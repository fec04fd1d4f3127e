"""References for the Hugging Face integration: a cache of a trained reference's losses by id
(:func:`reference_losses`), or a live reference forward on each super-batch
(:class:`LiveReference`, for streams without a cache)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._modes import eval_mode
from ..core.scores import per_example_loss
from ..distributed import World, all_gather_rows
from ..scoring.scorers import StatelessScorer
from ..store import ScoreTable

__all__ = ["LABELS", "LiveReference", "reference_losses"]

LABELS = "labels"


def reference_losses(
    model: nn.Module,
    dataset: Any,
    *,
    collator: Callable | None = None,
    id_column: str = "id",
    batch_size: int = 256,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = per_example_loss,
    progress: bool = True,
) -> ScoreTable:
    """A trained reference's per-example loss on every row of ``dataset``, by id: the cache
    that ``ReferenceLoss`` reads (one no-grad pass in eval mode, on the model's device).

    ``dataset`` rows hold the model's inputs, ``labels`` (or ``label``) and ``id_column``;
    ``collator`` batches them (default :func:`transformers.default_data_collator`).
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import default_data_collator

    device = next(model.parameters()).device
    loader = DataLoader(
        dataset, batch_size=batch_size, collate_fn=collator or default_data_collator
    )
    ids, losses = [], []
    with eval_mode(model), torch.no_grad():
        for batch in tqdm(loader, desc="reference losses", disable=not progress, leave=False):
            batch = {k: v.to(device) for k, v in batch.items()}
            ids.append(batch.pop(id_column).cpu())
            labels = batch.pop(LABELS)
            losses.append(loss_fn(model(**batch).logits, labels).float().cpu())
    return ScoreTable(torch.cat(ids), torch.cat(losses))


class LiveReference(StatelessScorer):
    """Reference losses from a forward of the reference model on each super-batch, for data
    without a cache by id (a stream): a :class:`~siftdata.scoring.scorers.Scorer` for
    ``build_method(..., reference=live)``, fed by ``SelectiveTrainer(..., live_reference=live)``
    (one no-grad forward in eval mode on each rank's rows, all-gathered under several ranks)."""

    needs: frozenset = frozenset()

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._losses: Tensor | None = None

    @torch.no_grad()
    def compute(self, features: dict[str, Tensor], labels: Tensor, world: World, loss_fn) -> None:
        """The reference's per-example losses on this step's super-batch (every rank's rows)."""
        with eval_mode(self.model):
            losses = loss_fn(self.model(**features).logits, labels).float()
        self._losses = all_gather_rows(losses, world)

    def __call__(self, batch) -> Tensor:
        if self._losses is None or self._losses.shape[0] != batch.ids.shape[0]:
            raise ValueError(
                "LiveReference has no losses for this super-batch: pass it to SelectiveTrainer "
                "as live_reference= as well as to build_method as reference="
            )
        losses, self._losses = self._losses, None
        return losses

    def __repr__(self) -> str:
        return f"LiveReference({type(self.model).__name__})"
