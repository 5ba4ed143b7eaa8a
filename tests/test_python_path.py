"""The Python policy path (engine.policy, engine.python_session): the Calvano Q-learner run through it equals
the compiled path on the same seeds, regulation included; Python agents and compiled ones share a market; users'
classes named by import path are checked before anything runs and refused with the field at fault."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from algocomp.agents.python import class_allowed, resolve_agents
from algocomp.engine.build import compile_scenario
from algocomp.engine.experiment import run_experiment
from algocomp.engine.python_session import STOP_CHECK_PERIODS, PythonSession, run_python_session, uses_python_path
from algocomp.engine.results import IMPULSE_COLUMNS, PANEL_COLUMNS
from algocomp.engine.seeds import session_seeds
from algocomp.engine.session import run_session
from algocomp.scenarios import ScenarioError, apply_overrides, dump_scenario, load_scenario, scenario_hash

DEVIATION_CHECK_KEYS = {
    "equilibrium_on_path",
    "equilibrium_state_share",
    "static_deviation_unprofitable_share",
    "static_deviations",
}


def _same_session(a, b, *, skip_metrics=frozenset()) -> None:
    assert a.session == b.session and a.seed == b.seed
    assert list(a.panel_columns) == list(b.panel_columns) == PANEL_COLUMNS
    for column in PANEL_COLUMNS:
        np.testing.assert_array_equal(a.panel_columns[column], b.panel_columns[column], err_msg=column)
    assert list(a.impulse_columns) == list(b.impulse_columns) == IMPULSE_COLUMNS
    for column in IMPULSE_COLUMNS:
        np.testing.assert_array_equal(a.impulse_columns[column], b.impulse_columns[column], err_msg=column)
    assert set(a.metrics) == set(b.metrics)
    for key in a.metrics:
        if key not in skip_metrics:
            assert a.metrics[key] == b.metrics[key], key


def _both_paths(scenario, sessions: int = 3, **kwargs):
    cs = compile_scenario(scenario)
    for index, seed in enumerate(session_seeds(scenario.seed, sessions)):
        yield run_session(cs, index, seed), run_python_session(cs, index, seed, **kwargs)


@pytest.mark.parametrize(
    "overrides",
    [
        # the preset as it is, its horizon capped: exploration still high, no convergence
        ["horizon.max_periods=30000", "logging.interval=1000"],
        # faster exploration decay, so the sessions converge and settle into limit cycles
        ["agents.beta=1e-3", "horizon.convergence_periods=500", "horizon.max_periods=30000", "logging.interval=1000"],
    ],
)
def test_python_q_learner_equals_the_compiled_one(overrides):
    """The Calvano baseline through the Python path: panel, impulse response and every metric (convergence,
    limit cycle, shocks, equilibrium checks) equal the compiled path's, bit for bit."""
    scenario = apply_overrides(load_scenario("calvano-2020-baseline"), overrides)
    converged = []
    for compiled, python in _both_paths(scenario):
        _same_session(compiled, python)
        converged.append(python.metrics["converged"])
    assert all(converged) == ("agents.beta=1e-3" in overrides)


def test_python_path_equals_the_general_loop_under_regulation():
    """Price cap, demand noise, audits and fines, a repricing limit and random tie-breaking: the kernel's general
    loop and the Python path draw and compute the same."""
    scenario = apply_overrides(
        load_scenario("calvano-2020-price-cap"),
        [
            "agents.tie_break=random",
            "market.noise={kind: multiplicative, sd: 0.1}",
            "regulation.audit={probability: 0.1, threshold: {basis: nash_markup, value: 0.1}, fine: 0.05}",
            "regulation.reprice_every=2",
            "agents.beta=1e-3",
            "horizon.convergence_periods=500",
            "horizon.max_periods=20000",
            "logging.interval=1000",
        ],
    )
    for compiled, python in _both_paths(scenario, sessions=2):
        _same_session(compiled, python)


