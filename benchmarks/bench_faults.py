"""Fault scenarios of issue 11 (`make bench-faults`): each fault injected while a 30-run sweep executes, then the
outcome checked against the database and the S3 folder.

    python benchmarks/bench_faults.py [--scenarios worker-kill,api-kill,s3-down,redis-down,beat-kill,s3-beyond]
                                      [--injections 5] [--runs 30] [--periods-per-s N]

It starts a stack of its own, isolated from `make dev` and from the machine's shared Redis: a fresh database
(created, migrated, dropped at the end) on the local Postgres, its own redis-server (append-only file, so a stop
and restart keeps the queues, as a deployed Redis would) and its own `rclone serve s3` on free ports and
temporary folders, the API (uvicorn), a run worker (2 processes), the aggregator and Celery beat. MLflow is not
started (tracking off; each succeeded run's plots are asked for through the API at the end, which has them
drawn, and the S3 check counts them). Every address is
127.0.0.1, every port a free one. Settings: the defaults (heartbeat 5 s, lease 30 s) except that the sweeper runs
every 3 s (beat counts as missing after 8 s) and re-sends runs queued for 30 s (default 300 s), so a lost
enqueue is recovered within a scenario.

Scenarios (each stops by itself; the sweep is 30 runs of the Calvano baseline, 1 session, a short horizon):
  worker-kill  SIGKILL of the pool process running a run; that run must succeed within 120 s of the kill
  api-kill     SIGKILL of the API (restarted on its port) during a burst of keyed POST /runs; clients retry with
               the same Idempotency-Key until answered: exactly one run per key, each run executed
  s3-down      the S3 server stopped for 30 s, restarted on the same port and folder
  redis-down   our Redis stopped for 13 s, restarted on the same port and data folder
  beat-kill    SIGKILL of beat together with the whole worker node (so its run is stale: only the sweeper can
               re-send it); /readyz must report beat missing; beat restarted, the stale run must succeed
  s3-beyond    S3 down longer than the retry budget (--long-outage-s): the runs it hits end `failed` naming S3,
               and retrying them (POST /runs/{id}/retry) succeeds

Invariants per run of a scenario (except where s3-beyond expects `failed`): status `succeeded`, exactly one
`results` row, exactly one `run_metrics` row (the aggregator's), its S3 folder `runs/{id}/` with every artifact
the result lists plus the two plots, no second `succeeded` event in its Redis stream, and no duplicate run (two
runs of one sweep cell and seed, or of one Idempotency-Key). Prints one table row per scenario; exits 1 when an
invariant fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from algocomp.platform.queue import WORKER_QUEUES  # noqa: E402
from algocomp.platform.settings import Settings  # noqa: E402
from devstack import (  # noqa: E402 - tools/ is not a package: its path is added just above
    AGGREGATOR_APP,
    API_GRACEFUL_SHUTDOWN_S,
    REPO_ROOT,
    WORKER_APP,
    _beat_ticked,
    _celery_ping,
    child_environment,
    ensure_postgres_server,
    free_port,
    migrate,
    port_open,
    rclone_s3_argv,
    rclone_s3_env,
    spawn,
    stop_group,
    wait_for,
    wait_until_ready,
)

T = TypeVar("T")
HOST = "127.0.0.1"
ADMIN_URL = os.environ.get(
    "ALGOCOMP_BENCH_POSTGRES_URL", f"postgresql://algocomp_bench:{secrets.token_urlsafe(18)}@127.0.0.1:5432/postgres"
)
PRESET = "calvano-2020-baseline"
SCENARIOS = ("worker-kill", "api-kill", "s3-down", "redis-down", "beat-kill", "s3-beyond")
WORKER_KILL_LIMIT_S = 120.0
START_TIMEOUT_S = 120.0
TERMINAL = ("succeeded", "failed", "cancelled")
# what every succeeded run's folder holds once its plots were asked for (drawn on first request)
PLOTS = ("plots/prices.png", "plots/impulse.png")
PLOT_ARTIFACTS = ("prices_plot", "impulse_plot")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def say(message: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------------------ processes


class Proc:
    """A child process of the harness in its own process group, its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> float:
        """Start and wait until `ready()`; returns the seconds it took."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} start\n".encode())
            log.flush()
            self.popen = spawn(self.argv, log, self.env)
        failed = wait_until_ready(self.popen, ready, timeout_s, interval_s=0.2)
        if failed is not None:
            raise RuntimeError(f"{self.name} {failed}; see {self.log_path}")
        return time.monotonic() - started

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker's pool processes with it)."""
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the group, SIGKILL it after `grace_s`."""
        if self.popen is None:
            return
        stop_group(self.popen.pid, grace_s if self.alive() else 0.0, lambda: not self.alive())
        self.popen.wait(timeout=10)

    def children(self) -> set[int]:
        """Pids whose parent is this process (a Celery worker's pool processes)."""
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if self.popen is not None and int(fields[1]) == self.popen.pid:
                found.add(int(stat.parent.name))
        return found


class Stack:
    """The isolated stack: Postgres database, Redis, S3, API, worker, aggregator, beat."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="algocomp-faults-"))
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir()
        token = uuid.uuid4().hex[:10]
        self.database = f"algocomp_faults_{token}"
        admin = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
        password = f":{admin['password']}" if admin.get("password") else ""
        self.database_url = (
            f"postgresql+psycopg://{admin.get('user', 'postgres')}{password}@{admin.get('host', HOST)}:"
            f"{admin.get('port', 5432)}/{self.database}"
        )
        self.redis_port, self.s3_port, self.api_port = free_port(), free_port(), free_port()
        self.s3_folder = self.root / "s3"
        self.redis_dir = self.root / "redis"
        self.settings = Settings(
            environment="test",
            database_url=self.database_url,
            redis_url=f"redis://{HOST}:{self.redis_port}/0",
            key_prefix="algocomp-faults:",
            s3_endpoint_url=f"http://{HOST}:{self.s3_port}",
            s3_bucket="algocomp-faults",
            s3_access_key="algocomp-faults",
            s3_secret_key=f"algocomp-faults-{secrets.token_urlsafe(24)}",
            s3_region="us-east-1",
            mlflow_tracking_uri="",
            requeue_after_s=30,
            sweep_interval_s=3.0,
            beat_max_age_s=8.0,
        )
        self.env = child_environment(self.settings)
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT / part) for part in ("shared", "services/api", "services/worker", "services/aggregator")]
            + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        )
        self.api_url = f"http://{HOST}:{self.api_port}"
        self.token = ""
        self.worker_node = f"faults-runs-{token}@{socket.gethostname()}"
        python = sys.executable
        self.redis = Proc(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--bind",
                HOST,
                "--port",
                str(self.redis_port),
                "--dir",
                str(self.redis_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            dict(os.environ),
            self.log_dir,
        )
        self.s3 = Proc(
            "s3",
            rclone_s3_argv(self.s3_folder, self.s3_port),
            {
                **os.environ,
                **rclone_s3_env(self.settings.s3_access_key, self.settings.s3_secret_key.get_secret_value()),
            },
            self.log_dir,
        )
        self.api = Proc(
            "api",
            [python, "-m", "uvicorn", "algocomp_api.main:app", "--host", HOST, "--port", str(self.api_port)]
            + ["--timeout-graceful-shutdown", str(API_GRACEFUL_SHUTDOWN_S)],
            self.env,
            self.log_dir,
        )
        celery = [python, "-m", "celery", "-A"]
        quiet = ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        self.worker = Proc(
            "worker",
            celery + [WORKER_APP, "worker", "-Q", WORKER_QUEUES, "-c", "2", "-n", self.worker_node] + quiet,
            self.env,
            self.log_dir,
        )
        self.aggregator_node = f"faults-aggregate-{token}@{socket.gethostname()}"
        self.aggregator = Proc(
            "aggregator",
            celery + [AGGREGATOR_APP, "worker", "-Q", "aggregate", "-c", "1", "-n", self.aggregator_node] + quiet,
            self.env,
            self.log_dir,
        )
        self.beat = Proc(
            "beat",
            celery + [WORKER_APP, "beat", "--loglevel", "INFO", "--schedule", str(self.root / "celerybeat-schedule")],
            self.env,
            self.log_dir,
        )
        self.processes = [self.redis, self.s3, self.api, self.worker, self.aggregator, self.beat]

    # ----------------------------------------------------------------------------------------- up and down

    def up(self) -> None:
        ensure_postgres_server(ADMIN_URL, setting="ALGOCOMP_BENCH_POSTGRES_URL")
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        migrate(self.database_url)
        self.token = self._create_user()
        self.redis_dir.mkdir()
        (self.s3_folder / self.settings.s3_bucket).mkdir(parents=True)
        self.start_redis()
        self.start_s3()
        self.start_api()
        self.start_worker()
        self.aggregator.start(_celery_ping(self.settings, self.aggregator_node))
        self.start_beat()
        say(
            f"stack up in {self.root}: API {self.api_url}, Redis :{self.redis_port}, S3 :{self.s3_port}, "
            f"database {self.database}"
        )

    def down(self) -> None:
        for process in reversed(self.processes):
            process.stop(grace_s=10)
        try:
            with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except psycopg.Error as error:
            say(f"could not drop database {self.database}: {error}")

    def _create_user(self) -> str:
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session

        from algocomp.platform.db.accounts import AccountRepository

        engine = create_engine(self.database_url)
        try:
            with Session(engine) as session, session.begin():
                _, token = AccountRepository(session).create_user("faults", "faults", admin=True)
        finally:
            engine.dispose()
        return token

    def start_redis(self) -> float:
        return self.redis.start(lambda: port_open(self.redis_port), 30)

    def start_s3(self) -> float:
        return self.s3.start(lambda: port_open(self.s3_port), 30)

    def start_api(self) -> float:
        return self.api.start(lambda: httpx.get(f"{self.api_url}/healthz", timeout=1.0).status_code == 200)

    def start_worker(self) -> float:
        return self.worker.start(_celery_ping(self.settings, self.worker_node))

    def start_beat(self) -> float:
        return self.beat.start(_beat_ticked(self.settings))

    def ensure_running(self) -> None:
        """Between scenarios: every process alive (a scenario leaves them so, but check)."""
        starters = {
            "redis": self.start_redis,
            "s3": self.start_s3,
            "api": self.start_api,
            "worker": self.start_worker,
            "aggregator": lambda: self.aggregator.start(_celery_ping(self.settings, self.aggregator_node)),
            "beat": self.start_beat,
        }
        for process in self.processes:
            if not process.alive():
                say(f"{process.name} was not running; restarting it")
                starters[process.name]()

    # ------------------------------------------------------------------------------------------ reading

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url.replace("+psycopg", ""), connect_timeout=5) as connection:
            return list(connection.execute(query, params).fetchall())

    def http(self, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout_s)

    def run_folder(self, run_id: str) -> Path:
        return self.s3_folder / self.settings.s3_bucket / "runs" / run_id

    def succeeded_events(self, run_id: str) -> int | None:
        """How many `succeeded` events the run's Redis stream holds (None when Redis does not answer)."""
        client = redis.Redis(host=HOST, port=self.redis_port, socket_timeout=5, socket_connect_timeout=5)
        try:
            entries = client.xrange(f"{self.settings.key_prefix}run:{run_id}:events")
        except redis.RedisError:
            return None
        finally:
            client.close()
        return sum(1 for _, fields in entries if fields.get(b"event") == b"succeeded")


# ----------------------------------------------------------------------------------------------- requests


def post_until_answered(
    stack: Stack, path: str, body: dict[str, Any], key: str, deadline_s: float = 120.0
) -> tuple[dict[str, Any], int]:
    """POST with an Idempotency-Key, repeated with that key after a connection error, a 5xx or a 409, until a
    2xx answer (or `deadline_s`). Returns (answer, requests made)."""
    requests = 0
    stop = time.monotonic() + deadline_s
    with stack.http() as client:
        while True:
            requests += 1
            try:
                response = client.post(path, json=body, headers={"Idempotency-Key": key})
                if response.is_success:
                    return response.json(), requests
                if response.status_code < 500 and response.status_code != 409:
                    raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
            except httpx.HTTPError:
                pass
            if time.monotonic() > stop:
                raise RuntimeError(f"POST {path} with key {key} unanswered after {deadline_s:.0f} s")
            time.sleep(0.5)


def launch_sweep(stack: Stack, runs: int, periods: int) -> tuple[str, list[str]]:
    body = {
        "preset": PRESET,
        "name": f"faults-{uuid.uuid4().hex[:6]}",
        "grid": {"horizon.max_periods": [periods]},
        "seeds_per_cell": runs,
        "sessions": 1,
        "overrides": ["horizon.stop_at_convergence=false"],
    }
    answer, _ = post_until_answered(stack, "/sweeps", body, f"sweep-{uuid.uuid4()}")
    sweep_id = str(answer["id"])
    run_ids = [str(row[0]) for row in stack.sql("SELECT id FROM runs WHERE sweep_id = %s", sweep_id)]
    return sweep_id, run_ids


def statuses(stack: Stack, run_ids: list[str]) -> dict[str, str]:
    rows = stack.sql("SELECT id::text, status::text FROM runs WHERE id = ANY(%s::uuid[])", run_ids)
    return {run_id: status for run_id, status in rows}


def poll(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 0.2) -> T | None:
    """The first true value `probe()` returns within `timeout_s`, or None."""
    stop = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > stop:
            return None
        time.sleep(interval_s)


def wait_terminal(stack: Stack, run_ids: list[str], timeout_s: float) -> bool:
    """Until every run is terminal (True) or `timeout_s` passes (False)."""
    return wait_for(lambda: all(s in TERMINAL for s in statuses(stack, run_ids).values()), timeout_s, 1.0)


def first_success_after(stack: Stack, run_ids: list[str], since: float, timeout_s: float) -> float | None:
    """Seconds from `since` (time.time()) until some run of `run_ids` finished `succeeded` after it; None if none
    did within `timeout_s` (or none was left to do)."""
    stop = time.monotonic() + timeout_s
    while time.monotonic() < stop:
        rows = stack.sql(
            "SELECT min(extract(epoch FROM finished_at)) FROM runs WHERE id = ANY(%s::uuid[]) "
            "AND status = 'succeeded' AND finished_at > to_timestamp(%s)",
            run_ids,
            since,
        )
        if rows and rows[0][0] is not None:
            return float(rows[0][0]) - since
        if all(s in TERMINAL for s in statuses(stack, run_ids).values()):
            return None
        time.sleep(0.5)
    return None


# ------------------------------------------------------------------------------------------------- checks


@dataclass
class Outcome:
    name: str
    planned: int = 0
    injections: int = 0
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    duplicates: int = 0
    recoveries: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def check_runs(stack: Stack, outcome: Outcome, run_ids: list[str], expect_failed: Collection[str] = ()) -> None:
    """The per-run invariants (module docstring) on `run_ids`; runs in `expect_failed` must be `failed` instead.
    The plots of succeeded runs are asked for first, as a client would (they are drawn on first request)."""
    ask_for_plots(stack, outcome, run_ids)
    rows = stack.sql(
        "SELECT r.id::text, r.status::text, r.error, "
        "(SELECT count(*) FROM results s WHERE s.run_id = r.id), "
        "(SELECT count(*) FROM run_metrics m WHERE m.run_id = r.id), "
        "(SELECT s.artifacts FROM results s WHERE s.run_id = r.id) "
        "FROM runs r WHERE r.id = ANY(%s::uuid[])",
        run_ids,
    )
    outcome.runs += len(rows)
    missing_metrics, missing_files, bad_status, no_result = [], [], [], []
    for run_id, status, error, results, metrics, artifacts in rows:
        if status == "succeeded":
            outcome.succeeded += 1
        elif status == "failed":
            outcome.failed += 1
        wanted = "failed" if run_id in expect_failed else "succeeded"
        if status != wanted:
            bad_status.append(f"{run_id[:8]} {status}" + (f" ({(error or '')[:120]})" if error else ""))
            continue
        if metrics != 1:
            missing_metrics.append(f"{run_id[:8]} ({metrics} rows)")
        if wanted == "failed":
            continue
        if results != 1:
            no_result.append(run_id[:8])
        folder = stack.run_folder(run_id)
        expected = [key.split(f"runs/{run_id}/", 1)[-1] for key in (artifacts or {}).values()] + list(PLOTS)
        absent = [name for name in dict.fromkeys(expected) if not (folder / name).is_file()]
        if absent:
            missing_files.append(f"{run_id[:8]} lacks {', '.join(absent)}")
        events = stack.succeeded_events(run_id)
        if events is not None and events > 1:
            outcome.duplicates += 1
            outcome.problems.append(f"run {run_id[:8]} has {events} `succeeded` events")
    if len(rows) != len(run_ids):
        outcome.problems.append(f"{len(run_ids) - len(rows)} runs missing from the database")
    for label, items in (
        ("not in the expected status", bad_status),
        ("without a result row", no_result),
        ("without exactly one run_metrics row", missing_metrics),
        ("with an incomplete S3 folder", missing_files),
    ):
        if items:
            shown = "; ".join(items[:4]) + (f"; ... ({len(items)} in all)" if len(items) > 4 else "")
            outcome.problems.append(f"{len(items)} runs {label}: {shown}")


def check_sweep_duplicates(stack: Stack, outcome: Outcome, sweep_id: str, expected_runs: int) -> None:
    rows = stack.sql("SELECT count(*), count(DISTINCT (cell, spec->>'seed')) FROM runs WHERE sweep_id = %s", sweep_id)
    total, distinct = rows[0]
    if total != distinct or total != expected_runs:
        outcome.duplicates += total - distinct
        outcome.problems.append(f"sweep has {total} runs for {distinct} distinct cells x seeds ({expected_runs} asked)")


# ---------------------------------------------------------------------------------------------- scenarios


@dataclass
class Options:
    runs: int
    injections: int
    periods_per_s: float  # of one session of a bench run on this machine (calibrate())
    settle_s: float
    s3_down_s: float
    redis_down_s: float
    long_outage_s: float

    def periods(self, run_s: float) -> int:
        """horizon.max_periods of a run that takes about `run_s` seconds of simulation here."""
        return max(100_000, int(self.periods_per_s * run_s))


def calibrate(periods: int = 8_000_000) -> float:
    """Periods per second of one session shaped like the bench's runs (the baseline, stop_at_convergence off), timed
    in this process: the scenarios size their runs in seconds, so that on a faster machine the sweeps still last
    through every fault (with fixed horizons, a sweep ended after two of five S3 outages on a fast machine)."""
    from algocomp.engine.experiment import run_experiment
    from algocomp.scenarios import apply_overrides, load_scenario

    scenario = apply_overrides(
        load_scenario(PRESET),
        ["sessions=1", f"horizon.max_periods={periods}", "horizon.stop_at_convergence=false"],
    )
    run_experiment(apply_overrides(scenario, ["horizon.max_periods=10000"]), workers=1)  # compiled code loaded
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        run_experiment(scenario, workers=1)
        timings.append(time.perf_counter() - started)
    rate = periods / sorted(timings)[1]
    say(f"calibrated: a run's session simulates {rate / 1e6:.1f} M periods/s here")
    return rate


def finish_sweep(stack: Stack, outcome: Outcome, sweep_id: str, run_ids: list[str], options: Options) -> None:
    if not wait_terminal(stack, run_ids, options.settle_s):
        left = [run_id[:8] for run_id, s in statuses(stack, run_ids).items() if s not in TERMINAL]
        outcome.problems.append(f"{len(left)} runs not finished {options.settle_s:.0f} s after the last fault")
    # the aggregator's row comes after the run's terminal status; the plots are drawn when first asked for
    wait_for(lambda: _follow_ups_done(stack, run_ids), 60, 1.0)
    check_sweep_duplicates(stack, outcome, sweep_id, options.runs)
    check_runs(stack, outcome, run_ids)


def _follow_ups_done(stack: Stack, run_ids: list[str]) -> bool:
    rows = stack.sql(
        "SELECT r.id::text, r.status::text, (SELECT count(*) FROM run_metrics m WHERE m.run_id = r.id) "
        "FROM runs r WHERE r.id = ANY(%s::uuid[])",
        run_ids,
    )
    return all(metrics or status not in TERMINAL for _, status, metrics in rows)


def ask_for_plots(stack: Stack, outcome: Outcome, run_ids: list[str], timeout_s: float = 120) -> None:
    """Ask the API for both plots of every succeeded run (the first request has them drawn and stored), as a
    client would, following 503 plot_pending; a plot that is not a PNG by `timeout_s` is a problem."""
    succeeded = [run_id for run_id, status in statuses(stack, run_ids).items() if status == "succeeded"]
    with stack.http(timeout_s=60) as client:
        for run_id in succeeded:
            for name in PLOT_ARTIFACTS:
                deadline = time.monotonic() + timeout_s
                while True:
                    answer = client.get(f"/results/{run_id}/artifacts/{name}")
                    if answer.status_code == 200 and answer.content.startswith(PNG_MAGIC):
                        break
                    if answer.status_code != 503 or time.monotonic() > deadline:
                        outcome.problems.append(f"run {run_id[:8]}: {name} answered {answer.status_code}")
                        break
                    time.sleep(min(5.0, float(answer.headers.get("Retry-After", "1"))))


def wait_started(stack: Stack, run_ids: list[str], timeout_s: float = 60) -> None:
    wait_for(lambda: any(s != "queued" for s in statuses(stack, run_ids).values()), timeout_s, 0.2)


def scenario_worker_kill(stack: Stack, options: Options) -> Outcome:
    outcome = Outcome("worker-kill")
    # runs of about 2 s: runs must still be going at the fifth kill (one every 3 s)
    sweep_id, run_ids = launch_sweep(stack, options.runs, options.periods(2.0))
    wait_started(stack, run_ids)
    killed: dict[str, float] = {}
    for _ in range(options.injections):

        def victim() -> tuple[str, int] | None:
            pool = stack.worker.children()
            rows = stack.sql(
                "SELECT id::text, worker FROM runs WHERE id = ANY(%s::uuid[]) AND status = 'running' "
                "AND started_at < now() - interval '0.2 s'",
                run_ids,
            )
            for run_id, worker in rows:
                pid = int(str(worker).rsplit("/", 1)[-1])
                if run_id not in killed and pid in pool:
                    return run_id, pid
            return None

        found = poll(victim, 30, 0.05)
        if found is None:
            outcome.notes.append("no running run to kill (the sweep had finished)")
            break
        run_id, pid = found
        os.kill(pid, signal.SIGKILL)  # a pool process of our own worker (checked: its parent is our worker)
        killed[run_id] = time.time()
        outcome.injections += 1
        say(f"worker-kill {outcome.injections}: SIGKILL pool process {pid} running {run_id[:8]}")
        time.sleep(3.0)
    finish_sweep(stack, outcome, sweep_id, run_ids, options)
    for run_id, at in killed.items():
        rows = stack.sql("SELECT status::text, extract(epoch FROM finished_at) FROM runs WHERE id = %s", run_id)
        status, finished = rows[0]
        if status == "succeeded" and finished is not None:
            outcome.recoveries.append(float(finished) - at)
        else:
            outcome.recoveries.append(float("inf"))
    slow = [f"{r:.0f} s" for r in outcome.recoveries if r >= WORKER_KILL_LIMIT_S]
    if slow:
        outcome.problems.append(f"killed runs finished later than {WORKER_KILL_LIMIT_S:.0f} s: {', '.join(slow)}")
    return outcome


def scenario_api_kill(stack: Stack, options: Options) -> Outcome:
    outcome = Outcome("api-kill")
    tag = uuid.uuid4().hex[:8]
    keys = [f"faults-{tag}-{index}" for index in range(options.runs)]
    body = {
        "preset": PRESET,
        "sessions": 1,
        "overrides": [f"horizon.max_periods={options.periods(0.25)}", "horizon.stop_at_convergence=false"],
    }
    answers: dict[str, str] = {}
    requests: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    spread_s = 8.0 * options.injections  # an API restart takes 4-10 s here: the burst spans every kill

    def client(index: int) -> None:
        time.sleep(index * spread_s / options.runs)
        try:
            answer, made = post_until_answered(stack, "/runs", body, keys[index], deadline_s=180)
        except Exception as error:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"{keys[index]}: {error}")
            return
        with lock:
            answers[keys[index]] = str(answer["id"])
            requests.append(made)

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(options.runs)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    for _ in range(options.injections):
        stack.api.kill()
        killed = time.monotonic()
        outcome.injections += 1
        stack.start_api()
        outcome.recoveries.append(time.monotonic() - killed)
        say(f"api-kill {outcome.injections}: API killed and answering again in {outcome.recoveries[-1]:.1f} s")
        time.sleep(1.5)
    for thread in threads:
        thread.join(timeout=200)
    outcome.problems += [f"a client got no answer: {error}" for error in errors[:3]]
    created = stack.sql(
        "SELECT k.key, count(r.id) FROM idempotency_keys k LEFT JOIN runs r ON r.id::text = k.body->>'id' "
        "WHERE k.key LIKE %s GROUP BY k.key",
        f"faults-{tag}-%",
    )
    per_key = dict(created)
    run_ids = list(answers.values())
    # every run made since the burst began with this body: more runs than keys means a duplicate
    total = stack.sql(
        "SELECT count(*) FROM runs WHERE sweep_id IS NULL AND overrides = %s::jsonb AND created_at > "
        "(SELECT min(created_at) FROM idempotency_keys WHERE key LIKE %s) - interval '5 s'",
        json.dumps(body["overrides"]),
        f"faults-{tag}-%",
    )[0][0]
    outcome.duplicates += max(0, total - len(keys))
    if total != len(keys) or len(set(run_ids)) != len(keys) or any(count != 1 for count in per_key.values()):
        outcome.problems.append(
            f"{len(keys)} keys, {sum(requests)} requests: {total} runs created, {len(set(run_ids))} distinct "
            "answers (want exactly one run per key)"
        )
    outcome.notes.append(f"{len(keys)} keys, {sum(requests)} POST requests, {total} runs created")
    if not wait_terminal(stack, run_ids, options.settle_s):
        outcome.problems.append(f"runs not finished {options.settle_s:.0f} s after the burst")
    wait_for(lambda: _follow_ups_done(stack, run_ids), 60, 1.0)
    check_runs(stack, outcome, run_ids)
    return outcome


