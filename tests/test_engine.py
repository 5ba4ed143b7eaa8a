"""The engine against the literature and against itself.

Calvano et al. (2020): the baseline's profit gain, convergence and punishment. Every regulation lever moves
outcomes the way it must. Results are bit-identical whatever the number of worker processes, and the
specialised Q-learning loop matches the general one. Rule-based agents do exactly what their rule says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numba import njit
from published import CALVANO_A4_N3, CALVANO_A11, report, within_sampling_error

from algocomp.engine import specialised
from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.primitives import _row_top2
from algocomp.engine.session import (
    advance,
    find_cycle,
    new_state,
    play_greedy,
    run_session,
)
from algocomp.metrics.session import correlation
from algocomp.scenarios import ScenarioError, apply_overrides, load_scenario

TIMING_KEYS = {"elapsed_s", "periods_per_second"}


def baseline(*overrides: str):
    return apply_overrides(load_scenario("calvano-2020-baseline"), list(overrides))


@pytest.fixture(scope="module")
def calvano_100():
    """The Calvano baseline over 100 sessions (about 10 s on two cores)."""
    return run_experiment(baseline("sessions=100"), workers=2)


@pytest.fixture(scope="module")
def calvano_16():
    """The unregulated reference for the regulation tests: the first 16 sessions of the same seed."""
    return run_experiment(baseline("sessions=16"), workers=2)


# --------------------------------------------------------------------------------------------- Calvano


def test_calvano_baseline_profit_gain_and_convergence(calvano_100):
    s = calvano_100.summary
    assert s["sessions"] == 100
    assert s["converged_share"] == 1.0, "every session must converge"
    assert 0.80 <= s["profit_gain"] <= 0.90, s["profit_gain"]
    # Sessions converge after roughly one to two million periods (Calvano et al.).
    assert 1.0e6 <= s["mean_convergence_period"] <= 3.0e6
    assert s["nash_price"] == pytest.approx(1.47293, abs=1e-4)
    assert s["monopoly_price"] == pytest.approx(1.92498, abs=1e-4)
    assert s["nash_price"] < s["mean_price"] < s["monopoly_price"]
    assert s["consumer_surplus"] < s["nash_consumer_surplus"]
    assert 0 < s["consumer_surplus_loss_index"] < 1


def test_calvano_impulse_response_shows_punishment(calvano_100):
    sessions = calvano_100.session_summaries
    converged = [m for m in sessions if m["converged"]]
    punished = [m for m in converged if m["ir_punishment"]]
    # The rival cuts its price the period after the deviation in most converged sessions ...
    assert len(punished) > 0.5 * len(converged)
    # ... and on average the deviation does not pay.
    assert np.mean([m["ir_deviation_gain"] for m in converged]) < 0
    path = calvano_100.summary["impulse_response"]
    tau = path["tau"]
    price = np.array(path["price"])
    cf = np.array(path["counterfactual_price"])
    assert tau[:3] == [-1, 0, 1]
    assert price[1, 0] < cf[1, 0], "the deviating firm cuts its price at tau = 0"
    assert price[2, 1] < cf[2, 1], "the rival's mean price drops at tau = 1"


def test_profit_gain_is_measured_on_the_limit_cycle(calvano_100):
    cs = compile_scenario(calvano_100.scenario)
    b = cs.benchmarks
    for m in calvano_100.session_summaries[:20]:
        prices = np.array(m["cycle_prices"])
        assert prices.shape[0] == m["cycle_length"]
        assert np.isin(prices, cs.grid).all()
        gains = np.array(m["profit_gain_by_firm"])
        profits = np.array(m["mean_profit_by_firm"])
        expected = (profits - b.nash_profit) / (b.monopoly_profit - b.nash_profit)
        np.testing.assert_allclose(gains, expected, rtol=1e-12)


def test_panel_columns_and_bounded_rows(calvano_100):
    panel = calvano_100.panel
    assert list(panel.columns) == [
        "session",
        "kind",
        "period",
        "periods",
        "firm",
        "price",
        "cost",
        "quantity",
        "profit",
        "consumer_surplus",
        "total_welfare",
    ]
    one = panel[(panel.session == 3) & (panel.firm == 0)]
    intervals = one[one.kind == "interval"]
    periods = calvano_100.session_summaries[3]["periods"]
    assert intervals["periods"].sum() == periods
    assert intervals["period"].iloc[-1] == periods
    tail = one[one.kind == "tail"]
    assert len(tail) == 100 and (tail["periods"] == 1).all()
    assert tail["period"].tolist() == list(range(periods - 99, periods + 1))
    rows = panel[panel.session == 3]
    np.testing.assert_allclose(
        rows["total_welfare"].to_numpy(),
        rows["consumer_surplus"].to_numpy() + rows.groupby(["kind", "period"])["profit"].transform("sum").to_numpy(),
    )


def test_memory_stays_bounded_whatever_the_horizon():
    scenario = baseline(
        "sessions=1",
        "horizon.max_periods=300000",
        "horizon.stop_at_convergence=false",
        "logging.interval=100",
        "logging.max_intervals=16",
        "logging.tail=10",
    )
    result = run_session(compile_scenario(scenario), 0, 7)
    rows = result.panel[(result.panel.kind == "interval") & (result.panel.firm == 0)]
    assert len(rows) <= 17  # the buffer plus the last, partial interval
    assert rows["periods"].sum() == 300_000
    assert rows["period"].is_monotonic_increasing


# --------------------------------------------------------------------------------------------- determinism


def _without_timing(summary):
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


# Every parallel test follows ALGOCOMP_START_METHOD (default: fork on Linux); this one runs both ways, as Linux and
# Windows/macOS start workers. `ALGOCOMP_START_METHOD=spawn pytest tests/test_engine.py` runs them all with spawn.
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_same_seed_same_results_whatever_the_workers(start_method):
    scenario = baseline("sessions=6", "horizon.max_periods=200000", "seed=11")
    one = run_experiment(scenario, workers=1)
    two = run_experiment(scenario, workers=2, start_method=start_method)
    pd.testing.assert_frame_equal(one.panel, two.panel, check_exact=True)
    pd.testing.assert_frame_equal(one.impulse, two.impulse, check_exact=True)
    assert _without_timing(one.summary) == _without_timing(two.summary)
    other = run_experiment(baseline("sessions=6", "horizon.max_periods=200000", "seed=12"), workers=1)
    assert not one.panel["price"].equals(other.panel["price"])


def test_specialised_loop_matches_the_general_loop():
    cs = compile_scenario(baseline("sessions=1", "horizon.max_periods=400000"))
    fast, general = new_state(cs, 42), new_state(cs, 42)
    advance(cs, fast, 400_000)
    advance(cs, general, 400_000, general=True)
    for name in ("Q", "V", "G", "eps", "act", "state", "rng", "clock", "log_i", "tail_a"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(general, name), err_msg=name)
    # Interval sums are formed in a different order (visit counts), equal to rounding.
    np.testing.assert_allclose(fast.log_f, general.log_f, rtol=1e-12)
    # The frozen greedy play, with and without a forced deviation.
    for deviate in (-1, 0, 1):
        a, b = fast.copy(), general.copy()
        np.testing.assert_array_equal(
            play_greedy(cs, a, 60, deviate_firm=deviate), play_greedy(cs, b, 60, deviate_firm=deviate, general=True)
        )
        np.testing.assert_array_equal(a.state, b.state)


@pytest.mark.parametrize(
    "overrides",
    [
        (),  # joint, joint
        ("market.n_firms=3", "prices.m=6"),  # three firms: two draws a period
        ("market.n_firms=5", "prices.m=3"),  # five: three draws, each firm on its half of one
        ("regulation.hide_rival_prices=true",),  # own, own
        ("agents.memory=2", "prices.m=5"),  # joint_lags
        ("agents.memory=2", "prices.m=5", "regulation.hide_rival_prices=true"),  # own_lags
        ("agents=[{type: qlearning, memory: 0, beta: 3e-5}, {type: qlearning, alpha: 0.3, beta: 3e-5}]",),
        ("agents.q_init={uniform: [0, 10]}", "prices.m=5", "logging.interval=50"),  # interval sums, no visits
        ("logging.tail=0",),
        ("agents.q_init=zero",),  # rows of ties: the rescan's first maximum
        ("regulation.price_cap={basis: absolute, value: 1.75}",),  # some prices barred: no written-out rescan
        ("prices.m=33",),  # wider than UNROLL_MAX: no written-out rescan
    ],
)
def test_the_loop_written_out_per_shape_is_run_qlearning_bit_for_bit(overrides):
    """engine.specialised writes kernel.run_qlearning out for each population shape; the two (and so the general
    loop, held to run_qlearning above) must agree on every array, in chunks and with logging off."""
    settings = ("horizon.max_periods=300000", "horizon.convergence_periods=2000", "agents.beta=3e-5")
    cs = compile_scenario(baseline(*settings, *overrides))
    assert cs.qlearning_only
    for log in (True, False):
        fast, reference = new_state(cs, 7), new_state(cs, 7)
        for chunk in (1, 0, 99_999, 200_000):
            assert advance(cs, fast, chunk, log=log) == advance(cs, reference, chunk, log=log, reference=True)
        assert fast.converged_at >= 0  # the convergence test ran too
        for name in fast.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(fast, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize("width", [1, 2, 3, 7, 15, 16, specialised.UNROLL_MAX])
def test_the_written_out_rescan_is_row_top2(width):
    """The tournament rescan gives primitives._row_top2's price, value and second value on every row, ties (the
    first maximum wins, and a tie makes the second value the maximum) and infinities included."""
    namespace: dict = {}
    uncached = lambda **options: njit(**{k: v for k, v in options.items() if k != "cache"})  # noqa: E731 - no file
    exec(specialised.top2_source(width), {"np": np, "njit": uncached}, namespace)  # noqa: S102 - the generated source
    top2_row = namespace["_top2_row"]
    rng = np.random.default_rng(width)
    allowed, n_allowed = np.tile(np.arange(width), (1, 1)), np.array([width])
    rows = [rng.integers(-3, 4, size=width).astype(float) for _ in range(300)]  # many ties
    rows += [rng.normal(size=width) for _ in range(100)]
    rows += [np.full(width, 2.5), np.r_[np.full(width - 1, -np.inf), 1.0], np.linspace(1, 0, width)]
    for row in rows:
        assert top2_row(row, 0) == _row_top2(row, 0, allowed, n_allowed, 0), row


# --------------------------------------------------------------------------------------------- regulation


def _all_prices(result):
    cycle = np.concatenate([np.array(m["cycle_prices"]).ravel() for m in result.session_summaries])
    return np.concatenate([result.panel["price"].to_numpy(), result.impulse["price"].to_numpy(), cycle])


def test_binding_price_cap_keeps_every_price_at_or_below_it(calvano_16):
    capped = run_experiment(baseline("sessions=16", "regulation.price_cap={basis: absolute, value: 1.75}"), workers=2)
    assert _all_prices(capped).max() <= 1.75 + 1e-12
    assert capped.summary["mean_price"] < calvano_16.summary["mean_price"]
    assert capped.summary["consumer_surplus"] > calvano_16.summary["consumer_surplus"]


def test_price_floor_keeps_every_price_at_or_above_it():
    scenario = baseline("sessions=2", "agents={type: myopic}", "horizon.max_periods=50000", "logging.interval=1000")
    free = run_experiment(scenario, workers=1)
    floored = run_experiment(apply_overrides(scenario, ["regulation.price_floor={value: 1.6}"]), workers=1)
    assert _all_prices(floored).min() >= 1.6 - 1e-12
    # Myopic best responders settle near the Nash price; a floor above it raises prices.
    assert free.summary["mean_price"] < 1.55 < floored.summary["mean_price"]


def test_repricing_limit_spaces_price_changes():
    scenario = apply_overrides(
        load_scenario("myopic-vs-bandit"),
        ["sessions=2", "horizon.max_periods=20000", "logging.tail=2000", "agents.1.epsilon=0.5"],
    )
    free = run_experiment(scenario, workers=1)
    limited = run_experiment(apply_overrides(scenario, ["regulation.reprice_every=5"]), workers=1)

    def gaps(result):
        tail = result.panel[(result.panel.kind == "tail") & (result.panel.firm == 1)].sort_values(["session", "period"])
        out = []
        for _, firm_rows in tail.groupby("session"):
            changes = firm_rows["period"].to_numpy()[np.flatnonzero(np.diff(firm_rows["price"].to_numpy())) + 1]
            out.extend(np.diff(changes))
        return np.array(out)

    assert gaps(free).min() == 1, "an exploring bandit reprices in consecutive periods without the limit"
    assert gaps(limited).min() >= 5


def test_hiding_rival_prices_removes_punishment(calvano_16):
    hidden = run_experiment(baseline("sessions=16", "regulation.hide_rival_prices=true"), workers=2)
    assert all(m["ir_rival_price_change"] == 0 for m in hidden.session_summaries)
    assert hidden.summary["punishment_share"] == 0
    assert hidden.summary["profit_gain"] < calvano_16.summary["profit_gain"] - 0.3


def test_audits_with_fines_lower_prices(calvano_16):
    audited = run_experiment(
        baseline(
            "sessions=16",
            "regulation.audit={probability: 0.5, threshold: {basis: nash_markup, value: 0.05}, fine: 1.0}",
        ),
        workers=2,
    )
    assert audited.summary["mean_price"] < calvano_16.summary["mean_price"] - 0.1
    threshold = 1.05 * audited.summary["nash_price"]
    cycle = np.concatenate([np.array(m["cycle_prices"]).ravel() for m in audited.session_summaries])
    assert np.mean(cycle > threshold) < 0.1


def test_platform_steering_lowers_prices_and_raises_consumer_surplus(calvano_16):
    steered = run_experiment(baseline("sessions=16", "regulation.steering={share: 0.5}"), workers=2)
    assert steered.summary["mean_price"] < calvano_16.summary["mean_price"]
    assert steered.summary["consumer_surplus"] > calvano_16.summary["consumer_surplus"]


def test_cap_that_leaves_no_price_is_a_scenario_error():
    with pytest.raises(ScenarioError) as err:
        compile_scenario(baseline("regulation.price_cap={value: 1.0}"))
    assert err.value.field == "regulation.price_cap"


# --------------------------------------------------------------------------------------------- agents


def _short(agents: str, *more: str):
    return baseline("sessions=2", f"agents={agents}", "horizon.max_periods=20000", "logging.interval=1000", *more)


def test_benchmark_players_price_at_the_benchmarks():
    nash = run_experiment(_short("{type: nash}"), workers=1).summary
    monopoly = run_experiment(_short("{type: monopoly}"), workers=1).summary
    assert abs(nash["profit_gain"]) < 0.1
    assert monopoly["profit_gain"] == pytest.approx(1.0, abs=0.02)


def test_fixed_price_agent_charges_the_nearest_grid_price():
    result = run_experiment(_short("{type: fixed, price: 1.7}"), workers=1)
    grid = result.grid[0]
    nearest = grid[np.argmin(np.abs(grid - 1.7))]
    np.testing.assert_allclose(result.panel["price"], nearest, rtol=1e-13)


def test_myopic_best_responders_reach_the_static_nash_price():
    result = run_experiment(_short("{type: myopic}"), workers=1)
    step = result.grid[0, 1] - result.grid[0, 0]
    assert abs(result.summary["mean_price"] - result.summary["nash_price"]) <= step


def test_grim_trigger_cooperates_and_punishes_forever():
    result = run_experiment(_short("{type: grim_trigger}"), workers=1)
    m = result.session_summaries[0]
    assert m["profit_gain"] == pytest.approx(1.0, abs=0.02)
    assert m["ir_punishment"] and not m["ir_returned"]
    rival = result.impulse[(result.impulse.session == 0) & (result.impulse.firm == 1)].sort_values("tau")
    nash_on_grid = result.grid[1, np.argmin(np.abs(result.grid[1] - result.summary["nash_price"]))]
    assert (rival[rival.tau >= 1]["price"] == nash_on_grid).all()


def test_tit_for_tat_matches_the_lowest_rival_price():
    result = run_experiment(_short("[{type: tit_for_tat}, {type: fixed, price: 1.6}]"), workers=1)
    tail = result.panel[result.panel.kind == "tail"]
    assert (tail[tail.firm == 0]["price"].to_numpy() == tail[tail.firm == 1]["price"].to_numpy()).all()


@pytest.mark.parametrize(
    "agents",
    [
        "{type: epsilon_greedy, epsilon: 0.1}",
        "{type: ucb1}",
        "{type: thompson}",
        "{type: expected_sarsa, beta: 2e-5}",
        "{type: actor_critic}",
        "[{type: qlearning, beta: 2e-5}, {type: myopic}]",
    ],
)
def test_learning_agents_run_and_report_finite_outcomes(agents):
    result = run_experiment(_short(agents, "horizon.max_periods=100000"), workers=1)
    s = result.summary
    assert s["sessions"] == 2
    assert np.isfinite(s["profit_gain"]) and np.isfinite(s["mean_price"])
    grid = result.grid
    assert grid[0, 0] - 1e-12 <= s["mean_price"] <= grid[0, -1] + 1e-12


def test_synchronous_updating_competes_harder_than_asynchronous(calvano_16):
    synchronous = run_experiment(baseline("sessions=6", "agents.update=synchronous"), workers=2)
    # Asker, Fershtman & Pakes: with delta = 0.95, learning from counterfactual profits keeps prices above
    # competition but well below asynchronous learning's (competitive prices need delta = 0).
    assert synchronous.summary["profit_gain"] < calvano_16.summary["profit_gain"] - 0.2


def test_shock_length_follows_calvano_et_al(calvano_100):
    """Every cycle state and firm deviates once; the shock lasts until the pre-deviation cycle is back."""
    s = calvano_100.summary
    per_session = calvano_100.session_summaries
    assert all(m["shock_deviations"] == m["cycle_length"] * 2 for m in per_session)
    assert all(m["shock_length"] >= 1 for m in per_session)
    assert 4.0 <= s["mean_shock_length"] <= 8.0 and s["shock_return_share"] > 0.9
    # pooled over deviations as the authors do, so longer cycles weigh more
    weights = np.array([m["shock_deviations"] for m in per_session], dtype=float)
    pooled = np.sum(weights * np.array([m["shock_length"] for m in per_session])) / weights.sum()
    assert s["mean_shock_length"] == pytest.approx(pooled)


def test_shock_length_counts_the_periods_until_the_cycle_is_back():
    """Strategies that play one price in every state: the cycle is back one period after any deviation (2), at
    once (1) when the static best response is the strategy's own price."""
    scenario = baseline("sessions=1", "horizon.max_periods=1000", "horizon.stop_at_convergence=false")
    cs = compile_scenario(scenario)
    st = new_state(cs, 3)
    m = cs.grid.shape[1]
    nash = int(np.argmin(np.abs(cs.grid[0] - 1.4729)))
    # both firms price at the grid point nearest Nash in every state: a one-profile cycle where the static
    # best response to the rival's Nash price is (on this grid) that same price
    st.G[:] = nash
    from algocomp.engine.session import cycle_starts, shock_lengths

    profile = nash * int(cs.powers[0]) + nash * int(cs.powers[1])
    st.state[:] = profile
    shocks = shock_lengths(cs, cycle_starts(cs, st, 1))
    best = [
        int(np.argmax([cs.profit[a * int(cs.powers[f]) + nash * int(cs.powers[1 - f]), f] for a in range(m)]))
        for f in range(2)
    ]
    # a deviation to the strategy's own price never leaves the cycle; any other is back one period later
    assert [(shock.length, shock.returned) for shock in shocks] == [(1 if b == nash else 2, True) for b in best]
    # the rival plays Nash in every state, so it does not respond
    assert [shock.rival_relative_change for shock in shocks] == [0.0, 0.0]