def test_hidden_prices_and_longer_memory_match_too():
    scenario = apply_overrides(
        load_scenario("calvano-2020-n3"),
        [
            "agents.schedule=polynomial",
            "agents.power=0.5",
            "agents.beta=1e-3",
            "agents.memory=2",
            "regulation.hide_rival_prices=true",
            "horizon.max_periods=10000",
            "logging.interval=1000",
        ],
    )
    for compiled, python in _both_paths(scenario, sessions=1):
        _same_session(compiled, python)


# --------------------------------------------------------------------------------------------- Python agents


class FixedIndex:
    """Charges one price index every period (a rule written against the protocol)."""

    def __init__(self, index: int = 0) -> None:
        if not isinstance(index, int):
            raise TypeError("index must be an integer")
        self.index = index

    def reset(self, firm, market, rng):
        self.firm = firm

    def act(self, observation):
        return self.index

    def learn(self, observation, action, reward, next_observation):
        return False

    def freeze(self):
        pass


class NoFreeze:
    def reset(self, firm, market, rng):
        pass

    def act(self, observation):
        return 0

    def learn(self, observation, action, reward, next_observation):
        return False


def _mixed(agent: dict, *overrides: str):
    base = load_scenario("calvano-2020-baseline")
    scenario = apply_overrides(
        base,
        {
            "agents": [{"type": "qlearning", "beta": 1e-3}, agent],
            "horizon.convergence_periods": 500,
            "horizon.max_periods": 20000,
            "logging.interval": 1000,
            "sessions": 2,
        },
    )
    return apply_overrides(scenario, list(overrides))


def test_a_python_agent_faces_a_compiled_q_learner_as_the_compiled_rule_would():
    """A Q-learner against a Python agent that charges one price plays exactly as against the compiled fixed
    agent at that price (the kernel's general loop); only Calvano et al.'s equilibrium checks differ, which apply
    to the Python agent (a frozen Python policy is a function of the prices) and not to the fixed rule."""
    python = _mixed({"type": "python", "class": f"{__name__}:FixedIndex", "params": {"index": 7}})
    compiled = _mixed({"type": "fixed", "price": float(compile_scenario(python).grid[1, 7])})
    assert uses_python_path(compile_scenario(python)) and not uses_python_path(compile_scenario(compiled))
    a, b = run_experiment(compiled), run_experiment(python)
    for x, y in zip(a.sessions, b.sessions, strict=True):
        _same_session(x, y, skip_metrics=DEVIATION_CHECK_KEYS)
        assert x.metrics["equilibrium_on_path"] is None
        assert y.metrics["static_deviations"] > 0
    assert set(a.summary) == set(b.summary)
    assert list(a.panel.columns) == list(b.panel.columns) and list(a.impulse.columns) == list(b.impulse.columns)


def test_python_agents_run_in_worker_processes_with_the_same_results():
    scenario = _mixed({"type": "python", "class": f"{__name__}:FixedIndex", "params": {"index": 3}})
    one, two = run_experiment(scenario, workers=1), run_experiment(scenario, workers=2)
    for x, y in zip(one.sessions, two.sessions, strict=True):
        _same_session(x, y)


@pytest.mark.parametrize(
    ("agent", "field", "words"),
    [
        ({"type": "python", "class": "no_such_module_xyz:Agent"}, "agents.1.class", "cannot import module"),
        ({"type": "python", "class": f"{__name__}:Missing"}, "agents.1.class", "has no 'Missing'"),
        ({"type": "python", "class": f"{__name__}:NoFreeze"}, "agents.1.class", "lacks the protocol method freeze"),
        ({"type": "python", "class": f"{__name__}:DEVIATION_CHECK_KEYS"}, "agents.1.class", "is not a class"),
        (
            {"type": "python", "class": f"{__name__}:FixedIndex", "params": {"price": 3}},
            "agents.1.params",
            "refused its params",
        ),
        (
            {"type": "python", "class": f"{__name__}:FixedIndex", "params": {"index": "high"}},
            "agents.1.params",
            "index must be an integer",
        ),
    ],
)
def test_a_class_that_cannot_run_is_refused_before_anything_runs(agent, field, words):
    scenario = _mixed(agent)
    with pytest.raises(ScenarioError) as caught:
        run_experiment(scenario)
    assert caught.value.field == field
    assert words in caught.value.problem


