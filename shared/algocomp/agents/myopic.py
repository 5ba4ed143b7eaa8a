"""The myopic best response: this period's most profitable price against the rivals' last prices."""

from __future__ import annotations

from typing import Literal, NamedTuple

from numba import njit

from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.engine.primitives import best_response
from algocomp.spec import Spec


class MyopicBestResponse(Spec):
    """Plays the grid price that maximises this period's profit against the rivals' last prices."""

    type: Literal["myopic"] = "myopic"


class Params(NamedTuple):
    pass


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params())


@njit(inline="always")
def choose(i, p, rs, act, allowed, expected_fine, n_allowed, powers, profit):
    return best_response(i, act, profit, expected_fine, powers, allowed, n_allowed), rs


KIND = AgentKind(name="myopic", specs=(MyopicBestResponse,), params=Params, pack=pack, choose=choose, learning=False)