def test_calvano_measures_of_the_converged_strategies(calvano_100):
    """Calvano et al.'s online appendix Table A11 (k = 1, 1,000 sessions): equilibrium on the path 0.505, the
    rival's relative price change after a deviation -0.127, deviations to the static best response that do not pay
    0.936; 100 sessions here, so loose bounds (the slow test holds the 1,000-session figures)."""
    s = calvano_100.summary
    per_session = calvano_100.session_summaries
    assert 0.3 <= s["equilibrium_on_path_share"] <= 0.7
    assert s["equilibrium_on_path_share"] == pytest.approx(np.mean([m["equilibrium_on_path"] for m in per_session]))
    assert -0.2 <= s["shock_rival_relative_change"] <= -0.05
    assert 0.85 <= s["static_deviation_unprofitable_share"] <= 1.0
    # a session whose strategies are an equilibrium on the path has no profitable deviation from it, in particular
    # not the static best response (unless it is the strategy's own price, which counts as not unprofitable)
    for m in per_session:
        assert m["static_deviations"] == 2 * m["cycle_length"]
        assert 0.0 <= m["equilibrium_state_share"] <= 1.0
        assert m["equilibrium_on_path"] == (m["equilibrium_state_share"] == 1.0)


def test_relative_impulse_response(calvano_100):
    """The impulse response relative to each firm's price before the deviation, as in Calvano et al.'s figures."""
    impulse = calvano_100.impulse
    before = impulse[impulse["tau"] == -1].set_index(["session", "firm"])["price"]
    joined = impulse.join(before.rename("before"), on=["session", "firm"])
    np.testing.assert_allclose(joined["relative_price"], joined["price"] / joined["before"], rtol=1e-12)
    path = calvano_100.summary["impulse_response"]
    relative = np.array(path["relative_price"])
    tau = path["tau"]
    assert np.allclose(relative[tau.index(-1)], 1.0)
    assert relative[tau.index(0), 0] < 1.0  # the deviation undercuts
    assert relative[tau.index(1), 1] < 0.97  # the rival punishes the next period


