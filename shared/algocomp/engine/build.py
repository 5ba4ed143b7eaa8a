"""Turn a validated scenario into the flat numeric arrays the compiled kernel works on.

Everything that does not change during a session is computed once here: the price grid, the profit, quantity
and consumer-surplus tables over every joint price profile (so the kernel never evaluates demand), the prices
each firm may charge under the regulation in force (regulation.levers), and each agent's parameters packed into
rows of a float and an int matrix (agents.catalog). Sessions then only allocate their mutable state
(engine.session).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from pydantic import TypeAdapter

from algocomp.agents import qlearning, registry
from algocomp.agents.catalog import F_POWER, I_KIND, I_TIE, pack_agents
from algocomp.engine.primitives import (
    NOISE_ADDITIVE_FLOORED,
    NOISE_ADDITIVE_UNFLOORED,
    NOISE_MULTIPLICATIVE,
    NOISE_NONE,
    NOISE_PROFIT_UNIFORM,
    Market,
)
from algocomp.markets import (
    Benchmarks,
    compute_benchmarks,
    consumer_surplus,
    price_grid,
    quantities,
)
from algocomp.regulation.levers import allowed_prices, audit_terms, steer
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import MarketSpec, PriceSpec, Scenario, UnitDemand

# Noise kinds (scenarios.model.DemandNoise, codes in engine.primitives). noise_sd is the normal kinds' sd, or
# profit_uniform's half-width 1/snr.
NOISE_CODES = {
    "none": NOISE_NONE,
    "additive_floored": NOISE_ADDITIVE_FLOORED,
    "multiplicative": NOISE_MULTIPLICATIVE,
    "additive_unfloored": NOISE_ADDITIVE_UNFLOORED,
    "profit_uniform": NOISE_PROFIT_UNIFORM,
}

# The fast loop's Q-learners: the float column of their learning rate, the int column of their update rule.
QLEARNING_ALPHA = registry.kind_of("qlearning").columns["alpha"][1]
QLEARNING_SYNCHRONOUS = registry.kind_of("qlearning").columns["synchronous"][1]

# The largest joint price table the engine will allocate (profiles), to fail early and clearly.
MAX_PROFILES = 4_194_304


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
    ipar: np.ndarray  # (n, int columns) int64: agents.layout's, then every kind's named ones (agents.registry)
    fpar: np.ndarray  # (n, float columns) float64
    q_size: int  # total entries of the flat Q array (all firms)
    s_size: int  # total entries of the flat per-state arrays (all firms)
    q_init: np.ndarray  # (q_size,) initial Q / preference values (0 where a uniform random init is drawn per session)
    sequential: bool
    reprice_every: int
    noise_kind: int
    noise_sd: float  # sd of the normal kinds, half-width 1/snr of profit_uniform
    audit_probability: float
    audit_fine: float
    audit_threshold: np.ndarray  # (n,) fined when action index > this
    learning: bool  # any agent learns (else convergence is immediate)
    # Every firm a simultaneous asynchronous Q-learner with the exponential schedule and first-maximum ties, and
    # no noise, audits or repricing limit: kernel.run_qlearning. Random tie-breaking and the polynomial schedule
    # are implemented in the general loop only, so scenarios using them take it (a uniform random Q
    # initialisation only changes a session's starting table and keeps the fast loop).
    qlearning_only: bool

    @functools.cached_property
    def market(self) -> Market:
        """The constants as the compiled loops take them (one record)."""
        return Market(
            profit=self.profit,
            quantity=self.quantity,
            cs_table=self.consumer_surplus,
            expected_fine=self.expected_fine,
            grid=self.grid,
            costs=self.costs,
            powers=self.powers,
            allowed=self.allowed,
            n_allowed=self.n_allowed,
            ipar=self.ipar,
            fpar=self.fpar,
            sequential=self.sequential,
            reprice_every=self.reprice_every,
            noise_kind=self.noise_kind,
            noise_sd=self.noise_sd,
            audit_prob=self.audit_probability,
            audit_fine=self.audit_fine,
            audit_thr=self.audit_threshold,
        )


@functools.lru_cache(maxsize=64)
def _benchmarks(market_json: str, prices_json: str | None = None) -> Benchmarks:
    """Benchmarks per market, solved once per process (a service runs the same market many times; the result is
    an immutable dataclass of read-only arrays, safe to share). prices_json is given only for unit demand, whose
    benchmarks are equilibria of the price grid."""
    prices = TypeAdapter(PriceSpec).validate_json(prices_json) if prices_json else None
    return compute_benchmarks(MarketSpec.model_validate_json(market_json), prices)


def compile_scenario(scenario: Scenario) -> CompiledScenario:
    """Benchmarks, grid, tables, regulation and agents of a scenario, ready for the kernel."""
    market = scenario.market
    n = market.n_firms
    on_grid = isinstance(market.demand, UnitDemand)
    try:
        bench = _benchmarks(market.model_dump_json(), scenario.prices.model_dump_json() if on_grid else None)
    except ValueError as exc:
        if not on_grid:
            raise
        raise ScenarioError("prices", str(exc)) from exc
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
        q = steer(prices, q, regulation.steering.share)
    profit = np.ascontiguousarray((prices - costs[None, :]) * q)
    cs = np.ascontiguousarray(np.asarray(consumer_surplus(market, prices), dtype=np.float64))

    prices_ok = allowed_prices(regulation, grid, costs, bench)
    audit = audit_terms(regulation, grid, costs, bench, actions)
    agents = pack_agents(scenario, grid, bench, profit, audit.expected_fine, actions, prices_ok.mask)

    timing_sequential = market.timing == "sequential"
    noise = market.noise
    noise_kind = NOISE_CODES[noise.kind] if noise.active else NOISE_NONE
    noise_size = 1.0 / noise.snr if noise.snr is not None and noise_kind == NOISE_PROFIT_UNIFORM else float(noise.sd)
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
        expected_fine=audit.expected_fine,
        allowed=prices_ok.allowed,
        n_allowed=prices_ok.n_allowed,
        ipar=agents.ipar,
        fpar=agents.fpar,
        q_size=agents.q_size,
        s_size=agents.s_size,
        q_init=agents.q_init,
        sequential=timing_sequential,
        reprice_every=regulation.reprice_every,
        noise_kind=noise_kind,
        noise_sd=noise_size,
        audit_probability=audit.probability,
        audit_fine=audit.fine,
        audit_threshold=audit.threshold,
        learning=agents.learning,
        qlearning_only=bool(
            np.all(agents.ipar[:, I_KIND] == qlearning.KIND.code)
            and not np.any(agents.ipar[:, QLEARNING_SYNCHRONOUS] != 0)
            and not np.any(agents.ipar[:, I_TIE])
            and not np.any(agents.fpar[:, F_POWER] > 0.0)
            and not timing_sequential
            and noise_kind == NOISE_NONE
            and audit.probability == 0.0
            and regulation.reprice_every == 1
        ),
    )
