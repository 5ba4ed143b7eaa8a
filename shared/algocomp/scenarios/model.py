"""The scenario format: one validated document says everything a simulation needs.

A scenario is a market (firms, costs, demand, timing), a price set, the agents, the regulation in force,
the horizon and convergence rule, what to log, and the seed and number of sessions. It is written as YAML or
JSON (see docs/scenario-format.md) and validated here with pydantic v2, so that a mistake is reported with the
dotted path of the field at fault before any simulation starts.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

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
    model_serializer,
    model_validator,
)

from algocomp.scenarios.python_agents import DQN, PythonAgent


class Spec(BaseModel):
    """Base for every section: unknown keys are errors, so a typo never silently keeps a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after scenarios were first stored: a dump leaves them out while they hold their default, so
    # every scenario written before they existed keeps its dump and its fingerprint (scenario_hash).
    later_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        data = handler(self)
        for name in self.later_fields:
            if name in data and getattr(self, name) == type(self).model_fields[name].default:
                del data[name]
        return data


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

# A price named by its role: the Nash or monopoly benchmark (the nearest grid price), or a number.
PriceRef = Literal["nash", "monopoly"] | NonNegativeFloat


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
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    beta: NonNegativeFloat = Field(0.0, description="exploration decay rate per period")
    schedule: Schedule = Field("exponential", description=SCHEDULE_DESCRIPTION)
    power: PositiveFloat = Field(1.0, description=POWER_DESCRIPTION)
    tie_break: TieBreak = Field("first", description=TIE_BREAK_DESCRIPTION)

    _power = field_validator("power")(_power_needs_polynomial)


class UCB1Bandit(Spec):
    """UCB1 (Auer et al. 2002) on profits scaled to [0, 1] by the largest profit on the grid."""

    type: Literal["ucb1"] = "ucb1"
    c: PositiveFloat = Field(math.sqrt(2.0), description="exploration constant")


class UCBTunedBandit(Spec):
    """UCB-tuned (Auer, Cesa-Bianchi & Fischer 2002, section 4), the bandit of Hansen, Misra & Pai (2021).

    Every allowed price is played once; then the price j with the largest
    mean_j + sqrt((ln n / n_j) min(1/4, V_j)), V_j = (mean of squared rewards_j - mean_j^2) + sqrt(2 ln n / n_j),
    where n_j counts price j's plays and n all plays. Rewards are profits divided by the largest profit on the grid
    (scale_rewards true, as ucb1) or the profits themselves (false, as Hansen et al.).
    """

    type: Literal["ucb_tuned"] = "ucb_tuned"
    scale_rewards: bool = Field(
        True, description="divide profits by the largest profit on the grid (true) or learn from raw profits (false)"
    )


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
QInit = Literal["calvano", "zero"] | FiniteFloat | UniformQInit


class QLearning(Spec):
    """Tabular Q-learning with memory k exactly as Calvano et al. (2020).

    State: the price vector of the last `memory` periods. Exploration: a uniformly random price with probability
    exp(-beta t) (or (1 + beta t)^(-power) with schedule polynomial). Q starts at the discounted profit against
    uniformly random rivals (q_init calvano), or a constant, or uniform random draws (q_init {uniform: [low, high]}).
    update asynchronous: only the price played is updated (Calvano); synchronous: every price is updated with
    its counterfactual profit against the rivals' actual prices (Asker, Fershtman & Pakes 2022).
    """

    type: Literal["qlearning"] = "qlearning"
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
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
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
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
    later_fields: ClassVar[tuple[str, ...]] = ("schedule", "power", "tie_break")
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
    FixedPrice
    | NashPlayer
    | MonopolyPlayer
    | MyopicBestResponse
    | EpsilonGreedyBandit
    | UCB1Bandit
    | UCBTunedBandit
    | ThompsonBandit
    | QLearning
    | KleinQLearning
    | ExpectedSarsa
    | ActorCritic
    | GrimTrigger
    | TitForTat
    | DQN
    | PythonAgent,
    Field(discriminator="type"),
]

LEARNING_AGENT_TYPES = frozenset(
    {
        "epsilon_greedy",
        "ucb1",
        "ucb_tuned",
        "thompson",
        "qlearning",
        "klein_qlearning",
        "expected_sarsa",
        "actor_critic",
    }
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
