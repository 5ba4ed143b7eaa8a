"""The aggregator computes and stores a sweep's per-cell metrics as its runs finish (Postgres rows in
`sweep_cell_metrics`), writes metrics.csv, metrics.parquet and the plots to S3 once the sweep is over, and
recomputes all of it from durable state (the runs' summaries on S3) after a restart that lost the rows."""

from __future__ import annotations

import csv
import io
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from algocomp.aggregate import cell_metrics, paired_effects
from algocomp.platform.queue import AGGREGATE_QUEUE, RUN_FINISHED_TASK, create_celery
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage, run_key
from algocomp.platform.storage.keys import sweep_key, sweep_prefix
from algocomp_aggregator import tasks as aggregator_tasks

from .conftest import ServiceProcess, _celery_ping, bearer, wait_until

WAIT_TIMEOUT_S = 120
TINY_OVERRIDES = ["horizon.max_periods=20000", "logging.interval=1000"]
PRICE_CAP = {"basis": "absolute", "value": 1.75}
GRID = {"agents.alpha": [0.1, 0.15], "regulation.price_cap": [None, PRICE_CAP]}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def api(api_server: str, api_token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30.0, headers=bearer(api_token)) as client:
        yield client


@pytest.fixture
def start_aggregator(
    service_env: Settings, start_service: Callable[..., ServiceProcess]
) -> Callable[[], ServiceProcess]:
    """start_aggregator() -> a fresh aggregator process on the "aggregate" queue (stopped after the test)."""

    def start() -> ServiceProcess:
        nodename = f"aggregate-test-{uuid.uuid4().hex[:8]}@localhost"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "algocomp_aggregator.app:celery_app",
            "worker",
            "-Q",
            AGGREGATE_QUEUE,
            "-c",
            "1",
            "--loglevel",
            "INFO",
            "-n",
            nodename,
            "--without-gossip",
            "--without-mingle",
        ]
        return start_service(argv, _celery_ping(service_env, nodename))

    return start


def stored_cells(db_engine: Engine, sweep_id: str) -> list[dict[str, Any]]:
    with db_engine.connect() as connection:
        rows = (
            connection.execute(
                text(
                    "SELECT cell, overrides, metrics, effects, runs_done FROM sweep_cell_metrics "
                    "WHERE sweep_id = :id ORDER BY cell"
                ),
                {"id": sweep_id},
            )
            .mappings()
            .all()
        )
    return [dict(row) for row in rows]


