"""Transient faults with real processes: S3 (`rclone serve s3`) killed and started again on the same port and
folder, Postgres and Redis behind a TCP relay the test takes down (tests/services/faults.py), a real Celery worker
(and aggregator, and API) in front of them.

- S3 down while a run uploads, back within the budget: the run succeeds, once.
- S3 down past a short budget: the run ends failed with an error naming S3 and its endpoint; retried (the same run
  queued again, as POST /runs/{id}/retry does) once S3 is back, it succeeds with one result.
- The drawing of a run's plots (asked for as the API does on a first request) meeting S3 down past the budget is
  sent again until it is done; one that can never succeed (its run's panel is gone) fails at once, logged, without
  retries.
- Postgres unreachable for seconds while a run reports progress: the run succeeds at its first attempt.
- Redis unreachable for 15 s across a run's finish: the run's completion and its aggregator notice both arrive.
- The API: a request waits out a short Postgres outage; a longer one answers 503 with Retry-After.

Each test runs its own processes under its own Redis key prefix (inside the session's, so its clean-up deletes the
keys), with the settings it needs given through their environment.
"""

from __future__ import annotations

import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from algocomp.platform.db import FollowUp, Result, RunMetrics, RunStatus
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.progress import ProgressChannel
from algocomp.platform.queue import (
    DRAW_TASK,
    FINISH_TASK,
    PLOTS_QUEUE,
    REQUEUE_TASK,
    RUN_FINISHED_TASK,
    SWEEP_QUEUE,
    WORKER_QUEUES,
    create_celery,
)
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage, run_key, run_prefix

from .conftest import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    ServiceProcess,
    _celery_ping,
    bearer,
    start_api,
    task_finished,
    wait_until,
)
from .faults import RcloneS3, TcpRelay
from .test_worker import ask_for_plots, baseline, create_run, follow_events, load_result, load_run, send_run

# generous: the machine is shared, a run of a few sessions may take a while
RUN_TIMEOUT_S = 180.0
# long enough that a run is still simulating when the fault starts (the fault starts at its first progress event)
SESSIONS = 4
MAX_PERIODS = 1_000_000


def own_settings(service_env: Settings, **values: Any) -> tuple[Settings, dict[str, str]]:
    """Settings under a fresh key prefix with `values` on top, and the environment giving a child process the same."""
    values = {"key_prefix": f"{service_env.key_prefix}faults-{uuid.uuid4().hex[:8]}:", **values}
    env = {f"ALGOCOMP_{name.upper()}": str(value) for name, value in values.items()}
    return service_env.model_copy(update=values), env


def start_worker(
    start_service: Callable[..., ServiceProcess], settings: Settings, env: dict[str, str], app: str = "worker"
) -> ServiceProcess:
    nodename = f"faults-{app}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    queues = WORKER_QUEUES if app == "worker" else "aggregate"
    argv = [sys.executable, "-m", "celery", "-A", f"algocomp_{app}.app:celery_app", "worker", "-Q", queues]
    argv += ["-c", "1", "--loglevel", "INFO", "-n", nodename, "--without-gossip", "--without-mingle"]
    return start_service(argv, _celery_ping(settings, nodename), env=env)


def logged(process: ServiceProcess, pattern: str) -> bool:
    return re.search(pattern, process.output(tail_chars=10**9)) is not None


def terminal_events(events: list[Any]) -> list[str]:
    return [event.event for event in events if event.terminal]


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[RcloneS3]:
    folder = tmp_path / "s3"
    folder.mkdir()
    s3 = RcloneS3(folder, S3_ACCESS_KEY, S3_SECRET_KEY, tmp_path / "rclone.log")
    s3.start()
    try:
        yield s3
    finally:
        s3.stop()


def follow_up(engine: Engine, run_id: uuid.UUID, task: str) -> FollowUp | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(FollowUp, (run_id, task))


def relay_to(url: str) -> TcpRelay:
    """A relay to the host and port of a database or Redis URL."""
    parsed = make_url(url)
    return TcpRelay((parsed.host or "127.0.0.1", int(parsed.port or 0)))


