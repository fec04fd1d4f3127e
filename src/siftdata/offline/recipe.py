"""Training recipes for SVP: the target's, and a proxy's derived from it (narrower and/or shorter).

Selection via Proxy (Coleman et al., ICLR 2020) makes the proxy cheaper in two ways, both here:
a smaller network (:attr:`Recipe.model`, :attr:`Recipe.width`) and fewer epochs
(:attr:`Recipe.epochs`). Everything else (batch size, optimizer, schedule) is the target's, so
:meth:`Recipe.proxy` changes only what it is told to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .. import schedules
from .._config import check_choice, check_float_field, check_int_field
from ..models import MODEL_NAMES

__all__ = ["Recipe"]


@dataclass(frozen=True)
class Recipe:
    """How to train one model from scratch: architecture, size, epochs, optimizer, schedule.

    Training is AdamW at ``lr`` with ``weight_decay``, in shuffled mini-batches of ``batch_size``,
    for ``epochs`` passes over whatever data it is given, the learning rate decayed by
    ``schedule`` to the run's own last step (a fair budget for a smaller subset too).
    """

    model: str = "cnn"
    width: float = 1.0
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        check_choice(self.model, "model", MODEL_NAMES)
        check_float_field(self.width, "width", low=0.0, low_open=True)
        check_int_field(self.epochs, "epochs", low=1)
        check_int_field(self.batch_size, "batch_size", low=1)
        check_float_field(self.lr, "lr", low=0.0, low_open=True)
        check_float_field(self.weight_decay, "weight_decay", low=0.0)
        check_choice(self.schedule, "schedule", schedules.SCHEDULES)

    def proxy(
        self, *, model: str | None = None, width: float | None = None, epochs: int | None = None
    ) -> Recipe:
        """This recipe with a smaller network and/or fewer epochs (``None`` keeps the value)."""
        changes = {"model": model, "width": width, "epochs": epochs}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def describe(self) -> dict:
        """The recipe as a JSON-ready dict (for manifests and summaries)."""
        return asdict(self)

    def label(self) -> str:
        """A short name such as ``cnn×1 6ep``."""
        return f"{self.model}×{self.width:g} {self.epochs}ep"
