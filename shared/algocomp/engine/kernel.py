"""The compiled simulation loops.

The general loop (run_periods) advances a session of any agents by a number of periods; it is generated from the
agent registry (engine.dispatch), one branch per kind calling that kind's hooks (agents/<kind>.py). Populations of
plain Q-learners take the specialised loops below (run_qlearning, play_qlearning); sessions run run_qlearning as
engine.specialised writes it out for their population's shape, bit-identical to it and faster. All work on two
records of flat arrays (engine.primitives.Market, the constants engine.build prepares, and Tables, the mutable
state of engine.session), so that a session can be run in chunks (for progress and cancellation) and copied to
replay its converged strategies without disturbing it. The records cross into compiled code as plain tuples, in their
fields' order: numba types a plain tuple of arrays in its C fast path, a named one in Python (some 40 us a call).

Hot-path choices, each measured with benchmarks/bench_engine.py:
- demand is never evaluated here: profits, quantities and consumer surplus come from tables over joint price
  profiles;
- every stateful learner caches, per state, its greedy action and its largest Q-value, so choosing the greedy
  price, the max in the Q-update and the convergence test are O(1) (a row is rescanned only when its best
  value falls below the bound on the rest, in one pass without branches: primitives._row_top2);
- randomness is a counter-based splitmix64 stream per session, kept in a register; an exploring firm draws a
  second number only when it explores;
- the exploration rate exp(-beta t) is carried multiplicatively, one multiply per firm per period (the
  polynomial schedule (1 + beta t)^(-power) is computed from t, in the general loop only);
- random tie-breaking (tie_break random) draws from the session's stream only when a row's maximum is tied
  as the greedy price is re-determined, so the cached greedy price stays a deterministic function of the table
  between updates and frozen play is deterministic; it runs in the general loop only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from algocomp.agents.layout import F_DECAY, F_DELTA, I_BASE, I_MEMORY, I_MODK1, I_QOFF, I_SOFF
from algocomp.engine import dispatch
from algocomp.engine.primitives import (
    _GOLDEN,
    C_ACC_COUNT,
    C_CONVERGED_AT,
    C_INTERVAL,
    C_LOG_ROWS,
    C_STABLE,
    C_T,
    N_CLOCK,
    _below,
    _flush_interval,
    _greedy_after_update_random,
    _half_unit,
    _mix,
    _next_state,
    _normal,
    _realised,
    _row_argmax,
    _row_argmax_random,
    _row_top2,
    _symmetric_unit,
    _unit,
    best_response,
    ucb_tuned_index,
)

__all__ = [
    "C_ACC_COUNT",
    "C_CONVERGED_AT",
    "C_INTERVAL",
    "C_LOG_ROWS",
    "C_STABLE",
    "C_T",
    "N_CLOCK",
    "_greedy_after_update_random",
    "_normal",
    "_realised",
    "_row_argmax",
    "_row_argmax_random",
    "_symmetric_unit",
    "_unit",
    "best_response",
    "play_qlearning",
    "run_periods",
    "run_qlearning",
    "ucb_tuned_index",
]


def run_periods(mk, st, n_periods, learn, convergence_periods, stop_at_convergence, record, force_step, force_firm):
    """Advance the session (st, an engine.primitives.Tables) of the market mk (a Market) by up to n_periods
    periods, whatever its agents.

    learn=True: agents explore and learn, the panel accumulators and tail are written, and convergence is
    tracked (the call returns early once converged if stop_at_convergence). learn=False: every agent plays its
    greedy price with learning frozen; the actions are written to record[k], and at step force_step firm
    force_firm plays its static best response instead (force_step < 0: never). Returns periods advanced.

    The loop itself is generated from the agent registry and compiled once per set of kinds (engine.dispatch).
    """
    n = st.act.shape[0]
    work = (
        np.empty(n, dtype=np.int64),  # new_act
        np.empty(n, dtype=np.int64),  # new_state
        np.empty(n),  # realised_pi
        np.empty(n),  # realised_q
        np.zeros(n),  # shock
        np.zeros((n + 1) // 2, dtype=np.uint64),  # draws
    )
    return dispatch.general_module().run_periods(
        tuple(mk),
        tuple(st),
        work,
        n_periods,
        learn,
        convergence_periods,
        stop_at_convergence,
        record,
        force_step,
        force_firm,
    )


@njit(cache=True)
def run_qlearning(mk, st, alpha_column, n_periods, convergence_periods, stop_at_convergence, log):
    """The learning phase when every firm is a Calvano Q-learner moving simultaneously with no demand noise,
    audits or repricing limit (price caps, floors, steering and hidden prices are in the tables and states).

    Same arithmetic and the same random draws as run_periods, hence bit-identical results (a test holds the
    two to it); it only drops the branches the general loop needs for other agents and levers. alpha_column is
    the float parameter column of the Q-learners' learning rate (agents.registry).
    """
    # the records arrive as plain tuples (Market and Tables order): numba types those from a C fast path
    (
        profit,
        quantity,
        cs_table,
        expected_fine,
        grid,
        costs,
        powers,
        allowed,
        n_allowed,
        ipar,
        fpar,
        sequential,
        reprice_every,
        noise_kind,
        noise_sd,
        audit_prob,
        audit_fine,
        audit_thr,
    ) = mk
    (
        Q,
        N,
        S2,
        V,
        U2,
        G,
        eps,
        act,
        state,
        last_change,
        flags,
        seq_acc,
        seq_disc,
        prev_state,
        prev_act,
        rng,
        clock,
        scratch,
        log_f,
        log_i,
        acc_f,
        tail_a,
        tail_q,
        tail_pi,
        visits,
    ) = st
    n = act.shape[0]
    m = grid.shape[1]
    new_act = np.empty(n, dtype=np.int64)
    new_state = np.empty(n, dtype=np.int64)
    draws = np.zeros((n + 1) // 2, dtype=np.uint64)
    alpha = fpar[:, alpha_column].copy()
    delta = fpar[:, F_DELTA].copy()
    decay = fpar[:, F_DECAY].copy()
    q_off = ipar[:, I_QOFF].copy()
    s_off = ipar[:, I_SOFF].copy()
    memory = ipar[:, I_MEMORY].copy()
    base = ipar[:, I_BASE].copy()
    modk1 = ipar[:, I_MODK1].copy()
    rs = rng[0]
    t = clock[C_T]
    stable = clock[C_STABLE]
    acc_count = clock[C_ACC_COUNT]
    interval = clock[C_INTERVAL]
    tail_len = tail_a.shape[0]
    tail_slot = t % tail_len if tail_len > 0 else 0
    count_visits = visits.shape[0] == profit.shape[0]
    done = 0
    for _ in range(n_periods):
        for k in range(draws.shape[0]):
            rs += _GOLDEN
            draws[k] = _mix(rs)
        j = 0
        for i in range(n):
            a = G[s_off[i] + state[i]]
            if _half_unit(draws, i) < eps[i]:
                rs += _GOLDEN
                a = allowed[i, _below(_mix(rs), n_allowed[i])]
            new_act[i] = a
            j += a * powers[i]
        for i in range(n):
            mem = memory[i]
            if mem == 0:
                new_state[i] = 0
            else:
                digit = j if base[i] != m else new_act[i]
                new_state[i] = digit if mem == 1 else digit + base[i] * (state[i] % modk1[i])
        for i in range(n):
            s = state[i]
            a = new_act[i]
            row = s_off[i] + s
            cell = q_off[i] + s * m + a
            old = Q[cell]
            new = old + alpha[i] * (profit[j, i] + delta[i] * V[s_off[i] + new_state[i]] - old)
            Q[cell] = new
            g = G[row]
            if a == g:
                if new >= V[row] or new > U2[row]:
                    V[row] = new  # still the best price: no rescan
                else:
                    g2, gv, second = _row_top2(Q, q_off[i] + s * m, allowed, n_allowed, i)
                    G[row] = g2
                    V[row] = gv
                    U2[row] = second
                    if g2 != g:
                        stable = -1
            elif new > V[row]:
                U2[row] = V[row]
                G[row] = a
                V[row] = new
                stable = -1
            elif new > U2[row]:
                U2[row] = new
            eps[i] *= decay[i]
            act[i] = a
            state[i] = new_state[i]
        if not log:
            pass
        elif count_visits:
            visits[j] += 1
        else:
            for i in range(n):
                acc_f[i] += grid[i, new_act[i]]
                acc_f[n + i] += quantity[j, i]
                acc_f[2 * n + i] += profit[j, i]
            acc_f[3 * n] += cs_table[j]
        acc_count += 1
        if acc_count == interval and log:
            if count_visits:
                _add_visits(visits, acc_f, grid, powers, quantity, profit, cs_table)
            clock[C_ACC_COUNT] = acc_count
            _flush_interval(log_f, log_i, acc_f, clock, t)
            acc_count = 0
            interval = clock[C_INTERVAL]
        if tail_len > 0 and log:
            for i in range(n):
                tail_a[tail_slot, i] = new_act[i]
            tail_slot += 1
            if tail_slot == tail_len:
                tail_slot = 0
        stable += 1
        t += 1
        done += 1
        if stable >= convergence_periods and clock[C_CONVERGED_AT] < 0:
            clock[C_CONVERGED_AT] = t
            if stop_at_convergence:
                break
    if count_visits:
        _add_visits(visits, acc_f, grid, powers, quantity, profit, cs_table)
    rng[0] = rs
    clock[C_T] = t
    clock[C_STABLE] = stable
    clock[C_ACC_COUNT] = acc_count
    return done


@njit(cache=True)
def _add_visits(visits, acc_f, grid, powers, quantity, profit, cs_table):
    """Fold profile visit counts into the interval sums and reset them."""
    n = powers.shape[0]
    m = grid.shape[1]
    for j in range(visits.shape[0]):
        c = visits[j]
        if c == 0:
            continue
        for i in range(n):
            a = (j // powers[i]) % m
            acc_f[i] += c * grid[i, a]
            acc_f[n + i] += c * quantity[j, i]
            acc_f[2 * n + i] += c * profit[j, i]
        acc_f[3 * n] += c * cs_table[j]
        visits[j] = 0


@njit(cache=True)
def play_qlearning(mk, st, record, n_periods, force_step, force_firm):
    """Greedy play with learning frozen, for populations of plain Q-learners: what run_periods does with
    learn=False, without compiling (or loading) the general loop for the most common experiments."""
    (
        profit,
        quantity,
        cs_table,
        expected_fine,
        grid,
        costs,
        powers,
        allowed,
        n_allowed,
        ipar,
        fpar,
        sequential,
        reprice_every,
        noise_kind,
        noise_sd,
        audit_prob,
        audit_fine,
        audit_thr,
    ) = mk
    (
        Q,
        N,
        S2,
        V,
        U2,
        G,
        eps,
        act,
        state,
        last_change,
        flags,
        seq_acc,
        seq_disc,
        prev_state,
        prev_act,
        rng,
        clock,
        scratch,
        log_f,
        log_i,
        acc_f,
        tail_a,
        tail_q,
        tail_pi,
        visits,
    ) = st
    n = act.shape[0]
    m = grid.shape[1]
    new_act = np.empty(n, dtype=np.int64)
    t = clock[C_T]
    for step in range(n_periods):
        for i in range(n):
            new_act[i] = G[ipar[i, I_SOFF] + state[i]]
        if step == force_step:
            new_act[force_firm] = best_response(force_firm, new_act, profit, expected_fine, powers, allowed, n_allowed)
        j = 0
        for i in range(n):
            record[step, i] = new_act[i]
            j += new_act[i] * powers[i]
        for i in range(n):
            state[i] = _next_state(i, state[i], j, new_act[i], ipar, powers, m)
            act[i] = new_act[i]
        t += 1
    clock[C_T] = t
    return n_periods
