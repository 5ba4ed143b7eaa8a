"""What an agent kind is made of, and the spec pieces several kinds share.

An agent kind (AgentKind) is everything the engine needs to know about one kind of agent:
- its spec classes (pydantic, the `type:` values a scenario may name), with their docs and validation;
- its named parameters: a NamedTuple (`params`) whose int fields become columns of the engine's int parameter
  matrix and whose float fields columns of the float one, one column per field (agents.registry allocates them);
- `pack`, which turns one firm's spec into those parameters and the firm's table layout (PackedFirm);
- optionally its compiled hooks, numba njit functions (inline="always") the kernel's generated dispatch calls:
    choose(...) -> (price index, rs)        pick firm i's price this period
    learn(...) -> (rs, changed)             learn from the period just played (simultaneous timing)
    learn_sequential(...) -> (rs, changed)  learn when it moves again (sequential timing)
    observe(...) -> None                    see the prices just played (rule-based agents)
  A hook names the values it needs as its parameters, from HOOK_NAMES below, and the loop passes its variables
  of those names (one array per name, so nothing unused travels, and numba compiles it to the same code as a loop
  written by hand). `changed` says whether a greedy price changed (it restarts the convergence count); rs is the
  session's random stream state, which a hook that draws must return advanced. A kind without choose has no
  compiled path (a Python-path agent): its `policy` builds an engine.policy agent for the Python session loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field, FiniteFloat, NonNegativeFloat, ValidationInfo, field_validator

from algocomp.spec import Spec

# --------------------------------------------------------------------------------------------- shared spec pieces

# A price named by its role: the Nash or monopoly benchmark (the nearest grid price), or a number.
PriceRef = Literal["nash", "monopoly"] | NonNegativeFloat

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


def power_needs_polynomial(power: float, info: ValidationInfo) -> float:
    if info.data.get("schedule", "exponential") != "polynomial" and power != 1.0:
        raise ValueError("power sets the polynomial schedule's exponent; set schedule: polynomial to use it")
    return power


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


# --------------------------------------------------------------------------------------------- packing


@dataclass(frozen=True)
class PackContext:
    """What packing one firm may look at: the market as compiled so far."""

    firm: int
    n_firms: int
    n_prices: int
    n_profiles: int
    grid_row: np.ndarray  # (m,) this firm's prices
    nash: float  # this firm's Nash and monopoly benchmark prices
    monopoly: float
    own_max_profit: float  # the largest profit this firm can earn on the grid
    hide_rival_prices: bool

    def price_index(self, ref) -> int:
        """The grid index of a PriceRef: the price nearest nash, monopoly or the number."""
        target = self.nash if ref == "nash" else self.monopoly if ref == "monopoly" else float(ref)
        return int(np.argmin(np.abs(self.grid_row - target)))

    def reward_scale(self) -> float:
        """Profits divided by this lie in [0, 1]: the largest profit on the grid (1 if none is positive)."""
        return self.own_max_profit if self.own_max_profit > 0 else 1.0

    def history_states(self, memory: int) -> tuple[int, int]:
        """(base, states) of a state made of the last `memory` price profiles (own prices only when the rivals'
        are hidden)."""
        base = self.n_prices if self.hide_rival_prices else self.n_profiles
        return base, base**memory


@dataclass(frozen=True)
class PackedFirm:
    """One firm's packed form: its named parameters and, for learners, its table layout and exploration."""

    params: tuple  # an instance of the kind's params NamedTuple
    states: int = 1  # rows of its table (0 table rows is never needed: stateless learners have one)
    memory: int = 0
    base: int = 1
    rivals_state: bool = False  # the state is the rivals' current prices (Klein)
    delta: float = 0.0
    beta: float = 0.0
    power: float = 0.0  # > 0: polynomial schedule
    explore0: float = 0.0  # exploration rate (or temperature) at period 0
    schedule_start: float = 1.0  # eps_0 of the polynomial schedule
    tie_random: bool = False
    q_uniform: tuple[float, float] = (0.0, 0.0)
    q_init: Any = None  # "calvano", a number, or None (zeros)


def schedule_fields(agent) -> dict[str, Any]:
    """PackedFirm's exploration fields of a spec with beta, schedule, power and tie_break."""
    return {
        "beta": agent.beta,
        "power": agent.power if getattr(agent, "schedule", "exponential") == "polynomial" else 0.0,
        "tie_random": getattr(agent, "tie_break", "first") == "random",
    }


