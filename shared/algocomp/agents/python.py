"""The agents of the Python policy path, from their specs: algocomp's deep Q-network (type: dqn) and users'
classes named by import path (type: python). Their specs and registered kinds are in agents.python_specs; each
kind's `policy` builds its agent (this module builds users' classes: class_policy).

resolve_agents imports and checks every `type: python` class before anything runs: the module and class must
exist, the class must have the protocol's methods (engine.policy), and its constructor must accept `params`.
Each failure is a ScenarioError naming the field (agents.1.class, agents.1.params). Importing a module runs its
code: a shared service passes `allowed` (its allow-list), which is checked before any import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from algocomp.agents import registry
from algocomp.agents.python_specs import PythonAgent
from algocomp.engine.policy import PROTOCOL_METHODS, PolicyAgent, missing_methods
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import Scenario

# algocomp's own Python-path agent classes: what a shared deployment admits by default.
OWN_CLASSES_PREFIX = "algocomp.agents."


def _prefix(scenario: Scenario, firm: int) -> str:
    return f"agents.{firm}" if isinstance(scenario.agents, list) else "agents"


def class_allowed(path: str, allow_list: list[str] | tuple[str, ...]) -> bool:
    """Whether an allow-list admits a class path: an entry is an exact `module:Class`, or a prefix ending in `.`
    or `:` (`algocomp.agents.` admits every class of algocomp's agents package); `*` admits everything."""
    for entry in allow_list:
        if entry == "*" or path == entry or (entry.endswith((".", ":")) and path.startswith(entry)):
            return True
    return False


def load_class(path: str, field: str) -> type:
    """The class at `module.path:Name`, checked for the protocol's methods (ScenarioError naming `field`)."""
    module_name, _, qualname = path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure to import is the user's path at fault
        raise ScenarioError(field, f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from error
    for part in qualname.split("."):
        if not hasattr(target, part):
            raise ScenarioError(field, f"module {module_name!r} has no {qualname!r}")
        target = getattr(target, part)
    if not isinstance(target, type):
        raise ScenarioError(field, f"{path} is not a class")
    missing = missing_methods(target)
    if missing:
        raise ScenarioError(
            field,
            f"{path} lacks the protocol method{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(an agent needs {', '.join(PROTOCOL_METHODS)}; see docs/python-agents.md)",
        )
    return target


def _instantiate(cls: type, params: dict, field: str) -> PolicyAgent:
    try:
        return cls(**params)
    except (TypeError, ValueError) as error:
        raise ScenarioError(field, f"{cls.__name__}({', '.join(params)}) refused its params: {error}") from error


def resolve_agents(
    scenario: Scenario, *, allowed: Callable[[str], bool] | None = None
) -> dict[int, Callable[[], PolicyAgent]]:
    """Per firm with a Python-path agent, a function that makes a fresh agent for a session, from its kind's
    `policy` (agents.base.AgentKind); every class is imported, checked and constructed once here, so that errors
    show before anything runs (the population is checked first: check_population).

    `allowed(path)`, if given, must admit every `type: python` class before it is imported (else ScenarioError
    at agents.N.class)."""
    check_population(scenario)
    factories: dict[int, Callable[[], PolicyAgent]] = {}
    for i, spec in enumerate(scenario.agent_list()):
        kind = registry.kind_of(spec.type)
        if kind.compiled:
            continue
        prefix = _prefix(scenario, i)
        if kind.policy is None:
            raise ScenarioError(
                f"{prefix}.type", f"{spec.type} runs on the Python path, and its kind names no policy to build it"
            )
        factories[i] = kind.policy(spec, prefix, allowed)
    return factories


def class_policy(
    spec: PythonAgent, prefix: str, allowed: Callable[[str], bool] | None = None
) -> Callable[[], PolicyAgent]:
    """The `python` kind's policy: the class at spec.class_, admitted by `allowed` (checked before the import),
    imported, checked for the protocol's methods and constructed once with spec.params (ScenarioError naming
    prefix.class or prefix.params); returns a function making a fresh instance."""
    path = spec.class_
    if allowed is not None and not allowed(path):
        raise ScenarioError(
            f"{prefix}.class",
            f"{path} is not among the agent classes this service runs (its allow-list, setting "
            "python_agent_classes); run it from the CLI, or ask the operators to admit it",
        )
    cls = load_class(path, f"{prefix}.class")
    _instantiate(cls, dict(spec.params), f"{prefix}.params")
    return _class_factory(cls, dict(spec.params))


# Compiled kinds that can run beside Python-path agents (through engine.python_session's adapters).
ADAPTED_TYPES = (
    "qlearning",
    "fixed",
    "nash",
    "monopoly",
    "myopic",
    "epsilon_greedy",
    "ucb1",
    "ucb_tuned",
    "thompson",
)


def check_population(scenario: Scenario) -> None:
    """Refuse a population with Python-path agents that the Python path cannot run (ScenarioError naming the
    field): sequential timing, or a compiled kind without an adapter beside them."""
    specs = scenario.agent_list()
    if not registry.needs_python_path(specs):
        return
    if scenario.market.timing != "simultaneous":
        names = ", ".join(sorted(registry.python_path_types()))
        raise ScenarioError("market.timing", f"agents on the Python path ({names}) need simultaneous timing")
    for i, spec in enumerate(specs):
        if not registry.kind_of(spec.type).compiled:
            continue
        if spec.type == "qlearning" and spec.update != "asynchronous":
            raise ScenarioError(
                f"{_prefix(scenario, i)}.update", "only asynchronous qlearning can run beside agents on the Python path"
            )
        if spec.type not in ADAPTED_TYPES:
            raise ScenarioError(
                f"{_prefix(scenario, i)}.type",
                f"{spec.type} cannot run beside agents on the Python path yet ({', '.join(ADAPTED_TYPES)} can)",
            )


def _class_factory(cls: type, params: dict) -> Callable[[], PolicyAgent]:
    return lambda: cls(**params)


def agent_factories(scenario: Scenario) -> dict[int, Callable[[], PolicyAgent]]:
    """resolve_agents without an allow-list (the engine's default: the caller has applied its own)."""
    return resolve_agents(scenario)
