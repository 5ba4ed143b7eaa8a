"""Compiled pieces several tabular kinds share: epsilon-greedy choice from a table row, keeping a row's cached
greedy price after an update, and the bandits' sample averages. Kinds call these from their hooks."""

from __future__ import annotations

from numba import njit

from algocomp.agents.layout import I_QOFF, I_SOFF, I_TIE
from algocomp.engine.primitives import _GOLDEN, _below, _greedy_after_update_random, _mix, _row_argmax


@njit(inline="always")
def greedy_or_explore(i, mk, st, learn, u, rs, row):
    """The greedy price of cache row `row`; while learning, with probability eps[i] (u < eps) a uniformly random
    allowed price instead (one draw from the stream, only then)."""
    a = st.G[row]
    if learn and u < st.eps[i]:
        rs += _GOLDEN
        a = mk.allowed[i, _below(_mix(rs), mk.n_allowed[i])]
    return a, rs


@njit(inline="always")
def refresh_greedy(i, mk, st, base, row, a, value, rs):
    """After price a of the table row at `base` changed to `value`: the row's cached greedy price and value
    (st.G[row], st.V[row]), first maximum or random ties (I_TIE). Returns (rs, whether the greedy price changed)."""
    if mk.ipar[i, I_TIE] != 0:
        return _greedy_after_update_random(st.Q, base, mk.allowed, mk.n_allowed, i, st.G, st.V, row, a, value, rs)
    g = st.G[row]
    g2, gv = _row_argmax(st.Q, base, mk.allowed, mk.n_allowed, i)
    st.G[row] = g2
    st.V[row] = gv
    return rs, g2 != g


@njit(inline="always")
def sample_average(i, mk, st, a, r, square, rs):
    """A bandit's update: price a earned reward r (already scaled); its mean (and, with square, its sum of squared
    rewards) moves, then the greedy price is refreshed. Returns (rs, changed)."""
    qo = mk.ipar[i, I_QOFF]
    cell = qo + a
    st.N[cell] += 1.0
    st.Q[cell] += (r - st.Q[cell]) / st.N[cell]
    if square:
        st.S2[cell] += r * r
    return refresh_greedy(i, mk, st, qo, mk.ipar[i, I_SOFF], a, st.Q[cell], rs)