def q_init_fields(agent) -> dict[str, Any]:
    """PackedFirm's initial-table fields of a spec with q_init."""
    q_init = agent.q_init
    if isinstance(q_init, UniformQInit):
        return {"q_uniform": tuple(q_init.uniform), "q_init": None}
    return {"q_init": q_init}


# --------------------------------------------------------------------------------------------- hooks

# What a compiled hook may ask for, by parameter name.
HOOK_COMMON = (
    # the firm, its params record (its kind's NamedTuple, or 0 when it has no fields), the stream, prices, firms
    "i",
    "p",
    "rs",
    "m",
    "n",
    # the market (engine.primitives.Market): tables over joint profiles j, prices, allowed prices, parameters
    "profit",
    "quantity",
    "cs_table",
    "expected_fine",
    "grid",
    "costs",
    "powers",
    "allowed",
    "n_allowed",
    "ipar",
    "fpar",
    "noise_kind",
    "noise_sd",
    "audit_fine",
    "audit_thr",
    # the session (engine.primitives.Tables): tables, counts, greedy caches, exploration, last prices and states
    "Q",
    "N",
    "S2",
    "V",
    "G",
    "eps",
    "act",
    "state",
    "flags",
    "scratch",
    "seq_acc",
    "seq_disc",
    "prev_state",
    "prev_act",
)
HOOK_NAMES = {
    # learn: False in frozen greedy play; u: the firm's uniform draw for explore-or-not this period
    "choose": (*HOOK_COMMON, "learn", "u"),
    # a: the price index played; r: the profit realised; j: the joint profile; s, s2: the state before and after;
    # shock, audited: the period's demand shocks and audit (act still holds the previous period's prices)
    "learn": (*HOOK_COMMON, "a", "r", "j", "s", "s2", "shock", "audited"),
    # the firm moves again: prev_state, prev_act, seq_acc (discounted profits since) and seq_disc tell its last move
    "learn_sequential": HOOK_COMMON,
    # new_act: the prices just played
    "observe": (*HOOK_COMMON, "new_act"),
}


# --------------------------------------------------------------------------------------------- a kind


class NoParams(NamedTuple):
    """The params of a kind that has none."""


@dataclass
class AgentKind:
    """One kind of agent, as registered with agents.registry.register (see the module docstring)."""

    name: str  # the registry's name for it (a module-sized unit: "fixed" covers fixed, nash and monopoly)
    specs: tuple[type[Spec], ...]  # its spec classes; each has a Literal `type` field
    params: Any = None  # a NamedTuple class of int and float fields (None: no parameters)
    pack: Callable[[Any, PackContext], PackedFirm] | None = None  # needed by compiled kinds
    choose: Callable | None = None
    learn: Callable | None = None
    learn_sequential: Callable | None = None
    observe: Callable | None = None
    learning: bool = True  # whether it learns (False: a fixed rule)
    timings: tuple[str, ...] = ("simultaneous", "sequential")  # market timings it can play
    greedy_by_state: bool = False  # once frozen, its strategy is its greedy price in each state (deviation checks)
    values_from_table: bool = True  # each state's value V starts as its table row's maximum (else 0: a critic)
    square_sums: bool = False  # needs per-price sums of squared rewards (Tables.S2)
    doc: str = ""
    # A Python-path kind (no compiled hooks): policy(spec, field, allowed) checks the firm's spec (a ScenarioError
    # naming `field`, agents.N, when it cannot run; `allowed` is a service's allow-list of import paths, or None)
    # and returns a function that makes a fresh engine.policy agent for each session (agents.dqn and
    # agents.python_specs each have one). A kind with neither hooks nor policy is accepted by the scenario format
    # and refused by the engine.
    policy: Callable[[Any, str, Callable[[str], bool] | None], Callable[[], Any]] | None = None
    # Filled in by the registry: its code (the I_KIND value) and the columns of its params' fields.
    code: int = field(default=-1, init=False)
    columns: dict[str, tuple[str, int]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = NoParams

    @property
    def compiled(self) -> bool:
        return self.choose is not None

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(spec.model_fields["type"].default for spec in self.specs)
