"""Benchmark summary: moving averages, the reach rule, ratio-of-means speedups, target levels."""

import json

import pytest

from siftdata.bench.summary import (
    REL_TOL,
    first_reaching,
    moving_averages,
    summarize,
)

# Per-step seconds by phase: eval and the reference are not part of a learner step.
PHASES = {"score": 0.4, "select": 0.1, "remember": 0.1, "train": 0.4, "eval": 0.5, "reference": 0.3}


def run(method, seed, accs, *, budget=1.0, every=100, fps=10, ref=0, sps=1.0, mislabeled=None):
    """Records of one run in the new format: evaluations every ``every`` steps from step 0."""
    out = []
    for i, a in enumerate(accs):
        step = i * every
        flops = step * fps
        out.append(
            {
                "method": method,
                "seed": seed,
                "budget": budget,
                "steps_budget": every * (len(accs) - 1),
                "step": step,
                "examples_trained": 64 * step,
                "test_acc": a,
                "test_loss": 1.0 - a,
                "train_loss": 1.0,
                "lr": 1e-3,
                "flops": flops,
                "flops_end_to_end": flops + ref,
                "seconds": step * sps,
                "seconds_end_to_end": step * sps,
                "flops_by_phase": {"train": flops},
                "seconds_by_phase": {p: step * sps * share for p, share in PHASES.items()},
                "mislabeled_selected": mislabeled if step else None,
                "selection_stats": {},
            }
        )
    return out


UNIFORM = [0.1, 0.2, 0.3, 0.4, 0.8, 0.8, 0.8, 0.8]  # moving average first 0.8 at step 600


def test_moving_averages_trailing_window_and_short_runs():
    assert moving_averages([0.1, 0.5, 0.6, 0.7, 0.2]) == pytest.approx([0.4, 0.6, 0.5])
    assert moving_averages([0.3, 0.4]) == pytest.approx([0.35])  # fewer than 3: what there is
    assert moving_averages([0.3]) == [0.3]
    with pytest.raises(ValueError):
        moving_averages([])


def test_reach_uses_the_methods_own_moving_average():
    lucky = [0.1, 0.95, 0.3, 0.3, 0.85, 0.85, 0.85, 0.85]  # one lucky evaluation at step 100
    s = summarize(run("uniform", 0, UNIFORM) + run("lucky", 0, lucky))
    assert s["target"]["value"] == pytest.approx(0.8)
    steps = s["methods"]["lucky"]["to_target"]["100"]["steps"]
    # windows: .45, .517, .483, .667, .85 -> first >= 0.8 ends at step 600, not 100
    assert steps["per_seed"] == [600]
    assert s["methods"]["uniform"]["to_target"]["100"]["steps"]["per_seed"] == [600]
    assert steps["speedup"] == pytest.approx(1.0)


def test_first_reaching_tolerance_is_tiny_and_relative():
    recs = run("uniform", 0, [0.1, 0.7, 0.7, 0.7])
    ma = moving_averages([0.1, 0.7, 0.7, 0.7])[-1]
    assert ma != 0.7  # the plateau's mean rounds below its values
    assert first_reaching(recs, ma * (1 + REL_TOL / 10))["step"] == 300
    assert first_reaching(recs, ma * (1 + 1e-6)) is None
    assert first_reaching(recs, 0.7)["step"] == 300  # the tolerance absorbs the rounding
    assert first_reaching(recs, 0.6)["step"] == 300  # windows .5, .7: not the raw 0.7 at 100


@pytest.mark.parametrize("plateau", [0.7, 0.8, 0.1, 1 / 3, 0.86])
def test_uniform_always_reaches_its_own_target(plateau):
    accs = [0.05, plateau, plateau, plateau, plateau * 0.5, plateau, plateau, plateau]
    recs = run("uniform", 0, accs) + run("uniform", 1, list(reversed(accs[1:])) + [plateau])
    uni = summarize(recs)["methods"]["uniform"]
    for level in ("100", "98", "95"):
        for cost in ("steps", "flops", "flops_end_to_end", "seconds"):
            assert uni["to_target"][level][cost]["speedup"] == 1.0
            assert uni["to_target"][level][cost]["per_seed_speedup"] == [1.0, 1.0]
        assert uni["to_target"][level]["seeds_reaching"] == 2


def _two_seeds(slow_seed1=False):
    m1 = [0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2] if slow_seed1 else [0.1, 0.1] + [0.9] * 6
    return (
        run("uniform", 0, UNIFORM)
        + run("uniform", 1, UNIFORM)
        + run("m", 0, [0.1] + [0.9] * 7, fps=40, ref=50_000)  # reaches at step 300
        + run("m", 1, m1, fps=40, ref=50_000)  # reaches at step 400 (or never)
    )


