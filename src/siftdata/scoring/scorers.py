"""Scorers: per-example scores of a super-batch from what one no-grad forward gives, or from nothing.

A :class:`Scorer` declares what it :attr:`~Scorer.needs` — the learner's outputs on the super-batch
(logits; embeddings for a two-tower model), its per-example loss, or only the example ids (for
values cached by id: reference losses, remembered losses) — and maps a :class:`ScoringBatch` to a
``(B,)`` score, higher = preferred. The step function (:func:`siftdata.online.select_batch`) runs
the learner forward only when some scorer needs it. Scorers compose::

    Learnability(LearnerLoss(), ReferenceLoss(table), learner_loss_cap=math.log(10))
    Negated(ReferenceLoss(table))                       # easy reference
    Learnability(RememberedLoss(memory), ReferenceLoss(table))   # stale, no forward at all

and the same scorers run offline over a whole dataset. The score functions themselves are the pure
ones of :mod:`siftdata.core.scores`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from .._validation import check_fraction, check_positive
from ..core import scores as S
from ..store import ScoreTable
from .loss_memory import LossMemory

__all__ = [
    "StatelessScorer",
    "Need",
    "FORWARD_NEEDS",
    "ScoringBatch",
    "Scorer",
    "needs_forward",
    "check_missing",
    "LearnerLoss",
    "RememberedLoss",
    "ReferenceLoss",
    "Negated",
    "Learnability",
    "GradNormBound",
    "Entropy",
    "LeastConfidence",
    "Margin",
]


class Need(str, Enum):
    """What a scorer needs from the step."""

    OUTPUTS = "outputs"
    """The learner's outputs on the super-batch (one no-grad forward): logits for a classifier."""
    LOSS = "loss"
    """The learner's per-example loss on the super-batch (that forward plus the loss function)."""
    IDS = "ids"
    """Only the example ids (values cached by id); no forward."""


FORWARD_NEEDS = frozenset({Need.OUTPUTS, Need.LOSS})
"""Needs that cost a learner forward over the super-batch."""


@dataclass(frozen=True)
class ScoringBatch:
    """What the step hands a scorer: ids always; labels, outputs and loss when available."""

    ids: Tensor
    labels: Tensor | None = None
    outputs: Any = None
    loss: Tensor | None = None


@runtime_checkable
class Scorer(Protocol):
    """Maps a :class:`ScoringBatch` of ``B`` examples to ``(B,)`` scores (higher = preferred).

    :meth:`observe` receives the training losses of the examples just trained on (free: the
    training forward computes them), for scorers that remember them; :attr:`remembers` says
    whether a scorer does anything with them. :meth:`check_ids` raises ``ValueError`` if some of
    a dataset's ids have no cached value (checked once, so lookups need not check per step).
    """

    needs: frozenset[Need]
    remembers: bool

    def __call__(self, batch: ScoringBatch) -> Tensor: ...

    def observe(self, ids: Tensor, losses: Tensor) -> None: ...

    def check_ids(self, ids: Tensor) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def check_missing(scorer: Any) -> None:
    """Raise ``ValueError`` if ``scorer`` looked up ids its tables do not hold since the last
    check (one host sync; scorers without tables, or without the method, pass)."""
    method = getattr(scorer, "check_missing", None)
    if callable(method):
        method()


def needs_forward(scorer: Scorer) -> bool:
    """Whether ``scorer`` needs the learner forward over the super-batch."""
    return bool(scorer.needs & FORWARD_NEEDS)


class StatelessScorer:
    """Defaults for scorers that keep nothing between steps (a base for your own)."""

    remembers = False

    def observe(self, ids: Tensor, losses: Tensor) -> None:
        return None

    def check_ids(self, ids: Tensor) -> None:
        return None

    def check_missing(self) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _required(value: Any, what: str, scorer: object) -> Any:
    if value is None:
        raise ValueError(
            f"{scorer!r} needs the batch's {what}, which is missing; score through "
            "siftdata.online.select_batch (or forward_for_scoring), which provides what a "
            "scorer's `needs` lists"
        )
    return value


