"""JEST in a plain PyTorch loop: learner and reference embeddings of a super-batch in, indices out.

Fashion-MNIST image–caption pairs (captions from WordNet), half of them mismatched. A reference
two-tower model is trained on a small clean curated set and its embeddings of every pool pair are
cached by id. The learner draws super-batches of B = 5·b pairs through an ordinary DataLoader, and
JEST picks b of them jointly (16 chunks, each conditional on the chunks before, matrix-free), then
trains on them with the sigmoid (SigLIP) loss. Prints zero-shot test accuracy and the share of
mismatched pairs it trained on (0.5 for uniform sampling).

    python examples/jest_loop.py --steps 1000
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, TensorDataset

from siftdata.core.joint_sampling import joint_sample
from siftdata.core.pairwise import EmbeddingPairScores, per_example_sigmoid_loss
from siftdata.data.pairs import build_pairs
from siftdata.models import TwoTower
from siftdata.reference.embeddings import ReferenceEmbeddings, embed_pairs
from siftdata.reference.pair_training import train_two_tower
from siftdata.training.pair_eval import PairEvaluator


def _model(vocab_size: int, seed: int) -> TwoTower:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TwoTower(vocab_size)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pool-size", type=int, default=50_000)
    p.add_argument("--reference-steps", type=int, default=2000)
    args = p.parse_args(argv)
    b = args.batch_size
    d = build_pairs(captions="fine", mismatch=0.5, pool_size=args.pool_size, curated_size=5000)

    # the reference: trained once on clean pairs, its embeddings cached by example id
    reference_model = _model(len(d.vocabulary), seed=1)
    train_two_tower(reference_model, d.curated_images, d.curated_tokens, steps=args.reference_steps)
    ids = torch.arange(len(d.pool_labels))
    reference = ReferenceEmbeddings(ids, embed_pairs(reference_model, d.pool_images, d.pool_tokens))

    model = _model(len(d.vocabulary), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    pool = TensorDataset(ids, d.pool_images, d.pool_tokens)
    loader = DataLoader(pool, batch_size=5 * b, shuffle=True, drop_last=True)
    generator = torch.Generator().manual_seed(0)  # the sampler's own randomness
    step, mismatched = 0, 0
    while step < args.steps:
        for ids_, images, tokens in loader:
            with torch.no_grad():
                learner = model((images, tokens))  # PairEmbeddings of the super-batch
            scores = EmbeddingPairScores(
                "learnability", learner=learner, reference=reference.lookup(ids_)
            )
            keep = joint_sample(scores, b, chunks=16, generator=generator)  # no B×B matrix
            loss = per_example_sigmoid_loss(model((images[keep], tokens[keep]))).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mismatched += int(d.pool_mismatched[ids_[keep]].sum())
            step += 1
            if step == args.steps:
                break
    evaluator = PairEvaluator(d.test_images, d.test_tokens, d.test_labels, d.prompt_tokens)
    accuracy = evaluator(model)["test_acc"]
    share = mismatched / (step * b)
    print(f"zero-shot test accuracy {accuracy:.4f}; mismatched share of trained pairs {share:.3f}")
    return accuracy, share


if __name__ == "__main__":
    main()
