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
def choose(i, p, learn, u, rs, ipar, state, G, allowed, eps, n_allowed):
    return greedy_or_explore(i, learn, u, rs, ipar[i, I_SOFF] + state[i], G, allowed, eps, n_allowed)


@njit(inline="always")
def learn(
    i,
    p,
    a,
    r,
    j,
    s,
    s2,
    shock,
    audited,
    rs,
    G,
    Q,
    V,
    allowed,
    fpar,
    grid,
    ipar,
    n_allowed,
    audit_fine,
    audit_thr,
    costs,
    noise_kind,
    noise_sd,
    powers,
    profit,
    quantity,
    scratch,
):
    if p.synchronous != 0:
        return _learn_synchronous(
            i,
            p,
            a,
            j,
            s,
            shock,
            audited,
            rs,
            G,
            Q,
            V,
            allowed,
            audit_fine,
            audit_thr,
            costs,
            fpar,
            grid,
            ipar,
            n_allowed,
            noise_kind,
            noise_sd,
            powers,
            profit,
            quantity,
            scratch,
        )
    m = grid.shape[1]
    qo = ipar[i, I_QOFF]
    so = ipar[i, I_SOFF]
    tie = ipar[i, I_TIE] != 0
    row = so + s
    cell = qo + s * m + a
    old = Q[cell]
    new = old + p.alpha * (r + fpar[i, F_DELTA] * V[so + s2] - old)
    Q[cell] = new
    g = G[row]
    changed = False
    if a == g:
        if new >= V[row]:
            V[row] = new  # still the best price: no rescan
        else:
            if tie:
                g2, gv, rs = _row_argmax_random(Q, qo + s * m, allowed, n_allowed, i, rs)
            else:
                g2, gv = _row_argmax(Q, qo + s * m, allowed, n_allowed, i)
            G[row] = g2
            V[row] = gv
            changed = g2 != g
    elif new > V[row]:
        G[row] = a
        V[row] = new
        changed = True
    elif tie and new == V[row]:
        # random ties (_greedy_after_update_random): a price reaching the maximum reopens the draw
        g2, gv, rs = _row_argmax_random(Q, qo + s * m, allowed, n_allowed, i, rs)
        G[row] = g2
        changed = g2 != g
    return rs, changed


@njit(inline="always")
def _learn_synchronous(
    i,
    p,
    a,
    j,
    s,
    shock,
    audited,
    rs,
    G,
    Q,
    V,
    allowed,
    audit_fine,
    audit_thr,
    costs,
    fpar,
    grid,
    ipar,
    n_allowed,
    noise_kind,
    noise_sd,
    powers,
    profit,
    quantity,
    scratch,
):
    """Every allowed price, with its counterfactual profit against the rivals' actual prices."""
    m = grid.shape[1]
    qo = ipar[i, I_QOFF]
    so = ipar[i, I_SOFF]
    delta = fpar[i, F_DELTA]
    row = so + s
    base = qo + s * m
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
        scratch[i, c] = pc + delta * V[so + sc]
    for k in range(n_allowed[i]):
        c = allowed[i, k]
        Q[base + c] += p.alpha * (scratch[i, c] - Q[base + c])
    g = G[row]
    if ipar[i, I_TIE] != 0:  # every price moved: draw again among the maxima
        g2, gv, rs = _row_argmax_random(Q, base, allowed, n_allowed, i, rs)
    else:
        g2, gv = _row_argmax(Q, base, allowed, n_allowed, i)
    G[row] = g2
    V[row] = gv
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