class LearnerLoss(StatelessScorer):
    """The learner's current per-example loss ("hard learner")."""

    needs = frozenset({Need.LOSS})

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return _required(batch.loss, "loss", self)


class RememberedLoss:
    """The learner's loss on each example when it was last trained on (a :class:`LossMemory`).

    No forward pass: scores are looked up by id, and :meth:`observe` remembers the losses of each
    training step. The memory moves to the ids' device on first use.
    """

    needs = frozenset({Need.IDS})
    remembers = True

    def __init__(self, memory: LossMemory) -> None:
        if not isinstance(memory, LossMemory):
            raise ValueError(f"memory must be a LossMemory, got {type(memory).__name__}")
        self.memory = memory

    def _on(self, ids: Tensor) -> LossMemory:
        if self.memory.device != ids.device:
            self.memory.to(ids.device)
        return self.memory

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return self._on(batch.ids).lookup(batch.ids)

    def observe(self, ids: Tensor, losses: Tensor) -> None:
        self._on(ids).update(ids, losses)

    def check_ids(self, ids: Tensor) -> None:
        self.memory.index.rows(ids, check_values=True)

    def check_missing(self) -> None:
        self.memory.check_missing()

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])

    def __repr__(self) -> str:
        return f"RememberedLoss({len(self.memory)} examples)"


class ReferenceLoss(StatelessScorer):
    """A reference model's loss on each example, cached by id in a :class:`ScoreTable`.

    The table moves to the ids' device on first use (once), so lookups never cross devices.
    """

    needs = frozenset({Need.IDS})

    def __init__(self, table: ScoreTable) -> None:
        if not isinstance(table, ScoreTable):
            raise ValueError(f"table must be a ScoreTable, got {type(table).__name__}")
        if table.scores.dim() != 1:
            raise ValueError(f"reference losses must be one value per id, got {table.scores.shape}")
        self.table = table
        self._digest: str | None = None

    def __call__(self, batch: ScoringBatch) -> Tensor:
        if self.table.device != batch.ids.device:
            self.table = self.table.to(batch.ids.device)
        return self.table.lookup(batch.ids)

    def check_ids(self, ids: Tensor) -> None:
        self.table.check_ids(ids)

    def check_missing(self) -> None:
        self.table.check_missing()

    def state_dict(self) -> dict[str, Any]:
        self.check_missing()
        return {}

    def __repr__(self) -> str:
        """Names the table's content (a hash of ids and values), so a resumed run that swapped
        in another reference of the same size is told apart."""
        if self._digest is None:
            h = hashlib.sha256()
            for t in (self.table.ids, self.table.scores):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return f"ReferenceLoss({len(self.table)} examples, sha256 {self._digest})"


class Negated:
    """``−scorer``: e.g. easy reference = ``Negated(ReferenceLoss(table))``."""

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.needs = scorer.needs
        self.remembers = scorer.remembers

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return -self.scorer(batch)

    def observe(self, ids: Tensor, losses: Tensor) -> None:
        self.scorer.observe(ids, losses)

    def check_ids(self, ids: Tensor) -> None:
        self.scorer.check_ids(ids)

    def check_missing(self) -> None:
        check_missing(self.scorer)

    def state_dict(self) -> dict[str, Any]:
        return self.scorer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scorer.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Negated({self.scorer!r})"


class Learnability:
    r"""RHO-LOSS reducible loss from two scorers: ``min(learner, cap) − reference``.

    See :func:`siftdata.core.scores.learnability`. ``learner`` is :class:`LearnerLoss` (fresh, one
    forward) or :class:`RememberedLoss` (stale, no forward); ``reference`` is usually
    :class:`ReferenceLoss`.
    """

    def __init__(
        self, learner: Scorer, reference: Scorer, *, learner_loss_cap: float | None = None
    ) -> None:
        self.learner, self.reference = learner, reference
        self.learner_loss_cap = (
            None
            if learner_loss_cap is None
            else check_positive(learner_loss_cap, "learner_loss_cap")
        )
        self.needs = learner.needs | reference.needs
        self.remembers = learner.remembers or reference.remembers

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return S.learnability(
            self.learner(batch), self.reference(batch), learner_loss_cap=self.learner_loss_cap
        )

    def observe(self, ids: Tensor, losses: Tensor) -> None:
        self.learner.observe(ids, losses)
        self.reference.observe(ids, losses)

    def check_ids(self, ids: Tensor) -> None:
        self.learner.check_ids(ids)
        self.reference.check_ids(ids)

    def check_missing(self) -> None:
        check_missing(self.learner)
        check_missing(self.reference)

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "reference": self.reference.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.reference.load_state_dict(state["reference"])

    def __repr__(self) -> str:
        return f"Learnability({self.learner!r}, {self.reference!r}, cap={self.learner_loss_cap})"


