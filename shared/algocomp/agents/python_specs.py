"""The agent kinds of the Python policy path (engine.python_session): the deep Q-network (type: dqn) and users' own
classes named by import path (type: python). Each is registered (agents.registry, after the compiled kinds) with
its spec alone and its `policy`, which builds its agent for a session; no compiled hooks, so a scenario with one
runs on the Python path (docs/python-agents.md).

The agents themselves live in agents.dqn and agents.python, imported only when a session is built: this module
is imported by the registry, which the scenario format imports, so it depends on the spec base and pydantic only.

Validating a spec never imports anything: a `class` is checked for its form here, and imported (and checked for
the protocol's methods and its parameters) only by agents.python.resolve_agents, which the CLI and the engine
call before a session runs, and which a shared service calls only for classes its allow-list admits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from algocomp.agents.base import AgentKind
from algocomp.spec import Spec

# module.path:Class (the class may be nested: module:Outer.Inner)
CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class DQN(Spec):
    """A deep Q-network (Mnih et al. 2015) over the recent prices: the input is every firm's price of the last
    `lags` periods, scaled to [0, 1] over the grid; two hidden layers of `hidden` ReLU units; one output per price.
    It learns from minibatches drawn from a replay buffer of its last `buffer` transitions against a target network
    copied every `target_every` periods (Adam, Huber loss on profits divided by the largest profit on the grid), and
    explores with probability epsilon_end + (1 - epsilon_end) exp(-beta t). Weights, exploration and minibatches are
    drawn from the session's stream, so a session is reproducible from its seed. Runs on the Python path
    (docs/python-agents.md), far slower than the compiled agents."""

    type: Literal["dqn"] = "dqn"
    lags: int = Field(1, ge=1, le=4, description="past periods of all firms' prices in the network's input")
    hidden: int = Field(32, ge=2, le=512, description="units in each of the two hidden layers")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam's step size")
    delta: float = Field(0.95, ge=0.0, lt=1.0, description="discount factor")
    beta: float = Field(5e-5, ge=0.0, description="exploration decay per period")
    epsilon_end: float = Field(0.01, ge=0.0, le=1.0, description="the exploration rate's floor")
    buffer: int = Field(20_000, ge=32, le=1_000_000, description="transitions kept for replay")
    batch: int = Field(32, ge=1, le=1024, description="transitions per gradient step")
    warmup: int = Field(500, ge=1, description="transitions collected before the first gradient step")
    train_every: int = Field(4, ge=1, description="periods between gradient steps")
    target_every: int = Field(1_000, ge=1, description="periods between copies to the target network")

    @property
    def history_depth(self) -> int:
        return self.lags


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


def _dqn_policy(spec: DQN, field: str, allowed: Callable[[str], bool] | None) -> Callable[[], Any]:
    """A fresh deep Q-network per session (agents.dqn)."""
    from algocomp.agents.dqn import DQNAgent

    return lambda: DQNAgent(spec)


def _class_policy(spec: PythonAgent, field: str, allowed: Callable[[str], bool] | None) -> Callable[[], Any]:
    """The user's class, imported and checked (agents.python.class_policy)."""
    from algocomp.agents.python import class_policy

    return class_policy(spec, field, allowed)


DQN_KIND = AgentKind(name="dqn", specs=(DQN,), policy=_dqn_policy, doc="a deep Q-network (numpy)")
PYTHON_KIND = AgentKind(name="python", specs=(PythonAgent,), policy=_class_policy, doc="a user's class by import path")
KINDS = (DQN_KIND, PYTHON_KIND)
