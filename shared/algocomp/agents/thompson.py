"""Gaussian Thompson sampling on scaled profits."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from pydantic import Field, PositiveFloat

from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.agents.layout import I_QOFF, I_SOFF
from algocomp.agents.tabular import sample_average
from algocomp.engine.primitives import _normal
from algocomp.spec import Spec


class ThompsonBandit(Spec):
    """Gaussian Thompson sampling on profits scaled by the largest profit on the grid."""

    type: Literal["thompson"] = "thompson"
    prior_mean: float = 0.5
    prior_sd: PositiveFloat = 1.0
    noise_sd: PositiveFloat = Field(0.1, description="assumed sd of a scaled profit observation")


class Params(NamedTuple):
    prior_mean: float
    prior_sd: float
    noise_sd: float
    reward_scale: float  # profits are divided by it (the largest profit on the grid)


def pack(agent, ctx: PackContext) -> PackedFirm:
    return PackedFirm(
        params=Params(
            prior_mean=agent.prior_mean,
            prior_sd=agent.prior_sd,
            noise_sd=agent.noise_sd,
            reward_scale=ctx.reward_scale(),
        )
    )


@njit(inline="always")
def choose(i, p, learn, rs, G, N, Q, allowed, ipar, n_allowed):
    """The price whose draw from its posterior mean's normal posterior is largest (one normal draw per price)."""
    if not learn:
        return G[ipar[i, I_SOFF]], rs
    qo = ipar[i, I_QOFF]
    prior_prec = 1.0 / (p.prior_sd * p.prior_sd)
    noise_prec = 1.0 / (p.noise_sd * p.noise_sd)
    best_v = -np.inf
    a = allowed[i, 0]
    for k in range(n_allowed[i]):
        c = allowed[i, k]
        prec = prior_prec + N[qo + c] * noise_prec
        mean = (p.prior_mean * prior_prec + Q[qo + c] * N[qo + c] * noise_prec) / prec
        rs, z = _normal(rs)
        v = mean + z / np.sqrt(prec)
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
    name="thompson",
    specs=(ThompsonBandit,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    learn_sequential=learn_sequential,
)
