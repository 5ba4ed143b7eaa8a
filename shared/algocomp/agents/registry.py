"""The agent registry: every kind of agent the engine knows, and what is derived from them.

    from algocomp.agents.registry import register
    register(KIND)          # KIND: an agents.base.AgentKind, usually defined in the kind's own module

From the registered kinds come the scenario format's agent union (scenarios.model.AgentSpec, rebuilt when a kind
is registered), the parameter columns and packing (agents.catalog) and the general loop's dispatch
(engine.dispatch generates it, one branch per compiled kind). A kind needs one module; docs/agents.md shows one.

Kinds outside this package register themselves when their module is imported; to have a command (`algocomp
simulate`, a worker) import them first, name their modules in the environment variable ALGOCOMP_AGENTS
(comma-separated): load_agent_modules imports them, and algocomp.scenarios calls it once it has loaded.

A kind registered without compiled hooks (choose is None) is a Python-path agent: the scenario format accepts
it, and a session with one runs on the Python session loop (engine.python_session), which builds its agent with
the kind's `policy`; without a policy the engine refuses it with a message naming the agent. The built-in
Python-path kinds, dqn (agents.dqn) and python (agents.python_specs), register after the compiled ones:

    register(AgentKind(name="dqn", specs=(DQN,), policy=make_dqn))
"""

from __future__ import annotations

import importlib
import inspect
import os
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field

from algocomp.agents import (
    actor_critic,
    dqn,
    epsilon_greedy,
    expected_sarsa,
    fixed,
    grim_trigger,
    klein,
    myopic,
    python_specs,
    qlearning,
    thompson,
    tit_for_tat,
    ucb1,
    ucb_tuned,
)
from algocomp.agents.base import HOOK_NAMES, AgentKind
from algocomp.agents.layout import N_COMMON_FLOAT, N_COMMON_INT

_KINDS: list[AgentKind] = []
_BY_TYPE: dict[str, AgentKind] = {}
_WIDTH = {"int": N_COMMON_INT, "float": N_COMMON_FLOAT}
_LISTENERS: list[Callable[[], None]] = []


def _column_types(params: Any) -> dict[str, str]:
    """{field: "int" | "float"} of a params NamedTuple, from its annotations."""
    hints = typing.get_type_hints(params)
    kinds = {}
    for name in params._fields:
        hint = hints.get(name)
        if hint is int:
            kinds[name] = "int"
        elif hint is float:
            kinds[name] = "float"
        else:
            raise TypeError(f"{params.__qualname__}.{name}: a parameter is an int or a float, not {hint!r}")
    return kinds


def register(kind: AgentKind) -> AgentKind:
    """Add a kind: its spec types join the scenario format, its parameters get their columns, and (if it has
    compiled hooks) the general loop gets a branch for it. Registering the same kind again does nothing; another
    kind claiming a registered name or `type` is an error."""
    if any(k is kind for k in _KINDS):
        return kind
    if any(k.name == kind.name for k in _KINDS):
        raise ValueError(f"an agent kind named {kind.name!r} is already registered")
    if not kind.specs:
        raise ValueError(f"agent kind {kind.name!r} has no spec class")
    for spec in kind.specs:
        type_field = spec.model_fields.get("type")
        if type_field is None or not isinstance(type_field.default, str):
            raise ValueError(f"{spec.__qualname__} needs a `type` field with a Literal default (its type name)")
        if type_field.default in _BY_TYPE:
            raise ValueError(f"agent type {type_field.default!r} is already registered")
    hooks = {"choose": kind.choose, "learn": kind.learn, "learn_sequential": kind.learn_sequential}
    hooks["observe"] = kind.observe
    if kind.choose is None and any(h is not None for h in hooks.values()):
        raise ValueError(f"agent kind {kind.name!r}: compiled hooks need a compiled choose")
    if kind.choose is not None and kind.policy is not None:
        raise ValueError(
            f"agent kind {kind.name!r}: a compiled kind runs through its hooks; policy is for Python-path kinds"
        )
    if kind.choose is not None and kind.pack is None:
        raise ValueError(f"agent kind {kind.name!r}: a compiled kind needs pack (its firm's parameters and table)")
    for hook_name, hook in hooks.items():
        if hook is None:
            continue
        if not hasattr(hook, "py_func"):
            raise TypeError(f"agent kind {kind.name!r}: {hook_name} must be a numba njit function")
        parameters = inspect.signature(getattr(hook, "py_func")).parameters  # noqa: B009 (Callable has no py_func)
        unknown = [name for name in parameters if name not in HOOK_NAMES[hook_name]]
        if unknown:
            raise ValueError(
                f"agent kind {kind.name!r}: {hook_name} asks for {', '.join(unknown)}, which the loop does not have "
                "(agents.base.HOOK_NAMES lists what it passes)"
            )
    columns = {}
    for name, column_type in _column_types(kind.params).items():
        columns[name] = (column_type, _WIDTH[column_type])
        _WIDTH[column_type] += 1
    kind.columns = columns
    kind.code = len(_KINDS)
    _KINDS.append(kind)
    for type_name in kind.types:
        _BY_TYPE[type_name] = kind
    for listener in _LISTENERS:
        listener()
    return kind


