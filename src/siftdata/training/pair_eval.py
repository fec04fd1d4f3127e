"""Evaluating a two-tower model: zero-shot classification via class prompts, image→text recall@1.

For test pairs with L2-normalised image embeddings ``x_i``, caption embeddings ``y_j`` and class
embeddings ``c_k = normalise(mean_p e(prompt_kp))`` (the mean of class ``k``'s prompt
embeddings), the metrics are

    test_acc     = mean_i [argmax_k ⟨x_i, c_k⟩ = label_i]
    recall_at_1  = mean_i [caption(argmax_j ⟨x_i, y_j⟩) = caption(i)]
    test_loss    = mean_i ℓ_i   (per-pair SigLIP loss within consecutive test batches)

Captions are compared by their tokens: many captions repeat, and retrieving another copy of the
right caption is a hit. Ties in an ``argmax`` go to the lowest index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._batch import model_device
from .._modes import eval_mode
from .._validation import check_int_range
from ..core.pairwise import PairEmbeddings, per_example_sigmoid_loss

__all__ = ["PairEvaluator"]


def _check_test_set(images: Tensor, tokens: Tensor, labels: Tensor, prompts: Tensor) -> None:
    for name, x in (("test_images", images), ("test_tokens", tokens), ("test_labels", labels)):
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[0] == 0:
            raise ValueError(f"{name} must be a tensor holding at least one test pair along dim 0")
    n = images.shape[0]
    if tokens.dim() != 2 or tokens.shape[0] != n:
        raise ValueError(f"test_tokens must be ({n}, L), got shape {tuple(tokens.shape)}")
    if labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(
            f"test_labels must be integer ({n},), got {labels.dtype} {tuple(labels.shape)}"
        )
    if not isinstance(prompts, Tensor) or prompts.dim() != 3 or 0 in prompts.shape:
        shape = tuple(prompts.shape) if isinstance(prompts, Tensor) else type(prompts).__name__
        raise ValueError(f"prompt_tokens must be (classes, prompts, L), got {shape}")


class PairEvaluator:
    """Test metrics of a two-tower model, an :data:`~siftdata.training.recorder.Evaluator`.

    Parameters
    ----------
    test_images : Tensor
        ``(N, 1, H, W)`` test images.
    test_tokens : Tensor
        ``(N, L)`` token ids of each image's own caption (0 = padding).
    test_labels : Tensor
        ``(N,)`` integer class of each image, in ``[0, C)``.
    prompt_tokens : Tensor
        ``(C, P, L')`` token ids of ``P`` zero-shot prompts per class.
    batch_size : int, default 2048
        Pairs per forward, and rows per block of the retrieval similarities (a block is
        ``batch_size × N``, never ``N × N``). ``test_loss`` is the SigLIP loss of batches of
        this size, so it depends on it (each pair has ``batch_size − 1`` negatives).

    Notes
    -----
    Calling it on a model returns ``{"test_acc", "recall_at_1", "test_loss"}`` (see the module
    docstring). The model maps ``(images, tokens)`` to
    :class:`~siftdata.core.pairwise.PairEmbeddings` and has ``encode_texts(tokens) -> (M, d)``
    normalised text embeddings (for the prompts). It runs without gradients and in eval mode,
    every submodule's mode restored afterwards; the test tensors are moved batch by batch to the
    model's device. Three host syncs in all, when the results are read.
    """

    def __init__(
        self,
        test_images: Tensor,
        test_tokens: Tensor,
        test_labels: Tensor,
        prompt_tokens: Tensor,
        *,
        batch_size: int = 2048,
    ) -> None:
        _check_test_set(test_images, test_tokens, test_labels, prompt_tokens)
        self.batch_size = check_int_range(batch_size, "batch_size", low=1)
        self.images, self.tokens, self.labels = test_images, test_tokens, test_labels
        self.prompt_tokens = prompt_tokens
        # caption(i): one id per distinct token sequence, so "same caption" is an id comparison
        self.caption_ids = torch.unique(test_tokens, dim=0, return_inverse=True)[1]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _embed(self, model: nn.Module, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Image and caption embeddings ``(N, d)`` and the summed per-pair SigLIP loss."""
        images, texts = [], []
        loss = torch.zeros((), device=device)
        for start in range(0, len(self), self.batch_size):
            part = slice(start, start + self.batch_size)
            inputs = (self.images[part].to(device), self.tokens[part].to(device))
            emb = model(inputs)
            if not isinstance(emb, PairEmbeddings):
                raise ValueError(
                    f"the model must return PairEmbeddings for (images, tokens), got "
                    f"{type(emb).__name__}"
                )
            images.append(emb.image.float())
            texts.append(emb.text.float())
            loss += per_example_sigmoid_loss(emb).float().sum()
        return torch.cat(images), torch.cat(texts), loss

    def _classes(self, model: nn.Module, device: torch.device) -> Tensor:
        """``(C, d)`` class embeddings: each class's mean prompt embedding, renormalised."""
        if not callable(getattr(model, "encode_texts", None)):
            raise ValueError(
                f"zero-shot evaluation needs model.encode_texts(tokens); {type(model).__name__} "
                "has none"
            )
        c, p, length = self.prompt_tokens.shape
        flat = self.prompt_tokens.reshape(c * p, length).to(device)
        text = model.encode_texts(flat).float()
        return F.normalize(text.reshape(c, p, -1).mean(dim=1), dim=1)

    def _recall_hits(self, images: Tensor, texts: Tensor) -> Tensor:
        """How many images retrieve (nearest caption embedding) a copy of their own caption."""
        caption = self.caption_ids.to(images.device)
        hits = torch.zeros((), dtype=torch.long, device=images.device)
        for start in range(0, images.shape[0], self.batch_size):
            block = images[start : start + self.batch_size] @ texts.T
            retrieved = caption.index_select(0, block.argmax(dim=1))
            hits += (retrieved == caption[start : start + self.batch_size]).sum()
        return hits

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        with eval_mode(model):
            images, texts, loss = self._embed(model, device)
            classes = self._classes(model, device)
        predicted = (images @ classes.T).argmax(dim=1)
        correct = (predicted == self.labels.to(device)).sum()
        hits = self._recall_hits(images, texts)
        n = len(self)
        return {
            "test_acc": float(correct) / n,
            "recall_at_1": float(hits) / n,
            "test_loss": float(loss) / n,
        }
