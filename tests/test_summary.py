"""Benchmark summary: target rule, costs to target, speedups, aggregation over seeds."""

import pytest

from siftdata.bench.summary import moving_average_best, summarize


def _recs(method, seed, accs, flops_per_step=10.0, secs_per_step=1.0):
    out = []
    for i, a in enumerate(accs):
        step = i * 100
        out.append(
            {
                "method": method,
                "seed": seed,
                "step": step,
                "test_acc": a,
                "flops": step * flops_per_step,
                "seconds": step * secs_per_step,
                "seconds_by_phase": {
                    "score": step * 0.49,
                    "train": step * 0.5,
                    "select": step * 0.01,
                },
                "mislabeled_selected": 0.4 if step else None,
            }
        )
    return out


def test_moving_average_best():
    assert moving_average_best([0.1, 0.5, 0.6, 0.7, 0.2]) == pytest.approx(0.6)
    assert moving_average_best([0.3, 0.4]) == 0.4


def test_summary_speedups_and_never_reached():
    uni = [0.1, 0.5, 0.7, 0.8, 0.82, 0.84, 0.83]  # target = (0.82+0.84+0.83)/3 = 0.83
    fast = [0.1, 0.84, 0.85, 0.85, 0.85, 0.85, 0.85]
    slow = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    recs = (
        _recs("uniform", 0, uni)
        + _recs("fast", 0, fast, flops_per_step=40)
        + _recs("slow", 0, slow)
    )
    s = summarize(recs)
    assert s["target"]["value"] == pytest.approx(0.83)
    f = s["methods"]["fast"]
    assert f["steps_to_target"] == 100 and s["methods"]["uniform"]["steps_to_target"] == 500
    assert f["speedup_steps"] == pytest.approx(5.0)
    assert f["speedup_flops"] == pytest.approx(500 * 10 / (100 * 40))
    # 98% of 0.83 = 0.8134: uniform reaches it at step 400 (0.82)
    assert f["speedup_steps_98"] == pytest.approx(4.0)
    assert (
        s["methods"]["slow"]["steps_to_target"] is None
        and s["methods"]["slow"]["speedup_steps"] is None
    )
    assert f["selection_overhead"] == pytest.approx(0.01)  # of score + select + train
    assert f["selection_vs_train"] == pytest.approx(0.02)
    assert f["seconds_per_step"] == pytest.approx(1.0)


def test_aggregate_is_none_if_any_seed_misses():
    recs = _recs("uniform", 0, [0.1, 0.8, 0.8, 0.8]) + _recs("uniform", 1, [0.1, 0.8, 0.8, 0.8])
    recs += _recs("m", 0, [0.1, 0.9, 0.9, 0.9]) + _recs("m", 1, [0.1, 0.2, 0.2, 0.2])
    m = summarize(recs)["methods"]["m"]
    assert m["steps_to_target"] is None and m["seeds_reaching_target"] == 1
    assert m["best_spread"] == [0.2, 0.9] and len(m["per_seed"]) == 2


def test_uniform_required():
    with pytest.raises(ValueError, match="uniform"):
        summarize(_recs("m", 0, [0.1, 0.2]))
