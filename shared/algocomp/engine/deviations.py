"""Calvano et al.'s analysis of converged strategies: what a one-period deviation from the limit cycle is worth.

Once learning stops, every tabular learner's strategy is its greedy price in each state, and the state is the
recent price history, so the whole market is a deterministic function of the state. From any state of the
limit cycle, the value to firm i of charging price a for one period and then following the strategies (all
firms, i included) is a discounted sum along a path that must end in a cycle, which this module sums exactly:
head + delta^u * (one lap of the cycle) / (1 - delta^L).

Two of Calvano et al.'s measures (online appendix, Table A11) follow from these values:
- the equilibrium check on the path: at every state of the limit cycle, every firm's strategy price earns the
  largest of these values (no one-period deviation pays, which by the one-shot deviation principle is what makes
  the strategies a subgame-perfect equilibrium on the path);
- incentive compatibility: deviating to the static best response (the price that maximises this period's
  profit against the rivals' strategy prices) is worth strictly less than following the strategy.

Both apply to simultaneous-move populations whose every strategy is a table of greedy prices by state
(Q-learning, expected SARSA, actor-critic: the kinds registered with greedy_by_state); elsewhere they are
undefined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from algocomp.agents import registry
from algocomp.agents.catalog import F_DELTA, I_KIND, I_SOFF
from algocomp.engine.build import CompiledScenario
from algocomp.engine.primitives import _next_state, best_response

# A strategy price counts as a best reply when its value is within this relative distance of the best one: the
# values are sums of the same table entries, so only rounding separates prices that lead to the same path.
BEST_REPLY_TOLERANCE = 1e-12


def applies(cs: CompiledScenario) -> bool:
    """Whether the strategies are functions of the state alone (so deviations can be valued exactly)."""
    return (not cs.sequential) and all(registry.kind_by_code(int(k)).greedy_by_state for k in cs.ipar[:, I_KIND])


@njit(cache=True)
def _one_shot_value(firm, start, first, price, G, ipar, powers, m, net, delta, horizon, seen, rewards):
    """Firm `firm`'s discounted profit when, from state `start`, it charges `price` in the first period while the
    others charge `first` (their strategy prices at `start`), and every firm follows its greedy strategy
    afterwards. Returns (value, exact): exact is False only when no state repeated within `horizon` periods (then
    the value is the truncated sum)."""
    n = start.shape[0]
    s = start.copy()
    acts = np.empty(n, dtype=np.int64)
    for t in range(horizon):
        if t >= 1:
            # From period 1 on the dynamics are deterministic in the state: a repeat closes the cycle.
            for u in range(1, t):
                same = True
                for k in range(n):
                    if seen[u, k] != s[k]:
                        same = False
                        break
                if same:
                    head = 0.0
                    d = 1.0
                    for v in range(u):
                        head += d * rewards[v]
                        d *= delta
                    lap = 0.0
                    dl = 1.0
                    for v in range(u, t):
                        lap += dl * rewards[v]
                        dl *= delta
                    return head + d * lap / (1.0 - dl), True
            for k in range(n):
                seen[t, k] = s[k]
        for k in range(n):
            acts[k] = first[k] if t == 0 else G[ipar[k, I_SOFF] + s[k]]
        if t == 0:
            acts[firm] = price
        j = 0
        for k in range(n):
            j += acts[k] * powers[k]
        rewards[t] = net[j, firm]
        for k in range(n):
            s[k] = _next_state(k, s[k], j, acts[k], ipar, powers, m)
    total = 0.0
    d = 1.0
    for v in range(horizon):
        total += d * rewards[v]
        d *= delta
    return total, False


@njit(cache=True)
def state_values(firm, start, first, G, ipar, fpar, powers, m, net, allowed, n_allowed, horizon):
    """The one-shot deviation value of every price for `firm` at state `start` where the others' first-period
    prices are `first` (-inf where not allowed); and whether every path closed into a cycle."""
    values = np.full(m, -np.inf)
    seen = np.empty((horizon, start.shape[0]), dtype=np.int64)
    rewards = np.empty(horizon)
    exact = True
    for k in range(n_allowed[firm]):
        a = allowed[firm, k]
        v, ok = _one_shot_value(
            firm, start, first, a, G, ipar, powers, m, net, fpar[firm, F_DELTA], horizon, seen, rewards
        )
        values[a] = v
        exact = exact and ok
    return values, exact


@dataclass(frozen=True)
class DeviationCheck:
    """One-shot deviations from each state of the limit cycle (rows) by each firm (columns)."""

    best_reply: np.ndarray  # (L, n) bool: the strategy price earns the largest one-shot value
    strategy_value: np.ndarray  # (L, n) value of following the strategies
    static_br_value: np.ndarray  # (L, n) value of deviating to the static best response for one period
    exact: bool  # every path closed into a cycle within the search horizon

    @property
    def equilibrium_on_path(self) -> bool:
        """Calvano et al.'s FlagEQOnPath: every firm best-replies in every state of the cycle."""
        return bool(self.best_reply.all())

    @property
    def equilibrium_state_share(self) -> float:
        """Share of cycle states where every firm best-replies (their FreqEQOnPath)."""
        return float(self.best_reply.all(axis=1).mean())

    @property
    def unprofitable_static_deviation(self) -> np.ndarray:
        """(L, n): deviating to the static best response is worth strictly less than the strategy (their IC)."""
        return self.static_br_value < self.strategy_value


def check_cycle(cs: CompiledScenario, G: np.ndarray, cycle_states: np.ndarray) -> DeviationCheck | None:
    """Value one-shot deviations from each state of the limit cycle (`cycle_states`, shape (L, n): every firm's
    state in each period of the cycle) under the greedy strategies G. None where the measure does not apply."""
    if not applies(cs) or cycle_states.shape[0] == 0:
        return None
    n, m = cs.n_firms, cs.n_prices
    net = cs.profit - cs.expected_fine
    horizon = max(int(cs.scenario.logging.cycle_search), 2)
    rows = cycle_states.shape[0]
    best_reply = np.zeros((rows, n), dtype=bool)
    strategy_value = np.zeros((rows, n))
    static_value = np.zeros((rows, n))
    exact = True
    for r in range(rows):
        start = np.ascontiguousarray(cycle_states[r], dtype=np.int64)
        acts = np.array([G[int(cs.ipar[k, I_SOFF]) + int(start[k])] for k in range(n)], dtype=np.int64)
        for i in range(n):
            values, ok = state_values(
                i, start, acts, G, cs.ipar, cs.fpar, cs.powers, m, net, cs.allowed, cs.n_allowed, horizon
            )
            exact = exact and ok
            best = values.max()
            own = values[acts[i]]
            best_reply[r, i] = own >= best - BEST_REPLY_TOLERANCE * max(1.0, abs(best))
            strategy_value[r, i] = own
            br = best_response(i, acts, cs.profit, cs.expected_fine, cs.powers, cs.allowed, cs.n_allowed)
            static_value[r, i] = values[br]
    return DeviationCheck(
        best_reply=best_reply, strategy_value=strategy_value, static_br_value=static_value, exact=exact
    )
