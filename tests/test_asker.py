"""Asker, Fershtman & Pakes in their own environment: a homogeneous good with unit demand up to V = 10, cost 2,
two firms that play greedily from optimistic random initial values (no epsilon exploration), alpha = 0.1.

Sources: AFP (2022), "Artificial Intelligence, Algorithm Design, and Pricing", AEA Papers and Proceedings 112:
452-56, Fig. 1 (delta = 0, 100 prices on [0.01, 10], 100 runs); AFP (2021), NBER working paper w28535 (published
as "The impact of artificial intelligence design on pricing", JEMS 2024), Table 1 (delta = 0, 1,000 runs) and
Fig. 5 / Table 3 (delta = 0.95, last period's prices as the state, 25 prices, 100 runs).

Their published quantiles of the price a run settles on (min / 25th / median / 75th / max):
  delta = 0,    synchronous:  2.03 / 2.13 / 2.13 / 2.13 / 2.13   (Table 1; P&P Fig. 1: all 2.1291)
  delta = 0,    asynchronous: 4.65 / 7.28 / 8.39 / 9.29 / 10     (Table 1; P&P Fig. 1: 5.06 / 7.33 / 8.34 / 9.14 / 10)
  delta = 0.95, synchronous:  5.01 / 5.84 / 6.25 / 6.25 / 8.34   (Table 3)
  delta = 0.95, asynchronous: 8.34 / 9.58 / 10 / 10 / 10         (Table 3)
The grid's static Nash prices are 2.0282 and 2.1291 (100 prices) and 2.09 and 2.51 (25 prices).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.session import new_state
from algocomp.scenarios import apply_overrides, load_scenario

MYOPIC = "asker-2022-unit-demand-synchronous"
PATIENT = "asker-2022-unit-demand-synchronous-delta95"
GRID_NASH_100 = (2.0282, 2.1291)  # AFP 2022 p. 1, to their 4 decimals
GRID_NASH_25 = (2.09125, 2.5075)  # AFP 2021 p. 32 (2.09 and 2.51)
Z95 = 1.959963984540054
SESSIONS_95 = 40  # per rule: about 3.5 minutes for both on two busy cores (sync ~2 s, async ~3 s a session)


def run(preset: str, *overrides: str):
    return run_experiment(apply_overrides(load_scenario(preset), list(overrides)), workers=2)


def settled_prices(result) -> np.ndarray:
    """Each session's price at its rest point: the mean price over its limit cycle, averaged over the firms."""
    return np.array([s["mean_price"] for s in result.session_summaries])


def quantile_interval(values: np.ndarray, q: float) -> tuple[float, float]:
    """A distribution-free 95% interval for the q-quantile: the order statistics at ranks n q -/+ 1.96 sqrt(n q (1-q))
    (normal approximation to the binomial count of sessions below the quantile)."""
    x = np.sort(values)
    n = x.size
    half = Z95 * math.sqrt(n * q * (1 - q))
    low = max(0, int(math.floor(n * q - half)) - 1)
    high = min(n - 1, int(math.ceil(n * q + half)))
    return float(x[low]), float(x[high])


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    half = Z95 * float(values.std(ddof=1)) / math.sqrt(values.size)
    return float(values.mean()) - half, float(values.mean()) + half


# --------------------------------------------------------------------------------------------- fast


def test_uniform_initial_q_is_drawn_per_session_and_other_inits_draw_nothing():
    """q_init uniform: every cell in [low, high), the same for the same seed, different across sessions; a scenario
    without it has no spread, so its sessions draw exactly what they drew before."""
    cs = compile_scenario(load_scenario(PATIENT))
    first, again, other = new_state(cs, 11), new_state(cs, 11), new_state(cs, 12)
    assert first.Q.shape == (2 * 625 * 25,)
    assert first.Q.min() >= 200.0 and first.Q.max() < 210.0
    np.testing.assert_array_equal(first.Q, again.Q)
    assert not np.any(first.Q == other.Q)
    assert abs(first.Q.mean() - 205.0) < 0.1  # 31,250 uniform draws: sd of the mean 0.016
    # The greedy price of each state is the argmax of its drawn row, so the first greedy prices are random too.
    np.testing.assert_array_equal(first.G, first.Q.reshape(2 * 625, 25).argmax(axis=1))
    baseline = compile_scenario(load_scenario("calvano-2020-baseline"))
    np.testing.assert_array_equal(new_state(baseline, 11).Q, baseline.q_init)


