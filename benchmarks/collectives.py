"""The all-gathers of global selection alone, at W gloo ranks on loopback: ms per step and bytes.

For each family, the tensors one step gathers (``docs/scaling.md`` gives them as formulas in B,
b, C, d and W), timed over 200 repetitions after a warm-up; also DDP's gradient all-reduce of an
MLP of the benchmarks' size, for scale. Run under torchrun at 2 and 4 ranks::

    .venv/bin/torchrun --standalone --nproc_per_node 2 benchmarks/collectives.py
    .venv/bin/torchrun --standalone --nproc_per_node 4 benchmarks/collectives.py
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from siftdata.distributed import all_gather_rows, join_from_environment

b, B, C, D, PARAMS = 64, 640, 10, 64, 535_818  # the MLP of the benchmarks has 535 818 parameters


def _families(world) -> dict[str, list[torch.Tensor]]:
    big, small = B // world.size, b // world.size
    ids_and_losses = [torch.zeros(small, dtype=torch.int64), torch.zeros(small)]
    return {
        "learnability (losses)": [torch.zeros(big)],
        "importance, gate on (outputs)": [torch.zeros(big, C)],
        "+stale, InfoBatch (trained ids, losses)": ids_and_losses,
        f"jest (embeddings, d = {D})": [torch.zeros(big, D), torch.zeros(big, D)],
    }


def _ms(action, repeats: int = 200) -> float:
    for _ in range(20):
        action()
    start = time.perf_counter()
    for _ in range(repeats):
        action()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    torch.set_num_threads(1)
    world = join_from_environment()
    rows = []
    for name, tensors in _families(world).items():
        sent = sum(t.numel() * t.element_size() for t in tensors)
        ms = _ms(lambda tensors=tensors: [all_gather_rows(t, world) for t in tensors])
        rows.append(f"{name:42s} {ms:6.3f} ms  {sent:7d} B from each rank")
    grads = torch.zeros(PARAMS)
    ms = _ms(lambda: dist.all_reduce(grads), repeats=100)
    rows.append(f"{'DDP gradient all-reduce (for scale)':42s} {ms:6.3f} ms  {4 * PARAMS:7d} B")
    if world.rank == 0:
        print(f"world size {world.size} (gloo, loopback), b={b}, B={B}")
        print("\n".join(rows))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
