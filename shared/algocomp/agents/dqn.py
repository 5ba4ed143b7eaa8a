"""A deep Q-network pricing agent (type: dqn) on the Python policy path, in numpy.

The network maps the recent prices (every firm's price in each of the last `lags` periods, scaled to [0, 1] over
its grid) through two ReLU layers to one value per price of the firm's grid. It learns as Mnih et al. (2015):
transitions go to a replay buffer; every `train_every` periods after `warmup` a minibatch is drawn from it and
the online network takes an Adam step on the Huber loss towards r + delta max_a' Q_target(s', a'), the target
network being a copy of the online one refreshed every `target_every` periods. Rewards are profits times
(1 - delta) over the largest profit on the grid, so values are of order one. It explores with probability
epsilon_end + (1 - epsilon_end) exp(-beta t), choosing uniformly among the allowed prices.

Every random number (initial weights, exploration, minibatches) comes from a generator seeded with one draw from
the session's stream, so a session is reproducible from its seed. Convergence: at each refresh of the target
network the greedy price of every input seen since the last refresh is compared with the greedy price it had then
(when the possible inputs number at most GREEDY_TABLE_LIMIT; otherwise every refresh counts as a change); learn()
reports a change then, and never between refreshes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from pydantic import Field

from algocomp.agents.base import AgentKind
from algocomp.engine.policy import MarketFacts, Observation, SessionStream
from algocomp.spec import Spec

# The greedy prices of all inputs are compared (for convergence) when there are at most this many inputs.
GREEDY_TABLE_LIMIT = 4096

_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8


class DQN(Spec):
    """A deep Q-network (Mnih et al. 2015) over the recent prices: the input is every firm's price of the last
    `lags` periods, scaled to [0, 1] over the grid; two hidden layers of `hidden` ReLU units; one output per price.
    It learns from minibatches drawn from a replay buffer of its last `buffer` transitions against a target network
    copied every `target_every` periods (Adam, Huber loss on profits divided by the largest profit on the grid), and
    explores with probability epsilon_end + (1 - epsilon_end) exp(-beta t). Weights, exploration and minibatches are
    drawn from the session's stream, so a session is reproducible from its seed. Runs on the Python path
    (docs/python-agents.md), far slower than the compiled agents."""

    type: Literal["dqn"] = "dqn"
    lags: int = Field(1, ge=1, le=4, description="past periods of all firms' prices in the network's input")
    hidden: int = Field(32, ge=2, le=512, description="units in each of the two hidden layers")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam's step size")
    delta: float = Field(0.95, ge=0.0, lt=1.0, description="discount factor")
    beta: float = Field(5e-5, ge=0.0, description="exploration decay per period")
    epsilon_end: float = Field(0.01, ge=0.0, le=1.0, description="the exploration rate's floor")
    buffer: int = Field(20_000, ge=32, le=1_000_000, description="transitions kept for replay")
    batch: int = Field(32, ge=1, le=1024, description="transitions per gradient step")
    warmup: int = Field(500, ge=1, description="transitions collected before the first gradient step")
    train_every: int = Field(4, ge=1, description="periods between gradient steps")
    target_every: int = Field(1_000, ge=1, description="periods between copies to the target network")

    @property
    def history_depth(self) -> int:
        return self.lags


class DQNAgent:
    """The deep Q-network of the scenario spec `spec` (DQN, above)."""

    def __init__(self, spec: DQN | None = None, **params) -> None:
        self.spec = spec if spec is not None else DQN(**params)

    # ------------------------------------------------------------------------------ protocol

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None:
        spec = self.spec
        self.firm = firm
        self.gen = np.random.Generator(np.random.PCG64(rng.next_u64()))
        self.n, self.m = market.n_firms, market.n_prices
        self.lags = min(spec.lags, market.history)
        self.allowed = np.asarray(market.allowed[firm], dtype=np.int64)
        self.forbidden = np.ones(self.m, dtype=bool)
        self.forbidden[self.allowed] = False
        self.hidden = market.rivals_hidden
        self.span = np.maximum(market.n_prices - 1, 1)
        top = float(market.profit[:, firm].max())
        self.reward_scale = (1.0 - spec.delta) / (top if top > 0 else 1.0)
        d = self.lags * self.n
        h = spec.hidden
        self.params = [
            self._he(d, h),
            np.zeros(h),
            self._he(h, h),
            np.zeros(h),
            self._he(h, self.m) * 0.1,
            np.zeros(self.m),
        ]
        self.target = [p.copy() for p in self.params]
        self.adam_m = [np.zeros_like(p) for p in self.params]
        self.adam_v = [np.zeros_like(p) for p in self.params]
        self.adam_t = 0
        size = spec.buffer
        self.buf_s = np.zeros((size, d))
        self.buf_a = np.zeros(size, dtype=np.int64)
        self.buf_r = np.zeros(size)
        self.buf_s2 = np.zeros((size, d))
        self.filled = 0
        self.cursor = 0
        self.steps = 0
        self.learning = True
        self.inputs = self._all_inputs(market)
        self.greedy_table = self._greedy_table()
        lag_weights = (self.m**self.n) ** np.arange(self.lags)[:, None]
        self.code_weights = (market.powers[None, :] * lag_weights).astype(np.int64)
        self.visited = np.zeros(0 if self.inputs is None else self.inputs.shape[0], dtype=bool)

    def act(self, observation: Observation) -> int:
        if self.learning:
            t = observation.period
            eps = self.spec.epsilon_end + (1.0 - self.spec.epsilon_end) * math.exp(-self.spec.beta * t)
            if self.gen.random() < eps:
                return int(self.allowed[self.gen.integers(self.allowed.shape[0])])
        q = self._forward(self.params, self._encode(observation.prices)[None, :])[0]
        q[self.forbidden] = -np.inf
        return int(np.argmax(q))

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> bool:
        spec = self.spec
        k = self.cursor
        self.buf_s[k] = self._encode(observation.prices)
        self.buf_a[k] = action
        self.buf_r[k] = reward * self.reward_scale
        self.buf_s2[k] = self._encode(next_observation.prices)
        self.cursor = (k + 1) % spec.buffer
        self.filled = min(self.filled + 1, spec.buffer)
        self.steps += 1
        if self.visited.size:
            self.visited[self._code(observation.prices)] = True
        if self.filled >= spec.warmup and self.steps % spec.train_every == 0:
            self._train()
        if self.steps % spec.target_every == 0:
            self.target = [p.copy() for p in self.params]
            if self.inputs is None:
                return True
            table = self._greedy_table()
            assert table is not None and self.greedy_table is not None
            changed = bool(np.any(table[self.visited] != self.greedy_table[self.visited]))
            self.greedy_table = table
            self.visited[:] = False
            return changed
        return False

    def freeze(self) -> None:
        self.learning = False

    # ------------------------------------------------------------------------------ network

    def _he(self, fan_in: int, fan_out: int) -> np.ndarray:
        bound = np.sqrt(6.0 / fan_in)
        return self.gen.uniform(-bound, bound, size=(fan_in, fan_out))

    def _encode(self, prices: np.ndarray) -> np.ndarray:
        """The last `lags` profiles, each firm's price index over its grid's last index (hidden rivals: 0)."""
        x = prices[: self.lags].astype(np.float64) / self.span
        if self.hidden:
            x[x < 0] = 0.0
        return x.reshape(-1)

    def _code(self, prices: np.ndarray) -> int:
        """The index of an observation's input among _all_inputs' rows."""
        lagged = prices[: self.lags]
        if self.hidden:
            lagged = np.where(lagged < 0, 0, lagged)
        return int((lagged * self.code_weights).sum())

    def _all_inputs(self, market: MarketFacts) -> np.ndarray | None:
        """Every possible input (for the greedy table), or None when there are too many."""
        profiles = self.m**self.n
        count = profiles**self.lags
        if count > GREEDY_TABLE_LIMIT:
            return None
        codes = np.arange(count)
        lag_codes = (codes[:, None] // profiles ** np.arange(self.lags)[None, :]) % profiles
        prices = (lag_codes[:, :, None] // market.powers[None, None, :]) % self.m  # (count, lags, n)
        if self.hidden:
            rivals = np.arange(self.n) != self.firm
            prices[:, :, rivals] = -1
        x = prices.astype(np.float64) / self.span
        x[x < 0] = 0.0
        return x.reshape(count, -1)

    def _greedy_table(self) -> np.ndarray | None:
        if self.inputs is None:
            return None
        q = self._forward(self.params, self.inputs)
        q[:, self.forbidden] = -np.inf
        return np.argmax(q, axis=1)

    @staticmethod
    def _forward(params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2, w3, b3 = params
        h1 = np.maximum(x @ w1 + b1, 0.0)
        h2 = np.maximum(h1 @ w2 + b2, 0.0)
        return h2 @ w3 + b3

    def _train(self) -> None:
        spec = self.spec
        idx = self.gen.integers(self.filled, size=spec.batch)
        s, a, r, s2 = self.buf_s[idx], self.buf_a[idx], self.buf_r[idx], self.buf_s2[idx]
        q_next = self._forward(self.target, s2)
        q_next[:, self.forbidden] = -np.inf
        y = r + spec.delta * q_next.max(axis=1)
        w1, b1, w2, b2, w3, b3 = self.params
        z1 = s @ w1 + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0.0)
        q = h2 @ w3 + b3
        rows = np.arange(spec.batch)
        error = q[rows, a] - y
        dq = np.zeros_like(q)
        dq[rows, a] = np.clip(error, -1.0, 1.0) / spec.batch  # the Huber loss's gradient
        dh2 = (dq @ w3.T) * (z2 > 0)
        dh1 = (dh2 @ w2.T) * (z1 > 0)
        grads = [s.T @ dh1, dh1.sum(axis=0), h1.T @ dh2, dh2.sum(axis=0), h2.T @ dq, dq.sum(axis=0)]
        self.adam_t += 1
        lr = spec.learning_rate * np.sqrt(1.0 - _ADAM_B2**self.adam_t) / (1.0 - _ADAM_B1**self.adam_t)
        for p, g, m1, m2 in zip(self.params, grads, self.adam_m, self.adam_v):
            m1 *= _ADAM_B1
            m1 += (1.0 - _ADAM_B1) * g
            m2 *= _ADAM_B2
            m2 += (1.0 - _ADAM_B2) * g * g
            p -= lr * m1 / (np.sqrt(m2) + _ADAM_EPS)


def _policy(spec: DQN, field: str, allowed: Callable[[str], bool] | None) -> Callable[[], DQNAgent]:
    """A fresh network per session (nothing to import or check: the spec has been validated)."""
    return lambda: DQNAgent(spec)


# A Python-path kind: a spec and a policy, no compiled hooks (agents.registry registers it after the compiled ones).
KIND = AgentKind(name="dqn", specs=(DQN,), policy=_policy, doc="a deep Q-network (numpy)")
