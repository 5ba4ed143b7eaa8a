"""The compiled simulation loop.

One numba function advances a session by a number of periods. It works only on flat arrays prepared by
engine.build (constants) and engine.session (mutable state), so that a session can be run in chunks (for
progress and cancellation) and copied to replay its converged strategies without disturbing it.

Hot-path choices, each measured with benchmarks/bench_engine.py:
- demand is never evaluated here: profits, quantities and consumer surplus come from tables over joint price
  profiles;
- every stateful learner caches, per state, its greedy action and its largest Q-value, so choosing the greedy
  price, the max in the Q-update and the convergence test are O(1) (a row is rescanned only when its best
  value falls);
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

from algocomp.agents.catalog import (
    ACTOR_CRITIC,
    EPSILON_GREEDY,
    EXPECTED_SARSA,
    F_ALPHA,
    F_BETA,
    F_DECAY,
    F_DELTA,
    F_EPS0,
    F_P1,
    F_P2,
    F_P3,
    F_POWER,
    F_SCALE,
    FIXED,
    GRIM_TRIGGER,
    I_BASE,
    I_KIND,
    I_MEMORY,
    I_MODK1,
    I_PRICE,
    I_PUNISH,
    I_QOFF,
    I_SOFF,
    I_TIE,
    KLEIN,
    MYOPIC,
    QLEARNING,
    QLEARNING_SYNC,
    THOMPSON,
    TIT_FOR_TAT,
    UCB1,
    UCB_TUNED,
)
from algocomp.engine.build import (
    NOISE_ADDITIVE_FLOORED,
    NOISE_ADDITIVE_UNFLOORED,
    NOISE_MULTIPLICATIVE,
    NOISE_PROFIT_UNIFORM,
)

# Clock slots (an int64 array per session).
C_T, C_STABLE, C_CONVERGED_AT, C_LOG_ROWS, C_INTERVAL, C_ACC_COUNT = range(6)
N_CLOCK = 6

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_HALF_STEP = 0.5 * _TO_UNIT  # centres _unit's 2**53 values in [0, 1), so 2 u - 1 is symmetric about 0


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _unit(r):
    """A uniform double in [0, 1) from the top 53 bits."""
    return np.float64(r >> np.uint64(11)) * _TO_UNIT


@njit(inline="always")
def _half_unit(draws, i):
    """Firm i's uniform in [0, 1) for its explore-or-not decision: one 64-bit draw serves two firms (32 bits
    each), which is plenty of resolution for exploration rates and halves the generator calls."""
    r = draws[i >> 1]
    if i & 1 == 0:
        r = r >> np.uint64(32)
    return np.float64(r & np.uint64(0xFFFFFFFF)) * (1.0 / 4294967296.0)


@njit(inline="always")
def _below(r, k):
    """A uniform integer in [0, k) from the top 32 bits (Lemire's multiply-shift, bias < k / 2**32)."""
    return np.int64(((r >> np.uint64(32)) * np.uint64(k)) >> np.uint64(32))


@njit(cache=True)
def _normal(rs):
    """A standard normal draw by Box-Muller; returns (new stream state, value)."""
    rs += _GOLDEN
    u1 = 1.0 - _unit(_mix(rs))
    rs += _GOLDEN
    u2 = _unit(_mix(rs))
    return rs, np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@njit(cache=True)
def _symmetric_unit(rs):
    """A uniform draw on (-1, 1), symmetric about 0 (mean exactly 0); returns (new stream state, value)."""
    rs += _GOLDEN
    return rs, 2.0 * (_unit(_mix(rs)) + _HALF_STEP) - 1.0


@njit(cache=True)
def ucb_tuned_index(mean, mean_sq, plays, log_total):
    """Auer, Cesa-Bianchi & Fischer's (2002) UCB-tuned index of one arm: mean + sqrt((ln n / n_j) min(1/4, V_j)),
    V_j = (mean of squares - mean^2) + sqrt(2 ln n / n_j); log_total is ln n, plays is n_j > 0."""
    bound = mean_sq - mean * mean + np.sqrt(2.0 * log_total / plays)
    return mean + np.sqrt(log_total / plays * min(0.25, bound))


@njit(cache=True)
def _row_argmax(Q, base, allowed, n_allowed, i):
    """First maximum over firm i's allowed prices of Q[base : base + m]."""
    best = allowed[i, 0]
    best_v = Q[base + best]
    for k in range(1, n_allowed[i]):
        a = allowed[i, k]
        v = Q[base + a]
        if v > best_v:
            best_v = v
            best = a
    return best, best_v


@njit(cache=True)
def _row_argmax_random(Q, base, allowed, n_allowed, i, rs):
    """A maximum over firm i's allowed prices, drawn uniformly among them when several share the largest value
    (one draw from the stream, only then). Returns (price, value, new stream state)."""
    best = allowed[i, 0]
    best_v = Q[base + best]
    count = 1
    for k in range(1, n_allowed[i]):
        a = allowed[i, k]
        v = Q[base + a]
        if v > best_v:
            best_v = v
            best = a
            count = 1
        elif v == best_v:
            count += 1
    if count > 1:
        rs += _GOLDEN
        pick = _below(_mix(rs), count)
        for k in range(n_allowed[i]):
            a = allowed[i, k]
            if Q[base + a] == best_v:
                if pick == 0:
                    best = a
                    break
                pick -= 1
    return best, best_v, rs


@njit(cache=True)
def _greedy_after_update_random(Q, base, allowed, n_allowed, i, G, V, row, a, new, rs):
    """Keep the cached greedy price G[row] and value V[row] of a row in which only price a changed (to `new`),
    with random tie-breaking: the greedy price is kept while it stays the only maximum or the set of maxima does
    not change; when its value falls, or another price reaches the maximum, it is drawn again uniformly among the
    maxima. Returns (new stream state, whether the greedy price changed)."""
    g = G[row]
    if a == g:
        if new >= V[row]:
            V[row] = new
            return rs, False
    elif new > V[row]:
        G[row] = a
        V[row] = new
        return rs, True
    elif new < V[row]:
        return rs, False
    g2, gv, rs = _row_argmax_random(Q, base, allowed, n_allowed, i, rs)
    G[row] = g2
    V[row] = gv
    return rs, g2 != g


@njit(cache=True)
def _row_top2(Q, base, allowed, n_allowed, i):
    """First maximum over firm i's allowed prices, its value and the largest value among the other prices."""
    best, best_v = _row_argmax(Q, base, allowed, n_allowed, i)
    second = -np.inf
    for k in range(n_allowed[i]):
        a = allowed[i, k]
        if a != best and Q[base + a] > second:
            second = Q[base + a]
    return best, best_v, second


@njit(cache=True)
def best_response(i, acts, profit, expected_fine, powers, allowed, n_allowed):
    """Firm i's most profitable allowed price against the others' prices in `acts` (ties: lowest price)."""
    rest = 0
    for k in range(acts.shape[0]):
        if k != i:
            rest += acts[k] * powers[k]
    best = allowed[i, 0]
    best_v = -np.inf
    for k in range(n_allowed[i]):
        a = allowed[i, k]
        j = rest + a * powers[i]
        v = profit[j, i] - expected_fine[j, i]
        if v > best_v:
            best_v = v
            best = a
    return best


@njit(cache=True)
def _nearest_allowed(i, price, grid, allowed, n_allowed):
    best = allowed[i, 0]
    best_d = np.inf
    for k in range(n_allowed[i]):
        a = allowed[i, k]
        d = abs(grid[i, a] - price)
        if d < best_d:
            best_d = d
            best = a
    return best


@njit(cache=True)
def _next_state(i, s, j, a_i, ipar, powers, m):
    """The state a firm sees after joint profile j: the last `memory` profiles (or own prices when rivals are
    hidden, base m), newest in the lowest digit. Klein learners see the rivals' current prices."""
    kind = ipar[i, I_KIND]
    if kind == KLEIN:
        return (j % powers[i]) + (j // (powers[i] * m)) * powers[i]
    memory = ipar[i, I_MEMORY]
    if memory == 0:
        return 0
    base = ipar[i, I_BASE]
    digit = j if base != m else a_i
    if memory == 1:  # the common case; spares an integer division in the hot loop
        return digit
    return digit + base * (s % ipar[i, I_MODK1])


@njit(cache=True)
def _realised(i, j, a_i, z, audited, profit, quantity, grid, costs, noise_kind, noise_sd, audit_fine, audit_thr):
    """Quantity and profit of firm i at profile j after the shock z (standard normal, or uniform on (-1, 1) for
    profit_uniform) and an audit. The kinds are documented in scenarios.model.DemandNoise."""
    q = quantity[j, i]
    if noise_kind == 0:  # the common case first
        pi = profit[j, i]
    elif noise_kind == NOISE_ADDITIVE_UNFLOORED:
        q = q + noise_sd * z
        pi = (grid[i, a_i] - costs[i]) * q
    elif noise_kind == NOISE_ADDITIVE_FLOORED:
        q = max(0.0, q + noise_sd * z)
        pi = (grid[i, a_i] - costs[i]) * q
    elif noise_kind == NOISE_MULTIPLICATIVE:
        q = q * np.exp(noise_sd * z - 0.5 * noise_sd * noise_sd)
        pi = (grid[i, a_i] - costs[i]) * q
    else:  # NOISE_PROFIT_UNIFORM
        pi = profit[j, i] + noise_sd * z
    if audited and a_i > audit_thr[i]:
        pi -= audit_fine
    return q, pi


@njit(cache=True)
def _flush_interval(log_f, log_i, acc_f, clock, t):
    """Close the current panel interval at period t. When the row buffer is full, neighbouring rows merge and
    the interval doubles, so a session's panel stays bounded whatever its horizon (rows hold sums, so merging
    is exact)."""
    rows = clock[C_LOG_ROWS]
    n_fields = acc_f.shape[0]
    if rows == log_f.shape[0]:
        half = 0
        for r in range(0, rows, 2):
            pair = r + 1 < rows
            for f in range(n_fields):
                log_f[half, f] = log_f[r, f] + (log_f[r + 1, f] if pair else 0.0)
            log_i[half, 0] = log_i[r + 1, 0] if pair else log_i[r, 0]
            log_i[half, 1] = log_i[r, 1] + (log_i[r + 1, 1] if pair else 0)
            half += 1
        rows = half
        clock[C_INTERVAL] *= 2
    for f in range(n_fields):
        log_f[rows, f] = acc_f[f]
        acc_f[f] = 0.0
    log_i[rows, 0] = t
    log_i[rows, 1] = clock[C_ACC_COUNT]
    clock[C_LOG_ROWS] = rows + 1
    clock[C_ACC_COUNT] = 0


@njit(cache=True)
def run_periods(
    # constants (engine.build.CompiledScenario)
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
    # session state (engine.session.SessionState)
    Q,
    N,
    S2,
    V,
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
    # logging
    log_f,
    log_i,
    acc_f,
    tail_a,
    tail_q,
    tail_pi,
    # control
    n_periods,
    learn,
    convergence_periods,
    stop_at_convergence,
    record,
    force_step,
    force_firm,
):
    """Advance the session by up to n_periods periods.

    learn=True: agents explore and learn, the panel accumulators and tail are written, and convergence is
    tracked (the call returns early once converged if stop_at_convergence). learn=False: every agent plays its
    greedy price with learning frozen; the actions are written to record[k], and at step force_step firm
    force_firm plays its static best response instead (force_step < 0: never). Returns periods advanced.
    """
    n = act.shape[0]
    m = grid.shape[1]
    new_act = np.empty(n, dtype=np.int64)
    new_state = np.empty(n, dtype=np.int64)
    realised_pi = np.empty(n)
    realised_q = np.empty(n)
    shock = np.zeros(n)
    rs = rng[0]
    t = clock[C_T]
    stable = clock[C_STABLE]
    tail_len = tail_a.shape[0]
    tail_slot = t % tail_len if tail_len > 0 else 0
    stochastic = noise_kind != 0 or audit_prob > 0.0
    draws = np.zeros((n + 1) // 2, dtype=np.uint64)
    done = 0
    for step in range(n_periods):
        mover = t % n if sequential else -1
        if learn:
            for k in range(draws.shape[0] if not sequential else 1):
                rs += _GOLDEN
                draws[k] = _mix(rs)
        # ---- sequential timing: the mover first learns from what its last move earned
        if sequential and learn:
            i = mover
            kind = ipar[i, I_KIND]
            if prev_act[i] >= 0 and kind != FIXED and kind != MYOPIC and kind != GRIM_TRIGGER and kind != TIT_FOR_TAT:
                qo = ipar[i, I_QOFF]
                so = ipar[i, I_SOFF]
                a = prev_act[i]
                if kind == KLEIN:
                    s = prev_state[i]
                    target = seq_acc[i] + seq_disc[i] * V[so + state[i]]
                    cell = qo + s * m + a
                    Q[cell] += fpar[i, F_ALPHA] * (target - Q[cell])
                    row = so + s
                else:  # bandits learn from the profit of the period they moved in
                    row = so
                    cell = qo + a
                    N[cell] += 1.0
                    r = seq_acc[i]
                    if kind != EPSILON_GREEDY:
                        r = r / fpar[i, F_SCALE]
                    Q[cell] += (r - Q[cell]) / N[cell]
                    if kind == UCB_TUNED:
                        S2[cell] += r * r
                if ipar[i, I_TIE] != 0:
                    rs, changed = _greedy_after_update_random(
                        Q, qo + (row - so) * m, allowed, n_allowed, i, G, V, row, a, Q[cell], rs
                    )
                    if changed:
                        stable = -1
                else:
                    old_g = G[row]
                    g, gv = _row_argmax(Q, qo + (row - so) * m, allowed, n_allowed, i)
                    G[row] = g
                    V[row] = gv
                    if g != old_g:
                        stable = -1
            seq_acc[i] = 0.0
            seq_disc[i] = 1.0
        # ---- choose prices
        for i in range(n):
            if sequential and i != mover:
                new_act[i] = act[i]
                continue
            if reprice_every > 1 and t - last_change[i] < reprice_every:
                new_act[i] = act[i]
                continue
            kind = ipar[i, I_KIND]
            so = ipar[i, I_SOFF]
            if kind == QLEARNING or kind == QLEARNING_SYNC or kind == EXPECTED_SARSA or kind == KLEIN:
                a = G[so + state[i]]
                if learn and _half_unit(draws, 0 if sequential else i) < eps[i]:
                    rs += _GOLDEN
                    a = allowed[i, _below(_mix(rs), n_allowed[i])]
            elif kind == FIXED:
                a = ipar[i, I_PRICE]
            elif kind == MYOPIC:
                a = best_response(i, act, profit, expected_fine, powers, allowed, n_allowed)
            elif kind == GRIM_TRIGGER:
                a = ipar[i, I_PUNISH] if flags[i] != 0 else ipar[i, I_PRICE]
            elif kind == TIT_FOR_TAT:
                if flags[i] == 0:
                    a = ipar[i, I_PRICE]
                else:
                    lowest = np.inf
                    for k in range(n):
                        if k != i and grid[k, act[k]] < lowest:
                            lowest = grid[k, act[k]]
                    a = _nearest_allowed(i, lowest, grid, allowed, n_allowed)
            elif not learn:
                a = G[so + (state[i] if kind == ACTOR_CRITIC else 0)]
            elif kind == EPSILON_GREEDY:
                a = G[so]
                if _half_unit(draws, 0 if sequential else i) < eps[i]:
                    rs += _GOLDEN
                    a = allowed[i, _below(_mix(rs), n_allowed[i])]
            elif kind == UCB1 or kind == UCB_TUNED:
                # every allowed price once (lowest first), then the largest index
                qo = ipar[i, I_QOFF]
                a = -1
                total = 0.0
                for k in range(n_allowed[i]):
                    c = allowed[i, k]
                    total += N[qo + c]
                    if N[qo + c] == 0.0 and a < 0:
                        a = c
                if a < 0:
                    log_total = np.log(total)
                    best_v = -np.inf
                    for k in range(n_allowed[i]):
                        c = allowed[i, k]
                        plays = N[qo + c]
                        if kind == UCB1:
                            v = Q[qo + c] + fpar[i, F_EPS0] * np.sqrt(log_total / plays)
                        else:
                            v = ucb_tuned_index(Q[qo + c], S2[qo + c] / plays, plays, log_total)
                        if v > best_v:
                            best_v = v
                            a = c
            elif kind == THOMPSON:
                qo = ipar[i, I_QOFF]
                prior_prec = 1.0 / (fpar[i, F_P2] * fpar[i, F_P2])
                noise_prec = 1.0 / (fpar[i, F_P3] * fpar[i, F_P3])
                best_v = -np.inf
                a = allowed[i, 0]
                for k in range(n_allowed[i]):
                    c = allowed[i, k]
                    prec = prior_prec + N[qo + c] * noise_prec
                    mean = (fpar[i, F_P1] * prior_prec + Q[qo + c] * N[qo + c] * noise_prec) / prec
                    rs, z = _normal(rs)
                    v = mean + z / np.sqrt(prec)
                    if v > best_v:
                        best_v = v
                        a = c
            else:  # ACTOR_CRITIC: sample from the softmax over preferences
                qo = ipar[i, I_QOFF] + state[i] * m
                temperature = max(eps[i], fpar[i, F_P2])
                top = -np.inf
                for k in range(n_allowed[i]):
                    top = max(top, Q[qo + allowed[i, k]])
                total = 0.0
                for c in range(m):
                    w = np.exp((Q[qo + c] - top) / temperature)
                    scratch[i, c] = w
                    total += w
                rs += _GOLDEN
                u = _unit(_mix(rs)) * total
                a = allowed[i, n_allowed[i] - 1]
                cum = 0.0
                for k in range(n_allowed[i]):
                    c = allowed[i, k]
                    cum += scratch[i, c]
                    if u < cum:
                        a = c
                        break
                for c in range(m):
                    scratch[i, c] /= total
            new_act[i] = a
        if not learn:
            if step == force_step:
                new_act[force_firm] = best_response(
                    force_firm, new_act, profit, expected_fine, powers, allowed, n_allowed
                )
            for i in range(n):
                record[step, i] = new_act[i]
        for i in range(n):
            if new_act[i] != act[i]:
                last_change[i] = t
        # ---- outcome
        j = 0
        for i in range(n):
            j += new_act[i] * powers[i]
        audited = False
        if learn and stochastic:
            if noise_kind == NOISE_PROFIT_UNIFORM:
                for i in range(n):
                    rs, shock[i] = _symmetric_unit(rs)
            elif noise_kind != 0:
                for i in range(n):
                    rs, shock[i] = _normal(rs)
            if audit_prob > 0.0:
                rs += _GOLDEN
                audited = _unit(_mix(rs)) < audit_prob
            for i in range(n):
                realised_q[i], realised_pi[i] = _realised(
                    i,
                    j,
                    new_act[i],
                    shock[i],
                    audited,
                    profit,
                    quantity,
                    grid,
                    costs,
                    noise_kind,
                    noise_sd,
                    audit_fine,
                    audit_thr,
                )
        else:
            for i in range(n):
                realised_q[i] = quantity[j, i]
                realised_pi[i] = profit[j, i]
        # ---- next states and learning
        for i in range(n):
            new_state[i] = _next_state(i, state[i], j, new_act[i], ipar, powers, m)
        if learn:
            if sequential:
                for i in range(n):
                    seq_acc[i] += seq_disc[i] * realised_pi[i]
                    seq_disc[i] *= fpar[i, F_DELTA]
                prev_state[mover] = state[mover]
                prev_act[mover] = new_act[mover]
            else:
                for i in range(n):
                    kind = ipar[i, I_KIND]
                    if kind == FIXED or kind == MYOPIC or kind == GRIM_TRIGGER or kind == TIT_FOR_TAT:
                        continue
                    qo = ipar[i, I_QOFF]
                    so = ipar[i, I_SOFF]
                    a = new_act[i]
                    r = realised_pi[i]
                    if kind == QLEARNING:
                        s = state[i]
                        row = so + s
                        cell = qo + s * m + a
                        old = Q[cell]
                        new = old + fpar[i, F_ALPHA] * (r + fpar[i, F_DELTA] * V[so + new_state[i]] - old)
                        Q[cell] = new
                        g = G[row]
                        if a == g:
                            if new >= V[row]:
                                V[row] = new
                            else:
                                if ipar[i, I_TIE] != 0:
                                    g2, gv, rs = _row_argmax_random(Q, qo + s * m, allowed, n_allowed, i, rs)
                                else:
                                    g2, gv = _row_argmax(Q, qo + s * m, allowed, n_allowed, i)
                                G[row] = g2
                                V[row] = gv
                                if g2 != g:
                                    stable = -1
                        elif new > V[row]:
                            G[row] = a
                            V[row] = new
                            stable = -1
                        elif ipar[i, I_TIE] != 0 and new == V[row]:
                            # random ties (_greedy_after_update_random): a price reaching the maximum reopens the draw
                            g2, gv, rs = _row_argmax_random(Q, qo + s * m, allowed, n_allowed, i, rs)
                            G[row] = g2
                            if g2 != g:
                                stable = -1
                    elif kind == QLEARNING_SYNC or kind == EXPECTED_SARSA:
                        s = state[i]
                        row = so + s
                        base = qo + s * m
                        if kind == QLEARNING_SYNC:
                            # every price, with its counterfactual profit against the rivals' actual prices
                            rest = j - a * powers[i]
                            for k in range(n_allowed[i]):
                                c = allowed[i, k]
                                jc = rest + c * powers[i]
                                qc, pc = _realised(
                                    i,
                                    jc,
                                    c,
                                    shock[i],
                                    audited,
                                    profit,
                                    quantity,
                                    grid,
                                    costs,
                                    noise_kind,
                                    noise_sd,
                                    audit_fine,
                                    audit_thr,
                                )
                                sc = _next_state(i, s, jc, c, ipar, powers, m)
                                scratch[i, c] = pc + fpar[i, F_DELTA] * V[so + sc]
                            for k in range(n_allowed[i]):
                                c = allowed[i, k]
                                Q[base + c] += fpar[i, F_ALPHA] * (scratch[i, c] - Q[base + c])
                        else:
                            s2 = new_state[i]
                            mean = 0.0
                            for k in range(n_allowed[i]):
                                mean += Q[qo + s2 * m + allowed[i, k]]
                            mean /= n_allowed[i]
                            e = eps[i]
                            target = r + fpar[i, F_DELTA] * ((1.0 - e) * V[so + s2] + e * mean)
                            Q[base + a] += fpar[i, F_ALPHA] * (target - Q[base + a])
                        g = G[row]
                        if ipar[i, I_TIE] != 0 and kind == EXPECTED_SARSA:
                            rs, changed = _greedy_after_update_random(
                                Q, base, allowed, n_allowed, i, G, V, row, a, Q[base + a], rs
                            )
                            if changed:
                                stable = -1
                        else:
                            if ipar[i, I_TIE] != 0:  # every price moved: draw again among the maxima
                                g2, gv, rs = _row_argmax_random(Q, base, allowed, n_allowed, i, rs)
                            else:
                                g2, gv = _row_argmax(Q, base, allowed, n_allowed, i)
                            G[row] = g2
                            V[row] = gv
                            if g2 != g:
                                stable = -1
                    elif kind == ACTOR_CRITIC:
                        s = state[i]
                        row = so + s
                        base = qo + s * m
                        td = r + fpar[i, F_DELTA] * V[so + new_state[i]] - V[row]
                        V[row] += fpar[i, F_P1] * td
                        temperature = max(eps[i], fpar[i, F_P2])
                        step_size = fpar[i, F_ALPHA] * td / temperature
                        for k in range(n_allowed[i]):
                            c = allowed[i, k]
                            grad = (1.0 if c == a else 0.0) - scratch[i, c]
                            Q[base + c] += step_size * grad
                        g = G[row]
                        g2, gv = _row_argmax(Q, base, allowed, n_allowed, i)
                        G[row] = g2
                        if g2 != g:
                            stable = -1
                    else:  # bandits: sample averages per price
                        cell = qo + a
                        N[cell] += 1.0
                        if kind != EPSILON_GREEDY:
                            r = r / fpar[i, F_SCALE]
                        Q[cell] += (r - Q[cell]) / N[cell]
                        if kind == UCB_TUNED:
                            S2[cell] += r * r
                        if ipar[i, I_TIE] != 0:
                            rs, changed = _greedy_after_update_random(
                                Q, qo, allowed, n_allowed, i, G, V, so, a, Q[cell], rs
                            )
                            if changed:
                                stable = -1
                        else:
                            g = G[so]
                            g2, gv = _row_argmax(Q, qo, allowed, n_allowed, i)
                            G[so] = g2
                            V[so] = gv
                            if g2 != g:
                                stable = -1
            for i in range(n):
                if fpar[i, F_POWER] > 0.0:  # polynomial schedule: eps_0 (1 + beta t)^(-power) for period t + 1
                    start = fpar[i, F_EPS0] if ipar[i, I_KIND] == EPSILON_GREEDY else 1.0
                    eps[i] = start * (1.0 + fpar[i, F_BETA] * (t + 1)) ** (-fpar[i, F_POWER])
                else:
                    eps[i] *= fpar[i, F_DECAY]
        # ---- rule-based agents observe the prices just played
        for i in range(n):
            kind = ipar[i, I_KIND]
            if kind == GRIM_TRIGGER:
                cooperative = grid[i, ipar[i, I_PRICE]]
                for k in range(n):
                    if k != i and grid[k, new_act[k]] < cooperative - 1e-12:
                        flags[i] = 1
            elif kind == TIT_FOR_TAT:
                flags[i] = 1
        for i in range(n):
            act[i] = new_act[i]
            state[i] = new_state[i]
        # ---- logging
        if learn:
            for i in range(n):
                acc_f[i] += grid[i, new_act[i]]
                acc_f[n + i] += realised_q[i]
                acc_f[2 * n + i] += realised_pi[i]
            acc_f[3 * n] += cs_table[j]
            clock[C_ACC_COUNT] += 1
            if clock[C_ACC_COUNT] == clock[C_INTERVAL]:
                _flush_interval(log_f, log_i, acc_f, clock, t)
            if tail_len > 0:
                for i in range(n):
                    tail_a[tail_slot, i] = new_act[i]
                    tail_q[tail_slot, i] = realised_q[i]
                    tail_pi[tail_slot, i] = realised_pi[i]
                tail_slot += 1
                if tail_slot == tail_len:
                    tail_slot = 0
            stable += 1
        t += 1
        done += 1
        if learn and stable >= convergence_periods and clock[C_CONVERGED_AT] < 0:
            clock[C_CONVERGED_AT] = t
            if stop_at_convergence:
                break
    rng[0] = rs
    clock[C_T] = t
    clock[C_STABLE] = stable
    return done


@njit(cache=True)
def run_qlearning(
    profit,
    quantity,
    cs_table,
    grid,
    powers,
    allowed,
    n_allowed,
    ipar,
    fpar,
    Q,
    V,
    U2,
    G,
    eps,
    act,
    state,
    rng,
    clock,
    log_f,
    log_i,
    acc_f,
    tail_a,
    visits,
    n_periods,
    convergence_periods,
    stop_at_convergence,
    log,
):
    """The learning phase when every firm is a Calvano Q-learner moving simultaneously with no demand noise,
    audits or repricing limit (price caps, floors, steering and hidden prices are in the tables and states).

    Same arithmetic and the same random draws as run_periods, hence bit-identical results (a test holds the
    two to it); it only drops the branches the general loop needs for other agents and levers.
    """
    n = act.shape[0]
    m = grid.shape[1]
    new_act = np.empty(n, dtype=np.int64)
    new_state = np.empty(n, dtype=np.int64)
    draws = np.zeros((n + 1) // 2, dtype=np.uint64)
    alpha = fpar[:, F_ALPHA].copy()
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
def play_qlearning(
    profit,
    expected_fine,
    grid,
    powers,
    allowed,
    n_allowed,
    ipar,
    G,
    act,
    state,
    clock,
    record,
    n_periods,
    force_step,
    force_firm,
):
    """Greedy play with learning frozen, for populations of plain Q-learners: what run_periods does with
    learn=False, without compiling (or loading) the general loop for the most common experiments."""
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