def test_unit_demand_tables_and_benchmarks_in_the_engine():
    cs = compile_scenario(load_scenario(MYOPIC))
    grid = cs.grid[0]
    assert grid.size == 100 and grid[0] == 0.01 and grid[-1] == 10.0
    a, b = 40, 70  # firm 0 cheaper: it serves the whole (unit) mass
    np.testing.assert_allclose(cs.profit[a + 100 * b], [grid[a] - 2.0, 0.0])
    np.testing.assert_allclose(cs.profit[b + 100 * b], [(grid[b] - 2.0) / 2] * 2)
    assert cs.consumer_surplus[a + 100 * b] == pytest.approx(10.0 - grid[a])
    np.testing.assert_allclose(cs.benchmarks.nash_price, [GRID_NASH_100[1]] * 2, atol=5e-5)
    np.testing.assert_allclose(cs.benchmarks.monopoly_profit, [4.0, 4.0])


def test_myopic_synchronous_learners_settle_on_a_grid_nash_price_fast():
    """The quick version of the delta = 0 synchronous result (the slow test holds the distributions): 20 sessions,
    every one at a static Nash price of the grid within a few hundred periods."""
    prices = settled_prices(result := run(MYOPIC, "sessions=20"))
    assert np.all(np.isclose(prices, GRID_NASH_100[0], atol=5e-5) | np.isclose(prices, GRID_NASH_100[1], atol=5e-5))
    assert all(s["converged"] and s["periods"] < 5_000 for s in result.session_summaries)


# --------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_asker_delta0_synchronous_competitive_asynchronous_far_above():
    """delta = 0, 1,000 sessions of each rule (about 30 s on two cores): synchronous learners all rest at a grid
    Nash price; asynchronous learners all rest above it, at AFP's distribution."""
    sync = settled_prices(sync_result := run(MYOPIC))
    asyn = settled_prices(run(MYOPIC, "agents.update=asynchronous"))
    assert sync.size == asyn.size == 1000
    # Synchronous: every session at one of the grid's two static equilibria (AFP: 2.13, a few at 2.03), found
    # within a few hundred periods (AFP: about 105-115 iterations); so its mean cannot be above 2.1291.
    at_nash = np.isclose(sync, GRID_NASH_100[0], atol=5e-5) | np.isclose(sync, GRID_NASH_100[1], atol=5e-5)
    assert at_nash.all()
    assert all(s["periods"] - 1_000 < 500 for s in sync_result.session_summaries)  # less the 1,000-period check
    # Asynchronous: every session above the static Nash prices (AFP: 100% of runs), and the gap far beyond
    # sampling error: the lower end of its mean's 95% interval is more than 5 above synchronous's upper end.
    assert np.all(asyn > GRID_NASH_100[1] + 0.05)
    assert mean_interval(asyn)[0] > mean_interval(sync)[1] + 5.0
    # AFP's quantiles (Table 1, 1,000 runs; grid prices to 2 decimals, so compared as the grid prices they round)
    # inside our distribution-free 95% intervals of the same quantiles.
    grid = np.linspace(0.01, 10.0, 100)
    for q, published in ((0.25, 7.28), (0.5, 8.39), (0.75, 9.29)):
        on_grid = grid[np.argmin(np.abs(grid - published))]
        low, high = quantile_interval(asyn, q)
        assert low <= on_grid <= high, (q, published, low, high)
    assert asyn.max() == pytest.approx(10.0)


@pytest.mark.slow
def test_asker_delta95_both_supracompetitive_synchronous_lower():
    """delta = 0.95, memory 1, 25 prices: the first 40 sessions of each rule (about 3.5 minutes on two busy cores).
    Both rules rest above the static Nash prices; synchronous learners lower, by far more than sampling error."""
    sync = settled_prices(run(PATIENT, f"sessions={SESSIONS_95}"))
    asyn = settled_prices(run(PATIENT, f"sessions={SESSIONS_95}", "agents.update=asynchronous"))
    # Both supra-competitive: the lower end of each mean's 95% interval well above the higher grid Nash price.
    assert mean_interval(sync)[0] > GRID_NASH_25[1] + 2.0
    assert mean_interval(asyn)[0] > GRID_NASH_25[1] + 2.0
    # Synchronous lower: the two intervals far apart.
    assert mean_interval(asyn)[0] > mean_interval(sync)[1] + 2.0
    # AFP's medians (Table 3, 100 runs: synchronous 6.25, asynchronous 10) inside our 95% intervals for the median.
    grid = np.linspace(0.01, 10.0, 25)
    for prices, published in ((sync, 6.25), (asyn, 10.0)):
        on_grid = grid[np.argmin(np.abs(grid - published))]
        low, high = quantile_interval(prices, 0.5)
        assert low <= on_grid <= high, (published, low, high)
