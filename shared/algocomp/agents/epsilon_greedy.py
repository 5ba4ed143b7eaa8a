"""The epsilon-greedy bandit: sample-average profit per price, ignoring the rivals."""

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
    Schedule,
    TieBreak,
    power_needs_polynomial,
    schedule_fields,
)
from algocomp.agents.layout import I_SOFF
from algocomp.agents.tabular import greedy_or_explore, sample_average
from algocomp.spec import Spec


class EpsilonGreedyBandit(Spec):
    """Ignores the rivals: sample-average profit per price; explores with probability epsilon * exp(-beta t)
    (or epsilon * (1 + beta t)^(-power) with schedule polynomial)."""

    type: Literal["epsilon_greedy"] = "epsilon_greedy"
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    beta: NonNegativeFloat = Field(0.0, description="exploration decay rate per period")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(power_needs_polynomial)


class Params(NamedTuple):
    pass  # epsilon is the exploration rate at period 0 (layout.F_EXPLORE0), which the kernel decays


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params(), explore0=agent.epsilon, schedule_start=agent.epsilon, **schedule_fields(agent))


@njit(inline="always")
def choose(i, p, learn, u, rs, ipar, G, allowed, eps, n_allowed):
    return greedy_or_explore(i, learn, u, rs, ipar[i, I_SOFF], G, allowed, eps, n_allowed)


@njit(inline="always")
def learn(i, p, a, r, rs, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(i, a, r, False, rs, G, N, Q, S2, V, allowed, ipar, n_allowed)


@njit(inline="always")
def learn_sequential(i, p, rs, prev_act, seq_acc, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(i, prev_act[i], seq_acc[i], False, rs, G, N, Q, S2, V, allowed, ipar, n_allowed)


KIND = AgentKind(
    name="epsilon_greedy",
    specs=(EpsilonGreedyBandit,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    learn_sequential=learn_sequential,
)
