"""Klein's (2021) Q-learning for alternating moves."""

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
from algocomp.agents.layout import I_QOFF, I_SOFF
from algocomp.agents.tabular import greedy_or_explore, refresh_greedy
from algocomp.spec import Spec


class KleinQLearning(Spec):
    """Klein (2021) Q-learning for alternating moves: the state is the rival's current price, and the update
    Q <- (1-alpha) Q + alpha [pi_t + delta pi_{t+1} + delta^2 max Q] accounts for the rival's response."""

    type: Literal["klein_qlearning"] = "klein_qlearning"
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
    alpha: float = Field(0.3, gt=0.0, le=1.0)
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    beta: NonNegativeFloat = Field(1.3816e-5, description="eps_t = exp(-beta t); the default leaves 0.1% at t = 500k")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    q_init: QInit = "zero"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(power_needs_polynomial)


class Params(NamedTuple):
    alpha: float  # learning rate


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(
        params=Params(alpha=agent.alpha),
        states=ctx.n_prices ** (ctx.n_firms - 1),  # the state is the rivals' current prices
        rivals_state=True,
        delta=agent.delta,
        explore0=1.0,
        **schedule_fields(agent),
        **q_init_fields(agent),
    )


@njit(inline="always")
def choose(i, p, learn, u, rs, ipar, state, G, allowed, eps, n_allowed):
    return greedy_or_explore(i, learn, u, rs, ipar[i, I_SOFF] + state[i], G, allowed, eps, n_allowed)


@njit(inline="always")
def learn_sequential(i, p, rs, G, Q, V, allowed, grid, ipar, n_allowed, prev_act, prev_state, seq_acc, seq_disc, state):
    """When it moves again: the profits since its last move (discounted, seq_acc) plus the discounted value of
    the state it now faces are the target of the price it played then."""
    m = grid.shape[1]
    qo = ipar[i, I_QOFF]
    so = ipar[i, I_SOFF]
    s = prev_state[i]
    a = prev_act[i]
    target = seq_acc[i] + seq_disc[i] * V[so + state[i]]
    cell = qo + s * m + a
    Q[cell] += p.alpha * (target - Q[cell])
    return refresh_greedy(i, qo + s * m, so + s, a, Q[cell], rs, G, Q, V, allowed, ipar, n_allowed)


KIND = AgentKind(
    name="klein_qlearning",
    specs=(KleinQLearning,),
    params=Params,
    pack=pack,
    choose=choose,
    learn_sequential=learn_sequential,
    timings=("sequential",),
)
