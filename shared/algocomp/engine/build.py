"""Turn a validated scenario into the flat numeric arrays the compiled kernel works on.

Everything that does not change during a session is computed once here: the price grid, the profit, quantity
and consumer-surplus tables over every joint price profile (so the kernel never evaluates demand), the prices
each firm may charge under the regulation in force, and each agent's parameters packed into rows of a float
and an int matrix. Sessions then only allocate their mutable state (see engine.session).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from algocomp.markets import Benchmarks, compute_benchmarks, consumer_surplus, nearest_index, price_grid, quantities
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import PriceLevel, Scenario

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

# Columns of the int parameter matrix.
I_KIND, I_PRICE, I_PUNISH, I_STATES, I_QOFF, I_SOFF, I_BASE, I_MODK1, I_MEMORY = range(9)
N_IPAR = 9
# Columns of the float parameter matrix.
F_ALPHA, F_DELTA, F_BETA, F_EPS0, F_P1, F_P2, F_P3, F_SCALE, F_DECAY = range(9)
N_FPAR = 9

# Noise kinds.
NOISE_NONE, NOISE_ADDITIVE, NOISE_MULTIPLICATIVE = 0, 1, 2

# The largest joint price table and Q-table the engine will allocate (entries), to fail early and clearly.
MAX_PROFILES = 4_194_304
MAX_Q_ENTRIES = 16_777_216

_STATEFUL = {"qlearning", "expected_sarsa", "actor_critic"}


@dataclass(frozen=True)
class CompiledScenario:
    """A scenario's constant numeric form. Arrays are read-only in spirit: sessions never write them."""

    scenario: Scenario
    benchmarks: Benchmarks
    grid: np.ndarray  # (n, m) prices
    costs: np.ndarray  # (n,)
    n_firms: int
    n_prices: int
    n_profiles: int
    powers: np.ndarray  # (n,) m**i: joint index = sum a_i * m**i
    profit: np.ndarray  # (J, n) expected profit, with steering
    quantity: np.ndarray  # (J, n) quantity, with steering
    consumer_surplus: np.ndarray  # (J,)
    expected_fine: np.ndarray  # (J, n) audit probability x fine where the firm's price is above the threshold
    allowed: np.ndarray  # (n, m) allowed action indices, first n_allowed[i] valid
    n_allowed: np.ndarray  # (n,)
    ipar: np.ndarray  # (n, N_IPAR) int64
    fpar: np.ndarray  # (n, N_FPAR) float64
    q_size: int  # total entries of the flat Q array (all firms)
    s_size: int  # total entries of the flat per-state arrays (all firms)
    q_init: np.ndarray  # (q_size,) initial Q / preference values
    sequential: bool
    reprice_every: int
    noise_kind: int
    noise_sd: float
    audit_probability: float
    audit_fine: float
    audit_threshold: np.ndarray  # (n,) fined when action index > this
    learning: bool  # any agent learns (else convergence is immediate)
    qlearning_only: bool  # every firm a simultaneous asynchronous Q-learner, no noise, audits or repricing limit


def _level(level: PriceLevel, costs: np.ndarray, bench: Benchmarks) -> np.ndarray:
    if level.basis == "absolute":
        return np.full(costs.shape, float(level.value))
    if level.basis == "cost_markup":
        return costs * (1.0 + level.value)
    return np.asarray(bench.nash_price, dtype=float) * (1.0 + level.value)


def _price_index(ref, grid_row: np.ndarray, nash: float, monopoly: float) -> int:
    if ref == "nash":
        return nearest_index(grid_row, nash)
    if ref == "monopoly":
        return nearest_index(grid_row, monopoly)
    return nearest_index(grid_row, float(ref))


def _steer(prices: np.ndarray, q: np.ndarray, share: float) -> np.ndarray:
    """Move `share` of all demand to the lowest-priced firm(s), split equally on ties."""
    lowest = prices == prices.min(axis=1, keepdims=True)
    total = q.sum(axis=1, keepdims=True)
    return (1.0 - share) * q + share * total * lowest / lowest.sum(axis=1, keepdims=True)