def through(url: str, relay: TcpRelay) -> str:
    """`url` with its port replaced by the relay's."""
    return make_url(url).set(port=relay.port).render_as_string(hide_password=False)


# --------------------------------------------------------------------------------------------- S3


def test_a_run_whose_upload_meets_s3_down_succeeds_once_s3_is_back(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
    own_s3: RcloneS3,
) -> None:
    settings, env = own_settings(
        service_env, s3_endpoint_url=own_s3.url, retry_budget_s=120, retry_base_s=0.2, retry_max_delay_s=1.0
    )
    storage = Storage(settings)
    storage.ensure_bucket()
    worker = start_worker(start_service, settings, env)

    run_id = create_run(db_engine, baseline(sessions=SESSIONS, max_periods=MAX_PERIODS, seed=301))
    send_run(settings, run_id)
    follow_events(settings, redis_client, run_id, worker.output, until=lambda events: events[-1].event == "progress")
    own_s3.stop()
    stopped = time.monotonic()
    # the run finished simulating and its upload is being retried
    wait_until(
        lambda: logged(worker, rf"S3 upload \S+ to s3://\S+/runs/{run_id}/\S+ at {re.escape(own_s3.url)} failed \(try"),
        "the worker to retry an upload to S3",
        RUN_TIMEOUT_S,
        detail=worker.output,
    )
    time.sleep(3.0)  # the outage goes on for a few more retries
    own_s3.start()
    print(f"S3 was down for {time.monotonic() - stopped:.1f} s")

    events = follow_events(settings, redis_client, run_id, worker.output, timeout=RUN_TIMEOUT_S)
    assert terminal_events(events) == ["succeeded"], [event.event for event in events]
    assert [event.event for event in events].count("started") == 1
    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.succeeded and run.attempt == 1 and run.error is None, (run.status, run.error)
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(Result).where(Result.run_id == run_id)) == 1
    result = load_result(db_engine, run_id)
    assert result is not None
    stored = set(storage.list(run_prefix(run_id)))
    assert set(result.artifacts.values()) <= stored
    assert storage.get_bytes(run_key(run_id, "panel"))[:4] == b"PAR1"
    wait_until(
        lambda: (row := follow_up(db_engine, run_id, FINISH_TASK)) is not None and row.status == "done",
        "the follow-up (MLflow)",
        RUN_TIMEOUT_S,
        detail=worker.output,
    )


def test_s3_down_past_the_budget_fails_the_run_naming_s3_and_retrying_it_succeeds_once_it_is_back(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
    own_s3: RcloneS3,
) -> None:
    settings, env = own_settings(
        service_env, s3_endpoint_url=own_s3.url, retry_budget_s=3, retry_base_s=0.1, retry_max_delay_s=0.5
    )
    Storage(settings).ensure_bucket()
    worker = start_worker(start_service, settings, env)
    spec = baseline(sessions=SESSIONS, max_periods=MAX_PERIODS, seed=302)

    run_id = create_run(db_engine, spec)
    send_run(settings, run_id)
    follow_events(settings, redis_client, run_id, worker.output, until=lambda events: events[-1].event == "progress")
    own_s3.stop()
    events = follow_events(settings, redis_client, run_id, worker.output, timeout=RUN_TIMEOUT_S)
    assert terminal_events(events) == ["failed"], [event.event for event in events]
    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.failed and run.error is not None
    print(f"the run's error: {run.error}")
    assert run.error.startswith("StorageError: cannot upload "), run.error
    assert "S3 did not answer" in run.error and own_s3.url in run.error, run.error
    assert S3_SECRET_KEY not in run.error
    assert events[-1].data["error"] == run.error
    assert load_result(db_engine, run_id) is None

    own_s3.start()
    # retried as POST /runs/{id}/retry does: the same run queued again, its stream started afresh, its task sent
    with Session(db_engine) as session:
        assert RunRepository(session).retry(run_id)
        session.commit()
    ProgressChannel(redis_client, run_id, prefix=settings.key_prefix).delete()
    send_run(settings, run_id)
    events = follow_events(settings, redis_client, run_id, worker.output, timeout=RUN_TIMEOUT_S)
    assert terminal_events(events) == ["succeeded"], [event.event for event in events]
    retried = load_run(db_engine, run_id)
    assert retried.attempt == 2 and retried.error is None
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(Result).where(Result.run_id == run_id)) == 1


