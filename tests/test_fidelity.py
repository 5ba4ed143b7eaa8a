"""Issue 8, fidelity: uniform random Q initialisation, random tie-breaking and polynomial exploration schedules.

The new options must leave every existing scenario bit-identical when they are off (fingerprints recorded from
the engine before they existed), draw their randomness reproducibly from each session's own seed, and do what
docs/scenario-format.md says they do.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from algocomp.agents.catalog import I_QOFF, I_SOFF, I_STATES, I_TIE
from algocomp.engine import kernel as K
from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.seeds import session_seed
from algocomp.engine.session import advance, new_state, play_greedy
from algocomp.scenarios import ScenarioError, apply_overrides, load_scenario

TIMING_KEYS = {"elapsed_s", "periods_per_second"}


def baseline(*overrides: str):
    return apply_overrides(load_scenario("calvano-2020-baseline"), list(overrides))


# --------------------------------------------------------------------------------------------- unchanged when off

# Every preset but calvano-2020-n4 (and three set-ups no preset has) run 100,000 periods from sessions 0 and 1 of
# seed 5: sha256 of the learned tables, greedy cache, exploration rates, prices, states, stream, clock, tail and
# 40 periods of frozen greedy play. Recorded with the engine as it was before these options existed (59f1508); a few
# depend on the machine (below).
CASES = {
    p: (p, [])
    for p in [
        "asker-2022-calvano-market-synchronous",
        "calvano-2020-baseline",
        "calvano-2020-n3",
        "calvano-2020-price-cap",
        "johnson-2023-steering",
        "klein-2021-sequential",
        "myopic-vs-bandit",
    ]
}
# hansen-2021-ucb as it was then (the preset now holds Hansen et al.'s own set-up); its noise, then called
# "additive", is now named additive_floored
CASES["hansen-2021-ucb"] = (
    {
        "name": "hansen-2021-ucb",
        "market": {
            "n_firms": 2,
            "demand": {"model": "linear", "intercept": 1.0, "own_slope": 1.0, "cross_slope": 0.5},
            "costs": 0.0,
            "noise": {"kind": "additive_floored", "sd": 0.05},
        },
        "prices": {"kind": "benchmark_grid", "m": 15, "xi": 0.1},
        "agents": {"type": "ucb1"},
        "horizon": {"max_periods": 100_000, "convergence_periods": 100_000, "stop_at_convergence": False},
        "logging": {"interval": 1000, "tail": 100},
        "sessions": 100,
    },
    [],
)
# the Klein preset now logs his 1,000 last periods; the engine's path is what is held
CASES["klein-2021-sequential"] = ("klein-2021-sequential", ["logging.tail=100"])
CASES["expected-sarsa"] = ("calvano-2020-baseline", ["agents={type: expected_sarsa}"])
CASES["actor-critic"] = ("calvano-2020-baseline", ["agents={type: actor_critic}"])
# Q-learners from a constant table (first-maximum ties everywhere at the start), in the general loop (noise).
CASES["qlearning-zero-general"] = (
    "calvano-2020-baseline",
    ["agents.q_init=zero", "market.noise={kind: additive_floored, sd: 0.01}"],
)

FINGERPRINTS = {
    "asker-2022-calvano-market-synchronous/0": "d1c6279f831411cb55b2bf7b6c021b4c74640f4212674efea8ae9373653ac84a",
    "asker-2022-calvano-market-synchronous/1": "99e49e54e76bd0c804f5e6bb88e7df54b120e850d1de615af74669bdf85aa7d9",
    "calvano-2020-baseline/0": "5d8dce27cef1dd403c684e1221e9d0c94ded7579ba97459ea23a60e7877eeaa8",
    "calvano-2020-baseline/1": "3d2432b92c55210dd33c17c5fad509101630fc24b10a7b6b21530052c78f5937",
    "calvano-2020-n3/0": "5d28e7d3c3200b54a265a4c68b68f94555beaf2ace274df8f5896fcea479f5ca",
    "calvano-2020-n3/1": "e5a59405c28e87c9fd28b2f5dee0275a3db6fa70d70567c7d8cb347dee5eee85",
    "calvano-2020-price-cap/0": "acd8cc3b90941be4cad287cf9d189265016ebf2f754fa45a02fd246a39b1966c",
    "calvano-2020-price-cap/1": "35baeaa5768daa5d9521f9513ccef8676d47ea0886a64f3686b12b788b7ca9a7",
    "hansen-2021-ucb/0": "1044ffba12bfa8328e9e63bbcac8b4456776de23b081ed8dce6b2af1db7e5697",
    "hansen-2021-ucb/1": "9bf1784abb5af8458eb9dbf67039bed4476d8cd3a6748fc681f11338cd035d20",
    "johnson-2023-steering/0": "23a0fe112e8f505b65f5aec7d2f2d7b20e08d04c40e4f2685cb5c2b286544937",
    "johnson-2023-steering/1": "b1405d602ee63ca591915660a36ef363139922e1d115e17d699c35d4ef173657",
    "klein-2021-sequential/0": "c809adb61ead81572ed4d76001ca2755089f33a77dc1fce4f2803a9848afdc5f",
    "klein-2021-sequential/1": "9169bb2e53d2db7080854cc9a9255418330252b08979c6ddadb539c3d5388ae3",
    "myopic-vs-bandit/0": "d7fdf4a46a19f4ce069d8351fcce14577fd1c4cc052bb939d9047aaa6d14ef29",
    "myopic-vs-bandit/1": "e879bd26a602bd8e3ae73f67f53c62a83cd087fcb0a58b84c652906e0f306502",
    "expected-sarsa/0": "e16551979462e9081e06ea4939dcb2c6456f716189879b5ad13ef9c5a921156e",
    "expected-sarsa/1": "c6402ab515813921c6ea66e04bcb6a7e7a2caa49ade7cfc6e8048fb68324fb39",
    "actor-critic/0": "4ae2c6617b74fa3a4500a71ad33cc8fb01709cfc20baa08587c684de93c713c2",
    "actor-critic/1": "874a246e738d9e98587a5a2344e0c40a2fcd30cb6152308a116e73701f789410",
    "qlearning-zero-general/0": "3cfaf1ffb9222191a58e8d3bdd44c69692368db4d4e71eb9ee644d7621d189fd",
    "qlearning-zero-general/1": "915c831b33965bdcd1e435fdcc443cfcba7537851621f40d65afc5064f59a27f",
}


# Six of these (n3, actor-critic, qlearning-zero-general) were recorded again on 2026-12-04: the engine of before
# gave other last bits on machines with AVX-512, where numpy's own exp and log in the market's tables round
# differently from the C library. The tables now take the C library's (markets.libm), and an AVX-512 machine (Intel,
# 2026-12-05) gives these fingerprints, as AVX2 machines did.


def _fingerprint(case: str, index: int, periods: int = 100_000) -> str:
    preset, overrides = CASES[case]
    cs = compile_scenario(apply_overrides(load_scenario(preset), ["seed=5", *overrides]))
    st = new_state(cs, session_seed(5, index))
    advance(cs, st, periods)
    path = play_greedy(cs, st.copy(), 40)
    digest = hashlib.sha256()
    for arr in (st.Q, st.N, st.G, st.eps, st.act, st.state, st.rng, st.clock, st.tail_a, path):
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("key", sorted(FINGERPRINTS))
def test_existing_scenarios_are_bit_identical_with_the_new_options_off(key):
    case, index = key.rsplit("/", 1)
    assert _fingerprint(case, int(index)) == FINGERPRINTS[key]


def test_only_the_new_kernel_options_leave_the_fast_loop():
    assert compile_scenario(baseline()).qlearning_only
    assert compile_scenario(baseline("agents.q_init={uniform: [0, 10]}")).qlearning_only
    assert not compile_scenario(baseline("agents.tie_break=random")).qlearning_only
    assert not compile_scenario(baseline("agents.schedule=polynomial")).qlearning_only
    # one firm is enough
    assert not compile_scenario(baseline("agents.1.tie_break=random")).qlearning_only


# --------------------------------------------------------------------------------------------- uniform Q init


def test_uniform_q_init_lies_in_range_and_differs_across_sessions():
    cs = compile_scenario(
        baseline("agents.q_init={uniform: [0, 10]}", "regulation.price_cap={basis: nash_markup, value: 0.1}")
    )
    m = cs.n_prices
    tables = []
    for index in range(3):
        st = new_state(cs, session_seed(7, index))
        for i in range(cs.n_firms):
            qo, states = int(cs.ipar[i, I_QOFF]), int(cs.ipar[i, I_STATES])
            rows = st.Q[qo : qo + states * m].reshape(states, m)
            allowed = np.zeros(m, dtype=bool)
            allowed[cs.allowed[i, : cs.n_allowed[i]]] = True
            assert not allowed.all(), "the cap should forbid some prices"
            assert np.all(np.isneginf(rows[:, ~allowed])), "forbidden prices stay -inf"
            draws = rows[:, allowed]
            assert draws.min() >= 0.0 and draws.max() < 10.0
            assert draws.std() > 2.0 and abs(draws.mean() - 5.0) < 0.5  # uniform on [0, 10): sd 2.89
            # the greedy cache is the table's (unique) maximum
            so = int(cs.ipar[i, I_SOFF])
            np.testing.assert_array_equal(st.G[so : so + states], np.argmax(rows, axis=1))
            np.testing.assert_array_equal(st.V[so : so + states], rows.max(axis=1))
        tables.append(st.Q.copy())
    assert not np.array_equal(tables[0], tables[1]) and not np.array_equal(tables[1], tables[2])
    # the two firms draw different tables
    half = cs.q_size // 2
    assert not np.array_equal(tables[0][:half], tables[0][half:])


def test_uniform_q_init_leaves_the_session_stream_alone():
    """The draws come from a stream of their own: the initial prices and the main stream are the same as with
    the default initialisation, and the same seed gives the same table."""
    plain = compile_scenario(baseline())
    uniform = compile_scenario(baseline("agents.q_init={uniform: [-1, 1]}"))
    a, b, c = new_state(plain, 99), new_state(uniform, 99), new_state(uniform, 99)
    np.testing.assert_array_equal(a.rng, b.rng)
    np.testing.assert_array_equal(a.act, b.act)
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(b.Q, c.Q)
    assert not np.array_equal(a.Q, b.Q)


def test_uniform_q_init_specialised_loop_matches_the_general_loop():
    """run_qlearning keeps, per state, a bound on the best non-greedy value (U2); a random table has a different
    one in every state, and the two loops must still agree bit for bit."""
    cs = compile_scenario(baseline("agents.q_init={uniform: [0, 10]}"))
    assert cs.qlearning_only
    fast, general = new_state(cs, 21), new_state(cs, 21)
    advance(cs, fast, 300_000)
    advance(cs, general, 300_000, general=True)
    for name in ("Q", "V", "G", "eps", "act", "state", "rng", "clock", "tail_a"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(general, name), err_msg=name)


def _without_timing(summary):
    return {k: v for k, v in summary.items() if k not in TIMING_KEYS}


def test_uniform_q_init_is_the_same_whatever_the_workers():
    scenario = baseline("agents.q_init={uniform: [0, 10]}", "sessions=4", "horizon.max_periods=100000", "seed=3")
    one = run_experiment(scenario, workers=1)
    two = run_experiment(scenario, workers=2)
    pd.testing.assert_frame_equal(one.panel, two.panel, check_exact=True)
    assert _without_timing(one.summary) == _without_timing(two.summary)
    plain = run_experiment(baseline("sessions=4", "horizon.max_periods=100000", "seed=3"), workers=1)
    assert not one.panel["price"].equals(plain.panel["price"])


# --------------------------------------------------------------------------------------------- tie-breaking


def _row_case(values):
    """One firm, every price allowed, a single row holding `values`."""
    m = len(values)
    return np.array(values, dtype=np.float64), np.arange(m, dtype=np.int64)[None, :], np.array([m], dtype=np.int64)


def test_random_argmax_draws_each_tied_price_equally_and_never_another():
    Q, allowed, n_allowed = _row_case([1.0, 3.0, 3.0, 2.0, 3.0, -np.inf, 0.5])
    counts = np.zeros(7, dtype=np.int64)
    rs = np.uint64(12345)
    draws = 30_000
    for _ in range(draws):
        best, value, rs = K._row_argmax_random(Q, 0, allowed, n_allowed, 0, rs)
        rs = np.uint64(rs)  # numba hands a uint64 back as a Python int, which it would type as int64 next time
        assert value == 3.0
        counts[best] += 1
    assert set(np.flatnonzero(counts)) == {1, 2, 4}
    # each of the three with probability 1/3: sd of a count is sqrt(n p (1-p)) = 82; allow 5 sd
    assert np.all(np.abs(counts[[1, 2, 4]] - draws / 3) < 5 * np.sqrt(draws * (1 / 3) * (2 / 3)))
    # no tie, no draw: the stream does not move
    Q2, allowed2, n2 = _row_case([1.0, 4.0, 3.0])
    best, value, rs2 = K._row_argmax_random(Q2, 0, allowed2, n2, 0, np.uint64(7))
    assert (best, value, rs2) == (1, 4.0, np.uint64(7))
    # the first-maximum rule is untouched
    assert K._row_argmax(Q, 0, allowed, n_allowed, 0) == (1, 3.0)


def test_greedy_cache_after_an_update_with_random_ties():
    allowed, n_allowed = np.arange(4, dtype=np.int64)[None, :], np.array([4], dtype=np.int64)
    picks = {0: 0, 1: 0, 2: 0, 3: 0}
    for seed in range(400):
        # another price rises to exactly the greedy value: the greedy price is drawn again among the two
        Q = np.array([1.0, 5.0, 2.0, 5.0])
        G, V = np.array([1]), np.array([5.0])
        rs, changed = K._greedy_after_update_random(Q, 0, allowed, n_allowed, 0, G, V, 0, 3, 5.0, np.uint64(seed))
        assert G[0] in (1, 3) and V[0] == 5.0 and changed == (G[0] == 3)
        picks[int(G[0])] += 1
    assert picks[0] == picks[2] == 0 and 140 < picks[1] < 260 and 140 < picks[3] < 260
    # the greedy price falls below two tied others: drawn among them
    seen = set()
    for seed in range(100):
        Q = np.array([4.0, 3.0, 4.0, 1.0])
        G, V = np.array([1]), np.array([6.0])
        K._greedy_after_update_random(Q, 0, allowed, n_allowed, 0, G, V, 0, 1, 3.0, np.uint64(seed))
        seen.add(int(G[0]))
        assert V[0] == 4.0
    assert seen == {0, 2}
    # a non-greedy price below the maximum, or the greedy one rising: no draw, no change of greedy price
    Q = np.array([4.0, 3.0, 1.0, 1.0])
    G, V = np.array([0]), np.array([4.0])
    assert K._greedy_after_update_random(Q, 0, allowed, n_allowed, 0, G, V, 0, 2, 1.0, np.uint64(5)) == (5, False)
    Q[0] = 4.5
    assert K._greedy_after_update_random(Q, 0, allowed, n_allowed, 0, G, V, 0, 0, 4.5, np.uint64(5)) == (5, False)
    assert V[0] == 4.5


def test_random_tie_break_spreads_the_first_choice_from_a_constant_table():
    """q_init zero: every price ties in every state. With tie_break first each state starts at the lowest price;
    with random each state's greedy price is drawn uniformly from the allowed ones."""
    first = new_state(compile_scenario(baseline("agents.q_init=zero")), 1)
    assert np.all(first.G == 0)
    cs = compile_scenario(
        baseline(
            "agents.q_init=zero", "agents.tie_break=random", "regulation.price_cap={basis: nash_markup, value: 0.1}"
        )
    )
    allowed = set(int(a) for a in cs.allowed[0, : cs.n_allowed[0]])
    k = len(allowed)
    counts = np.zeros(cs.n_prices, dtype=np.int64)
    for seed in range(40):
        st = new_state(cs, seed)
        for g in st.G:
            counts[g] += 1
    total = counts.sum()
    assert set(np.flatnonzero(counts)) <= allowed
    expected = total / k
    chi2 = float((((counts[sorted(allowed)] - expected) ** 2) / expected).sum())
    assert chi2 < 30.0, (chi2, counts)  # k - 1 = 4 degrees of freedom here: P(chi2 > 30) < 1e-5
    # the draws come from the session's stream after the initial prices, which are those of tie_break first
    plain = new_state(
        compile_scenario(baseline("agents.q_init=zero", "regulation.price_cap={basis: nash_markup, value: 0.1}")), 3
    )
    random_ties = new_state(cs, 3)
    np.testing.assert_array_equal(plain.act, random_ties.act)
    assert plain.rng[0] != random_ties.rng[0]