def _outage(
    stack: Stack,
    outcome: Outcome,
    options: Options,
    run_ids: list[str],
    stop: Callable[[], None],
    start: Callable[[], float],
    down_s: float,
    label: str,
) -> None:
    """Inject `options.injections` outages of `down_s` while runs of the sweep are left; recovery of each: from the
    service answering again to the next run that succeeded.

    Between two outages the service stays up for at least the workers' retry_max_delay_s plus 5 s: a worker
    retrying through an outage waits up to retry_max_delay_s between tries, so with a shorter gap one operation can
    sleep through the whole window and meet the next outage, living through two outages as one that outlasts its
    retry budget (seen once: a run.log upload failed after 30-s outages 3 s apart)."""
    for _ in range(options.injections):
        if all(s in TERMINAL for s in statuses(stack, run_ids).values()):
            outcome.notes.append(f"the sweep ended after {outcome.injections} outages")
            break
        stop()
        outcome.injections += 1
        say(f"{label} {outcome.injections}: down for {down_s:.0f} s")
        time.sleep(down_s)
        start()
        back = time.time()
        recovery = first_success_after(stack, run_ids, back, 120)
        say(f"{label} {outcome.injections}: back; next run succeeded after " + _seconds(recovery))
        if recovery is not None:
            outcome.recoveries.append(recovery)
        time.sleep(max(2.0, back + stack.settings.retry_max_delay_s + 5.0 - time.time()))


