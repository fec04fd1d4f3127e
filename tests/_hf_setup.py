"""A tiny text classifier and dataset for the Hugging Face integration tests (no hub, no network).

Real WordNet glosses (supersense labels), a word-level vocabulary of the first glosses, fixed
length, and a 2-layer BERT built from a config.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, IterableDataset

from siftdata.data import NOUN_SUPERSENSES, load_supersenses

LENGTH = 16
CLASSES = len(NOUN_SUPERSENSES)


def glosses(n: int, stride: int = 13) -> tuple[list[str], list[int]]:
    """``n`` glosses spread over the file (every ``stride``-th) and their supersenses."""
    data = load_supersenses()
    rows = range(0, n * stride, stride)
    return [data.texts[i] for i in rows], [data.labels[i] for i in rows]


def encode(texts: list[str], vocab_size: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Word ids (1: unknown, 0: padding) of each text, ``LENGTH`` long, and the attention mask."""
    counts: dict[str, int] = {}
    for text in texts:
        for word in text.lower().split():
            counts[word] = counts.get(word, 0) + 1
    vocab = {w: i + 2 for i, w in enumerate(sorted(counts, key=lambda w: -counts[w]))}
    ids = torch.zeros(len(texts), LENGTH, dtype=torch.long)
    for row, text in enumerate(texts):
        words = [min(vocab.get(w, 1), vocab_size - 1) for w in text.lower().split()][:LENGTH]
        ids[row, : len(words)] = torch.tensor(words, dtype=torch.long)
    return ids, (ids != 0).long()


class GlossDataset(Dataset):
    """Rows ``{"input_ids", "attention_mask", "labels", "id"}`` (ids offset to test >2^24 ids)."""

    def __init__(self, n: int, id_offset: int = 0) -> None:
        texts, labels = glosses(n)
        self.input_ids, self.attention_mask = encode(texts)
        self.labels = torch.tensor(labels)
        self.ids = torch.arange(n) + id_offset

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.labels[i],
            "id": self.ids[i],
        }


class GlossStream(IterableDataset):
    """The same rows as a stream, in order."""

    def __init__(self, rows: GlossDataset) -> None:
        self.rows = rows

    def __iter__(self):
        return (self.rows[i] for i in range(len(self.rows)))


def tiny_bert(seed: int = 0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=2000,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=LENGTH,
        num_labels=CLASSES,
        hidden_dropout_prob=0.0,  # no dropout: ranks and one process draw other masks
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(config)


def training_args(out, **overrides):
    from transformers import TrainingArguments

    options = dict(
        output_dir=str(out),
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        max_steps=6,
        logging_steps=2,
        save_strategy="no",
        report_to=[],
        seed=0,
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    options.update(overrides)
    return TrainingArguments(**options)
