"""Memory 2 (Calvano et al. 2020, online appendix Table A11) and why the published figure is lower than ours.

With memory two the state is the last two price profiles. The authors' replication code encodes a state as the
prices of (t-1: firm 1, firm 2, t-2: firm 1, firm 2), but where its analysis turns the converged state back into
prices (ConvergenceResults.f90, and computeQCell for the equilibrium checks) it reads those digits in the order
(t-1: firm 1, t-2: firm 1, t-1: firm 2, t-2: firm 2): a RESHAPE to (DepthState, numAgents) undoing a RESHAPE of
the TRANSPOSE. With memory one the two orders coincide, so only memory >= 2 is affected: the limit cycle whose
profits Table A11 reports is followed from a state where firm 1's price two periods back stands in for firm 2's
last price, which is off the learned path whenever the last two profiles are not symmetric and constant.

The same misreading sits in the code's equilibrium and deviation analysis (computeQCell starts every path from the
decoded prices). The learning itself is the same in both codes. These tests hold algocomp's on-path figures and show
that the same sessions, analysed as the replication code analyses them, give the published Delta, share of
equilibria on the path and share of unprofitable deviations within sampling error.
"""

from __future__ import annotations

import numpy as np
import pytest
from published import CALVANO_A11, report, within_sampling_error

from algocomp.agents.catalog import I_SOFF
from algocomp.engine.build import CompiledScenario, compile_scenario
from algocomp.engine.deviations import DeviationCheck, state_values
from algocomp.engine.kernel import best_response
from algocomp.engine.processes import mp_context
from algocomp.engine.seeds import session_seeds
from algocomp.engine.session import (
    SessionState,
    cycle_starts,
    deviation_check,
    learn,
    limit_cycle,
    new_state,
    play_greedy,
    run_session,
)
from algocomp.metrics.session import cycle_outcomes
from algocomp.scenarios import apply_overrides, load_scenario

PUBLISHED = CALVANO_A11[2]  # Table A11, k = 2


def memory_2(*overrides: str):
    return apply_overrides(load_scenario("calvano-2020-baseline"), ["agents.memory=2", *overrides])


