"""Sweeps and per-run aggregates through the Python client and the `algocomp` command line, against the real
stack: the API process, a Celery worker, the aggregator process, Postgres, Redis and an S3 endpoint.

One tiny sweep (2 cells x 1 seed, two sessions of at most 20,000 periods) is shared by the module: the client
launches and follows it, GET /aggregates must list its runs once the aggregator has recorded them, and the CLI
writes both CSV files. A second, CLI-launched sweep of the same size checks `algocomp sweep` end to end.

The run worker and the aggregator are this module's own processes, stopped when it ends: the session-wide
`worker_process` would otherwise, started this early in the session, pick up the runs that test_api's stream
tests queue and publish events of their own (those tests rely on no worker running yet).
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from algocomp.client import Client
from algocomp.platform.settings import Settings

from .conftest import WORKER_QUEUES, ServiceProcess, _celery_worker, api_get, wait_until

TINY_OVERRIDES = ["horizon.max_periods=20000", "logging.interval=1000"]
PRICE_CAP = {"basis": "absolute", "value": 1.75}
WAIT_TIMEOUT_S = 120
AGGREGATOR_WAIT_S = 20
CLI_TIMEOUT_S = 150


def algocomp(*args: str, api: str) -> subprocess.CompletedProcess[str]:
    """The `algocomp` command as a user runs it: a separate process, judged by exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args, "--api", api],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[Client]:
    with Client(api_server) as api:
        yield api