def test_klein_sequential_learners_price_above_competition():
    result = run_experiment(apply_overrides(load_scenario("klein-2021-sequential"), ["sessions=8"]), workers=2)
    s = result.summary
    assert s["converged_share"] == 1.0
    assert s["profit_gain"] > 0.3
    assert s["focal_share"] + s["edgeworth_share"] == pytest.approx(1.0)
    for m in result.session_summaries:
        prices = np.array(m["cycle_prices"])
        if m["cycle_label"] == "focal":
            assert (prices == prices[0]).all()


def test_demand_noise_is_reproducible_and_moves_quantities():
    scenario = baseline(
        "sessions=1", "market.noise={kind: multiplicative, sd: 0.2}", "horizon.max_periods=20000", "logging.tail=200"
    )
    a = run_experiment(scenario, workers=1)
    b = run_experiment(scenario, workers=1)
    pd.testing.assert_frame_equal(a.panel, b.panel, check_exact=True)
    tail = a.panel[(a.panel.kind == "tail")].pivot(index="period", columns="firm", values=["price", "quantity"])
    # Without noise a price pair fixes the quantities; with it, the same pair sells different amounts.
    spread = tail.groupby([tail["price"][0], tail["price"][1]])["quantity"].std().max().max()
    assert spread > 0.01