def test_random_tie_break_without_ties_follows_the_same_path():
    """From Calvano's initial table (no ties) no draw is ever needed: the same session as with first-maximum ties,
    though in the general loop."""
    plain = compile_scenario(baseline())
    random_ties = compile_scenario(baseline("agents.tie_break=random"))
    a, b = new_state(plain, 17), new_state(random_ties, 17)
    advance(plain, a, 300_000)
    advance(random_ties, b, 300_000)
    for name in ("Q", "G", "eps", "act", "state", "rng", "clock"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize(
    "agents",
    [
        "agents={type: qlearning, q_init: zero, tie_break: random}",
        "agents={type: qlearning, q_init: zero, tie_break: random, update: synchronous}",
        "agents={type: expected_sarsa, q_init: zero, tie_break: random}",
        "agents=[{type: epsilon_greedy, epsilon: 0.1, beta: 1.0e-4, tie_break: random}, {type: myopic}]",
    ],
)
def test_random_tie_break_runs_and_frozen_play_is_deterministic(agents):
    cs = compile_scenario(baseline(agents, "horizon.max_periods=200000"))
    st = new_state(cs, 8)
    advance(cs, st, 200_000)
    again = new_state(cs, 8)
    advance(cs, again, 200_000)
    np.testing.assert_array_equal(st.Q, again.Q)  # reproducible
    a, b = play_greedy(cs, st.copy(), 50), play_greedy(cs, st.copy(), 50)
    np.testing.assert_array_equal(a, b)
    # the cache holds a maximum of every row
    m = cs.n_prices
    for i in range(cs.n_firms):
        if not cs.ipar[i, I_TIE]:
            continue
        qo, so, states = (int(cs.ipar[i, c]) for c in (I_QOFF, I_SOFF, I_STATES))
        rows = st.Q[qo : qo + states * m].reshape(states, m)
        greedy = rows[np.arange(states), st.G[so : so + states]]
        np.testing.assert_array_equal(greedy, rows.max(axis=1))


def test_klein_random_tie_break_runs_sequentially():
    scenario = apply_overrides(
        load_scenario("klein-2021-sequential"), ["agents.tie_break=random", "horizon.max_periods=100000"]
    )
    cs = compile_scenario(scenario)
    st = new_state(cs, 2)
    m = cs.n_prices
    assert len(set(int(g) for g in st.G)) > 1, "a zero table's first choices are spread"
    advance(cs, st, 100_000)
    for i in range(cs.n_firms):
        qo, so, states = (int(cs.ipar[i, c]) for c in (I_QOFF, I_SOFF, I_STATES))
        rows = st.Q[qo : qo + states * m].reshape(states, m)
        np.testing.assert_array_equal(rows[np.arange(states), st.G[so : so + states]], rows.max(axis=1))


# --------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "agent, t, expected",
    [
        # (1 + 0.01 * 100)^-1 = 1/2 and (1 + 0.01 * 300)^-2 = 1/16, by hand
        ("agents={type: qlearning, beta: 0.01, schedule: polynomial}", 100, 0.5),
        ("agents={type: qlearning, beta: 0.01, schedule: polynomial, power: 2}", 300, 1.0 / 16.0),
        ("agents={type: expected_sarsa, beta: 0.01, schedule: polynomial, power: 0.5}", 300, 0.5),
        ("agents=[{type: epsilon_greedy, epsilon: 0.2, beta: 0.01, schedule: polynomial}, {type: myopic}]", 100, 0.1),
    ],
)
def test_polynomial_schedule_epsilon_by_hand(agent, t, expected):
    cs = compile_scenario(baseline(agent))
    st = new_state(cs, 4)
    advance(cs, st, t)
    assert st.eps[0] == pytest.approx(expected, rel=1e-12)


