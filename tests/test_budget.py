"""Budget sweep: the compute-multiplier interpolation and the sweep summary."""

import math

import pytest

from siftdata.bench.budget import compute_multiplier, summarize_budget_sweep

BASE = 400


def sweep_run(method, seed, budget, final, *, fps=10, ref=0):
    """Records at steps 0, half and full of ``budget · BASE`` steps, ending at ``final``."""
    total = round(budget * BASE)
    out = []
    for step, acc in ((0, 0.1), (total // 2, final - 0.1), (total, final)):
        out.append(
            {
                "method": method,
                "seed": seed,
                "budget": budget,
                "steps_budget": total,
                "step": step,
                "test_acc": acc,
                "flops": step * fps,
                "flops_end_to_end": step * fps + ref,
                "seconds": step * 0.01,
                "seconds_by_phase": {"train": step * 0.01},
                "mislabeled_selected": None,
            }
        )
    return out


def test_log_cost_interpolation():
    costs, accs = [100, 200, 400], [0.6, 0.7, 0.8]
    value, bound = compute_multiplier(costs, accs, 0.75, 100)
    assert bound == "=" and value == pytest.approx(math.sqrt(200 * 400) / 100)  # not 300/100
    assert compute_multiplier(costs, accs, 0.7, 50) == (4.0, "=")  # exactly on a point
    value, _ = compute_multiplier(costs, accs, 0.625, 100)  # a quarter of the way from 100 to 200
    assert value == pytest.approx(2**0.25)


def test_running_max_makes_uniforms_curve_monotone():
    costs, accs = [800, 200, 400, 100], [0.9, 0.8, 0.7, 0.6]  # unsorted; 0.7 at 400 is a dip
    # envelope: 100 -> .6, 200 -> .8, 400 -> .8, 800 -> .9
    assert compute_multiplier(costs, accs, 0.75, 1)[0] == pytest.approx(100 * 2**0.75)
    assert compute_multiplier(costs, accs, 0.8, 1) == (200, "=")  # the cheapest budget reaching it
    # between 400 (.8 on the envelope) and 800: halfway in accuracy, so sqrt(400·800)
    assert compute_multiplier(costs, accs, 0.85, 1)[0] == pytest.approx(math.sqrt(400 * 800))


def test_bounds_outside_uniforms_curve():
    costs, accs = [100, 200, 400], [0.6, 0.7, 0.8]
    assert compute_multiplier(costs, accs, 0.9, 200) == (2.0, ">=")  # above uniform's best
    assert compute_multiplier(costs, accs, 0.6, 400) == (0.25, "<=")  # at its smallest budget
    assert compute_multiplier(costs, accs, 0.5, 50) == (2.0, "<=")
    assert compute_multiplier(costs, accs, 0.8, 400) == (1.0, "=")  # its best point is reached


def test_multiplier_rejects_bad_curves():
    with pytest.raises(ValueError, match="equal length"):
        compute_multiplier([1, 2], [0.5], 0.5, 1)
    with pytest.raises(ValueError, match="> 0"):
        compute_multiplier([0, 2], [0.5, 0.6], 0.55, 1)
    with pytest.raises(ValueError, match="> 0"):
        compute_multiplier([1, 2], [0.5, 0.6], 0.55, 0)


def _sweep_records():
    recs = []
    uniform = {0.25: (0.60, 0.62), 0.5: (0.70, 0.70), 1.0: (0.78, 0.80), 2.0: (0.84, 0.84)}
    for budget, finals in uniform.items():
        for seed, final in enumerate(finals):
            recs += sweep_run("uniform", seed, budget, final)
    method = {0.25: 0.70, 0.5: 0.90, 1.0: 0.815}
    for budget, final in method.items():
        for seed in (0, 1):
            recs += sweep_run("m", seed, budget, final, fps=20, ref=6000)
    return recs


def test_sweep_summary_rows_and_multipliers():
    s = summarize_budget_sweep(_sweep_records())
    assert s["base_steps"] == BASE and s["budgets"] == [0.25, 0.5, 1.0, 2.0]
    assert list(s["methods"]) == ["uniform", "m"]
    uni = s["methods"]["uniform"]
    assert [r["budget"] for r in uni] == [0.25, 0.5, 1.0, 2.0]
    assert uni[0]["final"] == pytest.approx(0.61) and uni[0]["final_spread"] == [0.6, 0.62]
    assert [r["steps"] for r in uni] == [100, 200, 400, 800]
    assert [r["flops"] for r in uni] == [1000, 2000, 4000, 8000]
    m = {r["budget"]: r["multiplier"] for r in s["methods"]["m"]}
    # 0.25: final .70 = uniform at 200 steps / 2000 FLOPs; m costs 100 steps, 2000 FLOPs, 8000 e2e
    assert m[0.25]["steps"] == {"value": 2.0, "bound": "="}
    assert m[0.25]["flops"] == {"value": 1.0, "bound": "="}
    assert m[0.25]["flops_end_to_end"]["value"] == pytest.approx(0.25)
    # 0.5: final .90 beats uniform's best (.84 at 800 steps): lower bounds
    assert m[0.5]["steps"] == {"value": 4.0, "bound": ">="}
    assert m[0.5]["flops_end_to_end"] == {"value": 0.8, "bound": ">="}  # 8000 / (4000 + 6000)
    # 1.0: final .815, halfway between .79 (400 steps) and .84 (800): sqrt(400·800) / 400
    assert m[1.0]["steps"]["value"] == pytest.approx(math.sqrt(2))
    assert m[1.0]["flops"]["value"] == pytest.approx(math.sqrt(4000 * 8000) / 8000)


def test_uniform_against_itself_is_one_where_its_curve_increases():
    uni = summarize_budget_sweep(_sweep_records(), methods=["uniform"])["methods"]["uniform"]
    for row in uni:
        for cost in ("steps", "flops", "flops_end_to_end"):
            assert row["multiplier"][cost]["value"] == pytest.approx(1.0)
    assert [r["multiplier"]["steps"]["bound"] for r in uni] == ["<=", "=", "=", "="]


def test_sweep_needs_uniform_and_one_base():
    with pytest.raises(ValueError, match="uniform"):
        summarize_budget_sweep(sweep_run("m", 0, 1.0, 0.8))
    bad = sweep_run("uniform", 0, 1.0, 0.8) + sweep_run("uniform", 0, 0.5, 0.7)
    bad[-1]["steps_budget"] = 300  # 300 / 0.5 = 600 != 400
    bad[-2]["steps_budget"] = bad[-3]["steps_budget"] = 300
    with pytest.raises(ValueError, match="base step count"):
        summarize_budget_sweep(bad)


def test_base_steps_tag_survives_rounding_of_small_budgets():
    """30 steps × 0.25 rounds to 8 (not 7.5): 8 / 0.25 = 32, yet the base is 30."""
    records = []
    for budget in (0.25, 1.0):
        run = sweep_run("uniform", 0, budget, 0.6 + budget / 10)
        for r in run:
            r["steps_budget"], r["base_steps"] = round(budget * 30), 30
        records += run
    assert summarize_budget_sweep(records)["base_steps"] == 30


def test_lower_bound_uses_uniforms_best_budget_not_its_largest():
    """On noisy labels a longer uniform run can end worse: its largest budget bounds nothing."""
    costs, accs = [100, 200, 400, 800], [0.6, 0.7, 0.8, 0.65]
    assert compute_multiplier(costs, accs, 0.85, 100) == (4.0, ">=")  # 400 / 100, not 800 / 100
    costs, accs = [100, 200, 400, 800], [0.6, 0.8, 0.8, 0.7]  # best reached first at 200
    assert compute_multiplier(costs, accs, 0.81, 100) == (2.0, ">=")


def test_rows_carry_the_margin_over_uniforms_best():
    s = summarize_budget_sweep(_sweep_records())
    best = max(r["final"] for r in s["methods"]["uniform"])
    for row in s["methods"]["m"]:
        assert row["vs_uniform_best"] == pytest.approx(row["final"] - best)


def test_the_uniform_warm_up_is_checked_against_the_selecting_methods_budgets_only():
    from siftdata.bench.noisy_fmnist import NoisyFmnistConfig
    from siftdata.bench.sweep import check_options
    from siftdata.online import SelectionConfig
    from siftdata.training.loop import TrainConfig

    scenario, train_cfg = NoisyFmnistConfig(), TrainConfig(steps=1000, schedule="cosine")
    methods, selection = ("uniform", "learnability"), SelectionConfig(uniform_steps=200)
    # uniform's own 100-step budget is no reason to refuse learnability's 200-step warm-up
    check_options(
        scenario, train_cfg, methods, (0.5, 1.0, 0.1), selection, selecting_budgets=(0.5, 1.0)
    )
    with pytest.raises(ValueError, match=r"uniform_steps \(200\) must be below steps \(100"):
        check_options(
            scenario, train_cfg, methods, (0.1, 1.0), selection, selecting_budgets=(0.1, 1.0)
        )