def test_plots_that_meet_s3_down_are_sent_again_until_drawn_and_a_drawing_that_cannot_succeed_fails_once(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
    own_s3: RcloneS3,
) -> None:
    settings, env = own_settings(
        service_env, s3_endpoint_url=own_s3.url, retry_budget_s=1, retry_base_s=0.1, retry_max_delay_s=0.3
    )
    storage = Storage(settings)
    storage.ensure_bucket()
    worker = start_worker(start_service, settings, env)
    celery = create_celery(settings)

    run_id = create_run(db_engine, baseline(sessions=1, max_periods=20_000, seed=303))
    send_run(settings, run_id)
    events = follow_events(settings, redis_client, run_id, worker.output, timeout=RUN_TIMEOUT_S)
    assert terminal_events(events) == ["succeeded"]
    plots = [run_key(run_id, "prices_plot"), run_key(run_id, "impulse_plot")]
    assert ask_for_plots(settings, db_engine, run_id)
    wait_until(lambda: all(storage.exists(key) for key in plots), "the first drawing's plots", RUN_TIMEOUT_S)
    wait_until(
        lambda: (row := follow_up(db_engine, run_id, DRAW_TASK)) is not None and row.status == "done",
        "the drawing's record to say done",
        RUN_TIMEOUT_S,
    )
    notice = follow_up(db_engine, run_id, RUN_FINISHED_TASK)  # no aggregator runs here: it waits
    assert notice is not None and notice.status == "pending"

    # the plots are drawn again by a drawing sent while S3 is down, past the 1 s budget of each try
    for key in plots:
        storage.delete(key)
    own_s3.stop()
    task_id = celery.send_task(DRAW_TASK, args=[str(run_id)], queue=PLOTS_QUEUE).id
    wait_until(
        lambda: logged(
            worker, rf"the plots of run {run_id} failed \(StorageError: .*S3 did not answer.*\); retry 2 of"
        ),
        "the drawing to be sent again twice",
        RUN_TIMEOUT_S,
        detail=worker.output,
    )
    own_s3.start()
    wait_until(
        lambda: all(storage.exists(key) for key in plots),
        "the drawing to draw the plots once S3 is back",
        RUN_TIMEOUT_S,
        detail=worker.output,
    )
    wait_until(lambda: logged(worker, rf"\[{task_id}\] succeeded in"), "the drawing to succeed", RUN_TIMEOUT_S)
    assert not logged(worker, rf"the plots of run {run_id} failed for good"), worker.output()

    # a drawing that no retry can mend: the run's panel is gone (and the plots too, so it must draw; its record
    # pending again, as if it had never been done: a failure does not overwrite `done`)
    for key in [*plots, run_key(run_id, "panel")]:
        storage.delete(key)
    with Session(db_engine) as session:
        session.execute(
            update(FollowUp).where(FollowUp.run_id == run_id, FollowUp.task == DRAW_TASK).values(status="pending")
        )
        session.commit()
    doomed = celery.send_task(DRAW_TASK, args=[str(run_id)], queue=PLOTS_QUEUE).id
    wait_until(lambda: task_finished(worker, doomed), "the doomed drawing to end", RUN_TIMEOUT_S, detail=worker.output)
    output = worker.output(tail_chars=10**9)
    assert re.search(rf"the plots of run {run_id} failed for good \(not a transient fault\): KeyError", output)
    assert re.search(rf"\[{doomed}\] raised unexpected", output), output[-3000:]
    assert not re.search(rf"\[{doomed}\] retry:", output)
    record = follow_up(db_engine, run_id, DRAW_TASK)
    assert record is not None and record.status == "failed", record.status if record else None
    assert record.error is not None and record.error.startswith("KeyError: "), record.error


# --------------------------------------------------------------------------------------------- Postgres