def launch_sweep(api: httpx.Client, name: str, sessions: int, overrides: list[str], grid: dict[str, Any]) -> str:
    """The id of a new sweep of the Calvano baseline (seed 0)."""
    response = api.post(
        "/sweeps",
        json={
            "preset": "calvano-2020-baseline",
            "name": name,
            "sessions": sessions,
            "seeds": [0],
            "overrides": overrides,
            "grid": grid,
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def complete(db_engine: Engine, storage: Storage, sweep_id: str, cells: int) -> bool:
    """Every cell stored from its one succeeded run, and the sweep's files written."""
    rows = stored_cells(db_engine, sweep_id)
    return (
        len(rows) == cells
        and all(row["runs_done"] == 1 for row in rows)
        and storage.exists(sweep_key(sweep_id, "metrics_csv"))
    )


def test_the_aggregator_stores_sweep_metrics_writes_its_files_and_recomputes_them_after_a_restart(
    api: httpx.Client,
    db_engine: Engine,
    storage: Storage,
    service_env: Settings,
    worker_process: Any,
    start_aggregator: Callable[[], ServiceProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aggregator = start_aggregator()
    sweep_id = launch_sweep(api, "aggregation", 3, TINY_OVERRIDES, GRID)

    wait_until(
        lambda: complete(db_engine, storage, sweep_id, 4),
        "the sweep's stored metrics",
        WAIT_TIMEOUT_S,
        interval_s=0.5,
        detail=lambda: f"aggregator output:\n{aggregator.output()}",
    )
    sweep = api.get(f"/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded", sweep

    # the stored metrics are the library's, recomputed here from each run's own summary.json
    sessions = {
        cell["index"]: json.loads(storage.get_bytes(run_key(cell["run_ids"][0], "summary")))["sessions"]
        for cell in sweep["per_cell"]
    }
    rows = stored_cells(db_engine, sweep_id)
    assert [row["cell"] for row in rows] == [0, 1, 2, 3]
    assert [row["overrides"] for row in rows] == [cell["overrides"] for cell in sweep["per_cell"]]
    for row in rows:
        assert row["metrics"]["sessions"] == 3
        assert row["metrics"] == json.loads(json.dumps(cell_metrics(sessions[row["cell"]])))
    assert [row["effects"] is None for row in rows] == [True, False, True, False]
    for treated, control in ((1, 0), (3, 2)):
        effect = rows[treated]["effects"]
        assert effect["control_cell"] == control
        assert effect["effects"] == json.loads(json.dumps(paired_effects(sessions[treated], sessions[control])))

    # the API serves the same numbers (from the stored rows)
    served = api.get(f"/sweeps/{sweep_id}/metrics").json()["cells"]
    assert [cell["metrics"] for cell in served] == [row["metrics"] for row in rows]
    assert [cell["regulation_effect"] for cell in served] == [row["effects"] for row in rows]

    # the files on S3: one CSV and Parquet row per cell, a heatmap of Delta and the regulation effects
    table = list(csv.DictReader(io.StringIO(storage.get_bytes(sweep_key(sweep_id, "metrics_csv")).decode())))
    assert [row["cell"] for row in table] == ["0", "1", "2", "3"]
    assert [float(row["profit_gain_mean"]) for row in table] == pytest.approx(
        [row["metrics"]["profit_gain_mean"] for row in rows]
    )
    assert table[0]["effect_mean_price"] == "" and float(table[1]["effect_mean_price"]) == pytest.approx(
        rows[1]["effects"]["effects"]["mean_price"]["effect"]
    )
    frame = pd.read_parquet(io.BytesIO(storage.get_bytes(sweep_key(sweep_id, "metrics_parquet"))))
    assert list(frame["cell"]) == [0, 1, 2, 3]
    assert list(frame["profit_gain_mean"]) == pytest.approx([row["metrics"]["profit_gain_mean"] for row in rows])
    for name in ("delta_heatmap", "regulation_effects"):
        assert storage.get_bytes(sweep_key(sweep_id, name)).startswith(PNG_MAGIC), name

    # a restart that lost everything: the aggregator stops, its rows and files are deleted; a fresh aggregator
    # given one finished run of the sweep recomputes every cell from the runs' summaries, equal to before
    aggregator.stop()
    with db_engine.begin() as connection:
        connection.execute(text("DELETE FROM sweep_cell_metrics WHERE sweep_id = :id"), {"id": sweep_id})
    assert storage.delete_prefix(sweep_prefix(sweep_id)) == 4
    assert stored_cells(db_engine, sweep_id) == []
    restarted = start_aggregator()
    create_celery(service_env, name="algocomp-test-sender").send_task(
        RUN_FINISHED_TASK, args=[str(sweep["per_cell"][2]["run_ids"][0])], queue=AGGREGATE_QUEUE
    )
    wait_until(
        lambda: complete(db_engine, storage, sweep_id, 4),
        "the recomputed metrics",
        60,
        interval_s=0.5,
        detail=lambda: f"aggregator output:\n{restarted.output()}",
    )
    recomputed = stored_cells(db_engine, sweep_id)
    assert recomputed == rows
    assert storage.get_bytes(sweep_key(sweep_id, "delta_heatmap")).startswith(PNG_MAGIC)
    restarted.stop()

    # while a sweep is running and every cell has its row, a run's message recomputes only its cell and the
    # cells compared with it (cell 1 is cell 0 under the price cap), reading only their runs' summaries
    reads: list[str] = []

    class CountingStorage:
        def get_bytes(self, key: str) -> bytes:
            reads.append(key)
            return storage.get_bytes(key)

        def __getattr__(self, name: str) -> Any:
            return getattr(storage, name)

    run_of = {cell["index"]: cell["run_ids"][0] for cell in sweep["per_cell"]}
    monkeypatch.setattr(aggregator_tasks, "storage", lambda: CountingStorage())
    with db_engine.begin() as connection:  # the sweep is not over while a run of cell 3 runs
        connection.execute(text("UPDATE runs SET status = 'running' WHERE id = :id"), {"id": run_of[3]})
        connection.execute(text("UPDATE sweep_cell_metrics SET metrics = NULL WHERE sweep_id = :id"), {"id": sweep_id})
    try:
        outcome = aggregator_tasks.aggregate_sweep(db_engine, run_of[1])
        assert outcome is not None and outcome["over"] is False and outcome["cells"] == 2
        assert sorted(reads) == sorted(run_key(run_of[cell], "summary") for cell in (0, 1))
        partial = stored_cells(db_engine, sweep_id)
        assert partial[:2] == rows[:2]
        assert [row["metrics"] for row in partial[2:]] == [None, None]
    finally:
        with db_engine.begin() as connection:
            connection.execute(text("UPDATE runs SET status = 'succeeded' WHERE id = :id"), {"id": run_of[3]})
    # the sweep over again, any message recomputes every cell (repairing what a lost message missed)
    reads.clear()
    outcome = aggregator_tasks.aggregate_sweep(db_engine, run_of[1])
    assert outcome is not None and outcome["over"] is True and outcome["cells"] == 4
    assert sorted(reads) == sorted(run_key(run_of[cell], "summary") for cell in range(4))
    assert stored_cells(db_engine, sweep_id) == rows


# sessions of 20 million periods (about a second each): a cancel sent at once finds the run queued, or running
# with a session left, and stops it
LONG_SESSIONS = ["horizon.max_periods=20000000", "horizon.stop_at_convergence=false", "logging.interval=100000"]


def test_a_cancelled_run_of_a_sweep_retried_reopens_the_sweep_and_completes_its_metrics(
    api: httpx.Client,
    db_engine: Engine,
    storage: Storage,
    worker_process: Any,
    start_aggregator: Callable[[], ServiceProcess],
) -> None:
    aggregator = start_aggregator()
    sweep_id = launch_sweep(api, "retried cell", 2, LONG_SESSIONS, {"agents.alpha": [0.1, 0.15]})
    cells = api.get(f"/sweeps/{sweep_id}").json()["per_cell"]
    retried = cells[0]["run_ids"][0]
    assert api.post(f"/runs/{retried}/cancel").status_code in (200, 202)

    def sweep_over() -> bool:
        return api.get(f"/sweeps/{sweep_id}").json()["finished_at"] is not None

    wait_until(sweep_over, "the sweep's end with one run cancelled", WAIT_TIMEOUT_S, interval_s=0.5)
    assert api.get(f"/runs/{retried}").json()["status"] == "cancelled"
    assert api.get(f"/runs/{cells[1]['run_ids'][0]}").json()["status"] == "succeeded"
    assert [row["runs_done"] for row in stored_cells(db_engine, sweep_id) if row["cell"] == 0] in ([], [0])

    again = api.post(f"/runs/{retried}/retry")
    assert again.status_code == 202, again.text
    reopened = api.get(f"/sweeps/{sweep_id}").json()
    assert reopened["finished_at"] is None and reopened["status"] == "running", reopened

    wait_until(
        lambda: complete(db_engine, storage, sweep_id, 2),
        "both cells' metrics after the retry",
        WAIT_TIMEOUT_S,
        interval_s=0.5,
        detail=lambda: f"aggregator output:\n{aggregator.output()}",
    )
    wait_until(sweep_over, "the sweep's second end", WAIT_TIMEOUT_S, interval_s=0.5)
    sweep = api.get(f"/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded", sweep
    assert api.get(f"/runs/{retried}").json()["status"] == "succeeded"
    retried_cell = next(row for row in stored_cells(db_engine, sweep_id) if row["cell"] == 0)
    summary = json.loads(storage.get_bytes(run_key(retried, "summary")))["sessions"]
    assert retried_cell["metrics"] == json.loads(json.dumps(cell_metrics(summary)))
    assert retried_cell["metrics"]["sessions"] == 2

    # the sweep's files are written again after its second end, with the retried cell
    def retried_cell_in_csv() -> bool:
        table = list(csv.DictReader(io.StringIO(storage.get_bytes(sweep_key(sweep_id, "metrics_csv")).decode())))
        return [row["cell"] for row in table] == ["0", "1"] and table[0]["profit_gain_mean"] != ""

    wait_until(retried_cell_in_csv, "metrics.csv with the retried cell", 60, interval_s=0.5)
    table = list(csv.DictReader(io.StringIO(storage.get_bytes(sweep_key(sweep_id, "metrics_csv")).decode())))
    assert float(table[0]["profit_gain_mean"]) == pytest.approx(retried_cell["metrics"]["profit_gain_mean"])
