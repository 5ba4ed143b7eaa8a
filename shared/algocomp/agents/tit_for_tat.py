"""Tit for tat: match the lowest rival price of the last period."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numba import njit

from algocomp.agents.base import AgentKind, PackContext, PackedFirm, PriceRef
from algocomp.engine.primitives import _nearest_allowed
from algocomp.spec import Spec


class TitForTat(Spec):
    """Matches the lowest rival price of the last period; opens with `initial`."""

    type: Literal["tit_for_tat"] = "tit_for_tat"
    initial: PriceRef = "monopoly"


class Params(NamedTuple):
    initial: int  # grid index of the opening price


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params(initial=ctx.price_index(agent.initial)))


@njit(inline="always")
def choose(i, p, rs, act, allowed, flags, grid, n_allowed):
    if flags[i] == 0:
        return p.initial, rs
    lowest = np.inf
    for k in range(act.shape[0]):
        if k != i and grid[k, act[k]] < lowest:
            lowest = grid[k, act[k]]
    return _nearest_allowed(i, lowest, grid, allowed, n_allowed), rs


@njit(inline="always")
def observe(i, p, flags):
    """After the first period it follows the rivals (flags)."""
    flags[i] = 1


KIND = AgentKind(
    name="tit_for_tat",
    specs=(TitForTat,),
    params=Params,
    pack=pack,
    choose=choose,
    observe=observe,
    learning=False,
)