def test_a_malformed_class_path_is_refused_by_validation():
    with pytest.raises(ScenarioError) as caught:
        _mixed({"type": "python", "class": "not a path"})
    assert caught.value.field == "agents.1.class"
    assert "module.path:ClassName" in caught.value.problem


def test_a_single_spec_for_every_firm_is_named_without_an_index():
    scenario = apply_overrides(
        load_scenario("calvano-2020-baseline"), {"agents": {"type": "python", "class": "no_such_module_xyz:A"}}
    )
    with pytest.raises(ScenarioError) as caught:
        resolve_agents(scenario)
    assert caught.value.field == "agents.class"


def test_populations_the_python_path_cannot_hold_are_refused_with_the_field():
    with pytest.raises(ScenarioError) as caught:
        resolve_agents(
            apply_overrides(
                load_scenario("calvano-2020-baseline"),
                {"agents": [{"type": "actor_critic"}, {"type": "python", "class": f"{__name__}:FixedIndex"}]},
            )
        )
    assert caught.value.field == "agents.0.type"
    with pytest.raises(ScenarioError) as caught:
        resolve_agents(_mixed({"type": "dqn"}, "agents.0.update=synchronous"))
    assert caught.value.field == "agents.0.update"


def test_an_allow_list_refuses_a_class_before_importing_it():
    scenario = _mixed({"type": "python", "class": "no_such_module_xyz:Agent"})
    with pytest.raises(ScenarioError) as caught:
        resolve_agents(scenario, allowed=lambda path: class_allowed(path, ["algocomp.agents."]))
    assert caught.value.field == "agents.1.class"
    assert "allow-list" in caught.value.problem  # refused as not admitted, not as failing to import
    assert class_allowed("algocomp.agents.dqn:DQNAgent", ["algocomp.agents."])
    assert class_allowed("pkg.mod:A", ["pkg.mod:A"]) and not class_allowed("pkg.mod:AB", ["pkg.mod:A"])
    assert class_allowed("pkg.mod:A", ["pkg."]) and not class_allowed("pkgx.mod:A", ["pkg."])
    assert class_allowed("anything:Goes", ["*"]) and not class_allowed("anything:Goes", [])


def test_an_agent_returning_a_forbidden_price_is_held_to_the_regulation():
    """Under a price cap an index above it is charged as the nearest allowed price."""
    scenario = apply_overrides(
        load_scenario("calvano-2020-price-cap"),
        {
            "agents": [{"type": "qlearning", "beta": 1e-3}, {"type": "python", "class": f"{__name__}:FixedIndex"}],
            "agents.1.params": {"index": 14},
            "horizon.max_periods": 5000,
            "logging.interval": 1000,
            "sessions": 1,
        },
    )
    cs = compile_scenario(scenario)
    top = int(cs.allowed[1, int(cs.n_allowed[1]) - 1])
    assert top < 14
    result = run_experiment(scenario)
    tail = result.panel.query("kind == 'tail' and firm == 1")
    assert np.allclose(tail.price, cs.grid[1, top])


# --------------------------------------------------------------------------------------------- the docs' example

DOCS = Path(__file__).resolve().parents[1] / "docs" / "python-agents.md"


def _block(language: str) -> str:
    """The first fenced block of `language` in docs/python-agents.md."""
    match = re.search(rf"```{language}\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    assert match, f"no {language} block in {DOCS}"
    return match.group(1)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        check=False,
    )


