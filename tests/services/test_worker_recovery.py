"""Recovery from dead processes, with real ones: a pool process SIGKILLed mid-run (its run is claimed again as soon as
its lease expires and ends succeeded exactly once), and a Celery beat that stopped (/readyz says so).

Each test starts its own processes under a Redis key prefix of its own (so the session's worker, if another test
started it, never takes these tasks), with short settings given through their environment: heartbeats every
second, a lease of 5 s, a sweep every second.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from algocomp.platform.db import Result, RunStatus
from algocomp.platform.queue import SWEEP_QUEUE, WORKER_QUEUES
from algocomp.platform.queue.beat import beat_age_s
from algocomp.platform.settings import Settings
from algocomp.platform.storage import run_key, run_prefix

from .conftest import ServiceProcess, _celery_ping, wait_until
from .test_worker import (
    ask_for_plots,
    baseline,
    channel_of,
    create_run,
    follow_events,
    load_result,
    load_run,
    send_run,
)

HEARTBEAT_INTERVAL_S = 1.0
LEASE_S = 5
SWEEP_INTERVAL_S = 1.0
BEAT_MAX_AGE_S = 3.0
# the acceptance: a run whose worker was killed finishes within 2 minutes (with the default 30 s lease)
RECOVERY_LIMIT_S = 120.0


def own_settings(service_env: Settings) -> tuple[Settings, dict[str, str]]:
    """Settings under a fresh key prefix (inside the session's, so its clean-up deletes the keys) with short
    intervals, and the environment that gives a child process the same."""
    prefix = f"{service_env.key_prefix}recovery-{uuid.uuid4().hex[:8]}:"
    values = {
        "key_prefix": prefix,
        "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
        "lease_s": LEASE_S,
        "sweep_interval_s": SWEEP_INTERVAL_S,
        "beat_max_age_s": BEAT_MAX_AGE_S,
    }
    env = {f"ALGOCOMP_{name.upper()}": str(value) for name, value in values.items()}
    return service_env.model_copy(update=values), env


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(") ", 1)[1].split()[1])


def test_the_heartbeat_thread_keeps_the_lease_stops_with_the_run_and_reports_a_lost_claim(
    service_env: Settings, db_engine: Engine, redis_client: redis.Redis
) -> None:
    from algocomp.platform.db import Run, sessionmaker_for
    from algocomp.platform.db.runs import ClaimLost
    from algocomp.platform.queue import create_celery
    from algocomp.platform.storage import Storage
    from algocomp.platform.unit_of_work import Messaging, UnitOfWorkFactory
    from algocomp_worker.context import WorkerContext
    from algocomp_worker.heartbeat import Heartbeat

    settings, _ = own_settings(service_env)
    messaging = Messaging.from_settings(settings, create_celery(settings), redis_client)
    context = WorkerContext(settings, UnitOfWorkFactory(sessionmaker_for(db_engine), messaging), Storage(settings))
    run_id = create_run(db_engine, baseline(sessions=1, max_periods=20_000, seed=91))
    with context.units_of_work() as uow:
        claim = uow.runs.claim(run_id, worker="test-heartbeat", lease_s=LEASE_S)
    assert claim is not None

    def heartbeat_at() -> object:
        return load_run(db_engine, run_id).heartbeat_at

    with Heartbeat(context, claim, interval_s=0.2) as heartbeat:
        first = heartbeat_at()
        time.sleep(1.0)  # the "engine" never calls back: the thread alone keeps the lease
        assert heartbeat.beats >= 3 and heartbeat_at() > first  # type: ignore[operator]
        thread = heartbeat._thread
    assert thread is not None and not thread.is_alive(), "the heartbeat outlived its run"
    stopped_at = heartbeat_at()
    time.sleep(0.5)
    assert heartbeat_at() == stopped_at, "a heartbeat was written after the run's block ended"

    with Heartbeat(context, claim, interval_s=0.2) as heartbeat:
        with Session(db_engine) as session:  # another attempt takes the run over
            session.execute(update(Run).where(Run.id == run_id).values(attempt=Run.attempt + 1))
            session.commit()
        wait_until(lambda: heartbeat.lost is not None, "the heartbeat to notice the lost claim", 5)
        with pytest.raises(ClaimLost):
            heartbeat.check()  # what ProgressReporter.should_stop does at the engine's next check
    with Session(db_engine) as session:
        session.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.cancelled))
        session.commit()


def test_a_killed_pool_process_s_run_is_claimed_again_when_its_lease_expires_and_succeeds_once(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
    storage,
) -> None:
    settings, env = own_settings(service_env)
    nodename = f"recovery-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [sys.executable, "-m", "celery", "-A", "algocomp_worker.app:celery_app", "worker", "-Q", WORKER_QUEUES]
    argv += ["-c", "1", "--loglevel", "INFO", "-n", nodename, "--without-gossip", "--without-mingle"]
    worker = start_service(argv, _celery_ping(settings, nodename), env=env)

    run_id = create_run(db_engine, baseline(sessions=6, max_periods=1_000_000, seed=81))
    send_run(settings, run_id)
    follow_events(
        settings,
        redis_client,
        run_id,
        worker.output,
        until=lambda events: any(event.event == "progress" for event in events) or events[-1].terminal,
    )
    running = load_run(db_engine, run_id)
    assert running.status == RunStatus.running and running.attempt == 1, running.status
    node, pid_text = (running.worker or "").rsplit("/", 1)
    pid = int(pid_text)
    assert node == nodename and parent_of(pid) == worker.pid, f"{running.worker} is not a pool process of {worker.pid}"

    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    # what the killed attempt might have uploaded: the next attempt must not keep it
    storage.put_bytes(run_key(run_id, "panel"), b"PAR1 partial")
    storage.put_bytes(f"{run_prefix(run_id)}left-over.tmp", b"partial")

    follow_events(
        settings,
        redis_client,
        run_id,
        worker.output,
        until=lambda events: events[-1].terminal and sum(event.event == "started" for event in events) >= 2,
        timeout=RECOVERY_LIMIT_S,
    )
    recovered_s = time.monotonic() - killed
    print(f"killed pool process {pid}: run {run_id} succeeded {recovered_s:.1f} s later (lease {LEASE_S} s)")
    assert recovered_s < RECOVERY_LIMIT_S
    assert recovered_s >= LEASE_S - 2 * HEARTBEAT_INTERVAL_S, "claimed again before its lease could have expired"

    names = [event.event for event in channel_of(settings, redis_client, run_id).replay()]
    assert names.count("started") == 2, names
    assert [name for name in names if name in {"succeeded", "failed", "cancelled"}] == ["succeeded"], names
    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.succeeded and run.attempt == 2, (run.status, run.attempt)
    assert run.worker != running.worker
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(Result).where(Result.run_id == run_id)) == 1
    # the redelivered message waited for the lease (a retry) rather than giving up
    assert "trying again in" in worker.output(tail_chars=10**9)

    assert ask_for_plots(settings, db_engine, run_id)

    def with_plots() -> Result | None:
        result = load_result(db_engine, run_id)
        return result if result is not None and "prices_plot" in result.artifacts else None

    result = wait_until(with_plots, "the plots drawn on request", 60, detail=lambda: worker.output()[-3000:])
    assert set(storage.list(run_prefix(run_id))) == set(result.artifacts.values())
    assert (
        storage.get_bytes(run_key(run_id, "panel"))[:4] == b"PAR1"
        and len(storage.get_bytes(run_key(run_id, "panel"))) > 100
    )


@pytest.mark.usefixtures("in_process_logging")
def test_readiness_reports_a_beat_that_stopped(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    from algocomp_api.main import create_app

    settings, env = own_settings(service_env)
    argv = [sys.executable, "-m", "celery", "-A", "algocomp_worker.app:celery_app", "beat", "--loglevel", "INFO"]
    argv += ["--schedule", str(tmp_path / "celerybeat-schedule")]

    with TestClient(create_app(settings)) as api:
        before = api.get("/readyz")
        assert before.status_code == 503, before.text  # no beat has ever run under this prefix
        assert before.json()["error"]["failed"] == ["beat"] and "beat" in before.json()["checks"]["beat"]

        beat = start_service(argv, lambda: beat_age_s(redis_client, settings.key_prefix) is not None, env=env)
        ready = api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "s3": "ok", "beat": "ok"}
        # the sweeper goes to its own queue (no worker consumes it here: the message waits there)
        wait_until(
            lambda: redis_client.llen(f"{settings.key_prefix}{SWEEP_QUEUE}") > 0,
            "beat to send the sweeper to its queue",
            10,
            detail=beat.output,
        )

        beat.stop()
        stopped = time.monotonic()
        response = wait_until(
            lambda: (answer := api.get("/readyz")).status_code == 503 and answer,
            "/readyz to report the stopped beat",
            BEAT_MAX_AGE_S + 10,
        )
        print(f"/readyz reported the stopped beat after {time.monotonic() - stopped:.1f} s")
        body = response.json()
        assert body["error"]["failed"] == ["beat"], body
        assert "Celery beat last ticked" in body["checks"]["beat"], body