def test_polynomial_schedule_for_klein_and_exponential_unchanged():
    klein = compile_scenario(
        apply_overrides(
            load_scenario("klein-2021-sequential"),
            ["agents.schedule=polynomial", "agents.beta=0.001", "agents.power=1.5"],
        )
    )
    st = new_state(klein, 1)
    advance(klein, st, 3000)
    np.testing.assert_allclose(st.eps, (1 + 0.001 * 3000) ** -1.5, rtol=1e-12)  # 1/8
    assert st.eps[0] == pytest.approx(0.125, rel=1e-12)
    plain = compile_scenario(baseline("agents.beta=0.001"))
    st = new_state(plain, 1)
    advance(plain, st, 3000)
    np.testing.assert_allclose(st.eps, np.exp(-0.001 * 3000), rtol=1e-9)


def test_polynomial_schedule_explores_at_its_rate():
    """With eps_t = (1 + t)^-0.5 over 40,000 periods a firm explores sum_t eps_t (about 398) times on average:
    count the periods in which a firm's price is not its greedy price, which an exploration causes with
    probability (m - 1) / m."""
    cs = compile_scenario(baseline("agents={type: qlearning, beta: 1.0, schedule: polynomial, power: 0.5}"))
    st = new_state(cs, 6)
    periods = 40_000
    off_greedy = 0
    for _ in range(periods):
        greedy = [int(st.G[int(cs.ipar[i, I_SOFF]) + int(st.state[i])]) for i in range(cs.n_firms)]
        advance(cs, st, 1)
        off_greedy += sum(int(st.act[i]) != greedy[i] for i in range(cs.n_firms))
    expected = cs.n_firms * (14 / 15) * sum((1 + t) ** -0.5 for t in range(periods))
    assert abs(off_greedy - expected) < 5 * np.sqrt(expected), (off_greedy, expected)


