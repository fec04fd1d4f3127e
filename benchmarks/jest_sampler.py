"""JEST sampler cost: its own time next to the learner's scoring forward, and matrix-free memory.

1. At B = 4096, b = 819 (filter ratio 0.8), 16 chunks: the time of the joint sampler given the
   learner's and reference's embeddings (matrix-free and dense), against one no-grad forward of
   the pairs-fmnist two-tower learner over the same 4096 pairs. Target: sampler ≤ 5% of it.
2. Peak memory and time of the matrix-free sampler at B = 16384 and 65536 (b = B/5), with the dense
   mode alongside where its B × B matrix fits. Each case runs in a fresh process so its peak
   resident memory (CPU) or peak allocated memory (CUDA) is its own.

Usage: ``python benchmarks/jest_sampler.py [--device cpu|cuda] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from siftdata.core.joint_sampling import joint_sample
from siftdata.core.pairwise import DensePairScores, EmbeddingPairScores, PairEmbeddings
from siftdata.ledger import count_flops
from siftdata.models.two_tower import TwoTower

WIDTH = 64  # the pairs-fmnist embedding width
LEARNER_WIDTHS = (1.0, 4.0)  # the pairs-fmnist learner, and one 4× wider (~14× the FLOPs)


def _embeddings(n: int, seed: int, device: str) -> PairEmbeddings:
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, WIDTH, generator=g), dim=1)
    text = F.normalize(image + torch.randn(n, WIDTH, generator=g), dim=1)
    emb = PairEmbeddings(image, text, torch.tensor(10.0), torch.tensor(-10.0))
    return emb.to(device)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _scores(mode: str, n: int, device: str):
    learner, reference = _embeddings(n, 0, device), _embeddings(n, 1, device)
    if mode == "dense":
        return DensePairScores.from_embeddings("learnability", learner=learner, reference=reference)
    return EmbeddingPairScores("learnability", learner=learner, reference=reference)


def _forward_seconds(width: float, big_b: int, device: str, repeats: int) -> tuple[float, float]:
    """Median seconds of a no-grad two-tower forward over ``big_b`` pairs, and FLOPs per pair."""
    model = TwoTower(106, embed_dim=WIDTH, width=width).to(device).eval()
    images = torch.randn(big_b, 1, 28, 28, device=device)
    tokens = torch.randint(1, 106, (big_b, 24), device=device)

    def forward():
        with torch.no_grad():
            model((images, tokens))

    with torch.no_grad():
        _, flops = count_flops(model, (images[:64], tokens[:64]))
    return _median_seconds(forward, device, repeats), flops / 64


def overhead(device: str, repeats: int) -> dict:
    big_b, b = 4096, 819
    g = torch.Generator(device=device).manual_seed(0)
    row: dict = {"B": big_b, "b": b}
    for mode in ("matrix-free", "dense"):
        scores = _scores(mode, big_b, device)
        row[f"{mode}_s"] = _median_seconds(
            lambda s=scores: joint_sample(s, b, chunks=16, generator=g), device, repeats
        )
    free = _scores("matrix-free", big_b, device)
    _, row["sampler_flops"] = count_flops(lambda: joint_sample(free, b, chunks=16, generator=g))
    row["dense_build_s"] = _median_seconds(lambda: _scores("dense", big_b, device), device, repeats)
    row["forwards"] = {w: _forward_seconds(w, big_b, device, repeats) for w in LEARNER_WIDTHS}
    return row


def one_case(mode: str, n: int, device: str) -> dict:
    """Run in a child process: time one selection and report the peak memory."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    g = torch.Generator(device=device).manual_seed(0)
    learner, reference = _embeddings(n, 0, device), _embeddings(n, 1, device)
    joint_sample(_scores(mode, 256, device), 51, chunks=16, generator=g)  # warm-up, small
    _sync(device)
    start = time.perf_counter()  # from the embeddings: S (dense: built here) and the draw
    if mode == "dense":
        scores = DensePairScores.from_embeddings(
            "learnability", learner=learner, reference=reference
        )
    else:
        scores = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    picks = joint_sample(scores, n // 5, chunks=16, generator=g)
    _sync(device)
    seconds = time.perf_counter() - start
    assert picks.unique().numel() == n // 5
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2**10
    )
    return {"mode": mode, "B": n, "b": n // 5, "seconds": seconds, "peak_MiB": peak}


def memory(device: str) -> list[dict]:
    rows = []
    budget = 20 * 2**30 if device == "cpu" else torch.cuda.get_device_properties(0).total_memory
    for n in (16384, 65536):
        for mode in ("matrix-free", "dense"):
            if mode == "dense" and 3 * 4 * n * n > 0.8 * budget:
                rows.append({"mode": mode, "B": n, "b": n // 5, "seconds": None, "peak_MiB": None})
                continue
            cmd = [sys.executable, __file__, "--case", mode, str(n), "--device", device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--case", nargs=2, metavar=("MODE", "B"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case[0], int(args.case[1]), args.device)))
        return
    row = overhead(args.device, args.repeats)
    print(f"threads: {torch.get_num_threads()}, device: {args.device}")
    print(
        f"B={row['B']} b={row['b']} 16 chunks, embeddings of width {WIDTH}: the sampler takes "
        f"{row['matrix-free_s'] * 1e3:.1f} ms matrix-free, {row['dense_s'] * 1e3:.1f} ms dense "
        f"(+{row['dense_build_s'] * 1e3:.1f} ms to build S); {row['sampler_flops'] / 1e9:.2f} GFLOP"
    )
    print("\n| learner | FLOPs per pair | scoring forward (ms) | sampler / forward, time | FLOPs |")
    print("|---|---|---|---|---|")
    for width, (seconds, flops) in row["forwards"].items():
        print(
            f"| two-tower ×{width:g} | {flops / 1e6:.2f} M | {seconds * 1e3:.1f} | "
            f"{row['matrix-free_s'] / seconds:.1%} | {row['sampler_flops'] / (flops * row['B']):.1%} |"
        )
    print("\n| mode | B | b | seconds | peak memory (MiB) |\n|---|---|---|---|---|")
    for r in memory(args.device):
        secs = "does not fit" if r["seconds"] is None else f"{r['seconds']:.2f}"
        peak = "–" if r["peak_MiB"] is None else f"{r['peak_MiB']:.0f}"
        print(f"| {r['mode']} | {r['B']} | {r['b']} | {secs} | {peak} |")


if __name__ == "__main__":
    main()