class GradNormBound(StatelessScorer):
    """Norm of the per-example loss gradient at the outputs (Katharopoulos & Fleuret, 2018).

    ``loss`` picks the closed form (see :mod:`siftdata.core.scores`):

    - ``"cross-entropy"`` (default): ``‖softmax(z) − t‖`` with ``t = (1 − ε)·onehot(y) + ε/C``
      (:func:`~siftdata.core.scores.grad_norm_bound`; with ``ε = 0`` the EL2N score);
    - ``"sigmoid"``: ``‖σ(z) − y‖`` for binary cross-entropy with logits summed over the outputs
      (:func:`~siftdata.core.scores.sigmoid_grad_norm_bound`);
    - ``"mse"``: ``2‖z − y‖ / K`` for the squared error averaged over the ``K`` outputs
      (:func:`~siftdata.core.scores.mse_grad_norm_bound`).

    For ``"sigmoid"`` and ``"mse"`` the batch's ``labels`` are the float targets, of the outputs'
    shape. ``label_smoothing`` (``ε`` in ``[0, 1)``) applies to ``"cross-entropy"`` only.
    """

    needs = frozenset({Need.OUTPUTS})
    LOSSES = ("cross-entropy", "sigmoid", "mse")
    """The losses with a closed-form gradient norm."""

    def __init__(self, *, loss: str = "cross-entropy", label_smoothing: float = 0.0) -> None:
        if not isinstance(loss, str) or loss not in self.LOSSES:
            allowed = ", ".join(repr(name) for name in self.LOSSES)
            raise ValueError(f"loss must be one of {allowed}; got {loss!r}")
        label_smoothing = check_fraction(label_smoothing, "label_smoothing", high_open=True)
        if label_smoothing and loss != "cross-entropy":
            raise ValueError(
                f"label_smoothing applies only to loss='cross-entropy'; got loss={loss!r} "
                f"with label_smoothing={label_smoothing}"
            )
        self.loss = loss
        self.label_smoothing = label_smoothing

    def __call__(self, batch: ScoringBatch) -> Tensor:
        outputs = _required(batch.outputs, "outputs", self)
        labels = _required(batch.labels, "labels", self)
        if self.loss == "sigmoid":
            return S.sigmoid_grad_norm_bound(outputs, labels)
        if self.loss == "mse":
            return S.mse_grad_norm_bound(outputs, labels)
        return S.grad_norm_bound(outputs, labels, label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        options = []
        if self.loss != "cross-entropy":
            options.append(f"loss={self.loss!r}")
        if self.label_smoothing:
            options.append(f"label_smoothing={self.label_smoothing!r}")
        return f"GradNormBound({', '.join(options)})"


class Entropy(StatelessScorer):
    """Predictive entropy of the learner's softmax (higher = more uncertain)."""

    needs = frozenset({Need.OUTPUTS})

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return S.entropy(_required(batch.outputs, "outputs", self))


class LeastConfidence(StatelessScorer):
    """``1 − max_c p_c`` of the learner's softmax (higher = less confident)."""

    needs = frozenset({Need.OUTPUTS})

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return S.least_confidence(_required(batch.outputs, "outputs", self))


class Margin(StatelessScorer):
    """Gap between the two largest class probabilities; smaller = more uncertain, so select the
    most uncertain with ``Negated(Margin())``."""

    needs = frozenset({Need.OUTPUTS})

    def __call__(self, batch: ScoringBatch) -> Tensor:
        return S.margin(_required(batch.outputs, "outputs", self))