def scenario_s3_down(stack: Stack, options: Options) -> Outcome:
    """Runs of about 6 s: the sweep must still be going for its fifth 30-s outage, after four recovery gaps."""
    outcome = Outcome("s3-down")
    sweep_id, run_ids = launch_sweep(stack, options.runs, options.periods(6.0))
    wait_started(stack, run_ids)
    _outage(stack, outcome, options, run_ids, stack.s3.stop, stack.start_s3, options.s3_down_s, "s3-down")
    finish_sweep(stack, outcome, sweep_id, run_ids, options)
    return outcome


def scenario_redis_down(stack: Stack, options: Options) -> Outcome:
    """Runs of about 4 s: the sweep must still be going for its fifth outage, after four recovery gaps."""
    outcome = Outcome("redis-down")
    sweep_id, run_ids = launch_sweep(stack, options.runs, options.periods(4.0))
    wait_started(stack, run_ids)
    _outage(stack, outcome, options, run_ids, stack.redis.stop, stack.start_redis, options.redis_down_s, "redis-down")
    finish_sweep(stack, outcome, sweep_id, run_ids, options)
    return outcome


def _readyz_beat_failing(stack: Stack) -> bool:
    response = httpx.get(f"{stack.api_url}/readyz", timeout=10)
    return response.status_code == 503 and "beat" in response.json().get("error", {}).get("failed", [])


