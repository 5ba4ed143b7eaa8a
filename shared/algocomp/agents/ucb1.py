"""UCB1 (Auer, Cesa-Bianchi & Fischer 2002) on scaled profits."""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from pydantic import Field, PositiveFloat

from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.agents.layout import I_QOFF, I_SOFF
from algocomp.agents.tabular import sample_average
from algocomp.spec import Spec


class UCB1Bandit(Spec):
    """UCB1 (Auer et al. 2002) on profits scaled to [0, 1] by the largest profit on the grid."""

    type: Literal["ucb1"] = "ucb1"
    c: PositiveFloat = Field(math.sqrt(2.0), description="exploration constant")


class Params(NamedTuple):
    c: float  # exploration constant
    reward_scale: float  # profits are divided by it (the largest profit on the grid)


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params(c=agent.c, reward_scale=ctx.reward_scale()))


@njit(inline="always")
def choose(i, p, learn, rs, G, N, Q, allowed, ipar, n_allowed):
    """Every allowed price once (lowest first), then the largest mean + c sqrt(ln n / n_j)."""
    if not learn:
        return G[ipar[i, I_SOFF]], rs
    qo = ipar[i, I_QOFF]
    a = -1
    total = 0.0
    for k in range(n_allowed[i]):
        c = allowed[i, k]
        total += N[qo + c]
        if N[qo + c] == 0.0 and a < 0:
            a = c
    if a < 0:
        log_total = np.log(total)
        best_v = -np.inf
        for k in range(n_allowed[i]):
            c = allowed[i, k]
            plays = N[qo + c]
            v = Q[qo + c] + p.c * np.sqrt(log_total / plays)
            if v > best_v:
                best_v = v
                a = c
    return a, rs


@njit(inline="always")
def learn(i, p, a, r, rs, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(i, a, r / p.reward_scale, False, rs, G, N, Q, S2, V, allowed, ipar, n_allowed)


@njit(inline="always")
def learn_sequential(i, p, rs, prev_act, seq_acc, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(
        i, prev_act[i], seq_acc[i] / p.reward_scale, False, rs, G, N, Q, S2, V, allowed, ipar, n_allowed
    )


KIND = AgentKind(
    name="ucb1",
    specs=(UCB1Bandit,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    learn_sequential=learn_sequential,
)
