"""The scenario format: one validated document says everything a simulation needs.

A scenario is a market (firms, costs, demand, timing), a price set, the agents, the regulation in force,
the horizon and convergence rule, what to log, and the seed and number of sessions. It is written as YAML or
JSON (see docs/scenario-format.md) and validated here with pydantic v2, so that a mistake is reported with the
dotted path of the field at fault before any simulation starts.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)


class Spec(BaseModel):
    """Base for every section: unknown keys are errors, so a typo never silently keeps a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


DemandSpec = Annotated[Union[LogitDemand, LinearDemand, BertrandDemand], Field(discriminator="model")]


class DemandNoise(Spec):
    """Per-period demand shocks, drawn independently for each firm.

    additive: q_i + sd * z (floored at 0), the form of Hansen et al. (2021);
    multiplicative: q_i * exp(sd * z - sd^2 / 2), mean-preserving.
    """

    kind: Literal["none", "additive", "multiplicative"] = "none"
    sd: NonNegativeFloat = 0.0


class MarketSpec(Spec):
    n_firms: int = Field(2, ge=2, le=8, description="number of competing firms")
    demand: DemandSpec = Field(default_factory=LogitDemand)
    costs: NonNegativeFloat | list[NonNegativeFloat] = Field(1.0, description="marginal cost; one value or one per firm")
    timing: Literal["simultaneous", "sequential"] = Field(
        "simultaneous",
        description="simultaneous: every firm sets its price each period; sequential: firms move in turn "
        "(firm t mod n in period t) and the others keep their price (Maskin & Tirole, Klein 2021)",
    )
    noise: DemandNoise = Field(default_factory=DemandNoise)

    @model_validator(mode="after")
    def _per_firm_lengths(self) -> "MarketSpec":
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
    def _ordered(self) -> "RangeGrid":
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        return self


class ExplicitPrices(Spec):
    kind: Literal["explicit"] = "explicit"
    values: list[NonNegativeFloat] = Field(min_length=2, max_length=255, description="strictly increasing prices")

    @model_validator(mode="after")
    def _increasing(self) -> "ExplicitPrices":
        if any(b <= a for a, b in zip(self.values, self.values[1:])):
            raise ValueError("values must be strictly increasing (and so distinct)")
        return self


PriceSpec = Annotated[Union[BenchmarkGrid, RangeGrid, ExplicitPrices], Field(discriminator="kind")]

# A price named by its role: the Nash or monopoly benchmark (the nearest grid price), or a number.
PriceRef = Union[Literal["nash", "monopoly"], NonNegativeFloat]


# --------------------------------------------------------------------------------------------- agents


class FixedPrice(Spec):
    type: Literal["fixed"] = "fixed"
    price: PriceRef = Field(description="the price played every period (the nearest grid price), or nash/monopoly")


class NashPlayer(Spec):
    """Always plays the grid price nearest the static Bertrand-Nash price."""

    type: Literal["nash"] = "nash"


class MonopolyPlayer(Spec):
    """Always plays the grid price nearest the joint-profit-maximising price."""

    type: Literal["monopoly"] = "monopoly"


class MyopicBestResponse(Spec):
    """Plays the grid price that maximises this period's profit against the rivals' last prices."""

    type: Literal["myopic"] = "myopic"


# Exploration schedules: eps_t = eps_0 * decay(t), with decay(t) = exp(-beta t) (exponential, Calvano et al. 2020) or
# (1 + beta t)^(-power) (polynomial). Power 1 is the harmonic schedule eps_0 / (1 + beta t), the "GLIE" decay of
# Singh, Jaakkola, Littman & Szepesvari (2000) and the eps_n-greedy rule of Auer, Cesa-Bianchi & Fischer (2002);
# beta is the rate in both, so a scenario that only sets beta keeps its exponential meaning.
Schedule = Literal["exponential", "polynomial"]
SCHEDULE_DESCRIPTION = (
    "exploration schedule: exponential eps_t = eps_0 exp(-beta t); polynomial eps_t = eps_0 (1 + beta t)^(-power)"
)
POWER_DESCRIPTION = "the polynomial schedule's exponent (schedule: polynomial only)"
TieBreak = Literal["first", "random"]
TIE_BREAK_DESCRIPTION = (
    "prices sharing the largest value: first, the lowest such price; random, one drawn uniformly among them from "
    "the session's stream whenever the greedy price is re-determined"
)