def scenario_beat_kill(stack: Stack, options: Options) -> Outcome:
    """Runs of about 1 s: each injection restarts the worker node and waits for /readyz to notice beat is gone,
    and the sweep must still be going for the next one."""
    outcome = Outcome("beat-kill")
    sweep_id, run_ids = launch_sweep(stack, options.runs, options.periods(1.0))
    wait_started(stack, run_ids)
    stale: dict[str, float] = {}  # run id -> when its worker node was killed
    for _ in range(options.injections):
        if all(s in TERMINAL for s in statuses(stack, run_ids).values()):
            outcome.notes.append(f"the sweep ended after {outcome.injections} injections")
            break
        running = poll(lambda: _running(stack, run_ids), 20, 0.1) or []
        stack.beat.kill()
        stack.worker.kill()  # the whole node: its message stays unacknowledged, only the sweeper re-sends its run
        outcome.injections += 1
        for run_id in running:
            stale.setdefault(run_id, time.time())
        say(f"beat-kill {outcome.injections}: beat and the worker node killed; {len(running)} runs left stale")
        stack.start_worker()
        if not wait_for(lambda: _readyz_beat_failing(stack), stack.settings.beat_max_age_s + 20, 1.0):
            outcome.problems.append(f"injection {outcome.injections}: /readyz did not report beat missing")
        stack.start_beat()
        say(f"beat-kill {outcome.injections}: /readyz reported beat missing; beat restarted")
        time.sleep(2.0)
    finish_sweep(stack, outcome, sweep_id, run_ids, options)
    for run_id, killed in stale.items():
        outcome.recoveries.append(_finished_at(stack, run_id) - killed)
    slow = [f"{r:.0f} s" for r in outcome.recoveries if r >= WORKER_KILL_LIMIT_S]
    if slow:
        outcome.problems.append(f"stale runs finished later than {WORKER_KILL_LIMIT_S:.0f} s: {', '.join(slow)}")
    outcome.notes.append(f"{len(stale)} runs left stale by a killed worker node (recovery: kill to succeeded)")
    return outcome