def test_a_run_goes_on_through_a_postgres_outage_and_succeeds_at_its_first_attempt(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
) -> None:
    relay = relay_to(service_env.database_url)
    relay.up()
    try:
        settings, env = own_settings(
            service_env,
            database_url=through(service_env.database_url, relay),
            retry_budget_s=60,
            retry_base_s=0.2,
            retry_max_delay_s=1.0,
        )
        worker = start_worker(start_service, settings, env)
        run_id = create_run(db_engine, baseline(sessions=SESSIONS, max_periods=MAX_PERIODS, seed=304))
        send_run(settings, run_id)
        follow_events(
            settings, redis_client, run_id, worker.output, until=lambda events: events[-1].event == "progress"
        )
        relay.down()  # every connection of the worker to Postgres is reset, new ones are refused
        wait_until(
            lambda: logged(worker, r"(report the progress|check run|finish run|connect to Postgres).* failed \(try"),
            "the worker to retry Postgres",
            RUN_TIMEOUT_S,
            detail=worker.output,
        )
        time.sleep(3.0)
        relay.up()
        events = follow_events(settings, redis_client, run_id, worker.output, timeout=RUN_TIMEOUT_S)
        assert terminal_events(events) == ["succeeded"], [event.event for event in events]
        run = load_run(db_engine, run_id)
        assert run.status == RunStatus.succeeded and run.attempt == 1, (run.status, run.attempt, run.error)
        assert [event.event for event in events].count("started") == 1
    finally:
        relay.down()


def test_the_api_waits_out_a_short_postgres_outage_and_answers_503_with_retry_after_to_a_longer_one(
    service_env: Settings, api_token: str, tmp_path: Path
) -> None:
    relay = relay_to(service_env.database_url)
    relay.up()
    budget_s = 8.0
    process, base_url = start_api(
        tmp_path,
        env={
            "ALGOCOMP_DATABASE_URL": through(service_env.database_url, relay),
            "ALGOCOMP_API_DB_RETRY_S": str(budget_s),
        },
    )
    try:
        assert httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=30).status_code == 200

        # down for 1 s while a request waits for the database: it is answered once the database is back
        relay.down()
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=60))
        )
        started = time.monotonic()
        request.start()
        time.sleep(1.0)
        relay.up()
        request.join(60)
        assert answers and answers[0].status_code == 200, answers[0].text if answers else "no answer"
        assert time.monotonic() - started >= 1.0

        # down for longer than the budget: 503, Retry-After, and the API's error shape
        relay.down()
        started = time.monotonic()
        refused = httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=60)
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["code"] == "database_unavailable"
        assert waited >= budget_s - 0.5, f"answered after {waited:.1f} s, before the {budget_s} s budget"
        assert "unhandled error" not in process.output()
        relay.up()
        assert httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=30).status_code == 200
    finally:
        process.stop()
        relay.down()


# --------------------------------------------------------------------------------------------- Redis


def test_a_redis_outage_across_a_run_s_finish_loses_neither_its_completion_nor_its_aggregator_notice(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
) -> None:
    relay = relay_to(service_env.redis_url)
    relay.up()
    try:
        settings, env = own_settings(service_env, retry_budget_s=60, retry_base_s=0.2, retry_max_delay_s=1.0)
        worker_env = {**env, "ALGOCOMP_REDIS_URL": through(service_env.redis_url, relay)}
        worker = start_worker(start_service, settings, worker_env)
        aggregator = start_worker(start_service, settings, env, app="aggregator")  # straight to Redis

        run_id = create_run(db_engine, baseline(sessions=SESSIONS, max_periods=MAX_PERIODS, seed=305))
        send_run(settings, run_id)
        follow_events(
            settings, redis_client, run_id, worker.output, until=lambda events: events[-1].event == "progress"
        )
        relay.down()
        down_at = time.monotonic()
        # the run finishes while Redis is out of reach: its row says so (the terminal event cannot be sent)
        wait_until(
            lambda: load_run(db_engine, run_id).status == RunStatus.succeeded,
            "the run to finish during the outage",
            RUN_TIMEOUT_S,
            detail=worker.output,
        )
        wait_until(
            lambda: logged(worker, r"send \d+ tasks to the broker failed \(try"),
            "the worker to retry sending the aggregator's notice",
            RUN_TIMEOUT_S,
            detail=worker.output,
        )
        time.sleep(max(0.0, 15.0 - (time.monotonic() - down_at)))
        relay.up()
        print(f"Redis was out of the worker's reach for {time.monotonic() - down_at:.1f} s")

        def metrics() -> RunMetrics | None:
            with Session(db_engine) as session:
                return session.get(RunMetrics, run_id)

        row = wait_until(metrics, "the aggregator's metrics of the run", RUN_TIMEOUT_S, detail=aggregator.output)
        assert row.status == RunStatus.succeeded.value
        run = load_run(db_engine, run_id)
        assert run.status == RunStatus.succeeded and run.attempt == 1
        assert not logged(worker, r"after commit, could not send"), worker.output()
        for task in (RUN_FINISHED_TASK, FINISH_TASK):
            record = wait_until(
                lambda task=task: (
                    (row := follow_up(db_engine, run_id, task)) is not None and row.status == "done" and row
                ),
                f"the record of {task} to say done",
                RUN_TIMEOUT_S,
            )
            assert record.sends == 1
    finally:
        relay.down()