def compile_scenario(scenario: Scenario) -> CompiledScenario:
    market = scenario.market
    n = market.n_firms
    bench = compute_benchmarks(market)
    try:
        grid = np.ascontiguousarray(price_grid(scenario.prices, bench), dtype=np.float64)
    except ValueError as exc:
        raise ScenarioError("prices", str(exc)) from exc
    m = grid.shape[1]
    n_profiles = m**n
    if n_profiles > MAX_PROFILES:
        raise ScenarioError(
            "prices",
            f"{m} prices for {n} firms make {n_profiles:,} price profiles, more than the engine tabulates "
            f"({MAX_PROFILES:,}); use fewer prices or firms",
        )
    costs = np.asarray(market.cost_vector(), dtype=np.float64)
    powers = (m ** np.arange(n)).astype(np.int64)
    # Firm 0 is the fastest-moving digit of the joint index.
    actions = np.stack(np.unravel_index(np.arange(n_profiles), (m,) * n, order="F"), axis=1)
    prices = grid[np.arange(n)[None, :], actions]
    q = np.asarray(quantities(market, prices), dtype=np.float64)
    regulation = scenario.regulation
    if regulation.steering is not None and regulation.steering.share > 0:
        q = _steer(prices, q, regulation.steering.share)
    profit = np.ascontiguousarray((prices - costs[None, :]) * q)
    cs = np.ascontiguousarray(np.asarray(consumer_surplus(market, prices), dtype=np.float64))

    # Prices each firm may charge.
    allowed_mask = np.ones((n, m), dtype=bool)
    if regulation.price_cap is not None:
        cap = _level(regulation.price_cap, costs, bench)
        allowed_mask &= grid <= cap[:, None] + 1e-12
    if regulation.price_floor is not None:
        floor = _level(regulation.price_floor, costs, bench)
        allowed_mask &= grid >= floor[:, None] - 1e-12
    for i in range(n):
        if not allowed_mask[i].any():
            field = "regulation.price_cap" if regulation.price_cap is not None else "regulation.price_floor"
            raise ScenarioError(
                field,
                f"leaves firm {i} no price on its grid ({grid[i, 0]:.5g} .. {grid[i, -1]:.5g}); "
                "the cap must be at or above some grid price and above the floor",
            )
    allowed = np.zeros((n, m), dtype=np.int64)
    n_allowed = allowed_mask.sum(axis=1).astype(np.int64)
    for i in range(n):
        idx = np.flatnonzero(allowed_mask[i])
        allowed[i, : idx.size] = idx

    audit_threshold = np.full(n, m, dtype=np.int64)  # m: nobody is ever above it
    audit_probability, audit_fine = 0.0, 0.0
    expected_fine = np.zeros((n_profiles, n))
    if regulation.audit is not None and regulation.audit.probability > 0 and regulation.audit.fine > 0:
        threshold = _level(regulation.audit.threshold, costs, bench)
        audit_threshold = np.array([np.sum(grid[i] <= threshold[i] + 1e-12) - 1 for i in range(n)], dtype=np.int64)
        audit_probability, audit_fine = regulation.audit.probability, regulation.audit.fine
        expected_fine = audit_probability * audit_fine * (actions > audit_threshold[None, :])

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
            row_i[I_PRICE] = _price_index(ref, grid[i], nash_i, mono_i)
        elif kind == "myopic":
            row_i[I_KIND] = MYOPIC
        elif kind == "grim_trigger":
            row_i[I_KIND] = GRIM_TRIGGER
            row_i[I_PRICE] = _price_index(agent.cooperate, grid[i], nash_i, mono_i)
            row_i[I_PUNISH] = _price_index(agent.punish, grid[i], nash_i, mono_i)
        elif kind == "tit_for_tat":
            row_i[I_KIND] = TIT_FOR_TAT
            row_i[I_PRICE] = _price_index(agent.initial, grid[i], nash_i, mono_i)
        elif kind == "epsilon_greedy":
            row_i[I_KIND] = EPSILON_GREEDY
            row_f[F_EPS0], row_f[F_BETA] = agent.epsilon, agent.beta
        elif kind == "ucb1":
            row_i[I_KIND] = UCB1
            row_f[F_EPS0] = agent.c
        elif kind == "thompson":
            row_i[I_KIND] = THOMPSON
            row_f[F_P1], row_f[F_P2], row_f[F_P3] = agent.prior_mean, agent.prior_sd, agent.noise_sd
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
        own_max = float(profit[:, i].max())
        row_f[F_SCALE] = own_max if own_max > 0 else 1.0
        q_init_parts.append(_initial_q(agent, i, states, m, profit, expected_fine, actions, allowed_mask))
        q_off += states * m
        s_off += states

    timing_sequential = market.timing == "sequential"
    noise = market.noise
    noise_kind = {"none": NOISE_NONE, "additive": NOISE_ADDITIVE, "multiplicative": NOISE_MULTIPLICATIVE}[noise.kind]
    if noise.sd == 0:
        noise_kind = NOISE_NONE
    learning = any(int(r[I_KIND]) not in (FIXED, MYOPIC, GRIM_TRIGGER, TIT_FOR_TAT) for r in ipar)
    return CompiledScenario(
        scenario=scenario,
        benchmarks=bench,
        grid=grid,
        costs=costs,
        n_firms=n,
        n_prices=m,
        n_profiles=n_profiles,
        powers=powers,
        profit=profit,
        quantity=np.ascontiguousarray(q),
        consumer_surplus=cs,
        expected_fine=np.ascontiguousarray(expected_fine),
        allowed=allowed,
        n_allowed=n_allowed,
        ipar=ipar,
        fpar=fpar,
        q_size=q_off,
        s_size=s_off,
        q_init=np.concatenate(q_init_parts) if q_init_parts else np.zeros(0),
        sequential=timing_sequential,
        reprice_every=regulation.reprice_every,
        noise_kind=noise_kind,
        noise_sd=float(noise.sd),
        audit_probability=float(audit_probability),
        audit_fine=float(audit_fine),
        audit_threshold=audit_threshold,
        learning=learning,
        qlearning_only=bool(
            np.all(ipar[:, I_KIND] == QLEARNING)
            and not timing_sequential
            and noise_kind == NOISE_NONE
            and audit_probability == 0.0
            and regulation.reprice_every == 1
        ),
    )


def _initial_q(agent, firm: int, states: int, m: int, profit, expected_fine, actions, allowed_mask) -> np.ndarray:
    """Initial Q-values (or actor preferences) for one firm: one row per state, -inf on forbidden prices."""
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
