"""The Python policy protocol: what an agent the kernel cannot compile implements to take part in a session.

In the spirit of PettingZoo's parallel API, every firm's agent is reset once per session, then each period acts
on an observation and learns from the transition that followed; after learning the session freezes it and plays
it greedily to find the limit cycle and the impulse response (engine.python_session runs the loop).

    class MyAgent:
        def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None: ...
        def act(self, observation: Observation) -> int: ...  # an index into market.grid[firm]
        def learn(self, observation, action, reward, next_observation) -> bool | None: ...
        def freeze(self) -> None: ...

The contract:
- reset(firm, market, rng) starts a session: the firm's index, the market's facts (grid, benchmarks, tables) and
  the session's random stream. Draw all randomness from rng (directly, or by seeding a generator of your own from
  rng.next_u64()), so that a session is reproducible from its seed.
- act(observation) returns an index into market.grid[firm]. A price the regulation forbids is replaced by the
  nearest allowed one (market.allowed lists them), and the transition reports the price actually charged.
- learn(observation, action, reward, next_observation) is called every learning period, firm by firm, with the
  price index charged and the profit it earned (after noise and fines). Return True when your greedy strategy may
  have changed, False when it certainly did not: a session has converged once no firm's greedy strategy has
  changed for horizon.convergence_periods periods. None counts as True (an agent that cannot tell learns until
  horizon.max_periods).
- freeze() ends learning: afterwards act must be greedy and a deterministic function of the observation alone
  (the limit cycle, impulse responses and deviation checks replay it from chosen histories).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from algocomp.engine.seeds import splitmix64

PROTOCOL_METHODS = ("reset", "act", "learn", "freeze")

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class MarketFacts:
    """What an agent may know about the market of its session (arrays are shared: do not write them)."""

    n_firms: int
    n_prices: int
    grid: np.ndarray  # (n_firms, n_prices) the prices each firm may name, by index
    costs: np.ndarray  # (n_firms,) marginal costs
    allowed: tuple[np.ndarray, ...]  # per firm, the price indices the regulation allows (ascending)
    nash_price: np.ndarray  # (n_firms,) static Bertrand-Nash prices (continuous benchmark)
    monopoly_price: np.ndarray  # (n_firms,) joint-profit-maximising prices
    nash_profit: np.ndarray  # (n_firms,)
    monopoly_profit: np.ndarray  # (n_firms,)
    profit: np.ndarray  # (n_prices ** n_firms, n_firms) expected profit of every price profile
    powers: np.ndarray  # (n_firms,) the profile (a_0, ..., a_{n-1}) has row sum(a_i * powers[i]) of `profit`
    history: int  # price profiles an observation holds
    rivals_hidden: bool  # regulation hide_rival_prices: rivals' prices are -1 in observations
    spec: Any = None  # the agent's own spec from the scenario (for python agents: class and params)


@dataclass(frozen=True)
class Observation:
    """What a firm sees before it sets its price.

    prices[k, i] is firm i's price index k + 1 periods ago (row 0 is the last period), -1 for a rival whose prices
    the regulation hides; `period` counts periods from 0 (learning and frozen play continue one count)."""

    period: int
    prices: np.ndarray  # (history, n_firms) int64, read-only


@runtime_checkable
class PolicyAgent(Protocol):
    """An agent on the Python path (see the module docstring for the contract)."""

    def reset(self, firm: int, market: MarketFacts, rng: SessionStream) -> None: ...

    def act(self, observation: Observation) -> int: ...

    def learn(self, observation: Observation, action: int, reward: float, next_observation: Observation) -> Any: ...

    def freeze(self) -> None: ...


def missing_methods(cls: type) -> list[str]:
    """The protocol methods a class lacks (or has as non-callables)."""
    return [name for name in PROTOCOL_METHODS if not callable(getattr(cls, name, None))]


class SessionStream:
    """The session's splitmix64 stream, which compiled kernels and Python agents share, in the kernel's order.

    Draw k (k = 1, 2, ...) after a state s is splitmix64(s + (k - 1) * golden), as engine.kernel draws it, so a
    Python agent that draws what a compiled agent would draws the same numbers. Each learning period the session
    first draws one 64-bit word per pair of firms; coin(firm) is that firm's 32-bit uniform from it (the kernel's
    explore-or-not draw), free to use or ignore.
    """

    __slots__ = ("state", "_words")

    def __init__(self, state: int) -> None:
        self.state = int(state) & _MASK
        self._words: list[int] = []

    def next_u64(self) -> int:
        """A uniform 64-bit integer."""
        r = splitmix64(self.state)
        self.state = (self.state + _GOLDEN) & _MASK
        return r

    def below(self, k: int) -> int:
        """A uniform integer in [0, k) from the top 32 bits (the kernel's multiply-shift)."""
        return ((self.next_u64() >> 32) * int(k)) >> 32

    def unit(self) -> float:
        """A uniform float in [0, 1) from the top 53 bits."""
        return (self.next_u64() >> 11) * (1.0 / 9007199254740992.0)

    def normal(self) -> float:
        """A standard normal draw (the kernel's Box-Muller, so the same number it would draw)."""
        from algocomp.engine.primitives import _normal

        state, z = _normal(np.uint64(self.state))
        self.state = int(state)
        return float(z)

    def symmetric_unit(self) -> float:
        """A uniform draw on (-1, 1), symmetric about 0 (the kernel's)."""
        from algocomp.engine.primitives import _symmetric_unit

        state, u = _symmetric_unit(np.uint64(self.state))
        self.state = int(state)
        return float(u)

    def start_period(self, n_firms: int) -> None:
        """Draw this period's exploration words (one per pair of firms), as the kernel does at a period's start."""
        self._words = [self.next_u64() for _ in range((n_firms + 1) // 2)]

    def coin(self, firm: int) -> float:
        """Firm `firm`'s uniform in [0, 1) of this period (32 bits)."""
        r = self._words[firm >> 1]
        if firm & 1 == 0:
            r >>= 32
        return (r & 0xFFFFFFFF) * (1.0 / 4294967296.0)
