"""Grim trigger: cooperate until a rival undercuts, then punish forever."""

from __future__ import annotations

from typing import Literal, NamedTuple

from numba import njit

from algocomp.agents.base import AgentKind, PackContext, PackedFirm, PriceRef
from algocomp.spec import Spec


class GrimTrigger(Spec):
    """Cooperates until any rival prices below the cooperative price, then punishes forever."""

    type: Literal["grim_trigger"] = "grim_trigger"
    cooperate: PriceRef = "monopoly"
    punish: PriceRef = "nash"


class Params(NamedTuple):
    cooperate: int  # grid index of the cooperative price
    punish: int  # grid index of the punishment price


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params(cooperate=ctx.price_index(agent.cooperate), punish=ctx.price_index(agent.punish)))


@njit(inline="always")
def choose(i, p, rs, flags):
    return (p.punish if flags[i] != 0 else p.cooperate), rs


@njit(inline="always")
def observe(i, p, new_act, flags, grid):
    """Triggered (flags) once any rival's price is below the cooperative one."""
    cooperative = grid[i, p.cooperate]
    for k in range(new_act.shape[0]):
        if k != i and grid[k, new_act[k]] < cooperative - 1e-12:
            flags[i] = 1


KIND = AgentKind(
    name="grim_trigger",
    specs=(GrimTrigger,),
    params=Params,
    pack=pack,
    choose=choose,
    observe=observe,
    learning=False,
)
