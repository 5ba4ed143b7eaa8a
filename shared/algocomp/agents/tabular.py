"""Compiled pieces several tabular kinds share: epsilon-greedy choice from a table row, keeping a row's cached
greedy price after an update, and the bandits' sample averages. Kinds call these from their hooks."""

from __future__ import annotations

from numba import njit

from algocomp.agents.layout import I_QOFF, I_SOFF, I_TIE
from algocomp.engine.primitives import _GOLDEN, _below, _greedy_after_update_random, _mix, _row_argmax


@njit(inline="always")
def greedy_or_explore(i, learn, u, rs, row, G, allowed, eps, n_allowed):
    """The greedy price of cache row `row`; while learning, with probability eps[i] (u < eps) a uniformly random
    allowed price instead (one draw from the stream, only then)."""
    a = G[row]
    if learn and u < eps[i]:
        rs += _GOLDEN
        a = allowed[i, _below(_mix(rs), n_allowed[i])]
    return a, rs


@njit(inline="always")
def refresh_greedy(i, base, row, a, value, rs, G, Q, V, allowed, ipar, n_allowed):
    """After price a of the table row at `base` changed to `value`: the row's cached greedy price and value
    (G[row], V[row]), first maximum or random ties (I_TIE). Returns (rs, whether the greedy price changed)."""
    if ipar[i, I_TIE] != 0:
        return _greedy_after_update_random(Q, base, allowed, n_allowed, i, G, V, row, a, value, rs)
    g = G[row]
    g2, gv = _row_argmax(Q, base, allowed, n_allowed, i)
    G[row] = g2
    V[row] = gv
    return rs, g2 != g


@njit(inline="always")
def sample_average(i, a, r, square, rs, G, N, Q, S2, V, allowed, ipar, n_allowed):
    """A bandit's update: price a earned reward r (already scaled); its mean (and, with square, its sum of squared
    rewards) moves, then the greedy price is refreshed. Returns (rs, changed). S2 is only written with square."""
    qo = ipar[i, I_QOFF]
    cell = qo + a
    N[cell] += 1.0
    Q[cell] += (r - Q[cell]) / N[cell]
    if square:
        S2[cell] += r * r
    return refresh_greedy(i, qo, ipar[i, I_SOFF], a, Q[cell], rs, G, Q, V, allowed, ipar, n_allowed)
