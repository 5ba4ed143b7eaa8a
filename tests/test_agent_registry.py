"""Issue 12, the agent registry: a new tabular agent is one module, registered from here alone and run by the engine
(run_experiment, worker processes and the command-line tool), and the registry's derived pieces (scenario union,
parameter columns, generated dispatch) follow.

The agent defined below is Q-learning with a visit-count learning rate: each (state, price) cell moves towards its
target by max(1 / visits, min_alpha), so with min_alpha 0 a cell holds the plain average of its targets.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pytest
from numba import njit
from pydantic import Field

from algocomp.agents import registry
from algocomp.agents.base import AgentKind, PackContext, PackedFirm
from algocomp.agents.catalog import I_KIND, I_QOFF, I_SOFF, kind_param
from algocomp.agents.layout import F_DELTA
from algocomp.agents.tabular import greedy_or_explore, refresh_greedy
from algocomp.engine import dispatch, specialised
from algocomp.engine import kernel as K
from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.kernel import best_response
from algocomp.engine.primitives import Market, Tables
from algocomp.engine.session import advance, new_state
from algocomp.scenarios import ScenarioError, apply_overrides, load_scenario
from algocomp.scenarios.model import Scenario
from algocomp.spec import Spec

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------------------------- the new agent


class CountingQLearning(Spec):
    """Q-learning whose learning rate in a cell is max(1 / visits of the cell, min_alpha)."""

    type: Literal["counting_qlearning"] = "counting_qlearning"
    min_alpha: float = Field(0.0, ge=0.0, le=1.0, description="the learning rate never goes below it")
    delta: float = Field(0.95, ge=0.0, lt=1.0)
    beta: float = Field(1e-5, ge=0.0)
    memory: int = Field(1, ge=0, le=2)


class Params(NamedTuple):
    min_alpha: float


def pack(agent, ctx: PackContext) -> PackedFirm:
    base, states = ctx.history_states(agent.memory)
    return PackedFirm(
        params=Params(min_alpha=agent.min_alpha),
        states=states,
        memory=agent.memory,
        base=base,
        delta=agent.delta,
        beta=agent.beta,
        explore0=1.0,
    )


@njit(inline="always")
def choose(i, learn, u, rs, ipar, state, G, allowed, eps, n_allowed):
    return greedy_or_explore(i, learn, u, rs, ipar[i, I_SOFF] + state[i], G, allowed, eps, n_allowed)


@njit(inline="always")
def learn(i, p, a, r, s, s2, rs, m, ipar, fpar, N, Q, V, G, allowed, n_allowed):
    base = ipar[i, I_QOFF] + s * m
    so = ipar[i, I_SOFF]
    cell = base + a
    N[cell] += 1.0
    step = max(1.0 / N[cell], p.min_alpha)
    target = r + fpar[i, F_DELTA] * V[so + s2]
    Q[cell] += step * (target - Q[cell])
    return refresh_greedy(i, base, so + s, a, Q[cell], rs, G, Q, V, allowed, ipar, n_allowed)


KIND = registry.register(
    AgentKind(
        name="counting_qlearning",
        specs=(CountingQLearning,),
        params=Params,
        pack=pack,
        choose=choose,
        learn=learn,
        timings=("simultaneous",),
        greedy_by_state=True,
    )
)

# --------------------------------------------------------------------------------------------- tests


def baseline(*overrides: str) -> Scenario:
    return apply_overrides(load_scenario("calvano-2020-baseline"), list(overrides))


SHORT = ("sessions=3", "seed=4", "horizon.max_periods=60000", "logging.interval=2000", "logging.cycle_search=100")


def test_the_scenario_format_takes_the_new_type_and_its_validation():
    scenario = baseline("agents={type: counting_qlearning, min_alpha: 0.1}")
    assert isinstance(scenario.agents, CountingQLearning) and scenario.agents.min_alpha == 0.1
    with pytest.raises(ScenarioError) as too_large:
        baseline("agents={type: counting_qlearning, min_alpha: 2}")
    assert too_large.value.field == "agents.min_alpha"
    with pytest.raises(ScenarioError, match="counting_qlearning needs market.timing = simultaneous"):
        baseline("market.timing=sequential", "agents={type: counting_qlearning}")


def test_its_parameters_get_columns_of_their_own():
    cs = compile_scenario(baseline("agents=[{type: counting_qlearning, min_alpha: 0.25}, {type: qlearning}]"))
    assert int(cs.ipar[0, I_KIND]) == KIND.code != int(cs.ipar[1, I_KIND])
    assert kind_param(cs.ipar, cs.fpar, 0, "min_alpha") == 0.25
    # no other kind, and no common column, means anything else by it
    assert KIND.columns["min_alpha"] == ("float", cs.fpar.shape[1] - 1)
    owners = [kind.name for kind in registry.kinds() if ("float", cs.fpar.shape[1] - 1) in kind.columns.values()]
    assert owners == ["counting_qlearning"]


def test_the_generated_dispatch_has_a_branch_for_it():
    text = dispatch.source()
    assert f"kind == {KIND.code}:  # counting_qlearning" in text
    assert f"from {__name__} import Params as _P{KIND.code}, choose as _choose{KIND.code}" in text
    # the hooks get the loop's variables they name, no more
    assert f"a, rs = _choose{KIND.code}(i, learn, u, rs, ipar, state, G, allowed, eps, n_allowed)" in text


def test_it_learns_the_best_response_to_a_fixed_rival():
    """Stateless and myopic (memory 0, delta 0) against a rival fixed at the Nash price: every cell is the average
    profit of its price, so once every price has been tried often the greedy price is the static best response."""
    cs = compile_scenario(
        baseline(
            "agents=[{type: counting_qlearning, memory: 0, delta: 0, beta: 0.0002}, {type: nash}]",
            "horizon.stop_at_convergence=false",
        )
    )
    st = new_state(cs, 7)
    periods = 40_000
    advance(cs, st, periods)
    m = cs.n_prices
    # every period adds one visit to firm 0's table, none to the fixed rival's
    assert st.N[:m].sum() == periods and st.N[m:].sum() == 0
    nash = int(cs.ipar[1, KIND_COLUMNS_FIXED])
    rival = np.array([0, nash], dtype=np.int64)
    expected = best_response(0, rival, cs.profit, cs.expected_fine, cs.powers, cs.allowed, cs.n_allowed)
    assert int(st.G[0]) == expected
    # the table is the sample average of the profits each price earned
    for a in range(m):
        if st.N[a] > 0:
            assert st.Q[a] == pytest.approx(cs.profit[a + nash * m, 0], rel=1e-12)


KIND_COLUMNS_FIXED = registry.kind_of("nash").columns["price"][1]


def test_it_runs_in_experiments_whatever_the_workers():
    scenario = baseline("agents={type: counting_qlearning, min_alpha: 0.05}", *SHORT)
    one = run_experiment(scenario, workers=1)
    two = run_experiment(scenario, workers=2)
    # spawned workers start a fresh interpreter: the kind comes back with this module when the scenario is unpickled
    spawned = run_experiment(scenario, workers=2, start_method="spawn")
    keys = set(one.summary) - {"elapsed_s", "periods_per_second"}
    assert {k: one.summary[k] for k in keys} == {k: two.summary[k] for k in keys}
    assert {k: one.summary[k] for k in keys} == {k: spawned.summary[k] for k in keys}
    assert one.summary["sessions"] == 3 and np.isfinite(one.summary["profit_gain"])
    # min_alpha reaches the hook
    other = run_experiment(baseline("agents={type: counting_qlearning, min_alpha: 0.5}", *SHORT), workers=1)
    assert not one.panel["price"].equals(other.panel["price"])


def test_it_plays_against_the_built_in_kinds_without_changing_them():
    mixed = run_experiment(baseline("agents=[{type: counting_qlearning}, {type: qlearning}]", *SHORT), workers=1)
    assert mixed.summary["sessions"] == 3


def test_the_command_line_tool_runs_it(tmp_path):
    scenario = tmp_path / "counting.yaml"
    scenario.write_text(
        "name: counting\nagents: {type: counting_qlearning, min_alpha: 0.1}\nsessions: 2\n"
        "horizon: {max_periods: 20000}\nlogging: {interval: 1000}\n",
        encoding="utf-8",
    )
    env = dict(os.environ, ALGOCOMP_AGENTS=__name__)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "algocomp.cli.main", "simulate", str(scenario), "--json", "--out"]
    done = subprocess.run(
        [*command, str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == 2 and summary["periods_total"] == 40000
    # without the module the type is unknown, and the error names the field
    env.pop("ALGOCOMP_AGENTS")
    refused = subprocess.run(
        [*command, str(tmp_path / "out2")], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert refused.returncode != 0 and "agents" in refused.stderr and "counting_qlearning" in refused.stderr


# --------------------------------------------------------------------------------------------- Python-path kinds


class ScriptedAgent(Spec):
    """An agent with no compiled hooks (it would run on a Python session loop)."""

    type: Literal["scripted_for_registry_test"] = "scripted_for_registry_test"


SCRIPTED = registry.register(AgentKind(name="scripted_for_registry_test", specs=(ScriptedAgent,)))


def test_a_kind_without_compiled_hooks_is_accepted_by_the_format_and_refused_by_the_compiled_engine():
    scenario = baseline("agents=[{type: scripted_for_registry_test}, {type: qlearning}]")
    assert not SCRIPTED.compiled and SCRIPTED.params._fields == ()
    with pytest.raises(ScenarioError) as refused:
        compile_scenario(scenario)
    assert refused.value.field == "agents.0.type" and "Python path" in refused.value.problem
    assert "scripted_for_registry_test" not in dispatch.source()


class ConstantAgent:
    """An agent of the Python policy protocol (engine.policy) that charges one price index."""

    def __init__(self, index: int = 0) -> None:
        self.index = index

    def reset(self, firm, market, rng):
        pass

    def act(self, observation):
        return self.index

    def learn(self, observation, action, reward, next_observation):
        return False

    def freeze(self):
        pass


class ConstantIndex(Spec):
    """A Python-path kind with a policy: its agent is a ConstantAgent."""

    type: Literal["constant_index_for_registry_test"] = "constant_index_for_registry_test"
    index: int = 0


def _constant_policy(spec: ConstantIndex, field: str, allowed):
    if spec.index >= 15:
        raise ScenarioError(f"{field}.index", "the grid has 15 prices")
    return lambda: ConstantAgent(spec.index)


CONSTANT = registry.register(
    AgentKind(name="constant_index_for_registry_test", specs=(ConstantIndex,), policy=_constant_policy)
)


def test_the_built_in_python_path_kinds_come_after_the_compiled_ones():
    kinds = registry.kinds()
    dqn, python = registry.kind_of("dqn"), registry.kind_of("python")
    assert python.code == dqn.code + 1 and not dqn.compiled and not python.compiled
    assert all(kind.compiled for kind in kinds[: dqn.code])  # the built-in compiled kinds keep their codes
    assert registry.kind_of("actor_critic").code == dqn.code - 1
    assert {"dqn", "python", "constant_index_for_registry_test"} <= registry.python_path_types()
    assert not registry.python_path_types() & {t for kind in kinds if kind.compiled for t in kind.types}
    assert "constant_index_for_registry_test" not in dispatch.source() and "dqn" not in dispatch.source()


def test_a_kind_registered_with_a_policy_runs_on_the_python_path():
    """Whether a scenario takes the Python path comes from the registry: a kind registered here with a spec and a
    policy only runs there, and plays exactly as the same agent named by class (type: python)."""
    overrides = ["horizon.max_periods=5000", "logging.interval=1000", "sessions=2"]
    registered = baseline(
        "agents=[{type: qlearning, beta: 0.001}, {type: constant_index_for_registry_test, index: 4}]", *overrides
    )
    by_class = baseline(
        f"agents=[{{type: qlearning, beta: 0.001}}, {{type: python, class: '{__name__}:ConstantAgent', "
        "params: {index: 4}}]",
        *overrides,
    )
    assert not CONSTANT.compiled and registry.needs_python_path(registered.agent_list())
    assert not registry.needs_python_path(baseline().agent_list())
    a, b = run_experiment(registered), run_experiment(by_class)
    for x, y in zip(a.sessions, b.sessions, strict=True):
        assert x.metrics == y.metrics
        for column in x.panel_columns:
            np.testing.assert_array_equal(x.panel_columns[column], y.panel_columns[column], err_msg=column)
    tail = a.panel.query("kind == 'tail' and firm == 1")
    assert len(tail) and np.allclose(tail.price, compile_scenario(registered).grid[1, 4])
    with pytest.raises(ScenarioError) as caught:
        run_experiment(
            baseline("agents=[{type: qlearning}, {type: constant_index_for_registry_test, index: 20}]", *overrides)
        )
    assert caught.value.field == "agents.1.index"


def test_registration_refuses_a_second_owner_of_a_type_and_hooks_the_loop_cannot_call():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(
            AgentKind(name="another", specs=(CountingQLearning,), params=Params, pack=pack, choose=choose)
        )

    class Other(Spec):
        type: Literal["not_compiled_for_registry_test"] = "not_compiled_for_registry_test"

    with pytest.raises(ValueError, match="needs pack"):
        registry.register(AgentKind(name="not_compiled", specs=(Other,), params=Params, choose=choose))
    with pytest.raises(TypeError, match="njit"):
        registry.register(
            AgentKind(name="not_compiled", specs=(Other,), params=Params, pack=pack, choose=choose.py_func)
        )

    @njit
    def asks_for_too_much(i, rs, rival_secrets):
        return 0, rs

    with pytest.raises(ValueError, match="rival_secrets"):
        registry.register(
            AgentKind(name="not_compiled", specs=(Other,), params=Params, pack=pack, choose=asks_for_too_much)
        )
    assert "not_compiled_for_registry_test" not in {t for kind in registry.kinds() for t in kind.types}


# --------------------------------------------------------------------------------------------- the on-disk cache

_CACHE_PROBE = """
import json
from algocomp.engine import dispatch
from algocomp.engine.build import compile_scenario
from algocomp.engine.session import advance, new_state
from algocomp.scenarios import load_scenario
cs = compile_scenario(load_scenario("myopic-vs-bandit"))
advance(cs, new_state(cs, 1), 100)
stats = dispatch.general_module().run_periods.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "file": dispatch.general_module().__file__}))
"""


def test_the_generated_loop_is_compiled_once_and_loaded_from_disk_after(tmp_path):
    env = dict(os.environ, ALGOCOMP_KERNEL_CACHE=str(tmp_path))
    env.pop("ALGOCOMP_AGENTS", None)
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _CACHE_PROBE], capture_output=True, text=True, env=env, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert (runs[0]["hits"], runs[0]["misses"]) == (0, 1)
    assert (runs[1]["hits"], runs[1]["misses"]) == (1, 0)
    assert runs[0]["file"] == runs[1]["file"] and Path(runs[0]["file"]).parent == tmp_path


def _unpacked(source: str, record: str) -> list[list[str]]:
    """The names of every `(a, b, ...) = record` unpacking in source, in order."""
    found = re.findall(rf"\(\s*([\w\s,]+?),?\s*\)\s*=\s*{record}\b", source)
    return [[name.strip() for name in block.split(",") if name.strip()] for block in found]


def test_the_compiled_loops_unpack_the_records_in_their_field_order():
    """The records cross into compiled code as plain tuples (numba types those fast), so each loop unpacks them by
    position: the names must be the records' fields in order, or arrays would be swapped."""
    sources = [dispatch.source(), *(inspect.getsource(f.py_func) for f in (K.run_qlearning, K.play_qlearning))]
    shapes = [specialised.Shape(("joint", "joint"), 15), specialised.Shape(("own", "none", "joint_lags"))]
    sources += [specialised.source(shape) for shape in shapes]
    for source in sources:
        assert _unpacked(source, "mk") == [list(Market._fields)]
        assert _unpacked(source, "st") == [list(Tables._fields)]
