"""RHO-LOSS learnability inside the Hugging Face Trainer, on real text with noisy labels.

WordNet noun glosses → their supersense (25 classes, from Debian's ``wordnet-base``); 40% of the
pool's labels flipped at random. A byte-level BPE tokenizer is trained on the pool's text, a
tiny BERT built from a config (nothing downloaded), a reference trained on a small clean holdout
with the plain Trainer, its losses cached by id; then ``SelectiveTrainer`` trains the learner
on the best 32 of each super-batch of 128. Prints clean test accuracy and the share of mislabeled
examples among those trained on (0.4 for uniform).

    HF_HUB_OFFLINE=1 python examples/hf_trainer.py --steps 600 [--method uniform]
    HF_HUB_OFFLINE=1 torchrun --standalone --nproc_per_node=2 examples/hf_trainer.py  # 2 ranks
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
)

from siftdata.data import NOUN_SUPERSENSES, load_supersenses, symmetric_noise
from siftdata.integrations.hf import SelectiveTrainer, reference_losses
from siftdata.online import build_method


def tokenizer_for(texts: list[str]) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(), decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=4000, special_tokens=["<pad>"],
                                                       show_progress=False))  # fmt: skip
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", model_max_length=48)


def bert(seed: int, vocab: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=48,
                        num_labels=len(NOUN_SUPERSENSES))  # fmt: skip
    return BertForSequenceClassification(config)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--reference-steps", type=int, default=400)
    parser.add_argument("--method", default="learnability")
    parser.add_argument("--pool", type=int, default=40000)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a tiny model on busy cores runs fastest on one thread
    data = load_supersenses()
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).tolist()
    texts, clean = [data.texts[i] for i in order], torch.tensor([data.labels[i] for i in order])
    pool, holdout, test = slice(0, args.pool), slice(-8000, -4000), slice(-4000, None)
    noisy = symmetric_noise(clean[pool], 0.4, num_classes=len(NOUN_SUPERSENSES), seed=0)
    tokenizer = tokenizer_for(texts[pool])

    parts = {"pool": (pool, noisy.labels), "holdout": (holdout, clean[holdout])}
    parts["test"] = (test, clean[test])

    def dataset(name: str) -> Dataset:
        part, labels = parts[name]
        rows = {"text": texts[part], "label": labels.tolist(), "id": list(range(len(labels)))}
        encode = lambda rows: tokenizer(rows["text"], truncation=True)  # noqa: E731
        return Dataset.from_dict(rows).map(encode, batched=True, remove_columns=["text"])

    train_set, test_set = dataset("pool"), dataset("test")
    collator = DataCollatorWithPadding(tokenizer)
    with tempfile.TemporaryDirectory() as out:  # the Trainer's output_dir: nothing is kept
        return _train(args, out, tokenizer, collator, train_set, test_set, noisy, dataset)


def _train(args, out, tokenizer, collator, train_set, test_set, noisy, dataset):
    def arguments(steps: int, batch: int) -> TrainingArguments:
        return TrainingArguments(out, per_device_train_batch_size=batch, max_steps=steps,
                                 learning_rate=2e-3, lr_scheduler_type="cosine", report_to=[],
                                 save_strategy="no", disable_tqdm=True, use_cpu=True)  # fmt: skip

    reference = bert(1, len(tokenizer))
    Trainer(model=reference, args=arguments(args.reference_steps, 64), data_collator=collator,
            train_dataset=dataset("holdout")).train()  # fmt: skip
    cached = reference_losses(reference, train_set, collator=collator, progress=False)
    method = build_method(args.method, reference=cached, example_ids=len(train_set),
                          num_classes=len(NOUN_SUPERSENSES), super_batch_factor=4)  # fmt: skip
    trainer = SelectiveTrainer(model=bert(0, len(tokenizer)), args=arguments(args.steps, 32),
                               train_dataset=train_set, data_collator=collator, method=method,
                               super_batch_factor=4, compute_metrics=accuracy,
                               on_trained=(trained := []).append)  # fmt: skip
    trainer.train()
    result = trainer.evaluate(test_set)
    mislabeled = noisy.is_corrupted[torch.cat(trained)].float().mean().item()
    if trainer.is_world_process_zero():  # under torchrun: rank 0 reports (its share's ids)
        print(f"{args.method}: clean test accuracy {result['eval_accuracy']:.4f}, "
              f"mislabeled share of trained examples {mislabeled:.3f}")  # fmt: skip
    return result["eval_accuracy"], mislabeled


def accuracy(prediction) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


if __name__ == "__main__":
    main()