def test_the_docs_example_agent_runs_from_the_cli(tmp_path):
    (tmp_path / "my_agents.py").write_text(_block("python"), encoding="utf-8")
    (tmp_path / "my-scenario.yaml").write_text(_block("yaml"), encoding="utf-8")
    completed = _cli("simulate", "my-scenario.yaml", "--out", "runs/tabular-q", "--json", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["sessions"] == 2 and summary["scenario"] == "tabular-q-against-calvano"
    out = tmp_path / "runs" / "tabular-q"
    panel = pd.read_parquet(out / "panel.parquet")
    impulse = pd.read_parquet(out / "impulse.parquet")
    assert list(panel.columns) == PANEL_COLUMNS and list(impulse.columns) == IMPULSE_COLUMNS
    assert set(panel.session) == {0, 1} and set(panel.firm) == {0, 1}


def test_the_cli_refuses_a_class_missing_a_method_naming_the_field(tmp_path):
    source = _block("python").replace("    def freeze(self):\n        self.frozen = True\n", "")
    (tmp_path / "my_agents.py").write_text(source, encoding="utf-8")
    (tmp_path / "my-scenario.yaml").write_text(_block("yaml"), encoding="utf-8")
    completed = _cli("simulate", "my-scenario.yaml", "--out", "runs/x", cwd=tmp_path)
    assert completed.returncode == 2
    assert "agents.0.class: my_agents:TabularQ lacks the protocol method freeze" in completed.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything ran or was written


# --------------------------------------------------------------------------------------------- the deep Q-network


def _dqn_against_fixed(rival: str, seed: int, sessions: int = 3):
    return apply_overrides(
        load_scenario("calvano-2020-baseline"),
        {
            "agents": [{"type": "dqn", "beta": 3e-4}, {"type": "fixed", "price": rival}],
            "horizon.max_periods": 15000,
            "horizon.convergence_periods": 5000,
            "logging.interval": 1000,
            "sessions": sessions,
            "seed": seed,
        },
    )


@pytest.mark.parametrize("rival", ["nash", "monopoly"])
def test_the_dqn_learns_to_beat_a_random_policy_against_a_fixed_rival(rival):
    """Over several seeds, the DQN's greedy policy after 15,000 periods earns more against a rival who always
    charges one price than a uniformly random policy over the allowed prices would."""
    scenario = _dqn_against_fixed(rival, seed=11)
    cs = compile_scenario(scenario)
    rival_price = int(cs.ipar[1, 1])
    own = cs.allowed[0, : int(cs.n_allowed[0])]
    random_policy = float(cs.profit[own + rival_price * cs.powers[1], 0].mean())
    best = float(cs.profit[own + rival_price * cs.powers[1], 0].max())
    result = run_experiment(scenario, workers=2)
    earned = [s.metrics["mean_profit_by_firm"][0] for s in result.sessions]
    assert len(earned) == 3
    assert all(e > random_policy for e in earned), (earned, random_policy)
    assert np.mean(earned) > random_policy + 0.8 * (best - random_policy)  # close to the best response


def test_dqn_sessions_are_reproducible_from_their_seeds():
    scenario = apply_overrides(_dqn_against_fixed("nash", seed=3, sessions=2), {"horizon.max_periods": 3000})
    one, two = run_experiment(scenario, workers=1), run_experiment(scenario, workers=2)
    for x, y in zip(one.sessions, two.sessions, strict=True):
        _same_session(x, y)
    a, b = one.sessions
    assert not np.array_equal(a.panel_columns["price"], b.panel_columns["price"])  # seeds differ, so do sessions


@pytest.mark.parametrize("preset", ["dqn-vs-qlearning", "dqn-vs-dqn"])
def test_dqn_outputs_have_every_runs_schema(preset):
    """Panel, impulse table, session metrics and summary: the same columns and keys, with the same types, as a
    compiled run's."""
    short = {"horizon.max_periods": 2000, "logging.interval": 500, "sessions": 2}
    dqn = run_experiment(apply_overrides(load_scenario(preset), short))
    compiled = run_experiment(apply_overrides(load_scenario("calvano-2020-baseline"), short))
    assert dqn.panel.dtypes.to_dict() == compiled.panel.dtypes.to_dict()
    assert dqn.impulse.dtypes.to_dict() == compiled.impulse.dtypes.to_dict()
    assert len(dqn.panel) > 0 and len(dqn.impulse) > 0
    assert set(dqn.summary) == set(compiled.summary)
    for x, y in zip(dqn.session_summaries, compiled.session_summaries, strict=True):
        assert set(x) == set(y)
    assert dqn.summary["sessions"] == 2


def test_python_agent_specs_round_trip_and_override(tmp_path):
    scenario = _mixed({"type": "python", "class": "a.b:C", "params": {"x": 1}})
    document = scenario.model_dump(mode="json")
    assert document["agents"][1] == {"type": "python", "class": "a.b:C", "params": {"x": 1}, "history": 1}
    path = dump_scenario(scenario, tmp_path / "scenario.yaml")
    again = load_scenario(path)
    assert again == scenario and scenario_hash(again) == scenario_hash(scenario)
    changed = apply_overrides(scenario, ["agents.1.class=x.y:Z", "agents.1.params.x=2"])
    assert (changed.agents[1].class_, changed.agents[1].params) == ("x.y:Z", {"x": 2})


def test_spawned_workers_build_python_agents_with_the_same_results():
    """Workers started with spawn import the user's class and the DQN afresh and give the same sessions."""
    scenario = apply_overrides(
        _mixed({"type": "python", "class": f"{__name__}:FixedIndex", "params": {"index": 5}}),
        {"agents.0": {"type": "dqn", "warmup": 100}, "horizon.max_periods": 1500},
    )
    one = run_experiment(scenario, workers=1)
    spawned = run_experiment(scenario, workers=2, start_method="spawn")
    for x, y in zip(one.sessions, spawned.sessions, strict=True):
        _same_session(x, y)


def test_sequential_timing_is_refused_for_python_agents():
    scenario = apply_overrides(
        load_scenario("klein-2021-sequential"),
        {"agents": [{"type": "fixed", "price": "nash"}, {"type": "python", "class": f"{__name__}:FixedIndex"}]},
    )
    with pytest.raises(ScenarioError) as caught:
        run_experiment(scenario)
    assert caught.value.field == "market.timing"


def test_a_python_session_stops_within_a_thousand_periods_of_being_asked():
    scenario = apply_overrides(
        _mixed({"type": "python", "class": f"{__name__}:FixedIndex"}), {"horizon.max_periods": 10**8}
    )
    cs = compile_scenario(scenario)
    asked = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) >= 3

    session = PythonSession(cs, 1)
    assert session.learn(should_stop=should_stop) is False
    assert session.st.period == 3 * STOP_CHECK_PERIODS
    assert run_python_session(cs, 0, 1, should_stop=lambda: True) is None