def test_speedup_is_the_ratio_of_mean_costs_with_per_seed_spread():
    m = summarize(_two_seeds())["methods"]["m"]["to_target"]["100"]
    steps = m["steps"]
    assert steps["per_seed"] == [300, 400] and steps["mean"] == 350
    assert steps["speedup"] == pytest.approx(600 / 350)  # not the mean of ratios (1.75)
    assert steps["per_seed_speedup"] == pytest.approx([2.0, 1.5])
    assert steps["speedup_spread"] == pytest.approx([1.5, 2.0])
    # amortised FLOPs: uniform 600·10 per seed; m 300·40 and 400·40
    assert m["flops"]["speedup"] == pytest.approx(6000 / 14000)
    assert m["flops"]["speedup_spread"] == pytest.approx([0.375, 0.5])
    # end to end adds m's reference training (50k); uniform's equal its amortised FLOPs
    assert m["flops_end_to_end"]["per_seed"] == [62_000, 66_000]
    assert m["flops_end_to_end"]["speedup"] == pytest.approx(6000 / 64_000)
    assert m["seconds"]["speedup"] == pytest.approx(600 / 350)
    assert m["seeds_reaching"] == 2


def test_never_when_any_seed_misses():
    m = summarize(_two_seeds(slow_seed1=True))["methods"]["m"]
    steps = m["to_target"]["100"]["steps"]
    assert steps["mean"] is None and steps["speedup"] is None and steps["speedup_spread"] is None
    assert steps["per_seed"] == [300, None]
    assert steps["per_seed_speedup"] == pytest.approx([2.0, None])
    assert m["to_target"]["100"]["seeds_reaching"] == 1
    assert m["best_spread"] == [0.2, 0.9] and m["best"] == pytest.approx(0.55)
    assert m["final_spread"] == [0.2, 0.9]


def test_three_target_levels():
    uni = [0.0, 0.6, 0.9, 0.93, 0.96, 0.99, 0.99, 0.99]  # windows .5 .81 .93 .96 .98 .99
    m = [0.0, 0.95, 0.95, 0.95, 0.975, 0.975, 0.975, 0.975]  # .633 .95 .958 .967 .975 .975
    s = summarize(run("uniform", 0, uni) + run("m", 0, m))
    assert s["target"]["fractions"] == [1.0, 0.98, 0.95]
    u, t = s["methods"]["uniform"]["to_target"], s["methods"]["m"]["to_target"]
    assert [u[k]["steps"]["mean"] for k in ("100", "98", "95")] == [700, 600, 500]
    assert [t[k]["steps"]["mean"] for k in ("100", "98", "95")] == [None, 600, 300]
    assert t["95"]["steps"]["speedup"] == pytest.approx(500 / 300)
    assert t["98"]["steps"]["speedup"] == pytest.approx(1.0)
    assert [t[k]["seeds_reaching"] for k in ("100", "98", "95")] == [0, 1, 1]


def test_target_from_the_largest_budget_every_method_has():
    recs = run("uniform", 0, [0.1, 0.5, 0.5, 0.5], budget=0.5)
    recs += run("uniform", 0, UNIFORM, budget=1.0)
    recs += run("uniform", 0, [0.1, 0.95, 0.95, 0.95], budget=2.0)  # only uniform has 2.0
    recs += run("m", 0, [0.1, 0.9, 0.9, 0.9], budget=0.5) + run("m", 0, [0.1] + [0.9] * 7)
    s = summarize(recs)
    assert s["budget"] == 1.0 and s["target"]["value"] == pytest.approx(0.8)
    assert s["methods"]["m"]["to_target"]["100"]["steps"]["per_seed"] == [300]


def test_phase_figures_and_mislabeled_share():
    s = summarize(run("uniform", 0, UNIFORM, mislabeled=0.4) + run("m", 0, UNIFORM, fps=30))
    u, m = s["methods"]["uniform"], s["methods"]["m"]
    assert u["selection_overhead"] == pytest.approx(0.1)  # select / (score+select+remember+train)
    assert u["selection_vs_train"] == pytest.approx(0.25)
    assert u["seconds_per_step"] == pytest.approx(1.0)
    assert m["flops_per_step"] == pytest.approx(30.0)
    assert u["mislabeled_selected"] == pytest.approx(0.4) and m["mislabeled_selected"] is None
    assert u["final"] == 0.8 and u["seeds"] == [0]


def test_uniform_required_for_every_seed():
    with pytest.raises(ValueError, match="uniform"):
        summarize(run("m", 0, [0.1, 0.2]))
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] have no uniform run"):
        summarize(run("uniform", 0, UNIFORM) + run("m", 1, UNIFORM))


def test_methods_subset_order_and_unknown():
    recs = _two_seeds()
    assert list(summarize(recs)["methods"]) == ["uniform", "m"]
    assert list(summarize(recs, methods=["m", "uniform"])["methods"]) == ["m", "uniform"]
    with pytest.raises(ValueError, match="magic"):
        summarize(recs, methods=["uniform", "magic"])


def test_summary_is_plain_json():
    s = summarize(_two_seeds())
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # no tuples, NaNs or odd types
