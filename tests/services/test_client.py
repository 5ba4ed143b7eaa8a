"""The Python client and the `algocomp` API subcommands against the real stack: an API process, a Celery worker
process, Postgres, Redis and an S3 endpoint (the fixtures of conftest.py), with runs small enough for seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from algocomp.client import ApiError, Client, parse_sse
from algocomp.client.api import MAX_STREAM_FAILURES
from algocomp.engine.experiment import run_experiment
from algocomp.engine.results import PANEL_COLUMNS
from algocomp.output import dumps_json
from algocomp.scenarios import load_scenario
from devstack import free_port

CLI_TIMEOUT_S = 180
WAIT_TIMEOUT_S = 180
# The Calvano baseline cut to seconds: two sessions of at most 20,000 periods, a panel row every 1,000.
TINY_OVERRIDES = ["horizon.max_periods=20000"]
TINY_LOG_INTERVAL = 1000
SUMMARY_KEYS = {
    "profit_gain",
    "profit_gain_sd",
    "mean_price",
    "consumer_surplus",
    "converged_share",
    "nash_price",
    "monopoly_price",
    "scenario_hash",
    "seed",
}


def algocomp(*args: str, api: str | None = None) -> subprocess.CompletedProcess[str]:
    """The `algocomp` command as a user runs it: a separate process, judged by exit code and output."""
    api_args = ["--api", api] if api else []
    return subprocess.run(
        [sys.executable, "-m", "algocomp.cli.main", *args, *api_args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


@pytest.fixture
def client(api_server: str) -> Client:
    with Client(api_server) as api:
        yield api


def test_round_trip_of_a_tiny_run(client: Client, worker_process: Any) -> None:
    scenario = client.create_scenario(preset="calvano-2020-baseline")
    assert uuid.UUID(str(scenario["id"]))
    assert client.get_scenario(scenario["id"])["scenario_hash"] == scenario["scenario_hash"]
    assert scenario["id"] in {record["id"] for record in client.list_scenarios()}

    accepted = client.launch_run(
        scenario_id=scenario["id"], seed=11, sessions=2, log_interval=TINY_LOG_INTERVAL, overrides=TINY_OVERRIDES
    )
    assert accepted["status"] == "queued"
    run_id = str(accepted["id"])

    progress_events: list[dict[str, Any]] = []
    final = client.wait(run_id, progress=progress_events.append, timeout=WAIT_TIMEOUT_S)

    assert final["status"] == "succeeded", final.get("error")
    assert final["sessions_done"] == 2
    assert progress_events, "the progress callback was never called"
    assert progress_events[-1]["sessions_total"] == 2
    done = [event["sessions_done"] for event in progress_events]
    assert done == sorted(done) and done[-1] == 2

    summary = client.results(run_id)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["seed"] == 11
    # The API serves exactly what the library computes for the same scenario and seed (timings aside).
    spec = client.get_run(run_id)["spec"]
    library = json.loads(dumps_json(run_experiment(load_scenario(spec), workers=1).summary))
    timing = {"elapsed_s", "periods_per_second"}
    assert {k: v for k, v in summary.items() if k not in timing} == {
        k: v for k, v in library.items() if k not in timing
    }

    panel = client.panel(run_id)
    assert isinstance(panel, pd.DataFrame)
    assert set(PANEL_COLUMNS) <= set(panel.columns)
    assert sorted(panel["session"].unique().tolist()) == [0, 1]

    sessions = client.sessions_frame(run_id)
    assert len(sessions) == 2
    assert "profit_gain" in sessions.columns
    assert sessions["profit_gain"].mean() == pytest.approx(summary["profit_gain"])

    scenario_file = json.loads(client.artifact(run_id, "scenario"))
    assert scenario_file["seed"] == 11 and scenario_file["sessions"] == 2

    assert run_id in {str(run["id"]) for run in client.list_runs(scenario_id=scenario["id"])}


def test_events_replay_in_order_and_resume_after_an_id(client: Client, worker_process: Any) -> None:
    run_id = str(
        client.launch_run(
            preset="calvano-2020-baseline",
            seed=12,
            sessions=2,
            log_interval=TINY_LOG_INTERVAL,
            overrides=TINY_OVERRIDES,
        )["id"]
    )
    assert client.wait(run_id, timeout=WAIT_TIMEOUT_S)["status"] == "succeeded"

    # The run is over: the stream replays everything, from queued to the terminal event, then ends.
    events = list(client.events(run_id))
    names = [name for _, name, _ in events]
    assert names[0] == "queued" and names[-1] == "succeeded"
    assert "started" in names and "progress" in names
    ids = [event_id for event_id, _, _ in events]
    assert all(ids) and len(set(ids)) == len(ids)

    # Resuming after an event hands out exactly the events that followed it.
    middle = len(events) // 2
    assert list(client.events(run_id, last_event_id=ids[middle])) == events[middle + 1 :]


class DroppingTransport(httpx.HTTPTransport):
    """The real HTTP transport, except that the first `drops` event streams break mid-event (as a dropped
    connection does): after the first complete event and a few bytes of the next, reading raises ReadError
    (with before_first_event, at once). Records the Last-Event-ID header of every stream request."""

    def __init__(self, drops: int, *, before_first_event: bool = False) -> None:
        super().__init__()
        self.drops = drops
        self.before_first_event = before_first_event
        self.stream_requests: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.startswith("/streams/"):
            return response
        self.stream_requests.append(request.headers.get("Last-Event-ID"))
        if self.drops <= 0:
            return response
        self.drops -= 1
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_BrokenStream(response.stream, self.before_first_event),
            request=request,
        )


class _BrokenStream(httpx.SyncByteStream):
    def __init__(self, upstream: Any, before_first_event: bool) -> None:
        self.upstream = upstream
        self.before_first_event = before_first_event

    def __iter__(self) -> Iterator[bytes]:
        if self.before_first_event:
            raise httpx.ReadError("connection reset by the test before any event")
        received = b""
        for chunk in self.upstream:
            received += chunk
            ends = [received.find(separator) for separator in (b"\r\n\r\n", b"\n\n")]
            ends = [end for end in ends if end >= 0]
            if ends and len(received) > min(ends) + 12:
                yield received[: min(ends) + 12]  # one whole event, then a torn piece of the next
                raise httpx.ReadError("connection reset by the test")
        yield received

    def close(self) -> None:
        self.upstream.close()


def test_events_resume_after_dropped_connections_without_loss_or_repeats(api_server: str, worker_process: Any) -> None:
    with Client(api_server) as api:
        run_id = str(
            api.launch_run(
                preset="calvano-2020-baseline",
                seed=15,
                sessions=2,
                log_interval=TINY_LOG_INTERVAL,
                overrides=TINY_OVERRIDES,
            )["id"]
        )
        assert api.wait(run_id, timeout=WAIT_TIMEOUT_S)["status"] == "succeeded"
        reference = list(api.events(run_id))
    assert len(reference) >= 4

    transport = DroppingTransport(drops=2)
    with Client(api_server, transport=transport) as flaky:
        resumed = list(flaky.events(run_id))
    assert resumed == reference
    # Three connections: the first from the start, the others after the last event each one delivered.
    assert transport.stream_requests == [None, reference[0][0], reference[1][0]]


def test_wait_falls_back_to_polling_when_the_stream_keeps_failing(api_server: str, worker_process: Any) -> None:
    transport = DroppingTransport(drops=10**6, before_first_event=True)
    progress_events: list[dict[str, Any]] = []
    with Client(api_server, transport=transport) as flaky:
        run_id = str(
            flaky.launch_run(
                preset="calvano-2020-baseline",
                seed=16,
                sessions=2,
                log_interval=TINY_LOG_INTERVAL,
                overrides=TINY_OVERRIDES,
            )["id"]
        )
        final = flaky.wait(run_id, progress=progress_events.append, timeout=WAIT_TIMEOUT_S, poll_interval=0.05)
    assert final["status"] == "succeeded"
    assert final["sessions_done"] == 2
    # It tried the stream until it gave up, always from the start (no event ever arrived), then polled.
    assert transport.stream_requests == [None] * MAX_STREAM_FAILURES
    assert all(event["sessions_total"] == 2 for event in progress_events)


def test_a_bad_scenario_raises_api_error_naming_the_field(client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        client.create_scenario({"name": "broken", "market": {"n_firms": "many"}})
    assert refused.value.status == 422
    assert refused.value.field is not None and "n_firms" in refused.value.field
    assert "n_firms" in str(refused.value)

    with pytest.raises(ApiError) as unknown:
        client.get_run(str(uuid.uuid4()))
    assert unknown.value.status == 404


def test_cli_launch_follow_then_results_and_panel(api_server: str, worker_process: Any, tmp_path: Path) -> None:
    launched = algocomp(
        "runs",
        "launch",
        "calvano-2020-baseline",
        "--seed",
        "13",
        "--sessions",
        "2",
        "--log-interval",
        str(TINY_LOG_INTERVAL),
        *[part for override in TINY_OVERRIDES for part in ("--set", override)],
        "--follow",
        api=api_server,
    )
    assert launched.returncode == 0, launched.stderr
    run_id = launched.stdout.split()[0]
    assert uuid.UUID(run_id)
    assert "Traceback" not in launched.stderr

    results = algocomp("results", run_id, "--json", api=api_server)
    assert results.returncode == 0, results.stderr
    summary = json.loads(results.stdout)
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["seed"] == 13

    with Client(api_server) as api:
        assert summary == api.results(run_id)

    out = tmp_path / "panel.parquet"
    panel = algocomp("panel", run_id, "--out", str(out), api=api_server)
    assert panel.returncode == 0, panel.stderr
    assert set(PANEL_COLUMNS) <= set(pd.read_parquet(out).columns)

    shown = algocomp("runs", "show", run_id, "--json", api=api_server)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "succeeded"


def test_cli_cancel_stops_a_run_and_follow_says_so(api_server: str, worker_process: Any) -> None:
    with Client(api_server) as api:
        # Long enough (full horizon, many sessions) that it cannot end before the cancellation reaches it.
        run_id = str(api.launch_run(preset="calvano-2020-baseline", seed=14, sessions=200)["id"])
        cancelled = algocomp("runs", "cancel", run_id, api=api_server)
        assert cancelled.returncode == 0, cancelled.stderr
        assert run_id in cancelled.stdout

        followed = algocomp("runs", "follow", run_id, api=api_server)
        assert followed.returncode == 1
        assert f"run {run_id} cancelled" in followed.stderr

        final = api.get_run(run_id)
        assert final["status"] == "cancelled"
        assert final["sessions_done"] < 200
        with pytest.raises(ApiError) as no_results:
            api.results(run_id)
        assert no_results.value.status == 409

    again = algocomp("runs", "cancel", run_id, api=api_server)
    assert again.returncode == 2 and "Traceback" not in again.stderr


def test_cli_reports_api_refusals_on_one_line(api_server: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\nmarket:\n  n_firms: many\n")
    refused = algocomp("runs", "launch", str(bad), api=api_server)
    assert refused.returncode == 2
    assert refused.stderr.startswith("algocomp: error: ") and "n_firms" in refused.stderr
    assert "Traceback" not in refused.stderr

    unknown = algocomp("runs", "show", str(uuid.uuid4()), api=api_server)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


def test_cli_without_an_api_exits_2_with_a_hint() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = algocomp("runs", "list", api=url)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"algocomp: error: cannot reach the algocomp API at {url}: is the stack running? (make dev)"
    )
    assert result.stdout == ""


def test_sse_parser_follows_the_specification() -> None:
    text = (
        'retry: 1500\r\n: keep-alive\r\nid: 1-0\r\nevent: progress\r\ndata: {"a":\r\ndata:  1}\r\n\r\n'
        "data: plain\n\nid: 2-0\n\n"
    )
    messages = list(parse_sse(iter(text.splitlines())))
    assert [(m.id, m.event, m.data, m.retry_ms) for m in messages] == [
        ("1-0", "progress", '{"a":\n 1}', 1500),
        (None, "message", "plain", None),
        ("2-0", None, "", None),
    ]
