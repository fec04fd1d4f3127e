"""Scenario ``noisy-text`` (docs/benchmarks.md): WordNet glosses → supersense, with noisy labels,
trained through the Hugging Face integration.

The ~82 000 noun glosses (25 supersense classes, :func:`siftdata.data.load_supersenses`) are
shuffled once (fixed seed) into a clean test set, a clean holdout and the pool, whose labels get
symmetric noise at rate ``noise``. A byte-level BPE tokenizer is trained on the pool's text
(seconds); every gloss is encoded once to ``max_length`` tokens. The learner and the reference are
tiny BERT encoders built from a config (nothing is downloaded). The reference is trained on the
clean holdout with the plain ``transformers.Trainer``; its loss on every pool gloss is cached in
the run folder by id, fingerprint-checked and reused only when every option that made it matches.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._config import check_float_field, check_int_field, option
from ..data import NOUN_SUPERSENSES, load_supersenses, symmetric_noise
from ..reference import load_reference_losses, save_reference_losses
from ..store import ScoreTable, dataset_fingerprint

__all__ = ["NoisyTextConfig", "TextData", "prepare_text", "text_reference", "encoder_flops"]

NUM_CLASSES = len(NOUN_SUPERSENSES)


@dataclass
class NoisyTextConfig:
    """The scenario's data, model and reference options (the CLI's options of the same names)."""

    noise: float = option(0.4, "symmetric label noise rate in the pool")
    test_size: int = option(5000, "clean glosses in the test set")
    holdout_size: int = option(5000, "clean glosses the reference trains on")
    pool_size: int = option(0, "pool glosses (0: all the others, about 72,000)")
    max_length: int = option(32, "tokens per gloss (longer glosses are truncated)")
    vocab_size: int = option(4000, "byte-level BPE vocabulary, trained on the pool's text")
    hidden: int = option(64, "the encoders' width")
    layers: int = option(2, "the encoders' transformer layers")
    reference_steps: int = option(1500, "reference training steps (batches of 64, clean holdout)")
    threads: int = option(1, "torch threads (a tiny model on 2 busy cores runs fastest on one)")

    def __post_init__(self) -> None:
        check_float_field(self.noise, "noise", low=0.0, high=0.99)
        check_int_field(self.test_size, "test_size", low=100)
        check_int_field(self.holdout_size, "holdout_size", low=100)
        check_int_field(self.pool_size, "pool_size", low=0)
        check_int_field(self.max_length, "max_length", low=4)
        check_int_field(self.vocab_size, "vocab_size", low=300)
        check_int_field(self.hidden, "hidden", low=8)
        check_int_field(self.layers, "layers", low=1)
        check_int_field(self.reference_steps, "reference_steps", low=1)
        check_int_field(self.threads, "threads", low=1)
        if self.hidden % 2:
            raise ValueError(f"hidden must be even (two attention heads), got {self.hidden}")


@dataclass
class TextData:
    """Token ids ``(N, T)``, attention masks and labels of each split; the pool's ``is_corrupted``."""

    splits: dict[str, dict[str, Tensor]]
    is_corrupted: Tensor
    vocab_size: int
    fingerprint: dict


def _shuffled(seed: int):
    data = load_supersenses()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    return [data.texts[i] for i in order], torch.tensor([data.labels[i] for i in order])


def _tokenizer(texts: list[str], cfg: NoisyTextConfig):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size, special_tokens=["<pad>"], show_progress=False
    )
    bpe.train_from_iterator(texts, trainer)
    bpe.enable_padding(pad_id=bpe.token_to_id("<pad>"), pad_token="<pad>", length=cfg.max_length)
    bpe.enable_truncation(cfg.max_length)
    return bpe


def _encode(bpe, texts: list[str]) -> dict[str, Tensor]:
    encoded = bpe.encode_batch(texts)
    return {
        "input_ids": torch.tensor([e.ids for e in encoded], dtype=torch.long),
        "attention_mask": torch.tensor([e.attention_mask for e in encoded], dtype=torch.long),
    }


def prepare_text(cfg: NoisyTextConfig, seed: int) -> TextData:
    """The splits (fixed by ``seed``), the tokenizer trained on the pool, every gloss encoded."""
    texts, clean = _shuffled(seed)
    t, h = cfg.test_size, cfg.test_size + cfg.holdout_size
    stop = len(texts) if cfg.pool_size == 0 else h + cfg.pool_size
    if stop > len(texts) or stop - h < 100:
        raise ValueError(
            f"pool_size {cfg.pool_size} with {t} test and {cfg.holdout_size} holdout glosses "
            f"does not fit the {len(texts)} glosses"
        )
    noisy = symmetric_noise(clean[h:stop], cfg.noise, num_classes=NUM_CLASSES, seed=seed + 1)
    bpe = _tokenizer(texts[h:stop], cfg)
    parts = {"test": (0, t, clean[:t]), "holdout": (t, h, clean[t:h])}
    parts["pool"] = (h, stop, noisy.labels)
    splits = {}
    for name, (start, end, labels) in parts.items():
        splits[name] = {**_encode(bpe, texts[start:end]), "labels": labels}
        splits[name]["id"] = torch.arange(end - start)
    pool = splits["pool"]
    fingerprint = dataset_fingerprint(pool["labels"], pool["input_ids"])
    return TextData(splits, noisy.is_corrupted, bpe.get_vocab_size(), fingerprint)


