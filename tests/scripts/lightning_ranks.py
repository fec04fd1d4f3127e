"""Fit the tiny Lightning learner with global selection, on ``DEVICES`` CPU processes (Lightning
launches the others itself), and save per rank the ids trained at every step and the weights:
``lightning_ranks.py OUT METHOD DEVICES B`` (``B``: each device's super-batch)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lightning_setup import Learner, loader, method, trainer  # noqa: E402
from siftdata.integrations.lightning import SelectionCallback  # noqa: E402


class RankOrder(Learner):
    """Serves the rows in order, rank ``r`` the rows ``r, r + W, ...`` (after the group is up)."""

    def __init__(self, selection, batch: int) -> None:
        super().__init__(selection)
        self.batch = batch

    def train_dataloader(self):
        if not torch.distributed.is_initialized():
            return loader(self.batch, shuffle=False)
        return loader(self.batch, sampler=lambda rows: DistributedSampler(rows, shuffle=False))


def main() -> None:
    out, name, devices, batch = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(1)
    trained: list[torch.Tensor] = []
    selection = SelectionCallback(
        method(name), super_batch_factor=4, on_trained=lambda t: trained.append(t.clone())
    )
    module = RankOrder(selection, batch)
    strategy = "ddp" if devices > 1 else "auto"
    # Lightning's own distributed sampler shuffles: each rank gets its share of one fixed order
    # instead (the documented way for an ordered sampler), so one process sees the same rows
    fit = trainer(out, selection, devices=devices, strategy=strategy, use_distributed_sampler=False)
    fit.fit(module)
    weights = {k: v.detach().cpu() for k, v in module.net.state_dict().items()}
    torch.save(
        {"trained": torch.stack(trained), "weights": weights}, out / f"rank{fit.global_rank}.pt"
    )


if __name__ == "__main__":
    main()