def _profiles(cs: CompiledScenario, joint: int) -> list[int]:
    m = cs.grid.shape[1]
    return [(joint // int(cs.powers[i])) % m for i in range(cs.n_firms)]


def _joint(cs: CompiledScenario, prices: list[int]) -> int:
    return int(sum(int(a) * int(p) for a, p in zip(prices, cs.powers)))


def replication_code_state(cs: CompiledScenario, st: SessionState) -> SessionState:
    """A copy of a memory-2 duopoly session whose state is the converged state as the authors' code decodes it."""
    profiles = cs.grid.shape[1] ** cs.n_firms
    state = int(st.state[0])
    last, before = _profiles(cs, state % profiles), _profiles(cs, state // profiles)
    read_last = [last[0], before[0]]  # "t-1" as read: firm 1 at t-1, firm 1 at t-2
    read_before = [last[1], before[1]]  # "t-2" as read: firm 2 at t-1, firm 2 at t-2
    decoded = st.copy()
    decoded.state[:] = _joint(cs, read_last) + profiles * _joint(cs, read_before)
    decoded.act[:] = read_last
    return decoded


def replication_code_checks(cs: CompiledScenario, on_cycle: SessionState, cycle_length: int) -> DeviationCheck:
    """Calvano et al.'s equilibrium and incentive checks as their analysis code computes them for memory 2: from
    each state of the cycle, the first-period prices are the strategies' at that state, but the history the path
    continues from is the state as the code decodes it (computeQCell starts from the decoded prices)."""
    net = cs.profit - cs.expected_fine
    horizon = cs.scenario.logging.cycle_search
    starts = cycle_starts(cs, on_cycle, cycle_length)
    n = cs.n_firms
    best_reply = np.zeros((len(starts), n), dtype=bool)
    strategy_value = np.zeros((len(starts), n))
    static_value = np.zeros((len(starts), n))
    for r, start in enumerate(starts):
        first = np.array([start.G[int(cs.ipar[k, I_SOFF]) + int(start.state[k])] for k in range(n)], dtype=np.int64)
        history = replication_code_state(cs, start).state
        for i in range(n):
            values, _ = state_values(
                i,
                history,
                first,
                start.G,
                cs.ipar,
                cs.fpar,
                cs.powers,
                cs.n_prices,
                net,
                cs.allowed,
                cs.n_allowed,
                horizon,
            )
            best_reply[r, i] = values[first[i]] >= values.max() - 1e-12 * max(1.0, abs(values.max()))
            strategy_value[r, i] = values[first[i]]
            static_value[r, i] = values[
                best_response(i, first, cs.profit, cs.expected_fine, cs.powers, cs.allowed, cs.n_allowed)
            ]
    return DeviationCheck(
        best_reply=best_reply, strategy_value=strategy_value, static_br_value=static_value, exact=True
    )


def analysis(cs: CompiledScenario, st: SessionState, *, as_replication_code: bool) -> list[float]:
    """Delta over the limit cycle, the equilibrium-on-path flag, and the number of deviations to the static best
    response from the cycle that do not pay and that were tried, from the converged session `st` (not changed):
    on the learned path, or as the replication code computes them."""
    frozen = replication_code_state(cs, st) if as_replication_code else st.copy()
    cycle, length = limit_cycle(play_greedy(cs, frozen, cs.scenario.logging.cycle_search))
    check = (
        replication_code_checks(cs, frozen, length)
        if as_replication_code
        else deviation_check(cs, cycle_starts(cs, frozen, length))
    )
    assert check is not None
    unprofitable = check.unprofitable_static_deviation
    return [
        float(cycle_outcomes(cs, cycle)["profit_gain"]),
        float(check.equilibrium_on_path),
        float(unprofitable.sum()),
        float(unprofitable.size),
    ]


_compiled: CompiledScenario | None = None


def _set_compiled(compiled: CompiledScenario) -> None:
    global _compiled
    _compiled = compiled


def _both_analyses(seed: int) -> list[float]:
    assert _compiled is not None
    st = new_state(_compiled, seed)
    learn(_compiled, st)
    return analysis(_compiled, st, as_replication_code=False) + analysis(_compiled, st, as_replication_code=True)


def test_the_replication_code_decoding_is_the_identity_for_a_symmetric_constant_history():
    cs = compile_scenario(memory_2("sessions=1"))
    st = new_state(cs, 7)
    profiles = cs.grid.shape[1] ** cs.n_firms
    same = _joint(cs, [5, 5])
    st.state[:] = same + profiles * same
    assert int(replication_code_state(cs, st).state[0]) == int(st.state[0])
    # an asymmetric history is read with firm 1's older price as firm 2's last one
    st.state[:] = _joint(cs, [3, 9]) + profiles * _joint(cs, [4, 11])
    decoded = replication_code_state(cs, st)
    assert _profiles(cs, int(decoded.state[0]) % profiles) == [3, 4]
    assert _profiles(cs, int(decoded.state[0]) // profiles) == [9, 11]


def test_on_path_analysis_is_the_engines():
    """The figures computed here from the converged state are the ones run_session reports."""
    scenario = memory_2("sessions=2")
    cs = compile_scenario(scenario)
    for index, seed in enumerate(session_seeds(scenario.seed, 2)):
        st = new_state(cs, int(seed))
        learn(cs, st)
        result = run_session(cs, index, int(seed))
        assert result is not None
        gain, equilibrium, unprofitable, tried = analysis(cs, st, as_replication_code=False)
        assert gain == pytest.approx(result.metrics["profit_gain"], abs=1e-12)
        assert equilibrium == result.metrics["equilibrium_on_path"]
        assert tried == result.metrics["static_deviations"]
        assert unprofitable / tried == pytest.approx(result.metrics["static_deviation_unprofitable_share"])


@pytest.mark.slow
def test_memory_2_matches_table_a11_as_the_replication_code_analyses_it():
    scenario = memory_2("sessions=200")
    compiled = compile_scenario(scenario)
    seeds = [int(seed) for seed in session_seeds(scenario.seed, scenario.sessions)]
    with mp_context().Pool(2, initializer=_set_compiled, initargs=(compiled,)) as pool:
        rows = np.array(pool.map(_both_analyses, seeds))
    ours, theirs = rows[:, :4], rows[:, 4:]
    for label, figures in (("on the learned path", ours), ("as the replication code analyses it", theirs)):
        report(f"memory 2, {label}, Delta", figures[:, 0])
        report(f"memory 2, {label}, equilibrium on the path", figures[:, 1])
        report(f"memory 2, {label}, unprofitable static deviations", figures[:, 2], weights=figures[:, 3])
    # Table A11, k = 2: Delta 0.574, equilibrium on path 0.371, deviations to the static best response that do not
    # pay 0.441, reproduced when the sessions are analysed as the replication code does
    assert within_sampling_error(theirs[:, 0], PUBLISHED["profit_gain"])
    assert within_sampling_error(theirs[:, 1], PUBLISHED["equilibrium_on_path"])
    assert within_sampling_error(theirs[:, 2], PUBLISHED["unprofitable_deviations"], weights=theirs[:, 3])
    # on the learned path the strategies collude more, and more of them are equilibria, beyond sampling error
    n = len(seeds)
    assert ours[:, 0].mean() - PUBLISHED["profit_gain"] > 3 * ours[:, 0].std(ddof=1) / np.sqrt(n)
    assert ours[:, 1].mean() - PUBLISHED["equilibrium_on_path"] > 3 * ours[:, 1].std(ddof=1) / np.sqrt(n)
    assert ours[:, 2].sum() / ours[:, 3].sum() > 0.9
