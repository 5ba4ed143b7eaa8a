"""UCB-tuned (Auer, Cesa-Bianchi & Fischer 2002, section 4), the bandit of Hansen, Misra & Pai (2021)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from pydantic import Field

from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.agents.layout import I_QOFF, I_SOFF
from algocomp.agents.tabular import sample_average
from algocomp.engine.primitives import ucb_tuned_index
from algocomp.spec import Spec


class UCBTunedBandit(Spec):
    """UCB-tuned (Auer, Cesa-Bianchi & Fischer 2002, section 4), the bandit of Hansen, Misra & Pai (2021).

    Every allowed price is played once; then the price j with the largest
    mean_j + sqrt((ln n / n_j) min(1/4, V_j)), V_j = (mean of squared rewards_j - mean_j^2) + sqrt(2 ln n / n_j),
    where n_j counts price j's plays and n all plays. Rewards are profits divided by the largest profit on the grid
    (scale_rewards true, as ucb1) or the profits themselves (false, as Hansen et al.).
    """

    type: Literal["ucb_tuned"] = "ucb_tuned"
    scale_rewards: bool = Field(
        True, description="divide profits by the largest profit on the grid (true) or learn from raw profits (false)"
    )


class Params(NamedTuple):
    reward_scale: float  # profits are divided by it (1: raw profits)


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(params=Params(reward_scale=ctx.reward_scale() if agent.scale_rewards else 1.0))


@njit(inline="always")
def choose(i, p, learn, rs, G, N, Q, S2, allowed, ipar, n_allowed):
    """Every allowed price once (lowest first), then the largest UCB-tuned index."""
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
            v = ucb_tuned_index(Q[qo + c], S2[qo + c] / plays, plays, log_total)
            if v > best_v:
                best_v = v
                a = c
    return a, rs


@njit(inline="always")
def learn(i, p, a, r, rs, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(i, a, r / p.reward_scale, True, rs, G, N, Q, S2, V, allowed, ipar, n_allowed)


@njit(inline="always")
def learn_sequential(i, p, rs, prev_act, seq_acc, G, N, Q, S2, V, allowed, ipar, n_allowed):
    return sample_average(
        i, prev_act[i], seq_acc[i] / p.reward_scale, True, rs, G, N, Q, S2, V, allowed, ipar, n_allowed
    )


KIND = AgentKind(
    name="ucb_tuned",
    specs=(UCBTunedBandit,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    learn_sequential=learn_sequential,
    square_sums=True,
)
