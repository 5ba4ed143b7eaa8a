"""The agents the engine offers, as the compiled kernel sees them.

Each firm's agent becomes a row of an int and a float parameter matrix (its kind code, prices it refers to,
table offsets, learning rates, ...) plus its initial Q-values or preferences. The learning rules themselves
live in engine.kernel, which dispatches on the kind code; the specs users write are in scenarios.model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from algocomp.markets import Benchmarks, nearest_index
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import Scenario, UniformQInit

# Agent kinds, as the kernel knows them.
FIXED = 0
MYOPIC = 1
EPSILON_GREEDY = 2
UCB1 = 3
THOMPSON = 4
QLEARNING = 5
QLEARNING_SYNC = 6
KLEIN = 7
EXPECTED_SARSA = 8
ACTOR_CRITIC = 9
GRIM_TRIGGER = 10
TIT_FOR_TAT = 11
UCB_TUNED = 12
PYTHON_POLICY = 13  # an agent on the Python path (engine.python_session); the kernel never runs it

# Columns of the int parameter matrix. I_TIE: 1 if ties among maximal values are broken at random (tie_break).
I_KIND, I_PRICE, I_PUNISH, I_STATES, I_QOFF, I_SOFF, I_BASE, I_MODK1, I_MEMORY, I_TIE = range(10)
N_IPAR = 10
# Columns of the float parameter matrix. F_POWER: the polynomial schedule's exponent (0: exponential schedule);
# F_QLOW, F_QHIGH: bounds of a uniform random Q initialisation (both 0: none; drawn per session by engine.session).
F_ALPHA, F_DELTA, F_BETA, F_EPS0, F_P1, F_P2, F_P3, F_SCALE, F_DECAY, F_POWER, F_QLOW, F_QHIGH = range(12)
N_FPAR = 12

# The largest Q-table (entries) the engine allocates for one firm, to fail early and clearly.
MAX_Q_ENTRIES = 16_777_216

RULE_BASED = (FIXED, MYOPIC, GRIM_TRIGGER, TIT_FOR_TAT)


@dataclass(frozen=True)
class PackedAgents:
    ipar: np.ndarray  # (n, N_IPAR) int64
    fpar: np.ndarray  # (n, N_FPAR) float64
    q_init: (
        np.ndarray
    )  # (q_size,) initial Q-values / preferences of all firms, concatenated (0 where drawn per session)
    q_size: int
    s_size: int

    @property
    def learning(self) -> bool:
        return any(int(k) not in RULE_BASED for k in self.ipar[:, I_KIND])


def price_index(ref, grid_row: np.ndarray, nash: float, monopoly: float) -> int:
    if ref == "nash":
        return nearest_index(grid_row, nash)
    if ref == "monopoly":
        return nearest_index(grid_row, monopoly)
    return nearest_index(grid_row, float(ref))


def pack_agents(
    scenario: Scenario,
    grid: np.ndarray,
    bench: Benchmarks,
    profit: np.ndarray,
    expected_fine: np.ndarray,
    actions: np.ndarray,
    allowed_mask: np.ndarray,
) -> PackedAgents:
    """One parameter row per firm; states are counted from the memory, the rivals' visibility and timing."""
    n, m = grid.shape
    n_profiles = profit.shape[0]
    regulation = scenario.regulation
    ipar = np.zeros((n, N_IPAR), dtype=np.int64)
    fpar = np.zeros((n, N_FPAR), dtype=np.float64)
    q_init_parts: list[np.ndarray] = []
    q_off = s_off = 0
    agents = scenario.agent_list()
    for i, agent in enumerate(agents):
        row_i, row_f = ipar[i], fpar[i]
        nash_i, mono_i = float(bench.nash_price[i]), float(bench.monopoly_price[i])
        kind = agent.type
        states = 1
        memory = 0
        base = 1
        if kind in ("fixed", "nash", "monopoly"):
            row_i[I_KIND] = FIXED
            ref = agent.price if kind == "fixed" else kind
            row_i[I_PRICE] = price_index(ref, grid[i], nash_i, mono_i)
        elif kind == "myopic":
            row_i[I_KIND] = MYOPIC
        elif kind == "grim_trigger":
            row_i[I_KIND] = GRIM_TRIGGER
            row_i[I_PRICE] = price_index(agent.cooperate, grid[i], nash_i, mono_i)
            row_i[I_PUNISH] = price_index(agent.punish, grid[i], nash_i, mono_i)
        elif kind == "tit_for_tat":
            row_i[I_KIND] = TIT_FOR_TAT
            row_i[I_PRICE] = price_index(agent.initial, grid[i], nash_i, mono_i)
        elif kind == "epsilon_greedy":
            row_i[I_KIND] = EPSILON_GREEDY
            row_f[F_EPS0], row_f[F_BETA] = agent.epsilon, agent.beta
        elif kind == "ucb1":
            row_i[I_KIND] = UCB1
            row_f[F_EPS0] = agent.c
        elif kind == "ucb_tuned":
            row_i[I_KIND] = UCB_TUNED
        elif kind == "thompson":
            row_i[I_KIND] = THOMPSON
            row_f[F_P1], row_f[F_P2], row_f[F_P3] = agent.prior_mean, agent.prior_sd, agent.noise_sd
        elif kind in ("dqn", "python"):
            row_i[I_KIND] = PYTHON_POLICY  # no table: only the depth of the price history it observes
            memory = agent.history_depth
        elif kind == "klein_qlearning":
            row_i[I_KIND] = KLEIN
            row_f[F_ALPHA], row_f[F_DELTA], row_f[F_BETA] = agent.alpha, agent.delta, agent.beta
            # The state is the rivals' current prices.
            states = m ** (n - 1)
        else:  # qlearning, expected_sarsa, actor_critic: state = prices of the last `memory` periods
            memory = agent.memory
            row_f[F_DELTA], row_f[F_BETA] = agent.delta, agent.beta
            if kind == "qlearning":
                row_i[I_KIND] = QLEARNING_SYNC if agent.update == "synchronous" else QLEARNING
                row_f[F_ALPHA] = agent.alpha
            elif kind == "expected_sarsa":
                row_i[I_KIND] = EXPECTED_SARSA
                row_f[F_ALPHA] = agent.alpha
            else:
                row_i[I_KIND] = ACTOR_CRITIC
                row_f[F_ALPHA], row_f[F_P1] = agent.actor_lr, agent.critic_lr
                row_f[F_EPS0], row_f[F_P2] = agent.temperature, agent.min_temperature
            base = m if regulation.hide_rival_prices else n_profiles
            states = base**memory
        if states * m > MAX_Q_ENTRIES:
            raise ScenarioError(
                f"agents.{i}.memory" if memory else "prices",
                f"firm {i}'s table would need {states * m:,} entries (limit {MAX_Q_ENTRIES:,}); "
                "reduce memory, prices or firms",
            )
        row_i[I_STATES], row_i[I_QOFF], row_i[I_SOFF] = states, q_off, s_off
        row_i[I_BASE], row_i[I_MEMORY] = base, memory
        row_i[I_MODK1] = base ** (memory - 1) if memory >= 1 else 0
        row_f[F_DECAY] = math.exp(-row_f[F_BETA])
        if getattr(agent, "schedule", "exponential") == "polynomial":
            row_f[F_POWER] = agent.power
        row_i[I_TIE] = 1 if getattr(agent, "tie_break", "first") == "random" else 0
        if isinstance(getattr(agent, "q_init", None), UniformQInit):
            row_f[F_QLOW], row_f[F_QHIGH] = agent.q_init.uniform
        own_max = float(profit[:, i].max())
        row_f[F_SCALE] = own_max if own_max > 0 else 1.0
        if kind == "ucb_tuned" and not agent.scale_rewards:
            row_f[F_SCALE] = 1.0  # learns from raw profits
        q_init_parts.append(_initial_q(agent, i, states, m, profit, expected_fine, actions, allowed_mask))
        q_off += states * m
        s_off += states
    return PackedAgents(
        ipar=ipar,
        fpar=fpar,
        q_init=np.concatenate(q_init_parts) if q_init_parts else np.zeros(0),
        q_size=q_off,
        s_size=s_off,
    )


def _initial_q(agent, firm: int, states: int, m: int, profit, expected_fine, actions, allowed_mask) -> np.ndarray:
    """Initial Q-values (or actor preferences) for one firm: one row per state, -inf on forbidden prices.

    A uniform random initialisation is left at 0 here: each session draws its own (engine.session.new_state)."""
    row = np.zeros(m)
    q_init = getattr(agent, "q_init", None)
    if q_init == "calvano":
        # Discounted profit of each own price against uniformly random (allowed) rival prices (Calvano et al.).
        rivals_ok = np.ones(actions.shape[0], dtype=bool)
        for j in range(actions.shape[1]):
            if j != firm:
                rivals_ok &= allowed_mask[j, actions[:, j]]
        net = profit[:, firm] - expected_fine[:, firm]
        for a in range(m):
            sel = rivals_ok & (actions[:, firm] == a)
            row[a] = net[sel].mean() / (1.0 - agent.delta) if sel.any() else 0.0
    elif isinstance(q_init, (int, float)) and not isinstance(q_init, bool):
        row[:] = float(q_init)
    row[~allowed_mask[firm]] = -np.inf
    return np.tile(row, states)