@pytest.fixture(scope="module")
def run_worker(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A run worker (2 processes) for this module only."""
    yield from _celery_worker(
        service_env,
        "algocomp_worker.app:celery_app",
        WORKER_QUEUES,
        2,
        "runs",
        tmp_path_factory.mktemp("aggregates-cli-worker"),
    )


@pytest.fixture(scope="module")
def aggregator(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The aggregator for this module only."""
    yield from _celery_worker(
        service_env,
        "algocomp_aggregator.app:celery_app",
        "aggregate",
        1,
        "aggregate",
        tmp_path_factory.mktemp("aggregates-cli-aggregator"),
    )


@pytest.fixture(scope="module")
def finished_sweep(client: Client, run_worker: ServiceProcess, aggregator: ServiceProcess) -> dict[str, Any]:
    """A 2x1 sweep (unregulated, price-capped) of the tiny baseline, launched and followed by the client."""
    accepted = client.create_sweep(
        preset="calvano-2020-baseline",
        grid={"regulation.price_cap": [None, PRICE_CAP]},
        seeds=[0],
        sessions=2,
        overrides=TINY_OVERRIDES,
        name="aggregates-cli-test",
    )
    assert accepted["cells"] == 2 and accepted["runs"] == 2
    events: list[dict[str, Any]] = []
    sweep = client.wait_sweep(str(accepted["id"]), progress=events.append, timeout=WAIT_TIMEOUT_S)
    assert sweep["status"] == "succeeded", sweep
    assert events and events[-1]["status"] == "succeeded"
    return sweep


def wait_for_aggregates(api_server: str, sweep_id: str, expected: int) -> dict[str, Any]:
    """GET /aggregates?sweep_id= until the aggregator has recorded `expected` runs (it works asynchronously)."""

    def recorded() -> dict[str, Any] | None:
        page = api_get(f"{api_server}/aggregates", params={"sweep_id": sweep_id}, timeout=10).json()
        return page if page["total"] >= expected else None

    return wait_until(recorded, f"the aggregator to record {expected} runs", AGGREGATOR_WAIT_S, interval_s=0.5)


def test_client_sweep_metrics_frame(client: Client, finished_sweep: dict[str, Any]) -> None:
    frame = client.sweep_metrics(str(finished_sweep["id"]))
    assert list(frame["cell"]) == [0, 1]
    assert list(frame["runs_succeeded"]) == [1, 1]
    assert frame["profit_gain_mean"].notna().all()
    assert (frame["profit_gain_mean_low"] <= frame["profit_gain_mean"]).all()
    # the capped cell carries its paired effect against the unregulated one; the control has none
    assert frame.loc[1, "control_cell"] == 0
    assert frame.loc[0, "effect_mean_price"] != frame.loc[0, "effect_mean_price"]  # NaN
    assert frame.loc[1, "effect_mean_price_pairs"] == 2
    assert client.get_sweep(str(finished_sweep["id"]))["id"] == finished_sweep["id"]
    assert str(finished_sweep["id"]) in {str(s["id"]) for s in client.list_sweeps()}


def test_aggregates_list_the_sweep_runs(api_server: str, client: Client, finished_sweep: dict[str, Any]) -> None:
    sweep_id = str(finished_sweep["id"])
    page = wait_for_aggregates(api_server, sweep_id, 2)
    run_ids = {str(run_id) for cell in finished_sweep["per_cell"] for run_id in cell["run_ids"]}
    assert {row["run_id"] for row in page["items"]} == run_ids
    assert {row["cell"] for row in page["items"]} == {0, 1}
    assert all(row["sweep_id"] == sweep_id and row["status"] == "succeeded" for row in page["items"])
    assert all(row["sessions"] == 2 and row["profit_gain"] is not None for row in page["items"])

    one = api_get(f"{api_server}/aggregates", params={"sweep_id": sweep_id, "limit": 1, "offset": 1}).json()
    assert one["total"] == 2 and len(one["items"]) == 1 and one["items"][0]["cell"] == 1
    hashes = {row["scenario_hash"] for row in page["items"]}
    by_hash = api_get(f"{api_server}/aggregates", params={"scenario_hash": hashes.pop()}).json()
    assert by_hash["total"] >= 1
    assert api_get(f"{api_server}/aggregates", params={"sweep_id": sweep_id, "status": "failed"}).json()["total"] == 0

    response = api_get(f"{api_server}/aggregates", params={"sweep_id": sweep_id}, headers={"Accept": "text/csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {row["run_id"] for row in rows} == run_ids and response.headers["X-Total-Count"] == "2"

    frame = client.aggregates(sweep_id=sweep_id, page_size=1)  # two pages
    assert sorted(frame["run_id"]) == sorted(run_ids)

    bad = api_get(f"{api_server}/aggregates", params={"sweep_id": "not-a-uuid"})
    assert bad.status_code == 422 and "error" in bad.json()


def test_cli_aggregate_writes_one_row_per_run(api_server: str, finished_sweep: dict[str, Any], tmp_path: Path) -> None:
    sweep_id = str(finished_sweep["id"])
    wait_for_aggregates(api_server, sweep_id, 2)
    out = tmp_path / "metrics.csv"
    done = algocomp("aggregate", "--sweep", sweep_id, "--out", str(out), api=api_server)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and {row["sweep_id"] for row in rows} == {sweep_id}
    assert {"profit_gain", "price_index", "converged_share"} <= set(rows[0])


def test_cli_sweep_writes_results_per_cell(api_server: str, run_worker: ServiceProcess, tmp_path: Path) -> None:
    out = tmp_path / "sweep_results.csv"
    done = algocomp(
        "sweep",
        "calvano-2020-baseline",
        "--grid",
        "agents.alpha=0.1,0.15",
        "--seeds",
        "1",
        "--sessions",
        "2",
        *(arg for override in TINY_OVERRIDES for arg in ("--set", override)),
        "--out",
        str(out),
        api=api_server,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert [row["agents.alpha"] for row in rows] == ["0.1", "0.15"]
    assert all(row["profit_gain_mean"] for row in rows)
    assert "Delta mean" in done.stdout and "agents.alpha=0.15" in done.stdout
    # off a terminal, one progress line per cell as it ends
    assert "cell 0 [" in done.stderr and "cell 1 [" in done.stderr


def test_cli_sweep_bad_grid_path_exits_2_naming_the_field(api_server: str) -> None:
    done = algocomp("sweep", "calvano-2020-baseline", "--grid", "agents.no_such_field=1,2", api=api_server)
    assert done.returncode == 2
    assert "agents.no_such_field" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    malformed = algocomp("sweep", "calvano-2020-baseline", "--grid", "agents.alpha", api=api_server)
    assert malformed.returncode == 2 and "PATH=V1,V2" in malformed.stderr


def test_cli_sweep_flow_list_values() -> None:
    from algocomp.cli.remote import RemoteUsageError, parse_grid

    grid = parse_grid(["regulation.price_cap=[null, {value: 1.75}]", "agents.alpha=0.05, 0.1"])
    assert grid == {"regulation.price_cap": [None, {"value": 1.75}], "agents.alpha": [0.05, 0.1]}
    with pytest.raises(RemoteUsageError):
        parse_grid(["agents.alpha=0.1", "agents.alpha=0.2"])