def encoder(cfg: NoisyTextConfig, vocab_size: int, seed: int):
    """A tiny BERT classifier from a config (no download), initialised by ``seed``, no dropout
    (selection, not regularisation, is what the benchmark compares)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=2,
        intermediate_size=2 * cfg.hidden,
        max_position_embeddings=cfg.max_length,
        num_labels=NUM_CLASSES,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BertForSequenceClassification(config)


def encoder_flops(cfg: NoisyTextConfig) -> int:
    """Forward FLOPs of one gloss: ``2·P·T`` for the ``P`` weights of the layers (embeddings are
    lookups) plus attention's ``4·T²·d`` per layer, ``T`` tokens, ``d`` the width."""
    d, t = cfg.hidden, cfg.max_length
    per_layer = 4 * d * d + 2 * d * (2 * d)  # attention projections + feed-forward
    head = d * d + d * NUM_CLASSES  # pooler + classifier (one position)
    return 2 * per_layer * t * cfg.layers + 4 * t * t * d * cfg.layers + 2 * head


@dataclass
class TextReference:
    """The reference's losses on the pool by id, and what it cost."""

    losses: ScoreTable
    info: dict
    train_flops: int
    cache_flops: int


def text_reference(cfg: NoisyTextConfig, data: TextData, out: Path, *, seed: int, progress: bool):
    """Train the reference on the clean holdout (or load its cached pool losses from ``out``)."""
    path = out / "reference"
    made_by = {**asdict(cfg), "seed": seed}
    f = encoder_flops(cfg)
    costs = {
        "train_flops": 3 * f * 64 * cfg.reference_steps,
        "cache_flops": f * len(data.is_corrupted),
    }
    if (path / "manifest.json").exists():
        table = load_reference_losses(path, fingerprint=data.fingerprint)
        meta = table.manifest.get("meta") or {}
        if meta.get("made_by") != made_by:
            raise ValueError(f"{path} holds a reference made with other options; use another --out")
        return TextReference(table, dict(meta["info"]), **costs)
    start = time.perf_counter()
    model = _train_reference(cfg, data, seed=seed, progress=progress)
    from ..integrations.hf import reference_losses

    pool = _rows(data.splits["pool"])
    table = reference_losses(model, pool, progress=progress)
    info = {
        "test_acc": evaluate_text(model, data.splits["test"])[0],
        "seconds": time.perf_counter() - start,
        "steps": cfg.reference_steps,
    }
    meta = {"made_by": made_by, "info": info}
    save_reference_losses(path, table.ids, table.scores, fingerprint=data.fingerprint, meta=meta)
    return TextReference(load_reference_losses(path, fingerprint=data.fingerprint), info, **costs)


def _rows(split: dict[str, Tensor]):
    from torch.utils.data import Dataset

    class Rows(Dataset):
        def __len__(self) -> int:
            return len(split["labels"])

        def __getitem__(self, i: int) -> dict[str, Tensor]:
            return {k: v[i] for k, v in split.items()}

    return Rows()


def _train_reference(cfg: NoisyTextConfig, data: TextData, *, seed: int, progress: bool):
    import tempfile

    from transformers import Trainer, TrainingArguments

    model = encoder(cfg, data.vocab_size, seed + 7)
    holdout = {k: v for k, v in data.splits["holdout"].items() if k != "id"}
    with tempfile.TemporaryDirectory() as folder:
        args = TrainingArguments(
            folder, per_device_train_batch_size=64, max_steps=cfg.reference_steps,
            learning_rate=2e-3, weight_decay=1e-2, lr_scheduler_type="cosine", report_to=[],
            save_strategy="no", disable_tqdm=not progress, seed=seed, use_cpu=not torch.cuda.is_available(),
            logging_strategy="no",
        )  # fmt: skip
        Trainer(model=model, args=args, train_dataset=_rows(holdout)).train()
    return model


@torch.no_grad()
def evaluate_text(model, split: dict[str, Tensor], batch_size: int = 1024) -> tuple[float, float]:
    """``(accuracy, mean loss)`` of ``model`` on a split, in eval mode, batched."""
    from .._modes import eval_mode

    device = next(model.parameters()).device
    correct, loss, n = 0, 0.0, len(split["labels"])
    with eval_mode(model):
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            logits = model(
                input_ids=split["input_ids"][rows].to(device),
                attention_mask=split["attention_mask"][rows].to(device),
            ).logits
            labels = split["labels"][rows].to(device)
            correct += int((logits.argmax(1) == labels).sum())
            loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
    return correct / n, loss / n
