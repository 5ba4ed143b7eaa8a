"""A softmax actor-critic over the price grid."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numba import njit
from pydantic import Field, NonNegativeFloat, PositiveFloat

from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.agents.layout import F_DELTA, I_QOFF, I_SOFF
from algocomp.engine.primitives import _GOLDEN, _mix, _row_argmax, _unit
from algocomp.spec import Spec


class ActorCritic(Spec):
    """Softmax actor-critic over the price grid: preferences theta[s, a], a state-value critic V[s], both
    moved by the TD error; the temperature decays as temperature * exp(-beta t) down to min_temperature."""

    type: Literal["actor_critic"] = "actor_critic"
    actor_lr: PositiveFloat = 0.05
    critic_lr: PositiveFloat = 0.1
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    temperature: PositiveFloat = Field(0.05, description="softmax temperature in profit units")
    beta: NonNegativeFloat = 4e-6
    min_temperature: PositiveFloat = 1e-4
    memory: int = Field(1, ge=0, le=4)


class Params(NamedTuple):
    actor_lr: float  # the preferences' step
    critic_lr: float  # the critic's step
    min_temperature: float  # the temperature (layout.F_EXPLORE0, decayed by the kernel) never goes below it


def pack(agent, ctx: PackContext) -> PackedFirm:
    base, states = ctx.history_states(agent.memory)
    return PackedFirm(
        params=Params(actor_lr=agent.actor_lr, critic_lr=agent.critic_lr, min_temperature=agent.min_temperature),
        states=states,
        memory=agent.memory,
        base=base,
        delta=agent.delta,
        beta=agent.beta,
        explore0=agent.temperature,
    )


@njit(inline="always")
def choose(i, p, learn, rs, G, Q, allowed, eps, grid, ipar, n_allowed, scratch, state):
    """A draw from the softmax over the state's preferences (its probabilities are kept in scratch[i] for
    learn); frozen, the largest preference."""
    if not learn:
        return G[ipar[i, I_SOFF] + state[i]], rs
    m = grid.shape[1]
    qo = ipar[i, I_QOFF] + state[i] * m
    temperature = max(eps[i], p.min_temperature)
    top = -np.inf
    for k in range(n_allowed[i]):
        top = max(top, Q[qo + allowed[i, k]])
    total = 0.0
    for c in range(m):
        w = np.exp((Q[qo + c] - top) / temperature)
        scratch[i, c] = w
        total += w
    rs += _GOLDEN
    draw = _unit(_mix(rs)) * total
    a = allowed[i, n_allowed[i] - 1]
    cum = 0.0
    for k in range(n_allowed[i]):
        c = allowed[i, k]
        cum += scratch[i, c]
        if draw < cum:
            a = c
            break
    for c in range(m):
        scratch[i, c] /= total
    return a, rs


@njit(inline="always")
def learn(i, p, a, r, s, s2, rs, G, Q, V, allowed, eps, fpar, grid, ipar, n_allowed, scratch):
    m = grid.shape[1]
    so = ipar[i, I_SOFF]
    row = so + s
    base = ipar[i, I_QOFF] + s * m
    td = r + fpar[i, F_DELTA] * V[so + s2] - V[row]
    V[row] += p.critic_lr * td
    temperature = max(eps[i], p.min_temperature)
    step_size = p.actor_lr * td / temperature
    for k in range(n_allowed[i]):
        c = allowed[i, k]
        grad = (1.0 if c == a else 0.0) - scratch[i, c]
        Q[base + c] += step_size * grad
    g = G[row]
    g2, gv = _row_argmax(Q, base, allowed, n_allowed, i)
    G[row] = g2
    return rs, g2 != g


KIND = AgentKind(
    name="actor_critic",
    specs=(ActorCritic,),
    params=Params,
    pack=pack,
    choose=choose,
    learn=learn,
    timings=("simultaneous",),
    greedy_by_state=True,
    values_from_table=False,
)