def _running(stack: Stack, run_ids: list[str]) -> list[str]:
    """The runs of `run_ids` that a pool process of the current worker node is running."""
    pool = stack.worker.children()
    rows = stack.sql("SELECT id::text, worker FROM runs WHERE id = ANY(%s::uuid[]) AND status = 'running'", run_ids)
    return [run_id for run_id, worker in rows if int(str(worker).rsplit("/", 1)[-1]) in pool]


def _finished_at(stack: Stack, run_id: str) -> float:
    rows = stack.sql("SELECT extract(epoch FROM finished_at) FROM runs WHERE id = %s", run_id)
    return float(rows[0][0]) if rows and rows[0][0] is not None else float("inf")


def scenario_s3_beyond(stack: Stack, options: Options) -> Outcome:
    outcome = Outcome("s3-beyond", planned=1)
    sweep_id, run_ids = launch_sweep(stack, options.runs, options.periods(0.25))
    wait_for(lambda: list(statuses(stack, run_ids).values()).count("succeeded") >= 3, 60, 0.2)
    before = statuses(stack, run_ids)
    stack.s3.stop()
    outcome.injections = 1
    down_at = time.monotonic()
    say(f"s3-beyond: S3 down for up to {options.long_outage_s:.0f} s")
    wait_terminal(stack, run_ids, options.long_outage_s)
    say(f"s3-beyond: runs ended (or the outage is over) after {time.monotonic() - down_at:.0f} s; S3 back")
    stack.start_s3()
    if not wait_terminal(stack, run_ids, options.settle_s):
        outcome.problems.append("runs not finished after the outage")
    after = statuses(stack, run_ids)
    failed = {run_id for run_id, status in after.items() if status == "failed"}
    hit = {run_id for run_id, status in before.items() if status not in TERMINAL}
    errors = dict(stack.sql("SELECT id::text, error FROM runs WHERE id = ANY(%s::uuid[])", list(failed)))
    unnamed = [run_id[:8] for run_id in failed if not re.search(r"\bS3\b", errors.get(run_id) or "")]
    if not failed:
        outcome.problems.append(f"no run failed ({len(hit)} were unfinished when S3 stopped)")
    if unnamed:
        outcome.problems.append(f"{len(unnamed)} failed runs whose error does not name S3: {', '.join(unnamed[:4])}")
    if failed:
        sample = (errors.get(next(iter(failed))) or "")[:160]
        outcome.notes.append(f"{len(failed)} runs failed, e.g. {sample!r}")
    wait_for(lambda: _follow_ups_done(stack, run_ids), 60, 1.0)
    check_sweep_duplicates(stack, outcome, sweep_id, options.runs)
    check_runs(stack, outcome, run_ids, expect_failed=failed)
    retried = retry_runs(stack, outcome, sorted(failed))
    if retried:
        started = time.time()
        if not wait_terminal(stack, retried, options.settle_s):
            outcome.problems.append("retried runs not finished")
        wait_for(lambda: _follow_ups_done(stack, retried), 60, 1.0)
        retry_outcome = Outcome("retries")
        check_runs(stack, retry_outcome, retried)
        outcome.problems += [f"retry: {problem}" for problem in retry_outcome.problems]
        outcome.notes.append(f"{retry_outcome.succeeded} of {len(retried)} retried runs succeeded")
        outcome.recoveries.append(max((_finished_at(stack, run_id) for run_id in retried), default=started) - started)
    return outcome