def _power_needs_polynomial(power: float, info: ValidationInfo) -> float:
    if info.data.get("schedule", "exponential") != "polynomial" and power != 1.0:
        raise ValueError("power sets the polynomial schedule's exponent; set schedule: polynomial to use it")
    return power


class EpsilonGreedyBandit(Spec):
    """Ignores the rivals: sample-average profit per price; explores with probability epsilon * exp(-beta t)
    (or epsilon * (1 + beta t)^(-power) with schedule polynomial)."""

    type: Literal["epsilon_greedy"] = "epsilon_greedy"
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    beta: NonNegativeFloat = Field(0.0, description="exploration decay rate per period")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(_power_needs_polynomial)


class UCB1Bandit(Spec):
    """UCB1 (Auer et al. 2002) on profits scaled to [0, 1] by the largest profit on the grid (Hansen et al. 2021)."""

    type: Literal["ucb1"] = "ucb1"
    c: PositiveFloat = Field(math.sqrt(2.0), description="exploration constant")


class ThompsonBandit(Spec):
    """Gaussian Thompson sampling on profits scaled by the largest profit on the grid."""

    type: Literal["thompson"] = "thompson"
    prior_mean: float = 0.5
    prior_sd: PositiveFloat = 1.0
    noise_sd: PositiveFloat = Field(0.1, description="assumed sd of a scaled profit observation")


