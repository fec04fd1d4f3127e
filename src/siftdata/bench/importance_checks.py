"""The ``importance`` scenario's extra figures: per-method costs against uniform from the records,
and checks on one fixed (trained) model.

From the records, per method at the largest budget (means over seeds):

- ``passes_saved``: 1 − training examples (forward + backward) it trained on / uniform's;
- ``acc_at_uniform_seconds``: test accuracy interpolated at uniform's final wall-clock (its final
  accuracy if it finished sooner): the equal wall-clock comparison;
- ``seconds_to_uniform_loss``: wall-clock to reach uniform's final loss on the pool subset, and
  the speedup against uniform's own time;
- for a τ-gated method, τ's trace and its on-share.

On the fixed model (uniform's learner at the end of its base-seed run) and one super-batch of the
pool: the bound's Spearman with the true per-example gradient norm, τ, and the measured variance
of the one-draw gradient estimate under uniform and importance sampling; and for unbiased
learnability, the mean of its weighted loss estimate over many draws next to the super-batch mean.
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import Tensor, nn

from .._seeding import derive_seed
from ..core.grad_norms import importance_sampling_variance, per_example_gradients, spearman
from ..core.scores import grad_norm_bound, learnability, per_example_loss
from ..core.unbiased import variance_reduction_tau
from ..online import SelectionConfig
from ..online.sampled import SoftmaxSampler
from ..online.step import scoring_mode
from ..store import ScoreTable
from .noisy_fmnist import NUM_CLASSES

__all__ = ["importance_summary", "fixed_model_checks"]

_DRAWS = 2000  # draws of the unbiased-learnability estimate on the fixed model


def _mean(values: list) -> float | None:
    return None if not values or any(v is None for v in values) else sum(values) / len(values)


def _runs(records: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """Records of the largest budget per (method, seed), in step order."""
    top = max(r.get("budget", 1.0) for r in records)
    runs: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in records:
        if r.get("budget", 1.0) == top:
            runs[(r["method"], r["seed"])].append(r)
    return runs


def _at_seconds(run: list[dict], seconds: float) -> float:
    """Test accuracy at ``seconds`` of training, linear between evaluations."""
    for before, after in zip(run, run[1:], strict=False):
        if after["seconds"] >= seconds:
            span = after["seconds"] - before["seconds"]
            w = 0.0 if span <= 0 else (seconds - before["seconds"]) / span
            return before["test_acc"] + w * (after["test_acc"] - before["test_acc"])
    return run[-1]["test_acc"]


def _seconds_to_loss(run: list[dict], loss: float) -> float | None:
    for r in run:
        if r.get("pool_loss") is not None and r["pool_loss"] <= loss + 1e-12:
            return r["seconds"]
    return None


def _gate_trace(run: list[dict]) -> dict | None:
    stats = [r.get("selection_stats", {}) for r in run]
    if not any("tau" in s for s in stats):
        return None
    trace = [
        {"step": r["step"], "tau": s.get("tau"), "on": s.get("importance_on")}
        for r, s in zip(run, stats, strict=True)
    ]
    ons = [t["on"] for t in trace if t["on"] is not None]
    return {"trace": trace, "on_share": sum(ons) / len(ons) if ons else None}


def importance_summary(records: list[dict], *, methods: list[str]) -> dict:
    """The per-method figures of the module doc (``None`` where a seed has none)."""
    runs = _runs(records)
    seeds = sorted({s for (m, s) in runs if m == "uniform"})
    out = {}
    for name in methods:
        rows = defaultdict(list)
        for seed in seeds:
            run, base = runs.get((name, seed)), runs[("uniform", seed)]
            if not run:
                continue
            final, base_final = run[-1], base[-1]
            rows["passes_saved"].append(
                1 - final["examples_trained"] / base_final["examples_trained"]
            )
            rows["final_pool_loss"].append(final.get("pool_loss"))
            rows["seconds"].append(final["seconds"])
            rows["acc_at_uniform_seconds"].append(_at_seconds(run, base_final["seconds"]))
            reached = _seconds_to_loss(run, base_final["pool_loss"])
            rows["seconds_to_uniform_loss"].append(reached)
            rows["uniform_seconds_to_its_loss"].append(
                _seconds_to_loss(base, base_final["pool_loss"])
            )
        entry = {k: _mean(v) for k, v in rows.items()}
        mine, theirs = (
            entry.get("seconds_to_uniform_loss"),
            entry.get("uniform_seconds_to_its_loss"),
        )
        entry["loss_time_speedup"] = theirs / mine if mine and theirs else None
        gate = _gate_trace(runs.get((name, seeds[0]), [])) if seeds else None
        if gate is not None:
            entry["gate"] = gate
        out[name] = entry
    return out


def _probe(d: dict, size: int, seed: int, device) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(derive_seed(seed, "fixed-model-probe"))
    positions = torch.randperm(len(d["pool_y"]), generator=g)[:size]
    x = d["pool_x"].index_select(0, positions).to(device)
    return positions.to(device), x, d["pool_y"].index_select(0, positions).to(device)


def fixed_model_checks(
    model: nn.Module,
    d: dict,
    reference: ScoreTable | None,
    *,
    probe_size: int,
    batch_size: int,
    selection: SelectionConfig,
    seed: int,
) -> dict:
    """The fixed-model figures of the module doc, on a super-batch of ``probe_size``."""
    device = next(model.parameters()).device
    positions, x, y = _probe(d, probe_size, seed, device)
    with scoring_mode(model):
        logits = model(x)
    bound = grad_norm_bound(logits, y)
    grads = per_example_gradients(model, per_example_loss, x, y)
    variance = importance_sampling_variance(grads, bound / bound.sum())
    out = {
        "probe_size": probe_size,
        "bound_vs_gradient_spearman": spearman(bound, grads.norm(dim=1)),
        "tau": float(variance_reduction_tau(bound)),
        "tau_squared": float(variance_reduction_tau(bound)) ** 2,
        "variance": variance,
    }
    if reference is not None:
        losses = per_example_loss(logits, y)
        ref_losses = reference.lookup(positions).to(device)
        out["unbiased_learnability"] = _learnability_estimate(
            losses, ref_losses, batch_size, selection, seed
        )
    return out


def _learnability_estimate(losses, ref_losses, k, selection, seed) -> dict:
    """Many draws of unbiased learnability on one super-batch: weighted vs plain mean loss."""
    scores = learnability(losses, ref_losses, learner_loss_cap=selection.cap_for(NUM_CLASSES))
    sampler = SoftmaxSampler(
        temperature_scale=selection.temperature_scale,
        unbiased=True,
        seed=derive_seed(seed, "unbiased-check"),
        device=losses.device,
    )
    weighted, plain = [], []
    for _ in range(_DRAWS):
        sel = sampler.select(scores, k)
        picked = losses.index_select(0, sel.indices)
        weighted.append(float((picked * sel.weights).mean()))
        plain.append(float(picked.mean()))
    w = torch.tensor(weighted, dtype=torch.float64)
    return {
        "draws": _DRAWS,
        "super_batch_mean_loss": float(losses.mean()),
        "weighted_estimate_mean": float(w.mean()),
        "weighted_estimate_stderr": float(w.std()) / math.sqrt(_DRAWS),
        "plain_selected_mean_loss": sum(plain) / len(plain),
    }
