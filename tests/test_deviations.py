"""Calvano et al.'s equilibrium and incentive checks (engine.deviations) on strategies written by hand."""

from __future__ import annotations

import numpy as np
import pytest

from algocomp.engine.build import compile_scenario
from algocomp.engine.deviations import _one_shot_value, check_cycle
from algocomp.engine.session import cycle_starts, deviation_check, new_state
from algocomp.scenarios import apply_overrides, load_scenario


def baseline(*overrides: str):
    return apply_overrides(load_scenario("calvano-2020-baseline"), ["sessions=1", *overrides])


@pytest.fixture(scope="module")
def cs():
    return compile_scenario(baseline())


def _index(cs, price: float) -> int:
    return int(np.argmin(np.abs(cs.grid[0] - price)))


def _joint(cs, a0: int, a1: int) -> int:
    return a0 * int(cs.powers[0]) + a1 * int(cs.powers[1])


def _grim(cs, cooperate: int, punish: int) -> np.ndarray:
    """Memory-1 grim trigger as a table: cooperate in the state where both cooperated, punish elsewhere."""
    G = np.full(cs.s_size, punish, dtype=np.int64)
    states = cs.n_profiles
    for firm in range(2):
        G[firm * states + _joint(cs, cooperate, cooperate)] = cooperate
    return G


def test_deviation_values_are_the_discounted_sums_of_grim_trigger(cs):
    mono, nash = _index(cs, 1.92498), _index(cs, 1.47293)
    G = _grim(cs, mono, nash)
    start = np.full(2, _joint(cs, mono, mono), dtype=np.int64)
    delta = 0.95
    net = cs.profit - cs.expected_fine
    seen, rewards = np.empty((50, 2), dtype=np.int64), np.empty(50)
    pi_m, pi_n = net[_joint(cs, mono, mono), 0], net[_joint(cs, nash, nash), 0]
    cooperate = np.array([mono, mono])
    stay, exact = _one_shot_value(
        0, start, cooperate, mono, G, cs.ipar, cs.powers, cs.n_prices, net, delta, 50, seen, rewards
    )
    assert exact and stay == pytest.approx(pi_m / (1 - delta), rel=1e-12)
    cut = mono - 2
    value, exact = _one_shot_value(
        0, start, cooperate, cut, G, cs.ipar, cs.powers, cs.n_prices, net, delta, 50, seen, rewards
    )
    expected = net[_joint(cs, cut, mono), 0] + delta * pi_n / (1 - delta)
    assert exact and value == pytest.approx(expected, rel=1e-12)


def test_grim_trigger_is_an_equilibrium_on_the_path_and_a_cooperation_without_threat_is_not(cs):
    mono, nash = _index(cs, 1.92498), _index(cs, 1.47293)
    cycle = np.full((1, 2), _joint(cs, mono, mono), dtype=np.int64)
    grim = check_cycle(cs, _grim(cs, mono, nash), cycle)
    assert grim is not None and grim.exact
    assert grim.equilibrium_on_path and grim.equilibrium_state_share == 1.0
    assert grim.unprofitable_static_deviation.all()  # the static best response undercuts, then Nash forever
    # the same cooperation with no punishment: undercutting pays, in every state, for both firms
    naive = check_cycle(cs, np.full(cs.s_size, mono, dtype=np.int64), cycle)
    assert naive is not None
    assert not naive.equilibrium_on_path and not naive.best_reply.any()
    assert not naive.unprofitable_static_deviation.any()
    assert (naive.static_br_value > naive.strategy_value).all()


def test_values_match_a_long_truncated_sum_on_a_two_period_cycle(cs):
    """Strategies that alternate two profiles: the closed-form cycle sum equals the sum over many periods."""
    lo, hi = _index(cs, 1.6), _index(cs, 1.8)
    G = np.empty(cs.s_size, dtype=np.int64)
    states = cs.n_profiles
    for firm in range(2):
        for s in range(states):
            own = (s // int(cs.powers[firm])) % cs.n_prices
            G[firm * states + s] = hi if own == lo else lo
    start = np.full(2, _joint(cs, lo, lo), dtype=np.int64)
    first = np.array([G[firm * states + int(start[firm])] for firm in range(2)], dtype=np.int64)
    net = cs.profit - cs.expected_fine
    exact_value, exact = _one_shot_value(
        0,
        start,
        first,
        lo,
        G,
        cs.ipar,
        cs.powers,
        cs.n_prices,
        net,
        0.95,
        100,
        np.empty((100, 2), dtype=np.int64),
        np.empty(100),
    )
    long = 4000
    truncated, closed = _one_shot_value(
        0,
        start,
        first,
        lo,
        G,
        cs.ipar,
        cs.powers,
        cs.n_prices,
        net,
        0.95,
        long,
        np.zeros((long, 2), dtype=np.int64) - 1,
        np.empty(long),
    )
    assert exact and closed
    # the same path simulated here: memory one, so a firm's state is the last joint profile
    manual, state = 0.0, _joint(cs, lo, lo)
    for t in range(long):
        acts = [int(G[firm * states + state]) for firm in range(2)]
        if t == 0:
            acts[0] = lo
        state = _joint(cs, *acts)
        manual += 0.95**t * net[state, 0]
    assert exact_value == pytest.approx(manual, rel=1e-9)
    assert truncated == pytest.approx(manual, rel=1e-9)


def test_checks_apply_only_to_tabular_simultaneous_strategies():
    mixed = compile_scenario(baseline("agents=[{type: qlearning}, {type: myopic}]"))
    st = new_state(mixed, 1)
    assert deviation_check(mixed, cycle_starts(mixed, st, 1)) is None
    klein = compile_scenario(apply_overrides(load_scenario("klein-2021-sequential"), ["sessions=1"]))
    assert deviation_check(klein, cycle_starts(klein, new_state(klein, 1), 1)) is None
