"""The agents of a scenario as the compiled kernel sees them.

Each firm's agent becomes a row of an int and a float parameter matrix plus its initial Q-values or preferences.
The first columns are the same for every kind (agents.layout: table layout, discounting, exploration); after
them every registered kind has one column per named parameter (agents.registry), filled by the kind's own
`pack`. The learning rules live with the kinds (agents/<kind>.py); the kernel dispatches on I_KIND. A firm of a
Python-path kind (no compiled hooks) gets its kind's code and, as its memory, the depth of the price history it
observes; engine.python_session runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from algocomp.agents import registry
from algocomp.agents.base import PackContext, PackedFirm
from algocomp.agents.layout import (
    F_BETA,
    F_DECAY,
    F_DELTA,
    F_EXPLORE0,
    F_POWER,
    F_QHIGH,
    F_QLOW,
    F_SCHEDULE_START,
    I_BASE,
    I_KIND,
    I_MEMORY,
    I_MODK1,
    I_QOFF,
    I_RIVALS,
    I_SOFF,
    I_STATES,
    I_TIE,
)
from algocomp.markets import Benchmarks
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import Scenario

__all__ = [
    "F_BETA",
    "F_DECAY",
    "F_DELTA",
    "F_EXPLORE0",
    "F_POWER",
    "F_QHIGH",
    "F_QLOW",
    "F_SCHEDULE_START",
    "I_BASE",
    "I_KIND",
    "I_MEMORY",
    "I_MODK1",
    "I_QOFF",
    "I_RIVALS",
    "I_SOFF",
    "I_STATES",
    "I_TIE",
    "MAX_Q_ENTRIES",
    "PackedAgents",
    "kind_param",
    "pack_agents",
]

# The largest Q-table (entries) the engine allocates for one firm, to fail early and clearly.
MAX_Q_ENTRIES = 16_777_216


@dataclass(frozen=True)
class PackedAgents:
    ipar: np.ndarray  # (n, int columns) int64
    fpar: np.ndarray  # (n, float columns) float64
    q_init: (
        np.ndarray
    )  # (q_size,) initial Q-values / preferences of all firms, concatenated (0 where drawn per session)
    q_size: int
    s_size: int

    @property
    def learning(self) -> bool:
        return any(registry.kind_by_code(int(k)).learning for k in self.ipar[:, I_KIND])


def kind_param(ipar: np.ndarray, fpar: np.ndarray, firm: int, name: str):
    """Firm `firm`'s named parameter `name` of its kind, read back from the matrices."""
    kind = registry.kind_by_code(int(ipar[firm, I_KIND]))
    column_type, column = kind.columns[name]
    return int(ipar[firm, column]) if column_type == "int" else float(fpar[firm, column])


def pack_agents(
    scenario: Scenario,
    grid: np.ndarray,
    bench: Benchmarks,
    profit: np.ndarray,
    expected_fine: np.ndarray,
    actions: np.ndarray,
    allowed_mask: np.ndarray,
) -> PackedAgents:
    """One parameter row per firm, filled by each firm's kind; the tables' offsets follow one another."""
    n, m = grid.shape
    n_profiles = profit.shape[0]
    n_int, n_float = registry.widths()
    ipar = np.zeros((n, n_int), dtype=np.int64)
    fpar = np.zeros((n, n_float), dtype=np.float64)
    q_init_parts: list[np.ndarray] = []
    q_off = s_off = 0
    for i, agent in enumerate(scenario.agent_list()):
        kind = registry.kind_of(agent.type)
        if not kind.compiled and kind.policy is None:
            raise ScenarioError(
                f"agents.{i}.type",
                f"{agent.type} runs on the Python path, and its kind names no policy to build its agent there "
                "(AgentKind.policy); the compiled engine does not run it",
            )
        ctx = PackContext(
            firm=i,
            n_firms=n,
            n_prices=m,
            n_profiles=n_profiles,
            grid_row=grid[i],
            nash=float(bench.nash_price[i]),
            monopoly=float(bench.monopoly_price[i]),
            own_max_profit=float(profit[:, i].max()),
            hide_rival_prices=scenario.regulation.hide_rival_prices,
        )
        if kind.compiled:
            assert kind.pack is not None  # registry: every compiled kind has one
            packed = kind.pack(agent, ctx)
        else:
            # A Python-path agent (engine.python_session): no table of its own, only the depth of the price history
            # it observes, which sets how many random initial profiles a session draws.
            packed = PackedFirm(params=kind.params(), memory=int(getattr(agent, "history_depth", 1)))
        states, memory = packed.states, packed.memory
        if states * m > MAX_Q_ENTRIES:
            raise ScenarioError(
                f"agents.{i}.memory" if memory else "prices",
                f"firm {i}'s table would need {states * m:,} entries (limit {MAX_Q_ENTRIES:,}); "
                "reduce memory, prices or firms",
            )
        row_i, row_f = ipar[i], fpar[i]
        row_i[I_KIND] = kind.code
        row_i[I_STATES], row_i[I_QOFF], row_i[I_SOFF] = states, q_off, s_off
        row_i[I_BASE], row_i[I_MEMORY] = packed.base, memory
        row_i[I_MODK1] = packed.base ** (memory - 1) if memory >= 1 else 0
        row_i[I_TIE] = 1 if packed.tie_random else 0
        row_i[I_RIVALS] = 1 if packed.rivals_state else 0
        row_f[F_DELTA], row_f[F_BETA] = packed.delta, packed.beta
        row_f[F_DECAY] = math.exp(-packed.beta)
        row_f[F_POWER] = packed.power
        row_f[F_EXPLORE0], row_f[F_SCHEDULE_START] = packed.explore0, packed.schedule_start
        row_f[F_QLOW], row_f[F_QHIGH] = packed.q_uniform
        for name, value in zip(kind.params._fields, packed.params, strict=True):
            column_type, column = kind.columns[name]
            if column_type == "int":
                row_i[column] = value
            else:
                row_f[column] = value
        q_init_parts.append(
            _initial_q(packed.q_init, packed.delta, i, states, m, profit, expected_fine, actions, allowed_mask)
        )
        q_off += states * m
        s_off += states
    return PackedAgents(
        ipar=ipar,
        fpar=fpar,
        q_init=np.concatenate(q_init_parts) if q_init_parts else np.zeros(0),
        q_size=q_off,
        s_size=s_off,
    )


def _initial_q(
    q_init, delta: float, firm: int, states: int, m: int, profit, expected_fine, actions, allowed_mask
) -> np.ndarray:
    """Initial Q-values (or actor preferences) for one firm: one row per state, -inf on forbidden prices.

    A uniform random initialisation is left at 0 here: each session draws its own (engine.session.new_state)."""
    row = np.zeros(m)
    if q_init == "calvano":
        # Discounted profit of each own price against uniformly random (allowed) rival prices (Calvano et al.).
        rivals_ok = np.ones(actions.shape[0], dtype=bool)
        for j in range(actions.shape[1]):
            if j != firm:
                rivals_ok &= allowed_mask[j, actions[:, j]]
        net = profit[:, firm] - expected_fine[:, firm]
        for a in range(m):
            sel = rivals_ok & (actions[:, firm] == a)
            row[a] = net[sel].mean() / (1.0 - delta) if sel.any() else 0.0
    elif isinstance(q_init, (int, float)) and not isinstance(q_init, bool):
        row[:] = float(q_init)
    row[~allowed_mask[firm]] = -np.inf
    return np.tile(row, states)