class UniformQInit(Spec):
    """Q drawn uniformly in [low, high), independently for every state and price, afresh in every session from the
    session's own seed (Calvano et al.'s online appendix, "Random (0, 10)")."""

    uniform: tuple[float, float] = Field(description="[low, high]: finite bounds with low < high")

    @field_validator("uniform")
    @classmethod
    def _bounds(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("the bounds must be finite numbers")
        if not low < high:
            raise ValueError("low (the first bound) must be below high (the second)")
        return bounds


# A constant initial value must be finite: a NaN or infinite table has no greedy price.
QInit = Union[Literal["calvano", "zero"], FiniteFloat, UniformQInit]


class QLearning(Spec):
    """Tabular Q-learning with memory k exactly as Calvano et al. (2020).

    State: the price vector of the last `memory` periods. Exploration: a uniformly random price with probability
    exp(-beta t) (or (1 + beta t)^(-power) with schedule polynomial). Q starts at the discounted profit against
    uniformly random rivals (q_init calvano), or a constant, or uniform random draws (q_init {uniform: [low, high]}).
    update asynchronous: only the price played is updated (Calvano); synchronous: every price is updated with
    its counterfactual profit against the rivals' actual prices (Asker, Fershtman & Pakes 2022).
    """

    type: Literal["qlearning"] = "qlearning"
    alpha: float = Field(0.15, gt=0.0, le=1.0, description="learning rate")
    delta: float = Field(0.95, ge=0.0, lt=1.0, description="discount factor")
    beta: NonNegativeFloat = Field(4e-6, description="exploration decay: eps_t = exp(-beta t)")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    memory: int = Field(1, ge=0, le=4, description="periods of past prices in the state (0: stateless)")
    update: Literal["asynchronous", "synchronous"] = "asynchronous"
    q_init: QInit = "calvano"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(_power_needs_polynomial)


class KleinQLearning(Spec):
    """Klein (2021) Q-learning for alternating moves: the state is the rival's current price, and the update
    Q <- (1-alpha) Q + alpha [pi_t + delta pi_{t+1} + delta^2 max Q] accounts for the rival's response."""

    type: Literal["klein_qlearning"] = "klein_qlearning"
    alpha: float = Field(0.3, gt=0.0, le=1.0)
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    beta: NonNegativeFloat = Field(1.3816e-5, description="eps_t = exp(-beta t); the default leaves 0.1% at t = 500k")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    q_init: QInit = "zero"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(_power_needs_polynomial)


class ExpectedSarsa(Spec):
    """Expected SARSA: the target averages Q over the epsilon-greedy policy instead of taking its max."""

    type: Literal["expected_sarsa"] = "expected_sarsa"
    alpha: float = Field(0.15, gt=0.0, le=1.0)
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    beta: NonNegativeFloat = 4e-6
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    memory: int = Field(1, ge=0, le=4)
    q_init: QInit = "calvano"
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(_power_needs_polynomial)


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


class GrimTrigger(Spec):
    """Cooperates until any rival prices below the cooperative price, then punishes forever."""

    type: Literal["grim_trigger"] = "grim_trigger"
    cooperate: PriceRef = "monopoly"
    punish: PriceRef = "nash"


class TitForTat(Spec):
    """Matches the lowest rival price of the last period; opens with `initial`."""

    type: Literal["tit_for_tat"] = "tit_for_tat"
    initial: PriceRef = "monopoly"


AgentSpec = Annotated[
    Union[
        FixedPrice,
        NashPlayer,
        MonopolyPlayer,
        MyopicBestResponse,
        EpsilonGreedyBandit,
        UCB1Bandit,
        ThompsonBandit,
        QLearning,
        KleinQLearning,
        ExpectedSarsa,
        ActorCritic,
        GrimTrigger,
        TitForTat,
    ],
    Field(discriminator="type"),
]

LEARNING_AGENT_TYPES = frozenset(
    {"epsilon_greedy", "ucb1", "thompson", "qlearning", "klein_qlearning", "expected_sarsa", "actor_critic"}
)


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
    cycle_search: int = Field(
        1_000, ge=10, description="periods of frozen greedy play searched for the limit cycle"
    )


class Scenario(Spec):
    """A complete experiment: market, prices, agents, regulation, horizon, logging, seed and sessions."""

    name: str = Field("custom", min_length=1, max_length=200)
    description: str = ""
    market: MarketSpec = Field(default_factory=MarketSpec)
    prices: PriceSpec = Field(default_factory=BenchmarkGrid)
    agents: AgentSpec | list[AgentSpec] = Field(
        default_factory=QLearning, description="one spec for every firm, or a list with one per firm"
    )
    regulation: Regulation = Field(default_factory=Regulation)
    horizon: Horizon = Field(default_factory=Horizon)
    logging: LoggingSpec = Field(default_factory=LoggingSpec)
    seed: int = Field(0, ge=0, lt=2**63)
    sessions: PositiveInt = 1000

    @model_validator(mode="after")
    def _consistent(self) -> "Scenario":
        n = self.market.n_firms
        if isinstance(self.agents, list) and len(self.agents) != n:
            raise ValueError(f"agents lists {len(self.agents)} specs but market.n_firms is {n}")
        if self.logging.deviating_firm >= n:
            raise ValueError(f"logging.deviating_firm is {self.logging.deviating_firm} but firms are 0..{n - 1}")
        timing = self.market.timing
        for i, agent in enumerate(self.agent_list()):
            if agent.type == "klein_qlearning" and timing != "sequential":
                raise ValueError(f"agents[{i}]: klein_qlearning needs market.timing = sequential")
            if agent.type in ("qlearning", "expected_sarsa", "actor_critic") and timing != "simultaneous":
                raise ValueError(
                    f"agents[{i}]: {agent.type} needs market.timing = simultaneous (use klein_qlearning for "
                    "alternating moves)"
                )
        return self

    def agent_list(self) -> list:
        """One agent spec per firm."""
        if isinstance(self.agents, list):
            return list(self.agents)
        return [self.agents] * self.market.n_firms
