"""Python-path agents through the service stack (an API process and a Celery worker process on real Postgres,
Redis and S3; fixtures in conftest.py): the DQN presets run with POST /runs, and `type: python` classes are
admitted only from the allow-list (setting python_agent_classes, default algocomp's own agents), refused before
anything is imported or stored."""

from __future__ import annotations

from typing import Any

import pytest

from algocomp.client import ApiError, Client
from algocomp.engine.results import PANEL_COLUMNS
from algocomp.scenarios import load_scenario

WAIT_TIMEOUT_S = 300
SHORT = ["horizon.max_periods=1500", "horizon.convergence_periods=500"]


@pytest.fixture
def client(api_server: str) -> Any:
    with Client(api_server) as api:
        yield api


@pytest.mark.parametrize("preset", ["dqn-vs-qlearning", "dqn-vs-dqn"])
def test_the_dqn_presets_run_through_the_api(client: Client, worker_process: Any, preset: str) -> None:
    accepted = client.launch_run(preset=preset, sessions=2, log_interval=500, overrides=SHORT)
    final = client.wait(str(accepted["id"]), timeout=WAIT_TIMEOUT_S)
    assert final["status"] == "succeeded", final.get("error")
    assert final["sessions_done"] == 2
    result = client.result(str(accepted["id"]))
    assert result["summary"]["scenario"] == preset and result["summary"]["sessions"] == 2
    assert result["summary"]["profit_gain"] is not None
    panel = client.panel(str(accepted["id"]))
    assert list(panel.columns) == PANEL_COLUMNS and set(panel.session) == {0, 1}


def _with_python_agent(agent: dict[str, Any]) -> dict[str, Any]:
    document = load_scenario("calvano-2020-baseline").model_dump(mode="json")
    document.update(agents=[{"type": "qlearning", "beta": 1e-3}, agent], sessions=1)
    document["horizon"] = {"max_periods": 1500, "convergence_periods": 500}
    document["logging"] = {"interval": 500}
    return document


def test_a_class_outside_the_allow_list_is_refused_naming_the_field(client: Client) -> None:
    before = client.count_runs()
    with pytest.raises(ApiError) as caught:
        client.launch_run(scenario=_with_python_agent({"type": "python", "class": "os:system"}))
    error = caught.value
    assert (error.status, error.code, error.field) == (422, "agent_class_not_allowed", "agents.1.class")
    assert "python_agent_classes" in error.message
    assert client.count_runs() == before  # nothing queued


def test_an_allowed_class_is_checked_and_runs(client: Client, worker_process: Any) -> None:
    with pytest.raises(ApiError) as caught:  # admitted by the allow-list, then checked: no such class
        client.launch_run(scenario=_with_python_agent({"type": "python", "class": "algocomp.agents.dqn:NoSuch"}))
    assert (caught.value.status, caught.value.code, caught.value.field) == (422, "invalid_scenario", "agents.1.class")
    agent = {"type": "python", "class": "algocomp.agents.dqn:DQNAgent", "params": {"hidden": 8, "warmup": 100}}
    accepted = client.launch_run(scenario=_with_python_agent(agent))
    final = client.wait(str(accepted["id"]), timeout=WAIT_TIMEOUT_S)
    assert final["status"] == "succeeded", final.get("error")