# --------------------------------------------------------------------------------------------- helpers


def test_find_cycle():
    path = np.array([[0, 0], [1, 1], [2, 2]] + [[3, 4], [4, 3]] * 10)
    assert find_cycle(path) == 2
    assert find_cycle(np.array([[5, 5]] * 20)) == 1
    assert find_cycle(np.arange(40).reshape(20, 2)) == 0


# --------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_calvano_baseline_full_experiment():
    """The paper's experiment: 1,000 sessions (under a minute on two cores)."""
    result = run_experiment(baseline("sessions=1000"), workers=0)
    s = result.summary
    assert s["converged_share"] == 1.0
    assert 0.80 <= s["profit_gain"] <= 0.90
    assert s["punishment_share"] > 0.5
    # Calvano et al.'s measures (online appendix Table A11, k = 1), within sampling error of their 1,000 sessions
    published = CALVANO_A11[1]
    assert s["mean_shock_length"] == pytest.approx(published["punishment_length"], abs=0.25)
    sessions = result.session_summaries
    assert within_sampling_error([m["profit_gain"] for m in sessions], published["profit_gain"])
    assert within_sampling_error([m["equilibrium_on_path"] for m in sessions], published["equilibrium_on_path"])
    deviations = np.array([m["static_deviations"] for m in sessions])
    report("baseline Delta", [m["profit_gain"] for m in sessions])
    report("baseline equilibrium on the path", [m["equilibrium_on_path"] for m in sessions])
    report(
        "baseline rival's relative price change",
        [m["shock_rival_relative_change"] * d for m, d in zip(sessions, deviations)],
        weights=deviations,
    )
    report(
        "baseline unprofitable static deviations",
        [m["static_deviation_unprofitable_share"] * d for m, d in zip(sessions, deviations)],
        weights=deviations,
    )
    report(
        "baseline punishment length", [m["shock_length"] * d for m, d in zip(sessions, deviations)], weights=deviations
    )
    assert within_sampling_error(
        [m["shock_rival_relative_change"] * d for m, d in zip(sessions, deviations)],
        published["rival_relative_change"],
        weights=deviations,
    )
    assert within_sampling_error(
        [m["static_deviation_unprofitable_share"] * d for m, d in zip(sessions, deviations)],
        published["unprofitable_deviations"],
        weights=deviations,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, sessions, published_gain, published_shock",
    [
        ("calvano-2020-n3", 200, CALVANO_A4_N3["profit_gain"], CALVANO_A4_N3["punishment_length"]),
        ("calvano-2020-n4", 100, 0.559, None),
    ],
)
def test_profit_gain_falls_with_more_firms(preset, sessions, published_gain, published_shock):
    """Calvano et al.: Delta 0.643 with three firms and 0.559 with four; with three, shocks last 11.7 periods."""
    result = run_experiment(apply_overrides(load_scenario(preset), [f"sessions={sessions}"]), workers=0)
    s, per_session = result.summary, result.session_summaries
    assert s["converged_share"] >= 0.95
    gains = [m["profit_gain"] for m in per_session]
    report(f"{preset} Delta", gains)
    assert within_sampling_error(gains, published_gain)
    if published_shock is not None:
        deviations = np.array([m["shock_deviations"] for m in per_session])
        pooled = [m["shock_length"] * d for m, d in zip(per_session, deviations)]
        report(f"{preset} punishment length", pooled, weights=deviations)
        assert within_sampling_error(pooled, published_shock, weights=deviations)
        # and the rest of their Table A4 (three firms): equilibria on the path, responses, unprofitable deviations
        equilibria = [m["equilibrium_on_path"] for m in per_session]
        responses = [m["shock_rival_relative_change"] * d for m, d in zip(per_session, deviations)]
        unprofitable = [m["static_deviation_unprofitable_share"] * d for m, d in zip(per_session, deviations)]
        report(f"{preset} equilibrium on the path", equilibria)
        report(f"{preset} rival's relative price change", responses, weights=deviations)
        report(f"{preset} unprofitable static deviations", unprofitable, weights=deviations)
        assert within_sampling_error(equilibria, CALVANO_A4_N3["equilibrium_on_path"])
        assert within_sampling_error(responses, CALVANO_A4_N3["rival_relative_change"], weights=deviations)
        assert within_sampling_error(unprofitable, CALVANO_A4_N3["unprofitable_deviations"], weights=deviations)


