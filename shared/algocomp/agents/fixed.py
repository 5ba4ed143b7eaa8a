"""Agents that play one price every period: a given price, the Nash price or the monopoly price."""

from __future__ import annotations

from typing import Literal, NamedTuple

from numba import njit
from pydantic import Field

from algocomp.agents.base import AgentKind, PackContext, PackedFirm, PriceRef
from algocomp.spec import Spec


class FixedPrice(Spec):
    type: Literal["fixed"] = "fixed"
    price: PriceRef = Field(description="the price played every period (the nearest grid price), or nash/monopoly")


class NashPlayer(Spec):
    """Always plays the grid price nearest the static Bertrand-Nash price."""

    type: Literal["nash"] = "nash"


class MonopolyPlayer(Spec):
    """Always plays the grid price nearest the joint-profit-maximising price."""

    type: Literal["monopoly"] = "monopoly"


class Params(NamedTuple):
    price: int  # grid index of the price played


def pack(agent, ctx: PackContext) -> PackedFirm:
    ref = agent.price if agent.type == "fixed" else agent.type
    return PackedFirm(params=Params(price=ctx.price_index(ref)))


@njit(inline="always")
def choose(i, p, rs):
    return p.price, rs


KIND = AgentKind(
    name="fixed",
    specs=(FixedPrice, NashPlayer, MonopolyPlayer),
    params=Params,
    pack=pack,
    choose=choose,
    learning=False,
)