# --------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "override, field",
    [
        ("agents.q_init={uniform: [10, 0]}", "agents.q_init.uniform"),
        ("agents.q_init={uniform: [5, 5]}", "agents.q_init.uniform"),
        ("agents.q_init={uniform: [0, .inf]}", "agents.q_init.uniform"),
        ("agents.q_init={uniform: [.nan, 1]}", "agents.q_init.uniform"),
        ("agents.q_init=.nan", "agents.q_init"),
        ("agents.q_init=-.inf", "agents.q_init"),
        ("agents.power=0.5", "agents.power"),
        ("agents.power=-1", "agents.power"),
        ("agents.schedule=harmonic", "agents.schedule"),
        ("agents.tie_break=last", "agents.tie_break"),
    ],
)
def test_validation_errors_name_the_field(override, field):
    with pytest.raises(ScenarioError) as err:
        baseline(override)
    assert err.value.field == field, str(err.value)


def test_new_options_round_trip_through_overrides_and_dumps(tmp_path):
    from algocomp.scenarios import dump_scenario, scenario_hash

    scenario = baseline(
        "agents.q_init={uniform: [0, 10]}", "agents.tie_break=random", "agents.schedule=polynomial", "agents.power=0.75"
    )
    path = dump_scenario(scenario, tmp_path / "s.yaml")
    again = load_scenario(path)
    assert again == scenario and scenario_hash(again) == scenario_hash(scenario)
    assert again.agents.q_init.uniform == (0.0, 10.0)