def kinds() -> tuple[AgentKind, ...]:
    """Every registered kind, in code order."""
    return tuple(_KINDS)


def kind_of(type_name: str) -> AgentKind:
    """The kind a spec's `type` belongs to."""
    return _BY_TYPE[type_name]


def kind_by_code(code: int) -> AgentKind:
    return _KINDS[code]


def widths() -> tuple[int, int]:
    """Columns of the int and float parameter matrices: the common ones, then every kind's named ones."""
    return _WIDTH["int"], _WIDTH["float"]


def spec_classes() -> tuple[type, ...]:
    return tuple(spec for kind in _KINDS for spec in kind.specs)


def spec_union():
    """The scenario format's agent spec: a union of every registered spec class, told apart by `type`."""
    return Annotated[Union[spec_classes()], Field(discriminator="type")]  # noqa: UP007


def learning_types() -> frozenset[str]:
    """The `type` names of agents that learn."""
    return frozenset(t for kind in _KINDS if kind.learning for t in kind.types)


def python_path_types() -> frozenset[str]:
    """The `type` names of Python-path agents (kinds without compiled hooks)."""
    return frozenset(t for kind in _KINDS if not kind.compiled for t in kind.types)


def needs_python_path(specs) -> bool:
    """Whether a population (agent specs) has a Python-path agent, so its sessions run on engine.python_session."""
    return any(not kind_of(spec.type).compiled for spec in specs)


def on_register(listener: Callable[[], None]) -> None:
    """Call listener() after every registration (the scenario model rebuilds its agent union)."""
    _LISTENERS.append(listener)


# The built-in kinds. Their order fixes their codes; the general loop tests them in this order, the common ones
# first.
for _module in (
    qlearning,
    expected_sarsa,
    klein,
    fixed,
    myopic,
    grim_trigger,
    tit_for_tat,
    epsilon_greedy,
    ucb1,
    ucb_tuned,
    thompson,
    actor_critic,
):
    register(_module.KIND)
# The Python-path kinds after every compiled one, so the compiled kinds' codes (and the generated loop) stay as
# they are.
for _module in (dqn, python_specs):
    register(_module.KIND)

# Kinds from elsewhere, named in the environment (their modules call register when imported).
AGENTS_VARIABLE = "ALGOCOMP_AGENTS"


def load_agent_modules() -> None:
    """Import the modules named in ALGOCOMP_AGENTS (once each; algocomp.scenarios calls this when it loads, so
    every command and worker that reads a scenario knows their kinds)."""
    for name in filter(None, (part.strip() for part in os.environ.get(AGENTS_VARIABLE, "").split(","))):
        importlib.import_module(name)
