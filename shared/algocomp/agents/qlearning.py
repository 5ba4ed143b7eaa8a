"""Tabular Q-learning with memory (Calvano et al. 2020), asynchronous or synchronous (Asker et al. 2022).

Populations made only of asynchronous Q-learners without the options of the general loop also have a fast loop
of their own (engine.kernel.run_qlearning), bit-identical to these hooks in the general one.
"""

from __future__ import annotations

from typing import ClassVar, Literal, NamedTuple

from numba import njit
from pydantic import Field, NonNegativeFloat, PositiveFloat, field_validator

from algocomp.agents.base import (
    POWER_DESCRIPTION,
    SCHEDULE_DESCRIPTION,
    TIE_BREAK_DESCRIPTION,
    AgentKind,
    PackContext,
    PackedFirm,
    QInit,
    Schedule,
    TieBreak,
    power_needs_polynomial,
    q_init_fields,
    schedule_fields,
)
from algocomp.agents.layout import F_DELTA, I_QOFF, I_SOFF, I_TIE
from algocomp.agents.tabular import greedy_or_explore
from algocomp.engine.primitives import _next_state, _realised, _row_argmax, _row_argmax_random
from algocomp.spec import Spec


class QLearning(Spec):
    """Tabular Q-learning with memory k exactly as Calvano et al. (2020).

    State: the price vector of the last `memory` periods. Exploration: a uniformly random price with probability
    exp(-beta t) (or (1 + beta t)^(-power) with schedule polynomial). Q starts at the discounted profit against
    uniformly random rivals (q_init calvano), or a constant, or uniform random draws (q_init {uniform: [low, high]}).
    update asynchronous: only the price played is updated (Calvano); synchronous: every price is updated with
    its counterfactual profit against the rivals' actual prices (Asker, Fershtman & Pakes 2022).
    """

    type: Literal["qlearning"] = "qlearning"
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
    alpha: float = Field(0.15, gt=0.0, le=1.0, description="learning rate")
    delta: float = Field(0.95, ge=0.0, lt=1.0, description="discount factor")
    beta: NonNegativeFloat = Field(4e-6, description="exploration decay: eps_t = exp(-beta t)")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    memory: int = Field(1, ge=0, le=4, description="periods of past prices in the state (0: stateless)")
    update: Literal["asynchronous", "synchronous"] = "asynchronous"
    q_init: QInit = "calvano"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(power_needs_polynomial)


class Params(NamedTuple):
    alpha: float  # learning rate
    synchronous: int  # 1: every price is updated with its counterfactual profit


def pack(agent, ctx: PackContext) -> PackedFirm:
    base, states = ctx.history_states(agent.memory)
    return PackedFirm(
        params=Params(alpha=agent.alpha, synchronous=int(agent.update == "synchronous")),
        states=states,
        memory=agent.memory,
        base=base,
        delta=agent.delta,
        explore0=1.0,
        **schedule_fields(agent),
        **q_init_fields(agent),
    )


@njit(inline="always")
def choose(i, p, mk, st, learn, u, rs):
    return greedy_or_explore(i, mk, st, learn, u, rs, mk.ipar[i, I_SOFF] + st.state[i])


@njit(inline="always")
def learn(i, p, mk, st, a, r, j, s, s2, shock, audited, rs):
    if p.synchronous != 0:
        return _learn_synchronous(i, p, mk, st, a, j, s, shock, audited, rs)
    m = mk.grid.shape[1]
    qo = mk.ipar[i, I_QOFF]
    so = mk.ipar[i, I_SOFF]
    tie = mk.ipar[i, I_TIE] != 0
    row = so + s
    cell = qo + s * m + a
    old = st.Q[cell]
    new = old + p.alpha * (r + mk.fpar[i, F_DELTA] * st.V[so + s2] - old)
    st.Q[cell] = new
    g = st.G[row]
    changed = False
    if a == g:
        if new >= st.V[row]:
            st.V[row] = new  # still the best price: no rescan
        else:
            if tie:
                g2, gv, rs = _row_argmax_random(st.Q, qo + s * m, mk.allowed, mk.n_allowed, i, rs)
            else:
                g2, gv = _row_argmax(st.Q, qo + s * m, mk.allowed, mk.n_allowed, i)
            st.G[row] = g2
            st.V[row] = gv
            changed = g2 != g
    elif new > st.V[row]:
        st.G[row] = a
        st.V[row] = new
        changed = True
    elif tie and new == st.V[row]:
        # random ties (_greedy_after_update_random): a price reaching the maximum reopens the draw
        g2, gv, rs = _row_argmax_random(st.Q, qo + s * m, mk.allowed, mk.n_allowed, i, rs)
        st.G[row] = g2
        changed = g2 != g
    return rs, changed


@njit(inline="always")
def _learn_synchronous(i, p, mk, st, a, j, s, shock, audited, rs):
    """Every allowed price, with its counterfactual profit against the rivals' actual prices."""
    m = mk.grid.shape[1]
    qo = mk.ipar[i, I_QOFF]
    so = mk.ipar[i, I_SOFF]
    delta = mk.fpar[i, F_DELTA]
    row = so + s
    base = qo + s * m
    rest = j - a * mk.powers[i]
    for k in range(mk.n_allowed[i]):
        c = mk.allowed[i, k]
        jc = rest + c * mk.powers[i]
        qc, pc = _realised(
            i,
            jc,
            c,
            shock[i],
            audited,
            mk.profit,
            mk.quantity,
            mk.grid,
            mk.costs,
            mk.noise_kind,
            mk.noise_sd,
            mk.audit_fine,
            mk.audit_thr,
        )
        sc = _next_state(i, s, jc, c, mk.ipar, mk.powers, m)
        st.scratch[i, c] = pc + delta * st.V[so + sc]
    for k in range(mk.n_allowed[i]):
        c = mk.allowed[i, k]
        st.Q[base + c] += p.alpha * (st.scratch[i, c] - st.Q[base + c])
    g = st.G[row]
    if mk.ipar[i, I_TIE] != 0:  # every price moved: draw again among the maxima
        g2, gv, rs = _row_argmax_random(st.Q, base, mk.allowed, mk.n_allowed, i, rs)
    else:
        g2, gv = _row_argmax(st.Q, base, mk.allowed, mk.n_allowed, i)
    st.G[row] = g2
    st.V[row] = gv
    return rs, g2 != g


KIND = AgentKind(
    name="qlearning",
    specs=(QLearning,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    timings=("simultaneous",),
    greedy_by_state=True,
)