@pytest.mark.slow
def test_klein_focal_share_with_his_schedule_and_horizon():
    """Klein (2021), k = 6: about two thirds of runs end at a focal price (1,000 sessions, about a minute)."""
    result = run_experiment(load_scenario("klein-2021-sequential"), workers=0)
    s = result.summary
    assert s["sessions"] == 1000
    report("klein k = 6 focal share", [m["cycle_label"] == "focal" for m in result.session_summaries])
    report("klein k = 6 profitability (last 1,000 periods)", [m["tail_profit"] for m in result.session_summaries])
    assert s["focal_share"] == pytest.approx(2 / 3, abs=1.96 * (2 / 3 * 1 / 3 / 1000) ** 0.5)
    assert s["focal_share"] + s["edgeworth_share"] == pytest.approx(1.0)


def test_mean_impulse_path_fast_layout_matches_the_group_by(calvano_16):
    from algocomp.metrics.summary import mean_impulse_path

    impulse = calvano_16.impulse
    fast = mean_impulse_path(impulse)
    shuffled = mean_impulse_path(impulse.sample(frac=1.0, random_state=3))  # not in the engine's layout
    assert fast["tau"] == shuffled["tau"]
    np.testing.assert_allclose(fast["price"], shuffled["price"], rtol=1e-12)
    np.testing.assert_allclose(fast["counterfactual_price"], shuffled["counterfactual_price"], rtol=1e-12)


def test_price_comovement_is_pearsons_correlation():
    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    for y in (x + rng.normal(size=200), -2.0 * x + 1.0, rng.normal(size=200)):
        assert correlation(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12, abs=1e-15)
    assert correlation(x, 3.0 * x) == 1.0  # clipped to [-1, 1] whatever the rounding