def retry_runs(stack: Stack, outcome: Outcome, run_ids: list[str]) -> list[str]:
    """POST /runs/{id}/retry for each run; the ids of the runs that then execute (the answer's `id`). Without
    that route, the runs are launched again as new runs of the same scenario (POST /runs with the stored spec)
    so the table still shows whether they would succeed, and the missing route is reported as a failure."""
    retried: list[str] = []
    with stack.http() as client:
        for run_id in run_ids:
            response = client.post(f"/runs/{run_id}/retry")
            if response.status_code in (404, 405) and "no route" in response.text:
                outcome.problems.append("the API has no retry route (POST /runs/{id}/retry: 404 no route)")
                break
            if not response.is_success:
                outcome.problems.append(f"retry of {run_id[:8]}: {response.status_code} {response.text[:200]}")
                return retried
            retried.append(str(response.json().get("id", run_id)))
        else:
            return retried
        specs = stack.sql("SELECT id::text, spec, sessions FROM runs WHERE id = ANY(%s::uuid[])", run_ids)
        for _, spec, sessions in specs:
            answer, _ = post_until_answered(
                stack, "/runs", {"scenario": spec, "sessions": sessions}, f"relaunch-{uuid.uuid4()}"
            )
            retried.append(str(answer["id"]))
        outcome.notes.append(f"launched the {len(specs)} failed runs again as new runs (no retry route)")
    return retried


