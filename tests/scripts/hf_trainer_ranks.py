"""Train a tiny BERT with SelectiveTrainer (one process or under torchrun) and save, per rank,
the ids it trained on at every step and the final weights: ``hf_trainer_ranks.py OUT METHOD B``
(``B``: per-device batch size)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _hf_setup import GlossDataset, tiny_bert, training_args  # noqa: E402
from siftdata.integrations.hf import SelectiveTrainer  # noqa: E402
from siftdata.online import build_method  # noqa: E402
from siftdata.store import ScoreTable  # noqa: E402

N, BIG = 400, 2**25


def main() -> None:
    out, name, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    ids = torch.arange(N) + BIG
    reference = ScoreTable(ids, 2.5 + torch.rand(N, generator=torch.Generator().manual_seed(5)))
    method = build_method(
        name, reference=reference, example_ids=ids, num_classes=25, super_batch_factor=4
    )
    trained: list[torch.Tensor] = []
    trainer = SelectiveTrainer(
        model=tiny_bert(),
        # SGD keeps float-level differences float-level (Adam's normalisation can magnify
        # them where gradients are near zero)
        args=training_args(
            out, per_device_train_batch_size=batch, max_steps=5, optim="sgd", learning_rate=0.05
        ),
        train_dataset=GlossDataset(N, id_offset=BIG),
        method=method,
        super_batch_factor=4,
        on_trained=lambda t: trained.append(t.clone()),
    )
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    weights = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
    torch.save({"trained": torch.stack(trained), "weights": weights}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()