@pytest.mark.parametrize("rival", [{"type": "myopic"}, {"type": "nash"}, {"type": "fixed", "price": 1.8}])
def test_the_rule_adapters_equal_the_general_loop(rival):
    """A Q-learner against the compiled rules that run beside Python agents: both paths give the same sessions."""
    scenario = apply_overrides(
        load_scenario("calvano-2020-baseline"),
        {
            "agents": [{"type": "qlearning", "beta": 1e-3}, rival],
            "horizon.convergence_periods": 500,
            "horizon.max_periods": 20000,
            "logging.interval": 1000,
        },
    )
    for compiled, python in _both_paths(scenario, sessions=2):
        _same_session(compiled, python)


@pytest.mark.parametrize(
    "bandit",
    [
        {"type": "epsilon_greedy", "epsilon": 0.2, "beta": 1e-4},
        {"type": "epsilon_greedy", "epsilon": 0.2, "beta": 1e-3, "schedule": "polynomial", "tie_break": "random"},
        {"type": "ucb1"},
        {"type": "ucb_tuned", "scale_rewards": False},
        {"type": "thompson"},
    ],
)
def test_the_bandit_adapters_equal_the_general_loop(bandit):
    """The kernel's bandits beside a Q-learner, with demand noise: both paths give the same sessions."""
    scenario = apply_overrides(
        load_scenario("calvano-2020-baseline"),
        {
            "agents": [{"type": "qlearning", "beta": 1e-3}, bandit],
            "market.noise": {"kind": "profit_uniform", "snr": 20.0},
            "horizon.convergence_periods": 500,
            "horizon.max_periods": 10000,
            "logging.interval": 1000,
        },
    )
    for compiled, python in _both_paths(scenario, sessions=2):
        _same_session(compiled, python)
