"""The agents of a scenario's Python-path firms, from their specs, and the populations the Python path can hold.

Every kind registered without compiled hooks (agents.registry: dqn in agents.dqn, python in agents.python_specs,
and any registered elsewhere) names a `policy` that checks a firm's spec and makes its agent; resolve_agents calls
it for every such firm before anything runs. The python kind's policy imports and checks the class: the module
and class must exist, the class must have the protocol's methods (engine.policy), and its constructor must accept
`params`.
Each failure is a ScenarioError naming the field (agents.1.class, agents.1.params). Importing a module runs its
code: a shared service passes `allowed` (its allow-list), which is checked before any import.
"""

from __future__ import annotations

from collections.abc import Callable

from algocomp.agents import registry
from algocomp.agents.python_specs import OWN_CLASSES_PREFIX, class_allowed, class_policy, load_class
from algocomp.engine.policy import PolicyAgent
from algocomp.scenarios import ScenarioError
from algocomp.scenarios.model import Scenario

__all__ = [
    "ADAPTED_TYPES",
    "OWN_CLASSES_PREFIX",
    "agent_factories",
    "check_population",
    "class_allowed",
    "class_policy",
    "load_class",
    "resolve_agents",
]


def _prefix(scenario: Scenario, firm: int) -> str:
    return f"agents.{firm}" if isinstance(scenario.agents, list) else "agents"


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


def agent_factories(scenario: Scenario) -> dict[int, Callable[[], PolicyAgent]]:
    """resolve_agents without an allow-list (the engine's default: the caller has applied its own)."""
    return resolve_agents(scenario)
