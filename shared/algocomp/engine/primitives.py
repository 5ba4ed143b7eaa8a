"""Compiled building blocks shared by the kernel and the agents' hooks: the session's random stream, greedy-price
caches over table rows, best responses, state encoding, realised profits and the panel's interval log.

Nothing here knows an agent kind: the kinds (algocomp.agents) call these from their compiled hooks, and the
kernel (engine.kernel, and the dispatch engine.dispatch generates from the agent registry) around them.
The records below carry a session's constants and state into compiled code as two arguments.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from algocomp.agents.layout import I_BASE, I_MEMORY, I_MODK1, I_RIVALS

# Noise kinds (scenarios.model.DemandNoise). noise_sd is the normal kinds' sd, or profit_uniform's half-width 1/snr.
NOISE_NONE, NOISE_ADDITIVE_FLOORED, NOISE_MULTIPLICATIVE, NOISE_ADDITIVE_UNFLOORED, NOISE_PROFIT_UNIFORM = 0, 1, 2, 3, 4


class Market(NamedTuple):
    """A compiled scenario's constants as the compiled loops read them (engine.build.CompiledScenario)."""

    profit: np.ndarray  # (J, n) expected profit per joint price profile
    quantity: np.ndarray  # (J, n)
    cs_table: np.ndarray  # (J,) consumer surplus
    expected_fine: np.ndarray  # (J, n)
    grid: np.ndarray  # (n, m) prices
    costs: np.ndarray  # (n,)
    powers: np.ndarray  # (n,) m**i
    allowed: np.ndarray  # (n, m) allowed price indices, the first n_allowed[i] valid
    n_allowed: np.ndarray  # (n,)
    ipar: np.ndarray  # (n, columns) int parameters (agents.layout, then each kind's named ones)
    fpar: np.ndarray  # (n, columns) float parameters
    sequential: bool
    reprice_every: int
    noise_kind: int
    noise_sd: float
    audit_prob: float
    audit_fine: float
    audit_thr: np.ndarray  # (n,)


class Tables(NamedTuple):
    """A session's mutable arrays as the compiled loops read and write them (engine.session.SessionState)."""

    Q: np.ndarray  # every firm's table (Q-values, preferences or sample means), concatenated
    N: np.ndarray  # play counts per price (bandits)
    S2: np.ndarray  # sums of squared rewards per price (UCB-tuned; empty when no firm uses it)
    V: np.ndarray  # per state: the greedy value (or the critic's value)
    U2: np.ndarray  # per state: a bound on the best non-greedy value (Q-learning fast loop only)
    G: np.ndarray  # per state: the greedy price
    eps: np.ndarray  # per firm: exploration rate (or softmax temperature)
    act: np.ndarray  # per firm: the price index played last
    state: np.ndarray  # per firm: its current state
    last_change: np.ndarray
    flags: np.ndarray  # per firm: a rule-based agent's switch (grim trigger, tit for tat)
    seq_acc: np.ndarray
    seq_disc: np.ndarray
    prev_state: np.ndarray
    prev_act: np.ndarray
    rng: np.ndarray
    clock: np.ndarray
    scratch: np.ndarray  # (n, m) per firm working row (softmax probabilities, synchronous targets)
    log_f: np.ndarray
    log_i: np.ndarray
    acc_f: np.ndarray
    tail_a: np.ndarray
    tail_q: np.ndarray
    tail_pi: np.ndarray
    visits: np.ndarray


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


@njit(inline="always")
def _row_top2(Q, base, allowed, n_allowed, i):
    """First maximum over firm i's allowed prices, its value and the largest value among the other prices.

    One pass with selects instead of branches: a row is rescanned when its greedy value has just fallen, and
    where the maximum lies is then unpredictable, so the two branchy scans this replaces mispredicted several
    times per row (it was most of the learning phase's time). A later price must be strictly larger to take
    over, so the first maximum wins ties, and a price tying the maximum makes it the second value too."""
    best = allowed[i, 0]
    best_v = Q[base + best]
    second = -np.inf
    for k in range(1, n_allowed[i]):
        a = allowed[i, k]
        v = Q[base + a]
        above = v > best_v
        second = best_v if above else max(second, v)
        best = a if above else best
        best_v = v if above else best_v
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
    hidden, base m), newest in the lowest digit; or the rivals' current prices (I_RIVALS, Klein's learners)."""
    if ipar[i, I_RIVALS] != 0:
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
