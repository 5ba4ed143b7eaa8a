"""The cross-run metrics library against the engine's own session summaries.

Intervals must contain their estimate, narrow as sessions accumulate and repeat exactly for a seed, so a
restarted aggregator reproduces what it published. Cell metrics must equal what anyone recomputes by hand from
the summaries. A binding price cap must show up as a paired effect: prices down with an interval entirely below
zero, consumer surplus up. Runs are small Calvano baselines (about 0.1 s a session) shared across tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from algocomp.aggregate import bootstrap_ci, cell_metrics, paired_effects
from algocomp.engine.experiment import run_experiment
from algocomp.scenarios import apply_overrides, load_scenario

CAP = "regulation.price_cap={basis: absolute, value: 1.75}"


def baseline(*overrides: str):
    return apply_overrides(load_scenario("calvano-2020-baseline"), list(overrides))


@pytest.fixture(scope="module")
def control() -> list[dict[str, Any]]:
    """The unregulated cell: 12 baseline sessions."""
    return run_experiment(baseline("sessions=12"), workers=1).session_summaries


@pytest.fixture(scope="module")
def capped() -> list[dict[str, Any]]:
    """The same seed and session count under a binding price cap (Nash 1.47 < 1.75 < monopoly 1.92)."""
    return run_experiment(baseline("sessions=12", CAP), workers=1).session_summaries


def _defined(sessions: list[dict[str, Any]], key: str) -> list[float]:
    return [s[key] for s in sessions if s.get(key) is not None]


# ------------------------------------------------------------------------------------------- bootstrap_ci


def test_ci_contains_the_mean(control):
    gains = _defined(control, "profit_gain")
    estimate, low, high = bootstrap_ci(gains)
    assert estimate == pytest.approx(np.mean(gains))
    assert low < estimate < high
    estimate, low, high = bootstrap_ci(gains, np.median)
    assert estimate == pytest.approx(np.median(gains))
    assert low <= estimate <= high


def test_ci_shrinks_with_more_sessions():
    rng = np.random.default_rng(7)
    few = rng.normal(0.8, 0.1, size=8)
    many = rng.normal(0.8, 0.1, size=40)
    _, low_few, high_few = bootstrap_ci(few)
    _, low_many, high_many = bootstrap_ci(many)
    # The width scales like 1/sqrt(n): five times the sessions should give well under 70% of the width.
    assert (high_many - low_many) < 0.7 * (high_few - low_few)


def test_bootstrap_is_deterministic_for_a_seed(control):
    gains = _defined(control, "profit_gain")
    assert bootstrap_ci(gains, seed=3) == bootstrap_ci(gains, seed=3)
    assert bootstrap_ci(gains, seed=3) != bootstrap_ci(gains, seed=4)
    assert cell_metrics(control, seed=5) == cell_metrics(control, seed=5)


def test_bootstrap_ignores_undefined_values_and_needs_two():
    assert bootstrap_ci([None, float("nan")]) == (None, None, None)
    assert bootstrap_ci([0.4, None, float("nan")]) == (0.4, None, None)
    assert bootstrap_ci([0.4, None, 0.6, float("nan")], resamples=500) == bootstrap_ci([0.4, 0.6], resamples=500)
    # Large inputs are resampled in blocks; the result is still an interval around the estimate.
    values = np.random.default_rng(1).normal(size=5000)
    estimate, low, high = bootstrap_ci(values, resamples=1000)
    assert low < estimate < high
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], level=1.5)


# ------------------------------------------------------------------------------------------- cell_metrics


def test_cell_metrics_equal_values_recomputed_from_the_summaries(control):
    m = cell_metrics(control)
    gains = np.array(_defined(control, "profit_gain"))
    assert m["sessions"] == len(control) == 12
    assert m["profit_gain_mean"] == pytest.approx(gains.mean())
    assert m["profit_gain_median"] == pytest.approx(np.median(gains))
    assert m["share_profit_gain_above_half"] == pytest.approx(np.mean(gains > 0.5))
    assert m["price_index_mean"] == pytest.approx(np.mean(_defined(control, "price_index")))
    assert m["mean_price"] == pytest.approx(np.mean(_defined(control, "mean_price")))
    assert m["consumer_surplus_loss_mean"] == pytest.approx(np.mean(_defined(control, "consumer_surplus_loss")))
    assert m["consumer_surplus_loss_index_mean"] == pytest.approx(
        np.mean(_defined(control, "consumer_surplus_loss_index"))
    )
    assert m["total_welfare_mean"] == pytest.approx(np.mean(_defined(control, "total_welfare")))
    assert m["convergence_rate"] == pytest.approx(sum(s["converged"] for s in control) / len(control))
    converged = [s["convergence_period"] for s in control if s["converged"]]
    assert m["convergence_period_mean"] == pytest.approx(np.mean(converged))
    assert m["punishment_rate"] == pytest.approx(np.mean([s["ir_punishment"] for s in control]))
    punished = [s["ir_punishment_length"] for s in control if s["ir_punishment"]]
    assert m["punishment_length_mean"] == (pytest.approx(np.mean(punished)) if punished else None)
    focal = sum(s["cycle_label"] == "focal" for s in control) / len(control)
    assert m["focal_share"] == pytest.approx(focal)
    assert m["edgeworth_share"] == pytest.approx(1 - focal)
    comovement = _defined(control, "comovement")
    assert m["comovement_mean"] == (pytest.approx(np.mean(comovement)) if comovement else None)
    for name in ("profit_gain_mean", "profit_gain_median", "consumer_surplus_loss_mean"):
        assert m[f"{name}_low"] <= m[name] <= m[f"{name}_high"], name
    # The Calvano baseline colludes: most sessions converge with high profit gains and a surplus loss.
    assert m["convergence_rate"] == 1.0
    assert m["share_profit_gain_above_half"] > 0.5
    assert m["consumer_surplus_loss_mean"] > 0


def test_cell_metrics_are_json_ready(control):
    import json

    m = cell_metrics(control)
    assert json.loads(json.dumps(m, allow_nan=False)) == m
    assert all(v is None or isinstance(v, (int, float)) for v in m.values())
    empty = cell_metrics([])
    assert empty["sessions"] == 0
    assert all(v is None for k, v in empty.items() if k != "sessions")


# ----------------------------------------------------------------------------------------- paired_effects


def test_binding_price_cap_lowers_prices_and_raises_consumer_surplus(capped, control):
    effects = paired_effects(capped, control)
    assert set(effects) == {"profit_gain", "mean_price", "consumer_surplus"}
    price = effects["mean_price"]
    assert price["pairs"] == 12
    assert price["effect"] < 0
    assert price["low"] <= price["effect"] <= price["high"] < 0, "the interval must lie entirely below zero"
    surplus = effects["consumer_surplus"]
    assert surplus["effect"] > 0
    assert surplus["low"] > 0
    # The effect is the mean of the differences of sessions with the same seed, computed by hand.
    control_by_seed = {s["seed"]: s for s in control}
    diffs = [s["mean_price"] - control_by_seed[s["seed"]]["mean_price"] for s in capped]
    assert price["effect"] == pytest.approx(np.mean(diffs))
    assert paired_effects(capped, control) == effects


def test_pairing_uses_only_matching_seeds(capped, control):
    effects = paired_effects(capped[:5], control, keys=("mean_price",))
    assert effects["mean_price"]["pairs"] == 5


def test_no_matching_seeds_is_an_error(capped, control):
    strangers = [{**s, "seed": f"other-{s['seed']}"} for s in control]
    with pytest.raises(ValueError, match="no session seeds match"):
        paired_effects(capped, strangers)
    with pytest.raises(ValueError, match="repeat seed"):
        paired_effects(capped, control + control[:1])


# ------------------------------------------------------------------------------------------- sweep cells
# algocomp.aggregate.grid: a sweep's cells from their sessions alone (no database, no S3), as the API and the
# aggregator compute them.


def test_sweep_cells_pair_each_regulated_cell_with_its_unregulated_control(capped, control):
    from algocomp.aggregate.grid import metrics_csv, sweep_cells

    grid = {"agents.alpha": [0.15], "regulation.price_cap": [None, {"basis": "absolute", "value": 1.75}]}
    cells = sweep_cells(grid, {0: control, 1: capped}, runs={0: 1, 1: 2}, runs_succeeded={0: 1, 1: 1})
    assert [cell["index"] for cell in cells] == [0, 1]
    assert cells[1]["overrides"] == ["agents.alpha=0.15", 'regulation.price_cap={"basis": "absolute", "value": 1.75}']
    assert (cells[1]["runs"], cells[1]["runs_succeeded"]) == (2, 1)
    assert cells[0]["regulation_effect"] is None  # the control itself
    effect = cells[1]["regulation_effect"]
    assert effect["control_cell"] == 0
    assert effect["effects"]["mean_price"]["effect"] == pytest.approx(
        paired_effects(capped, control)["mean_price"]["effect"]
    )
    assert cells[0]["metrics"]["profit_gain_mean"] == pytest.approx(cell_metrics(control)["profit_gain_mean"])
    header, *rows = metrics_csv(grid, cells).splitlines()
    assert header.startswith("cell,overrides,agents.alpha,regulation.price_cap,runs,runs_succeeded,")
    assert len(rows) == 2 and "effect_mean_price" in header


def test_sweep_cells_without_sessions_or_control_say_why():
    from algocomp.aggregate.grid import sweep_cells

    cells = sweep_cells({"regulation.price_cap": [{"basis": "absolute", "value": 1.75}]}, {})
    assert cells[0]["metrics"] is None and cells[0]["runs"] == 0
    assert cells[0]["regulation_effect"]["control_cell"] is None
    assert "no unregulated" in cells[0]["regulation_effect"]["reason"]


def test_related_cells_are_the_cell_and_those_compared_with_it():
    from algocomp.aggregate.grid import related_cells

    cap = {"basis": "absolute", "value": 1.75}
    plain = {"agents.alpha": [0.1, 0.15, 0.2], "agents.beta": [1e-5, 2e-5]}
    assert [related_cells(plain, index) for index in range(6)] == [{0}, {1}, {2}, {3}, {4}, {5}]
    # alpha x (no cap, cap, cap 2): cells 0-2 are alpha 0.1, 3-5 alpha 0.2; a control is compared with its regulated
    # cells and each regulated cell with its control, so the three of an alpha hang together
    regulated = {"agents.alpha": [0.1, 0.2], "regulation.price_cap": [None, cap, {**cap, "value": 1.8}]}
    assert [related_cells(regulated, index) for index in range(6)] == [{0, 1, 2}] * 3 + [{3, 4, 5}] * 3
    # two regulation paths: every combination of them at the same other coordinates
    two = {
        "agents.alpha": [0.1, 0.2],
        "regulation.price_cap": [None, cap],
        "regulation.hide_rival_prices": [None, True],
    }
    assert related_cells(two, 5) == {4, 5, 6, 7}