# --------------------------------------------------------------------------------------------- slow

# Calvano et al.'s online appendix, robustness to the initial Q-matrix, memory 1, 1,000 sessions each (the
# replication package's AER_online_appendix_Rscripts/table_A9/table_A9.txt; its inputs, A_InputParameters_expl.txt,
# are the baseline with typeQ R 0 10 and U 5 0, and QL_routines.f90 draws type R independently per state, price,
# agent and session). The benchmark row of that table is 0.849 and 5.705.
PUBLISHED_Q_INIT_ROWS = {
    "Random (0, 10)": ("{uniform: [0, 10]}", 0.877, 5.604),
    "Uniform at Q = 5": ("5", 0.793, 5.481),
}


@pytest.mark.slow
@pytest.mark.parametrize("row", sorted(PUBLISHED_Q_INIT_ROWS))
def test_calvano_initial_q_rows(row):
    """About 1.5 minutes on two idle cores per row. The table gives no standard errors: the published means are
    taken to have the sampling error ours have, so their difference has sqrt(2) times our standard error, and
    must stay within three of those. Seed 0 (the preset's) gives, for Random (0, 10), Delta 0.887 and punishment
    length 5.78, 2.2 and 2.0 of those above the published 0.877 and 5.604 (seed 1 gives 0.877 and 5.64; both
    seeds' 2,000 sessions 0.882 [0.877, 0.886] and 5.71, 1.2 and 1.4 off); for Uniform at Q = 5, 0.789 and 5.44,
    0.8 and 0.5 below the published 0.793 and 5.481."""
    q_init, delta_published, length_published = PUBLISHED_Q_INIT_ROWS[row]
    result = run_experiment(baseline("sessions=1000", f"agents.q_init={q_init}"), workers=2)
    s = result.summary
    assert s["sessions"] == 1000 and s["converged_share"] == 1.0
    se_delta = np.sqrt(2) * s["profit_gain_sd"] / np.sqrt(1000)
    assert abs(s["profit_gain"] - delta_published) < 3 * se_delta, (s["profit_gain"], se_delta)
    # Calvano et al.'s punishment length, pooled over deviations; its standard error as a ratio estimator
    per_session = result.session_summaries
    lengths = np.array([m["shock_length"] for m in per_session], dtype=float)
    weights = np.array([m["shock_deviations"] for m in per_session], dtype=float)
    mean = s["mean_shock_length"]
    se_mean = np.sqrt(np.sum((weights * (lengths - mean)) ** 2)) / weights.sum()
    assert abs(mean - length_published) < 3 * np.sqrt(2) * se_mean, (mean, se_mean)
