"""Sweeps against the real stack: the API process, a Celery worker process, Postgres, Redis and an S3 endpoint.

A sweep is a grid of runs stored in one transaction; its state, stream and metrics are derived from its runs.
The runs are the Calvano baseline cut to seconds (two sessions of at most 20,000 periods), so the end-to-end
sweep finishes in well under a minute on a shared machine.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from algocomp.aggregate import cell_metrics, paired_effects
from algocomp.platform.storage import Storage, run_key

from .conftest import bearer, wait_until
from .test_api import read_sse

WAIT_TIMEOUT_S = 150
TINY_OVERRIDES = ["horizon.max_periods=20000", "logging.interval=1000"]
# A horizon no test waits for: these runs only ever end by cancellation.
ENDLESS_OVERRIDES = [
    "horizon.max_periods=100000000",
    "horizon.convergence_periods=100000000",
    "logging.interval=100000",
]
PRICE_CAP = {"basis": "absolute", "value": 1.75}
TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def api(api_server: str, api_token: str) -> Iterator[httpx.Client]:
    """An HTTP client of the API process; at the end every sweep it created that is not over is cancelled and
    waited for, so no run of this module keeps a worker busy afterwards."""
    created: list[str] = []

    def remember_sweeps(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/sweeps" and response.status_code == 202:
            response.read()
            created.append(response.json()["id"])

    with httpx.Client(
        base_url=api_server, timeout=30.0, headers=bearer(api_token), event_hooks={"response": [remember_sweeps]}
    ) as client:
        yield client
        for sweep_id in created:
            if client.get(f"/sweeps/{sweep_id}").json()["status"] not in TERMINAL:
                client.post(f"/sweeps/{sweep_id}/cancel")
        for sweep_id in created:
            wait_for_sweep(client, sweep_id, timeout_s=60)


def wait_for_sweep(api: httpx.Client, sweep_id: str, timeout_s: float = WAIT_TIMEOUT_S) -> dict[str, Any]:
    """Poll GET /sweeps/{id} until the sweep is over; its final state."""

    def over() -> dict[str, Any] | None:
        response = api.get(f"/sweeps/{sweep_id}")
        assert response.status_code == 200, response.text
        sweep = response.json()
        return sweep if sweep["status"] in TERMINAL else None

    return wait_until(
        over,
        f"sweep {sweep_id} to be over",
        timeout_s,
        interval_s=0.5,
        detail=lambda: f"counts: {api.get(f'/sweeps/{sweep_id}').json()['counts']}",
    )


def row_counts(db_engine: Engine) -> tuple[int, int, int]:
    with db_engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("sweeps", "runs", "scenarios")
        )


def sweep_runs(db_engine: Engine, sweep_id: str) -> list[dict[str, Any]]:
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, cell, seed, sessions, status::text AS status, cancel_requested, overrides, spec "
                "FROM runs WHERE sweep_id = :id ORDER BY cell, seed"
            ),
            {"id": sweep_id},
        ).mappings()
        return [dict(row) for row in rows]


def test_invalid_sweeps_name_the_cell_and_field_and_store_nothing(api: httpx.Client, db_engine: Engine) -> None:
    before = row_counts(db_engine)
    bad_cell = api.post(
        "/sweeps",
        json={
            "preset": "calvano-2020-baseline",
            "sessions": 2,
            "overrides": TINY_OVERRIDES,
            "grid": {"agents.alpha": [0.1, 5.0], "agents.beta": [1e-5, 2e-5]},
        },
    )
    assert bad_cell.status_code == 422, bad_cell.text
    error = bad_cell.json()["error"]
    assert error["code"] == "invalid_scenario"
    assert error["field"] == "agents.alpha"
    assert error["cell"] == 2  # alpha=5 with the first beta: the last path varies fastest
    assert error["message"].startswith("cell 2 (agents.alpha=5.0, agents.beta=1e-05)")

    too_large = api.post(
        "/sweeps",
        json={"preset": "calvano-2020-baseline", "grid": {"agents.alpha": [0.1] * 101, "agents.beta": [1e-5] * 100}},
    )
    assert too_large.status_code == 422, too_large.text
    assert too_large.json()["error"] == {**too_large.json()["error"], "code": "sweep_too_large", "field": "grid"}

    reserved = api.post("/sweeps", json={"preset": "calvano-2020-baseline", "grid": {"seed": [1, 2]}})
    assert reserved.status_code == 422
    assert reserved.json()["error"]["field"] == "grid.seed"

    unknown_path = api.post("/sweeps", json={"preset": "calvano-2020-baseline", "grid": {"agents.alfa": [0.1]}})
    assert unknown_path.status_code == 422
    assert "cell 0" in unknown_path.json()["error"]["message"]

    assert row_counts(db_engine)[:2] == before[:2]  # no sweep, no run (the preset's scenario may be stored)

    missing = uuid.uuid4()
    for path in (f"/sweeps/{missing}", f"/sweeps/{missing}/metrics", f"/streams/sweeps/{missing}"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "sweep_not_found"
    assert api.post(f"/sweeps/{missing}/cancel").status_code == 404


def test_a_2x2_sweep_runs_to_completion_and_its_metrics_match_the_runs_summaries(
    api: httpx.Client, db_engine: Engine, storage: Storage, worker_process: Any
) -> None:
    before = row_counts(db_engine)
    response = api.post(
        "/sweeps",
        json={
            "preset": "calvano-2020-baseline",
            "name": "alpha-x-cap",
            "sessions": 2,
            "seeds": [0],
            "overrides": TINY_OVERRIDES,
            "grid": {"agents.alpha": [0.1, 0.15], "regulation.price_cap": [None, PRICE_CAP]},
        },
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    sweep_id = accepted["id"]
    assert (accepted["status"], accepted["cells"], accepted["runs"]) == ("queued", 4, 4)
    assert accepted["links"] == {
        "self": f"/sweeps/{sweep_id}",
        "stream": f"/streams/sweeps/{sweep_id}",
        "cancel": f"/sweeps/{sweep_id}/cancel",
        "metrics": f"/sweeps/{sweep_id}/metrics",
    }
    assert response.headers["location"] == f"/sweeps/{sweep_id}"
    after = row_counts(db_engine)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 4)

    runs = sweep_runs(db_engine, sweep_id)
    assert [run["cell"] for run in runs] == [0, 1, 2, 3]
    assert [run["spec"]["agents"]["alpha"] for run in runs] == [0.1, 0.1, 0.15, 0.15]
    assert [run["spec"]["regulation"]["price_cap"] is None for run in runs] == [True, False, True, False]
    assert {(run["seed"], run["sessions"], run["spec"]["horizon"]["max_periods"]) for run in runs} == {(0, 2, 20000)}
    assert runs[1]["overrides"] == [
        *TINY_OVERRIDES,
        "agents.alpha=0.1",
        f"regulation.price_cap={json.dumps(PRICE_CAP)}",
    ]

    sweep = wait_for_sweep(api, sweep_id)
    assert sweep["status"] == "succeeded", sweep
    assert sweep["counts"]["succeeded"] == 4 and sweep["progress"] == 1.0
    assert sweep["finished_at"] is not None
    assert [cell["index"] for cell in sweep["per_cell"]] == [0, 1, 2, 3]
    assert sweep["per_cell"][3]["values"] == {"agents.alpha": 0.15, "regulation.price_cap": PRICE_CAP}
    assert all(cell["counts"]["succeeded"] == 1 and len(cell["run_ids"]) == 1 for cell in sweep["per_cell"])
    listed = api.get("/sweeps", params={"limit": 5}).json()
    assert listed["items"][0]["id"] == sweep_id and listed["items"][0]["status"] == "succeeded"

    # the metrics are the library's, recomputed here from each run's own summary.json
    sessions_by_cell = {
        cell["index"]: json.loads(storage.get_bytes(run_key(cell["run_ids"][0], "summary")))["sessions"]
        for cell in sweep["per_cell"]
    }
    metrics = api.get(f"/sweeps/{sweep_id}/metrics")
    assert metrics.status_code == 200, metrics.text
    body = metrics.json()
    assert body["regulation_paths"] == ["regulation.price_cap"]
    assert len(body["cells"]) == 4
    for cell in body["cells"]:
        sessions = sessions_by_cell[cell["index"]]
        assert len(sessions) == 2
        assert cell["metrics"] == json.loads(json.dumps(cell_metrics(sessions)))
    assert [cell["regulation_effect"] is None for cell in body["cells"]] == [True, False, True, False]
    for treated, control in ((1, 0), (3, 2)):
        effect = body["cells"][treated]["regulation_effect"]
        assert effect["control_cell"] == control
        expected = paired_effects(sessions_by_cell[treated], sessions_by_cell[control])
        assert effect["effects"] == json.loads(json.dumps(expected))
        assert effect["effects"]["mean_price"]["pairs"] == 2

    table = api.get(f"/sweeps/{sweep_id}/metrics", headers={"Accept": "text/csv"})
    assert table.status_code == 200
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [row["cell"] for row in rows] == ["0", "1", "2", "3"]
    assert float(rows[2]["profit_gain_mean"]) == pytest.approx(body["cells"][2]["metrics"]["profit_gain_mean"])
    assert rows[0]["effect_mean_price"] == "" and rows[1]["control_cell"] == "0"

    # a finished sweep's stream is its terminal event alone; it cannot be cancelled any more
    events = read_sse(api, f"/streams/sweeps/{sweep_id}")
    assert [event.event for event in events] == ["succeeded"]
    assert events[0].data["counts"]["succeeded"] == 4
    refused = api.post(f"/sweeps/{sweep_id}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "sweep_finished"


def test_cancelling_a_sweep_cancels_queued_runs_and_stops_running_ones(
    api: httpx.Client, db_engine: Engine, worker_process: Any
) -> None:
    response = api.post(
        "/sweeps",
        json={
            "preset": "calvano-2020-baseline",
            "sessions": 2,
            "seeds_per_cell": 2,
            "overrides": ENDLESS_OVERRIDES,
            "grid": {"agents.alpha": [0.1, 0.15]},
        },
    )
    assert response.status_code == 202, response.text
    sweep_id = response.json()["id"]
    assert response.json()["runs"] == 4
    assert api.get(f"/sweeps/{sweep_id}/metrics").status_code == 409  # nothing succeeded yet

    # let the worker (2 processes) claim some runs, so both halves of a cancel are exercised
    def running() -> dict[str, Any] | None:
        sweep = api.get(f"/sweeps/{sweep_id}").json()
        return sweep if sweep["counts"]["running"] > 0 else None

    state = wait_until(running, "a run of the sweep to start", 30)
    assert state["status"] == "running"

    cancel = api.post(f"/sweeps/{sweep_id}/cancel")
    assert cancel.status_code == 202, cancel.text
    assert cancel.json()["cancel_requested"] is True
    # at once: no run is left queued; the ones a worker had claimed are asked to stop
    runs = sweep_runs(db_engine, sweep_id)
    for run in runs:
        assert run["status"] == "cancelled" or (run["status"] == "running" and run["cancel_requested"]), run
    assert sum(run["status"] == "cancelled" for run in runs) >= 2  # a worker holds at most 2 at a time
    assert any(run["status"] == "running" for run in runs)

    # the stream follows the worker honouring the request and ends with the terminal event
    events = read_sse(api, f"/streams/sweeps/{sweep_id}", timeout_s=60)
    assert events[-1].event == "cancelled"
    assert events[-1].data["counts"]["cancelled"] == 4
    assert [int(event.id) for event in events] == list(range(1, len(events) + 1))
    assert all(event.event == "progress" for event in events[:-1])

    sweep = wait_for_sweep(api, sweep_id, timeout_s=10)
    assert sweep["status"] == "cancelled" and sweep["counts"]["cancelled"] == 4
    assert {run["status"] for run in sweep_runs(db_engine, sweep_id)} == {"cancelled"}
    assert api.post(f"/sweeps/{sweep_id}/cancel").status_code == 409


def test_a_built_in_sweep_is_listed_and_launched_by_name_with_fields_that_replace_its_own(
    api: httpx.Client, db_engine: Engine
) -> None:
    listed = api.get("/sweeps/presets")
    assert listed.status_code == 200, listed.text
    figure1 = next(p for p in listed.json() if p["name"] == "calvano-2020-figure1")
    assert figure1["scenario"] == "calvano-2020-baseline"
    assert list(figure1["grid"]) == ["agents.beta", "agents.alpha"]
    assert (figure1["cells"], figure1["runs"], figure1["sessions"]) == (100, 100, 100)

    before = row_counts(db_engine)
    for body, field in (
        ({"sweep_preset": "calvano-2020-figure9"}, "sweep_preset"),
        ({"sweep_preset": "calvano-2020-figure1", "preset": "calvano-2020-baseline"}, "sweep_preset"),
        ({"sweep_preset": "../presets/calvano-2020-baseline"}, "sweep_preset"),
        ({"preset": "calvano-2020-baseline"}, "grid"),  # no grid and no sweep preset to give one
    ):
        refused = api.post("/sweeps", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"]["field"] == field, refused.text
    assert row_counts(db_engine)[:2] == before[:2]

    # the preset's base and name, with a smaller grid, two seeds, fewer sessions and a shorter horizon
    accepted = api.post(
        "/sweeps",
        json={
            "sweep_preset": "calvano-2020-figure1",
            "grid": {"agents.beta": [2e-5]},
            "seeds_per_cell": 2,
            "sessions": 2,
            "overrides": TINY_OVERRIDES,
        },
    )
    assert accepted.status_code == 202, accepted.text
    assert (accepted.json()["cells"], accepted.json()["runs"]) == (1, 2)
    sweep = wait_for_sweep(api, accepted.json()["id"])
    assert sweep["status"] == "succeeded"
    assert sweep["name"] == "calvano-2020-figure1"
    runs = sweep_runs(db_engine, accepted.json()["id"])
    assert [(run["seed"], run["sessions"]) for run in runs] == [(0, 2), (1, 2)]
    for run in runs:
        assert run["spec"]["agents"]["beta"] == 2e-5
        assert run["spec"]["agents"]["alpha"] == 0.15  # the base preset's
        assert run["spec"]["horizon"]["max_periods"] == 20000
