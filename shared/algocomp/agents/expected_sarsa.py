"""Expected SARSA over the price history."""

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
from algocomp.agents.layout import F_DELTA, I_QOFF, I_SOFF
from algocomp.agents.tabular import greedy_or_explore, refresh_greedy
from algocomp.spec import Spec


class ExpectedSarsa(Spec):
    """Expected SARSA: the target averages Q over the epsilon-greedy policy instead of taking its max."""

    type: Literal["expected_sarsa"] = "expected_sarsa"
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
    alpha: float = Field(0.15, gt=0.0, le=1.0)
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    beta: NonNegativeFloat = 4e-6
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    memory: int = Field(1, ge=0, le=4)
    q_init: QInit = "calvano"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(power_needs_polynomial)


class Params(NamedTuple):
    alpha: float  # learning rate


def pack(agent, ctx: PackContext) -> PackedFirm:
    base, states = ctx.history_states(agent.memory)
    return PackedFirm(
        params=Params(alpha=agent.alpha),
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
def learn(i, p, a, r, s, s2, rs, G, Q, V, allowed, eps, fpar, grid, ipar, n_allowed):
    m = grid.shape[1]
    qo = ipar[i, I_QOFF]
    so = ipar[i, I_SOFF]
    base = qo + s * m
    mean = 0.0
    for k in range(n_allowed[i]):
        mean += Q[qo + s2 * m + allowed[i, k]]
    mean /= n_allowed[i]
    e = eps[i]
    target = r + fpar[i, F_DELTA] * ((1.0 - e) * V[so + s2] + e * mean)
    Q[base + a] += p.alpha * (target - Q[base + a])
    return refresh_greedy(i, base, so + s, a, Q[base + a], rs, G, Q, V, allowed, ipar, n_allowed)


KIND = AgentKind(
    name="expected_sarsa",
    specs=(ExpectedSarsa,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    timings=("simultaneous",),
    greedy_by_state=True,
)
