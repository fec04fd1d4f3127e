"""A tiny two-tower (image–text) model for the sigmoid contrastive loss, with cheap scoring paths.

The image tower is a three-block CNN (stride-2 convolutions) ending in adaptive average pooling,
so it takes 28×28 and 14×14 images alike (JEST-Flexi scores at low resolution), and it has an
*early-exit* head on its first block (scoring through fewer layers). The text tower embeds words
plus their positions, adds a width-3 depthwise convolution over them (cheap features of a word
and its neighbours, so "heavy ink" differs from "ink" and "heavy" apart) and averages over the
real tokens only (id 0 pads), so extra padding changes nothing. Both embeddings
are L2-normalised; the temperature ``t = exp(log_scale)`` and bias ``β`` are learnt, initialised
as in SigLIP (``t = 10``, ``β = −10``). No BatchNorm or dropout: ``train()`` and ``eval()`` give
the same outputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_int_range, check_positive
from ..core.pairwise import PairEmbeddings

__all__ = ["TwoTower"]

IMAGE_CHANNELS = (8, 16, 32)
"""Channels of the three image blocks at ``width=1``: stride-2 convolutions, about 0.3 MFLOP per
28×28 image, so a training step of 128 pairs plus a scoring forward of 640 stays cheap on a CPU."""
TEXT_WIDTH = 64
"""Word-embedding width at ``width=1``."""
POOLED_SIDE = 2
"""Both image heads read a ``2 × 2`` adaptive average pool of their block: the coarse layout (top
or bottom, left or right) survives, and 28×28 and 14×14 inputs give the same feature size."""
LOG_SCALE_INIT, BIAS_INIT = math.log(10.0), -10.0
"""SigLIP's initial temperature and bias: with ``B − 1`` negatives per positive, a large negative
bias keeps the initial loss from being dominated by the negatives."""


def _scaled(size: int, width: float) -> int:
    return max(1, round(size * width))


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """A 3×3 convolution with stride 2 (halves the side, rounding up) and a ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU())


def _pooled(h: Tensor) -> Tensor:
    return F.adaptive_avg_pool2d(h, POOLED_SIDE).flatten(1)


class TwoTower(nn.Module):
    """Image CNN + word-level text encoder → :class:`~siftdata.core.pairwise.PairEmbeddings`.

    Parameters
    ----------
    vocab_size : int
        Number of token ids, including the padding id 0 (at least 2).
    embed_dim : int, default 64
        Width ``d`` of the shared embedding space.
    width : float, default 1.0
        Multiplies the image channels (8, 16, 32) and the text width (64); rounded, at least 1.
    max_tokens : int, default 24
        Longest token sequence accepted (the length of the learnt position embeddings).

    Notes
    -----
    ``forward((images, tokens))`` takes images ``(N, 1, H, W)`` of any side (28×28 and
    14×14 alike) and token ids ``(N, L)`` with ``L <= max_tokens``, 0 = padding.
    """

    def __init__(
        self, vocab_size: int, *, embed_dim: int = 64, width: float = 1.0, max_tokens: int = 24
    ) -> None:
        super().__init__()
        check_int_range(vocab_size, "vocab_size", low=2)
        check_int_range(embed_dim, "embed_dim", low=1)
        check_positive(width, "width")
        self.max_tokens = check_int_range(max_tokens, "max_tokens", low=1)
        c1, c2, c3 = (_scaled(c, width) for c in IMAGE_CHANNELS)
        words = _scaled(TEXT_WIDTH, width)
        self.block1, self.block2, self.block3 = _block(1, c1), _block(c1, c2), _block(c2, c3)
        self.image_head = nn.Linear(c3 * POOLED_SIDE**2, embed_dim)
        self.early_head = nn.Linear(c1 * POOLED_SIDE**2, embed_dim)
        self.words = nn.Embedding(vocab_size, words, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(max_tokens, words) * 0.02)
        # depthwise: each channel mixes a word with its neighbours (cheap n-gram features)
        self.word_conv = nn.Conv1d(words, words, 3, padding=1, groups=words)
        self.text_head = nn.Sequential(
            nn.Linear(2 * words, words), nn.ReLU(), nn.Linear(words, embed_dim)
        )
        self.log_scale = nn.Parameter(torch.tensor(LOG_SCALE_INIT))
        self.bias = nn.Parameter(torch.tensor(BIAS_INIT))

    def encode_images(self, images: Tensor, *, early_exit: bool = False) -> Tensor:
        """``(N, embed_dim)`` normalised embeddings of ``(N, 1, H, W)`` images.

        With ``early_exit`` only the first block runs, then the early-exit head (about a tenth
        of the image tower's FLOPs).
        """
        if images.dim() != 4:
            raise ValueError(f"images must be (N, 1, H, W), got shape {tuple(images.shape)}")
        h = self.block1(images)
        if early_exit:
            return F.normalize(self.early_head(_pooled(h)), dim=1)
        h = self.block3(self.block2(h))
        return F.normalize(self.image_head(_pooled(h)), dim=1)

    def encode_texts(self, tokens: Tensor) -> Tensor:
        """``(N, embed_dim)`` normalised embeddings of ``(N, L)`` token ids (0 = padding).

        Padding positions are zeroed before the convolution and left out of the mean, so the
        embedding does not depend on how much padding follows the caption.
        """
        if tokens.dim() != 2 or tokens.shape[1] > self.max_tokens:
            raise ValueError(
                f"tokens must be (N, L) with L <= max_tokens={self.max_tokens}, got shape "
                f"{tuple(tokens.shape)}"
            )
        mask = (tokens != 0).unsqueeze(-1).to(self.positions.dtype)
        h = (self.words(tokens) + self.positions[: tokens.shape[1]]) * mask
        c = F.relu(self.word_conv(h.transpose(1, 2))).transpose(1, 2)
        count = mask.sum(dim=1).clamp_min(1.0)
        pooled = torch.cat([h.sum(dim=1), (c * mask).sum(dim=1)], dim=1) / count
        return F.normalize(self.text_head(pooled), dim=1)

    def forward(self, inputs: tuple[Tensor, Tensor], *, early_exit: bool = False) -> PairEmbeddings:
        """Embeddings of ``(images, tokens)`` pairs, with the learnt temperature and bias.

        ``early_exit`` applies to the image tower only (the text tower is cheap).
        """
        images, tokens = inputs
        return PairEmbeddings(
            self.encode_images(images, early_exit=early_exit),
            self.encode_texts(tokens),
            self.log_scale.exp(),
            self.bias,
        )
