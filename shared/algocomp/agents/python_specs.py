"""The `python` agent kind: users' own classes named by import path (type: python), on the Python policy path
(engine.python_session, docs/python-agents.md). It is registered (agents.registry, after the compiled kinds) with
its spec and its `policy`, class_policy, which imports and checks the class and makes a fresh instance per
session; no compiled hooks. The registry (and so the scenario format) imports this module, so it imports neither
of them: the population checks live in agents.python.

Validating a spec never imports anything: a `class` is checked for its form here, and imported (and checked for
the protocol's methods and its parameters) only by agents.python.resolve_agents, which the CLI and the engine
call before a session runs, and which a shared service calls only for classes its allow-list admits.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from algocomp.agents.base import AgentKind
from algocomp.engine.policy import PROTOCOL_METHODS, PolicyAgent, missing_methods
from algocomp.spec import ScenarioError, Spec

# algocomp's own Python-path agent classes: what a shared deployment admits by default.
OWN_CLASSES_PREFIX = "algocomp.agents."

# module.path:Class (the class may be nested: module:Outer.Inner)
CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PythonAgent(Spec):
    """A user's agent: a class implementing the Python policy protocol (engine.policy), named by import path as
    `module.path:ClassName` and constructed with `params` as keyword arguments. The CLI runs any importable class;
    the API and workers only those their allow-list names (platform setting python_agent_classes)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True)

    type: Literal["python"] = "python"
    class_: str = Field(alias="class", description="import path of the agent class, module.path:ClassName")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the class's constructor")
    history: int = Field(1, ge=1, le=4, description="past periods of prices in each observation")

    @field_validator("class_")
    @classmethod
    def _class_path(cls, value: str) -> str:
        if not CLASS_PATH.match(value):
            raise ValueError(f"{value!r} is not an import path of the form module.path:ClassName")
        return value

    @property
    def history_depth(self) -> int:
        return self.history


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


def _class_factory(cls: type, params: dict) -> Callable[[], PolicyAgent]:
    return lambda: cls(**params)


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


def _class_policy(spec: PythonAgent, field: str, allowed: Callable[[str], bool] | None) -> Callable[[], Any]:
    return class_policy(spec, field, allowed)


KIND = AgentKind(name="python", specs=(PythonAgent,), policy=_class_policy, doc="a user's class by import path")