RUNNERS: dict[str, Callable[[Stack, Options], Outcome]] = {
    "worker-kill": scenario_worker_kill,
    "api-kill": scenario_api_kill,
    "s3-down": scenario_s3_down,
    "redis-down": scenario_redis_down,
    "beat-kill": scenario_beat_kill,
    "s3-beyond": scenario_s3_beyond,
}


# ------------------------------------------------------------------------------------------------- report


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return "never" if value == float("inf") else f"{value:.1f} s"


def print_table(outcomes: list[Outcome], options: Options) -> None:
    header = (
        f"{'scenario':<12} {'injections':>10} {'runs':>5} {'succeeded':>9} {'failed':>6} {'duplicates':>10} "
        f"{'worst recovery':>14} {'wall':>7}  verdict"
    )
    print()
    print(header)
    print("-" * len(header))
    for outcome in outcomes:
        print(
            f"{outcome.name:<12} {f'{outcome.injections}/{outcome.planned}':>10} {outcome.runs:>5} "
            f"{outcome.succeeded:>9} {outcome.failed:>6} {outcome.duplicates:>10} "
            f"{_seconds(max(outcome.recoveries, default=None)):>14} {outcome.elapsed_s:>6.0f}s  "
            f"{'PASS' if outcome.ok else 'FAIL'}"
        )
    print()
    for outcome in outcomes:
        for note in outcome.notes:
            print(f"  {outcome.name}: {note}")
        for problem in outcome.problems:
            print(f"  {outcome.name}: FAIL: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--runs", type=int, default=30, help="runs per scenario")
    parser.add_argument("--injections", type=int, default=5, help="faults per scenario")
    parser.add_argument(
        "--periods-per-s",
        type=float,
        default=None,
        help="periods a run's session simulates per second on this machine, which sizes each scenario's runs "
        "(default: measured at start)",
    )
    parser.add_argument("--settle-s", type=float, default=180.0, help="wait for runs to end after the last fault")
    parser.add_argument("--s3-down-s", type=float, default=30.0)
    parser.add_argument("--redis-down-s", type=float, default=13.0)
    parser.add_argument("--long-outage-s", type=float, default=90.0, help="s3-beyond: longer than the retry budget")
    parser.add_argument("--keep", action="store_true", help="leave the temporary folder (logs) in place")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    options = Options(
        args.runs,
        args.injections,
        args.periods_per_s or calibrate(),
        args.settle_s,
        args.s3_down_s,
        args.redis_down_s,
        args.long_outage_s,
    )
    stack = Stack()
    outcomes: list[Outcome] = []
    began = time.monotonic()
    try:
        stack.up()
        for name in chosen:
            stack.ensure_running()
            say(f"scenario {name}")
            started = time.monotonic()
            try:
                outcome = RUNNERS[name](stack, options)
                outcome.planned = outcome.planned or options.injections
                if outcome.injections < outcome.planned:
                    outcome.problems.append(
                        f"only {outcome.injections} of {outcome.planned} faults landed before the sweep ended "
                        "(its runs were too short: lower --periods-per-s)"
                    )
            except Exception as error:  # noqa: BLE001 - one broken scenario must not hide the others' figures
                outcome = Outcome(name, problems=[f"the scenario itself raised {type(error).__name__}: {error}"])
            outcome.elapsed_s = time.monotonic() - started
            outcomes.append(outcome)
            say(f"scenario {name}: {'PASS' if outcome.ok else 'FAIL'} in {outcome.elapsed_s:.0f} s")
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        stack.down()
        print_table(outcomes, options)
        print(
            f"\ntotal {time.monotonic() - began:.0f} s; logs in {stack.log_dir}" + ("" if args.keep else " (removed)")
        )
        if not args.keep:
            shutil.rmtree(stack.root, ignore_errors=True)
    return 0 if outcomes and all(outcome.ok for outcome in outcomes) and len(outcomes) == len(chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main())