def test_a_notice_and_a_follow_up_lost_to_a_redis_outage_past_the_budget_are_re_sent_by_the_sweeper(
    service_env: Settings,
    start_service: Callable[..., ServiceProcess],
    db_engine: Engine,
    redis_client: redis.Redis,
) -> None:
    relay = relay_to(service_env.redis_url)
    relay.up()
    try:
        settings, env = own_settings(
            service_env, retry_budget_s=2, retry_base_s=0.1, retry_max_delay_s=0.5, requeue_after_s=5
        )
        worker = start_worker(
            start_service, settings, {**env, "ALGOCOMP_REDIS_URL": through(service_env.redis_url, relay)}
        )
        aggregator = start_worker(start_service, settings, env, app="aggregator")

        run_id = create_run(db_engine, baseline(sessions=SESSIONS, max_periods=MAX_PERIODS, seed=306))
        send_run(settings, run_id)
        follow_events(
            settings, redis_client, run_id, worker.output, until=lambda events: events[-1].event == "progress"
        )
        relay.down()
        wait_until(
            lambda: load_run(db_engine, run_id).status == RunStatus.succeeded,
            "the run to finish during the outage",
            RUN_TIMEOUT_S,
            detail=worker.output,
        )
        # past the 2 s budget the sends are given up: the notice and the follow-up are lost, their records pending
        wait_until(
            lambda: logged(worker, rf"after commit, could not send {RUN_FINISHED_TASK} of run {run_id}"),
            "the worker to give up sending the notice",
            RUN_TIMEOUT_S,
            detail=worker.output,
        )
        relay.up()
        for task in (RUN_FINISHED_TASK, FINISH_TASK):
            record = follow_up(db_engine, run_id, task)
            assert record is not None and record.status == "pending" and record.sends == 1, task
        with Session(db_engine) as session:
            assert session.get(RunMetrics, run_id) is None

        # the sweeper (what beat sends every sweep_interval_s) re-sends them once they are requeue_after_s old
        celery = create_celery(settings)

        def repaired() -> bool:
            celery.send_task(REQUEUE_TASK, queue=SWEEP_QUEUE)
            records = [follow_up(db_engine, run_id, task) for task in (RUN_FINISHED_TASK, FINISH_TASK)]
            return all(record is not None and record.status == "done" for record in records)

        wait_until(
            repaired, "the sweeper to re-send the lost follow-ups", RUN_TIMEOUT_S, interval_s=2.0, detail=worker.output
        )
        with Session(db_engine) as session:
            metrics = session.get(RunMetrics, run_id)
            assert metrics is not None and metrics.status == RunStatus.succeeded.value, aggregator.output()
        for task in (RUN_FINISHED_TASK, FINISH_TASK):
            record = follow_up(db_engine, run_id, task)
            assert record is not None and record.sends >= 2, (task, record.sends if record else None)
        assert logged(worker, rf"re-sent {FINISH_TASK} of run {run_id}")
    finally:
        relay.down()
