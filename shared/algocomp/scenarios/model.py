"""The scenario format: one validated document says everything a simulation needs.

A scenario is a market (firms, costs, demand, timing), a price set, the agents, the regulation in force,
the horizon and convergence rule, what to log, and the seed and number of sessions. It is written as YAML or
JSON (see docs/scenario-format.md) and validated here with pydantic v2, so that a mistake is reported with the
dotted path of the field at fault before any simulation starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from algocomp.agents import registry
from algocomp.agents.actor_critic import ActorCritic
from algocomp.agents.base import PriceRef, QInit, UniformQInit
from algocomp.agents.epsilon_greedy import EpsilonGreedyBandit
from algocomp.agents.expected_sarsa import ExpectedSarsa
from algocomp.agents.fixed import FixedPrice, MonopolyPlayer, NashPlayer
from algocomp.agents.grim_trigger import GrimTrigger
from algocomp.agents.klein import KleinQLearning
from algocomp.agents.myopic import MyopicBestResponse
from algocomp.agents.qlearning import QLearning
from algocomp.agents.thompson import ThompsonBandit
from algocomp.agents.tit_for_tat import TitForTat
from algocomp.agents.ucb1 import UCB1Bandit
from algocomp.agents.ucb_tuned import UCBTunedBandit
from algocomp.spec import Spec

# --------------------------------------------------------------------------------------------- market


class LogitDemand(Spec):
    """Logit demand with an outside good (Calvano et al. 2020):
    q_i = exp((a_i - p_i)/mu) / (sum_j exp((a_j - p_j)/mu) + exp(a_0/mu))."""

    model: Literal["logit"] = "logit"
    quality: float | list[float] = Field(2.0, description="a_i, the vertical quality index; one value or one per firm")
    outside_quality: float = Field(0.0, description="a_0, the outside good's quality")
    mu: PositiveFloat = Field(0.25, description="horizontal differentiation; larger means less substitutable")


class LinearDemand(Spec):
    """Linear differentiated demand (Singh & Vives 1984): q_i = a - b p_i + d sum_{j != i} p_j, floored at 0."""

    model: Literal["linear"] = "linear"
    intercept: PositiveFloat = Field(1.0, description="a")
    own_slope: PositiveFloat = Field(1.0, description="b, the own-price slope")
    cross_slope: NonNegativeFloat = Field(0.5, description="d, the cross-price slope (substitutes: d >= 0)")


class BertrandDemand(Spec):
    """Homogeneous good (Klein 2021): market demand A - B p goes to the lowest price, split on ties."""

    model: Literal["bertrand"] = "bertrand"
    intercept: PositiveFloat = Field(1.0, description="A, demand at a zero price")
    slope: PositiveFloat = Field(1.0, description="B, the slope of market demand")


class UnitDemand(Spec):
    """Rectangular (unit) demand for a homogeneous good (Asker, Fershtman & Pakes 2021, 2022): a mass of
    consumers who each buy one unit if the lowest price is at most their common reservation price V. The whole
    mass goes to the firm(s) at the lowest price and is split equally on ties; nobody buys above V."""

    model: Literal["unit"] = "unit"
    reservation_price: PositiveFloat = Field(10.0, description="V, every consumer's value of one unit")
    mass: PositiveFloat = Field(1.0, description="the number (mass) of consumers, each buying at most one unit")


DemandSpec = Annotated[LogitDemand | LinearDemand | BertrandDemand | UnitDemand, Field(discriminator="model")]


# The noise kind that "additive" used to name, and what to write instead (DemandNoise._kind).
_RETIRED_ADDITIVE = (
    "'additive' no longer names a noise model: it meant max(0, q + sd z), which is not mean-preserving (the floor "
    "raises expected demand, most at high prices where demand is small); write additive_floored to keep that form "
    "or additive_unfloored for the mean-preserving q + sd z"
)

NOISE_KINDS_WITH_SD = ("additive_unfloored", "additive_floored", "multiplicative")


class DemandNoise(Spec):
    """Per-period shocks, drawn independently for each firm and period (z standard normal, u uniform on [-1, 1]).

    additive_unfloored: q_i + sd z. Mean-preserving (E[q] is the expected demand); realised demand can be negative.
    additive_floored: max(0, q_i + sd z). NOT mean-preserving: the floor adds E[max(0, -(q + sd z))] to expected
        demand, sd phi(q/sd) - q Phi(-q/sd), largest where q is small (high prices).
    multiplicative: q_i exp(sd z - sd^2 / 2). Mean-preserving, never negative.
    profit_uniform: the firm's profit, not its demand, gets the shock: pi_i + u / snr, so profit is uniform on
        [pi_i - 1/snr, pi_i + 1/snr]. Mean-preserving; quantities are the expected ones. This is the specification
        of Hansen, Misra & Pai (2021), whose signal-to-noise ratio delta is snr.

    The kind "additive" is refused: it used to mean additive_floored, and a scenario must say which form it means.
    """

    kind: Literal["none", "additive_unfloored", "additive_floored", "multiplicative", "profit_uniform"] = "none"
    later_fields: ClassVar[tuple[str, ...]] = ("snr",)
    sd: NonNegativeFloat = Field(0.0, validate_default=True, description="sd of z for the normal kinds (0: no noise)")
    snr: PositiveFloat | None = Field(
        None, validate_default=True, description="profit_uniform only: the shock is uniform on [-1/snr, 1/snr]"
    )

    @field_validator("kind", mode="before")
    @classmethod
    def _kind(cls, value):
        if value == "additive":
            raise ValueError(_RETIRED_ADDITIVE)
        return value

    @field_validator("sd")
    @classmethod
    def _sd_used(cls, value, info: ValidationInfo):
        if info.data.get("kind") == "profit_uniform" and value != 0:
            raise ValueError("profit_uniform takes its size from snr, not sd (leave sd at 0)")
        return value

    @field_validator("snr")
    @classmethod
    def _snr_used(cls, value, info: ValidationInfo):
        kind = info.data.get("kind")
        if kind == "profit_uniform" and value is None:
            raise ValueError("profit_uniform needs snr, the signal-to-noise ratio (shock uniform on [-1/snr, 1/snr])")
        if kind is not None and kind != "profit_uniform" and value is not None:
            raise ValueError(f"only profit_uniform takes snr; {kind} takes its size from sd")
        return value

    @property
    def active(self) -> bool:
        """Whether any shock is drawn (a normal kind with sd 0 draws none)."""
        return self.kind == "profit_uniform" or (self.kind != "none" and self.sd > 0)


class MarketSpec(Spec):
    n_firms: int = Field(2, ge=2, le=8, description="number of competing firms")
    demand: DemandSpec = Field(default_factory=LogitDemand)
    costs: NonNegativeFloat | list[NonNegativeFloat] = Field(
        1.0, description="marginal cost; one value or one per firm"
    )
    timing: Literal["simultaneous", "sequential"] = Field(
        "simultaneous",
        description="simultaneous: every firm sets its price each period; sequential: firms move in turn "
        "(firm t mod n in period t) and the others keep their price (Maskin & Tirole, Klein 2021)",
    )
    noise: DemandNoise = Field(default_factory=DemandNoise)

    @model_validator(mode="after")
    def _per_firm_lengths(self) -> MarketSpec:
        if isinstance(self.costs, list) and len(self.costs) != self.n_firms:
            raise ValueError(f"costs has {len(self.costs)} values but there are {self.n_firms} firms")
        if isinstance(self.demand, LogitDemand) and isinstance(self.demand.quality, list):
            if len(self.demand.quality) != self.n_firms:
                raise ValueError(
                    f"demand.quality has {len(self.demand.quality)} values but there are {self.n_firms} firms"
                )
        if isinstance(self.demand, LinearDemand):
            d, b, n = self.demand.cross_slope, self.demand.own_slope, self.n_firms
            if (n - 1) * d >= b:
                raise ValueError(
                    f"linear demand needs own_slope > (n_firms - 1) * cross_slope for a well-defined equilibrium "
                    f"(got b = {b}, d = {d}, n = {n})"
                )
        if isinstance(self.demand, UnitDemand):
            costs = self.cost_vector()
            if any(c != costs[0] for c in costs):
                raise ValueError(
                    f"costs: unit demand needs one cost for every firm (got {costs}); its benchmarks are the "
                    "symmetric equilibria of the price grid"
                )
            if not costs[0] < self.demand.reservation_price:
                raise ValueError(
                    f"demand.reservation_price ({self.demand.reservation_price}) must be above the marginal cost "
                    f"({costs[0]}), or no sale is profitable"
                )
        return self

    def cost_vector(self) -> list[float]:
        return list(self.costs) if isinstance(self.costs, list) else [float(self.costs)] * self.n_firms


# --------------------------------------------------------------------------------------------- prices


class BenchmarkGrid(Spec):
    """m evenly spaced prices from p_N - xi (p_M - p_N) to p_M + xi (p_M - p_N) (Calvano et al.)."""

    kind: Literal["benchmark_grid"] = "benchmark_grid"
    m: int = Field(15, ge=2, le=255, description="number of prices; at least 2")
    xi: NonNegativeFloat = Field(0.1, description="extension beyond the Nash and monopoly prices")


class RangeGrid(Spec):
    """m evenly spaced prices from low to high, both included (Klein's {0, 1/k, ..., 1} is low 0, high 1, m k+1)."""

    kind: Literal["range"] = "range"
    low: NonNegativeFloat
    high: PositiveFloat
    m: int = Field(ge=2, le=255, description="number of prices; at least 2")

    @model_validator(mode="after")
    def _ordered(self) -> RangeGrid:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        return self


class ExplicitPrices(Spec):
    kind: Literal["explicit"] = "explicit"
    values: list[NonNegativeFloat] = Field(min_length=2, max_length=255, description="strictly increasing prices")

    @model_validator(mode="after")
    def _increasing(self) -> ExplicitPrices:
        if any(b <= a for a, b in zip(self.values, self.values[1:])):
            raise ValueError("values must be strictly increasing (and so distinct)")
        return self


PriceSpec = Annotated[BenchmarkGrid | RangeGrid | ExplicitPrices, Field(discriminator="kind")]


# --------------------------------------------------------------------------------------------- agents

# Every agent spec is defined with its kind, one module per kind in algocomp.agents; the registry
# (agents.registry) says which exist. AgentSpec, the union a scenario's `agents` takes, is derived from it, and
# Scenario is rebuilt whenever a kind is registered. The built-in specs are re-exported here under their names.
if TYPE_CHECKING:
    AgentSpec = Spec  # every agent spec is a Spec; the union itself exists only at run time
else:
    AgentSpec = registry.spec_union()
LEARNING_AGENT_TYPES = registry.learning_types()


# --------------------------------------------------------------------------------------------- regulation


class PriceLevel(Spec):
    """A price level: absolute, a markup over each firm's cost (c (1 + value)), or over the Nash price
    (p_N (1 + value))."""

    basis: Literal["absolute", "cost_markup", "nash_markup"] = "absolute"
    value: float


class Audit(Spec):
    """Each period, with `probability`, an authority audits the market and fines every firm whose price is
    above `threshold` by `fine` (in profit units, taken from that period's profit, which the agents learn from)."""

    probability: float = Field(ge=0.0, le=1.0)
    threshold: PriceLevel
    fine: NonNegativeFloat


class Steering(Spec):
    """Platform demand steering (Johnson, Rhodes & Wildenbeest 2023): the platform moves `share` of every
    firm's demand to the lowest-priced firm(s), which rewards price cuts."""

    share: float = Field(ge=0.0, le=1.0)


class Regulation(Spec):
    price_cap: PriceLevel | None = None
    price_floor: PriceLevel | None = None
    reprice_every: PositiveInt = Field(
        1, description="a firm may change its price at most once every this many periods (1: no limit)"
    )
    hide_rival_prices: bool = Field(False, description="agents' states exclude the rivals' prices")
    audit: Audit | None = None
    steering: Steering | None = None

    @property
    def is_active(self) -> bool:
        return self != Regulation()


# --------------------------------------------------------------------------------------------- run control


class Horizon(Spec):
    max_periods: PositiveInt = Field(1_000_000_000, description="stop a session that has not converged by then")
    convergence_periods: PositiveInt = Field(
        100_000, description="converged once every greedy action has stayed unchanged this many periods"
    )
    stop_at_convergence: bool = True


class LoggingSpec(Spec):
    interval: PositiveInt = Field(10_000, description="periods averaged into one row of the panel")
    max_intervals: int = Field(
        2_000, ge=2, description="rows kept per session; beyond it adjacent rows merge, so memory stays bounded"
    )
    tail: int = Field(100, ge=0, description="last periods of the session logged one by one")
    impulse_periods: int = Field(25, ge=2, description="periods recorded after a forced deviation")
    deviating_firm: int = Field(0, ge=0, description="the firm forced to deviate in the impulse response")
    cycle_search: int = Field(1_000, ge=10, description="periods of frozen greedy play searched for the limit cycle")


class Scenario(Spec):
    """A complete experiment: market, prices, agents, regulation, horizon, logging, seed and sessions."""

    name: str = Field("custom", min_length=1, max_length=200)
    description: str = ""
    market: MarketSpec = Field(default_factory=MarketSpec)
    prices: PriceSpec = Field(default_factory=BenchmarkGrid, validate_default=True)  # checked against the demand
    agents: AgentSpec | list[AgentSpec] = Field(
        default_factory=QLearning, description="one spec for every firm, or a list with one per firm"
    )
    regulation: Regulation = Field(default_factory=Regulation)
    horizon: Horizon = Field(default_factory=Horizon)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    seed: int = Field(0, ge=0, lt=2**63)
    sessions: PositiveInt = 1000

    @field_validator("prices")
    @classmethod
    def _grid_for_unit_demand(cls, prices: PriceSpec, info: ValidationInfo) -> PriceSpec:
        market = info.data.get("market")
        if market is not None and isinstance(market.demand, UnitDemand) and isinstance(prices, BenchmarkGrid):
            raise ValueError(
                "unit demand's Nash and monopoly benchmarks are equilibria of the price grid, so the grid cannot be "
                "built from them; use prices.kind range or explicit"
            )
        return prices

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        n = self.market.n_firms
        if isinstance(self.agents, list) and len(self.agents) != n:
            raise ValueError(f"agents lists {len(self.agents)} specs but market.n_firms is {n}")
        if self.logging.deviating_firm >= n:
            raise ValueError(f"logging.deviating_firm is {self.logging.deviating_firm} but firms are 0..{n - 1}")
        timing = self.market.timing
        for i, agent in enumerate(self.agent_list()):
            timings = registry.kind_of(agent.type).timings
            if timing not in timings:
                advice = " (use klein_qlearning for alternating moves)" if timing == "sequential" else ""
                raise ValueError(f"agents[{i}]: {agent.type} needs market.timing = {' or '.join(timings)}{advice}")
        return self

    def agent_list(self) -> list:
        """One agent spec per firm."""
        if isinstance(self.agents, list):
            return list(self.agents)
        return [self.agents] * self.market.n_firms


__all__ = [
    "ActorCritic",
    "EpsilonGreedyBandit",
    "ExpectedSarsa",
    "FixedPrice",
    "GrimTrigger",
    "KleinQLearning",
    "MonopolyPlayer",
    "MyopicBestResponse",
    "NashPlayer",
    "PriceRef",
    "QInit",
    "QLearning",
    "Spec",
    "ThompsonBandit",
    "TitForTat",
    "UCB1Bandit",
    "UCBTunedBandit",
    "UniformQInit",
]


def _rebuild_agent_union() -> None:
    """A kind registered after this module was loaded joins the union a scenario's agents are validated against."""
    global AgentSpec, LEARNING_AGENT_TYPES
    union: Any = registry.spec_union()
    AgentSpec = union
    LEARNING_AGENT_TYPES = registry.learning_types()
    field: Any = Scenario.model_fields["agents"]
    field.annotation = Union[union, list[union]]  # noqa: UP007
    Scenario.model_rebuild(force=True)


registry.on_register(_rebuild_agent_union)
