"""End to end through the worker and the aggregator as real Celery processes, against real Postgres, Redis and
an S3 endpoint over HTTP (fixtures in conftest.py).

Runs are created directly in the database, the way the API creates them (committed as queued, spec = the
effective scenario), and their task is sent over the broker; everything after that is the services' own doing.
Scenarios are tiny (a few short sessions of the Calvano baseline) so the file runs in well under two minutes.
Each test works on runs of its own; the session fixtures drop the database, the Redis keys and the S3 folder.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from algocomp.engine.experiment import run_experiment
from algocomp.output.writer import json_ready
from algocomp.platform.db import FollowUp, Result, Run, RunMetrics, RunStatus, ScenarioRecord
from algocomp.platform.db.follow_ups import FollowUpRepository
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.progress import STREAM_START, ProgressChannel, ProgressEvent
from algocomp.platform.queue import (
    ARTIFACTS_QUEUE,
    DRAW_TASK,
    FINISH_TASK,
    PLOTS_QUEUE,
    REQUEUE_TASK,
    RUN_TASK,
    RUNS_QUEUE,
    SWEEP_QUEUE,
    create_celery,
)
from algocomp.platform.settings import Settings
from algocomp.platform.storage import ARTIFACTS, run_key
from algocomp.scenarios import load_scenario, scenario_hash

from .conftest import team_of, wait_for_task, wait_until

BASELINE = "calvano-2020-baseline"
RUN_TIMEOUT_S = 60.0
# Summary entries that measure the machine, not the experiment.
TIMING_KEYS = {"elapsed_s", "periods_per_second"}


# --------------------------------------------------------------------------------------------- helpers


def baseline(*, sessions: int, max_periods: int, seed: int = 0, **sections: dict[str, Any]) -> dict[str, Any]:
    """The Calvano baseline shrunk to `sessions` sessions of at most `max_periods` periods, as a spec document
    (sections given as keyword arguments replace the preset's)."""
    document = load_scenario(BASELINE).model_dump(mode="json")
    document.update(seed=seed, sessions=sessions)
    document["horizon"] = {**document["horizon"], "max_periods": max_periods}
    document["logging"] = {**document["logging"], "interval": 1000}
    document.update(sections)
    return document


def create_run(engine: Engine, spec: dict[str, Any], **columns: Any) -> uuid.UUID:
    """Commit a run of `spec` (and its scenario, unless stored already) as the API does; returns the run's id."""
    scenario = load_scenario(spec)  # valid for the model; the engine may still reject it (the failing test)
    fingerprint = scenario_hash(scenario)
    with Session(engine) as session:
        team_id = team_of(engine)
        record = session.scalars(
            select(ScenarioRecord).where(ScenarioRecord.team_id == team_id, ScenarioRecord.scenario_hash == fingerprint)
        ).first()
        if record is None:
            record = ScenarioRecord(team_id=team_id, name=scenario.name, scenario_hash=fingerprint, spec=spec)
            session.add(record)
            session.flush()
        run = Run(
            team_id=record.team_id,
            scenario_id=record.id,
            spec=spec,
            scenario_hash=fingerprint,
            seed=scenario.seed,
            sessions=scenario.sessions,
            overrides=[],
            **{"status": RunStatus.queued, **columns},
        )
        session.add(run)
        session.commit()
        return run.id


def send_run(settings: Settings, run_id: uuid.UUID) -> str:
    """Send the run's task over the broker; returns the Celery task id (see conftest.wait_for_task)."""
    return create_celery(settings).send_task(RUN_TASK, args=[str(run_id)], queue=RUNS_QUEUE).id


def channel_of(settings: Settings, redis_client: Any, run_id: uuid.UUID) -> ProgressChannel:
    return ProgressChannel(redis_client, run_id, prefix=settings.key_prefix, maxlen=settings.progress_maxlen)


def load_run(engine: Engine, run_id: uuid.UUID) -> Run:
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(Run, run_id)
        assert run is not None, f"run {run_id} vanished"
        return run


def load_result(engine: Engine, run_id: uuid.UUID) -> Result | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Result, run_id)


def follow_events(
    settings: Settings,
    redis_client: Any,
    run_id: uuid.UUID,
    worker_output: Callable[[], str],
    *,
    until: Callable[[list[ProgressEvent]], bool] = lambda events: bool(events) and events[-1].terminal,
    timeout: float = RUN_TIMEOUT_S,
) -> list[ProgressEvent]:
    """The run's events from the start of its stream until `until` holds (by default: a terminal event)."""
    channel = channel_of(settings, redis_client, run_id)
    events: list[ProgressEvent] = []
    last_id = STREAM_START
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in channel.read(last_id, block_ms=500):
            events.append(event)
            last_id = event.id
            if until(events):
                return events
    raise AssertionError(
        f"run {run_id}: condition not reached within {timeout:.0f} s; events so far: "
        f"{[event.event for event in events]}\nworker output:\n{worker_output()}"
    )


def leave_partial_files(storage: Any, run_id: uuid.UUID) -> None:
    """Files of the run as an interrupted upload leaves them (the run must not keep them unless it succeeds)."""
    storage.put_bytes(run_key(run_id, "panel"), b"PAR1 partial")
    storage.put_bytes(run_key(run_id, "summary"), b"{")


def ask_for_plots(settings: Settings, db_engine: Engine, run_id: uuid.UUID) -> bool:
    """What the API does on a first request for a run's plot: record the drawing (claimed once) and send it."""
    with Session(db_engine) as session, session.begin():
        claimed = FollowUpRepository(session).claim(run_id, DRAW_TASK, PLOTS_QUEUE, retry_failed_after_s=0)
    if claimed:
        create_celery(settings).send_task(DRAW_TASK, args=[str(run_id)], queue=PLOTS_QUEUE)
    return claimed


def follow_up_record(db_engine: Engine, run_id: uuid.UUID, task: str) -> FollowUp | None:
    with Session(db_engine) as session:
        return session.get(FollowUp, (run_id, task))


def as_stored_json(document: dict[str, Any]) -> dict[str, Any]:
    """A summary as it reads back from JSON (write_json's rules: NumPy to Python, NaN and infinities to null)."""
    return json.loads(json.dumps(json_ready(document), allow_nan=False))


# --------------------------------------------------------------------------------------------- the tests


def test_a_run_goes_from_queued_to_succeeded_with_events_files_and_the_library_summary(
    service_env: Settings, worker_process, db_engine: Engine, redis_client, storage
) -> None:
    spec = baseline(sessions=3, max_periods=30_000, seed=11)
    run_id = create_run(db_engine, spec)
    send_run(service_env, run_id)

    events = follow_events(service_env, redis_client, run_id, worker_process.output)
    names = [event.event for event in events]
    assert names[0] == "started", names
    assert names[-1] == "succeeded", names
    assert set(names[1:-1]) == {"progress"}, names
    progress = [event.data for event in events if event.event == "progress"]
    assert [p["sessions_done"] for p in progress] == sorted(p["sessions_done"] for p in progress)
    assert progress[-1]["sessions_done"] == progress[-1]["sessions_total"] == 3
    assert progress[-1]["share_done"] == 1.0
    assert set(progress[-1]) == {
        "sessions_done",
        "sessions_total",
        "share_done",
        "periods_done",
        "mean_price",
        "profit_gain",
        "elapsed_s",
    }
    assert events[-1].data["status"] == "succeeded"

    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.succeeded
    assert run.attempt == 1
    assert run.error is None
    assert run.progress == 1.0 and run.sessions_done == 3
    assert run.started_at is not None and run.finished_at is not None and run.finished_at >= run.started_at
    assert run.worker and "@" in run.worker

    result = load_result(db_engine, run_id)
    assert result is not None
    plots = {"prices_plot", "impulse_plot"}
    # The tables, summary and log are stored when the run succeeds; the follow-up logs it to MLflow, and draws
    # nothing: the plots are drawn when first asked for.
    assert set(result.artifacts) == set(ARTIFACTS) - plots
    wait_until(
        lambda: (record := follow_up_record(db_engine, run_id, FINISH_TASK)) is not None and record.status == "done",
        "the follow-up (MLflow) to be done",
        60,
        detail=lambda: worker_process.output()[-2000:],
    )
    assert set(load_result(db_engine, run_id).artifacts) == set(ARTIFACTS) - plots
    assert ask_for_plots(service_env, db_engine, run_id)
    assert not ask_for_plots(service_env, db_engine, run_id)  # asked once: a second ask sends nothing

    def with_plots() -> Result | None:
        latest = load_result(db_engine, run_id)
        return latest if latest is not None and plots <= set(latest.artifacts) else None

    result = wait_until(with_plots, "the plots drawn on request", 60, detail=lambda: worker_process.output()[-2000:])
    drawing = follow_up_record(db_engine, run_id, DRAW_TASK)
    assert drawing is not None and drawing.sends == 1
    assert result.artifacts == {name: run_key(run_id, name) for name in ARTIFACTS}, worker_process.output()[-2000:]
    stored_keys = set(storage.list(f"runs/{run_id}/"))
    assert stored_keys == set(result.artifacts.values())

    library = as_stored_json(run_experiment(load_scenario(spec), workers=1).summary)
    stored = result.summary
    assert set(stored) == set(library)
    differing = {key for key in library if key not in TIMING_KEYS and stored[key] != library[key]}
    assert not differing, {key: (stored[key], library[key]) for key in differing}
    assert events[-1].data["summary"]["profit_gain"] == library["profit_gain"]
    assert run.periods_done == library["periods_total"]

    summary_file = json.loads(storage.get_bytes(run_key(run_id, "summary")))
    assert len(summary_file["sessions"]) == 3  # the file adds one summary per session
    assert {k: v for k, v in summary_file.items() if k not in TIMING_KEYS | {"sessions"}} == {
        k: v for k, v in library.items() if k not in TIMING_KEYS | {"sessions"}
    }
    assert load_scenario(json.loads(storage.get_bytes(run_key(run_id, "scenario")))) == load_scenario(spec)
    assert storage.get_bytes(run_key(run_id, "panel"))[:4] == b"PAR1"
    assert storage.get_bytes(run_key(run_id, "prices_plot"))[:8] == b"\x89PNG\r\n\x1a\n"
    run_log = storage.get_bytes(run_key(run_id, "log")).decode()
    assert f"run {run_id} claimed" in run_log and "simulated 3 sessions" in run_log


def test_a_redelivered_run_leaves_one_result_and_one_outcome(
    service_env: Settings, worker_process, db_engine: Engine, redis_client
) -> None:
    run_id = create_run(db_engine, baseline(sessions=2, max_periods=20_000, seed=21))
    deliveries = [send_run(service_env, run_id) for _ in range(2)]  # both pool processes may take one: they race

    events = follow_events(service_env, redis_client, run_id, worker_process.output)
    finished = load_run(db_engine, run_id)
    first_summary = load_result(db_engine, run_id).summary

    # a third delivery, after the run finished, through the task body itself (with the process's real clients:
    # whatever it would announce would show in the stream checked below)
    from algocomp.platform.db import sessionmaker_for
    from algocomp.platform.storage import Storage
    from algocomp.platform.unit_of_work import Messaging, UnitOfWorkFactory
    from algocomp_worker.context import WorkerContext
    from algocomp_worker.execute import execute_run

    messaging = Messaging.from_settings(service_env, create_celery(service_env), redis_client)
    context = WorkerContext(
        service_env, UnitOfWorkFactory(sessionmaker_for(db_engine), messaging), Storage(service_env)
    )
    outcome = execute_run(context, run_id, worker="test-redelivery")
    assert outcome.status == "skipped"

    for task_id in deliveries:  # both broker deliveries are over: whatever the second would publish is there now
        wait_for_task(worker_process, task_id)
    names = [event.event for event in channel_of(service_env, redis_client, run_id).replay()]
    assert names.count("started") == 1, names
    assert [name for name in names if name in {"succeeded", "failed", "cancelled"}] == ["succeeded"], names
    assert events[-1].event == "succeeded"

    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.succeeded and run.attempt == 1
    assert run.finished_at == finished.finished_at and run.worker == finished.worker
    with Session(db_engine) as session:
        assert session.scalar(select(func.count()).select_from(Result).where(Result.run_id == run_id)) == 1
    assert load_result(db_engine, run_id).summary == first_summary


def test_a_run_whose_worker_died_is_claimed_again_after_its_lease(
    service_env: Settings, worker_process, db_engine: Engine, redis_client
) -> None:
    stale = datetime.now(UTC) - timedelta(seconds=service_env.lease_s + 60)
    fresh = datetime.now(UTC)
    abandoned = create_run(
        db_engine,
        baseline(sessions=2, max_periods=20_000, seed=31),
        status=RunStatus.running,
        attempt=1,
        worker="dead-worker",
        started_at=stale,
        heartbeat_at=stale,
    )
    alive = create_run(
        db_engine,
        baseline(sessions=2, max_periods=20_000, seed=32),
        status=RunStatus.running,
        attempt=1,
        worker="busy-worker",
        started_at=fresh,
        heartbeat_at=fresh,
    )
    alive_delivery = send_run(service_env, alive)  # its owner is alive: this delivery must leave it alone
    send_run(service_env, abandoned)

    events = follow_events(service_env, redis_client, abandoned, worker_process.output)
    assert events[-1].event == "succeeded"
    run = load_run(db_engine, abandoned)
    assert run.status == RunStatus.succeeded and run.attempt == 2 and run.worker != "dead-worker"

    wait_for_task(worker_process, alive_delivery)  # the delivery for `alive` is over: had it claimed, it would show
    untouched = load_run(db_engine, alive)
    assert untouched.status == RunStatus.running and untouched.attempt == 1 and untouched.worker == "busy-worker"
    assert channel_of(service_env, redis_client, alive).replay() == []
    with Session(db_engine) as session:  # do not leave a "running" run for the sweeper test to find
        session.execute(update(Run).where(Run.id == alive).values(status=RunStatus.cancelled))
        session.commit()


def test_the_sweeper_resends_a_dead_workers_run_once_per_lease(service_env: Settings, db_engine: Engine) -> None:
    """Not at every pass: the copies would queue up behind the backlog until a worker claims the run."""
    long_ago = datetime.now(UTC) - timedelta(seconds=service_env.lease_s + 60)
    run_id = create_run(
        db_engine,
        baseline(sessions=2, max_periods=20_000, seed=33),
        status=RunStatus.running,
        attempt=1,
        worker="dead-worker",
        queued_at=long_ago,
        started_at=long_ago,
        heartbeat_at=long_ago,
    )
    try:
        passes = []
        for _ in range(3):
            with Session(db_engine) as session:
                passes.append(
                    run_id
                    in RunRepository(session).stale(
                        requeue_after_s=service_env.requeue_after_s, lease_s=service_env.lease_s
                    )
                )
                session.commit()
        assert passes == [True, False, False]
    finally:
        with Session(db_engine) as session:  # no running run left for other tests' sweepers
            session.execute(update(Run).where(Run.id == run_id).values(status=RunStatus.cancelled))
            session.commit()


def test_the_sweeper_resends_a_run_whose_enqueue_was_lost(
    service_env: Settings, worker_process, db_engine: Engine, redis_client
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=service_env.requeue_after_s + 60)
    run_id = create_run(db_engine, baseline(sessions=2, max_periods=20_000, seed=41), queued_at=long_ago)
    # no RUN_TASK is sent for it: the periodic sweeper must notice and send it
    create_celery(service_env).send_task(REQUEUE_TASK, queue=SWEEP_QUEUE)

    events = follow_events(service_env, redis_client, run_id, worker_process.output)
    assert events[-1].event == "succeeded"
    assert load_run(db_engine, run_id).status == RunStatus.succeeded


def test_a_cancelled_run_stops_between_chunks_and_says_so(
    service_env: Settings, worker_process, db_engine: Engine, redis_client, storage
) -> None:
    sessions = 100
    run_id = create_run(db_engine, baseline(sessions=sessions, max_periods=2_000_000, seed=51))
    leave_partial_files(storage, run_id)
    send_run(service_env, run_id)

    follow_events(
        service_env,
        redis_client,
        run_id,
        worker_process.output,
        until=lambda events: any(event.event == "progress" for event in events) or events[-1].terminal,
    )
    with Session(db_engine) as session:
        session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
        session.commit()
    requested = time.monotonic()

    events = follow_events(service_env, redis_client, run_id, worker_process.output)
    stopped_after_s = time.monotonic() - requested
    assert events[-1].event == "cancelled", [event.event for event in events]
    assert events[-1].data["status"] == "cancelled"
    assert stopped_after_s < 10, f"the run took {stopped_after_s:.1f} s to stop"

    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.cancelled
    assert run.finished_at is not None
    assert 1 <= run.sessions_done < sessions
    assert load_result(db_engine, run_id) is None
    assert storage.list(f"runs/{run_id}/") == [run_key(run_id, "log")]
    assert "cancel" in storage.get_bytes(run_key(run_id, "log")).decode()


def test_a_scenario_the_engine_rejects_ends_failed_with_its_error(
    service_env: Settings, worker_process, db_engine: Engine, redis_client, storage
) -> None:
    # valid for the scenario model, but a cap of 0.5 leaves no price on the grid (1.43 .. 1.97)
    spec = baseline(sessions=2, max_periods=20_000, seed=61, regulation={"price_cap": {"value": 0.5}})
    run_id = create_run(db_engine, spec)
    leave_partial_files(storage, run_id)
    send_run(service_env, run_id)

    events = follow_events(service_env, redis_client, run_id, worker_process.output)
    assert [event.event for event in events] == ["started", "failed"]
    run = load_run(db_engine, run_id)
    assert run.status == RunStatus.failed
    assert run.error is not None
    assert run.error.startswith("ScenarioError: regulation.price_cap: leaves firm 0 no price"), run.error
    assert events[-1].data == {"status": "failed", "error": run.error}
    assert load_result(db_engine, run_id) is None

    run_log = storage.get_bytes(run_key(run_id, "log")).decode()
    assert "Traceback (most recent call last)" in run_log
    assert run.error in run_log
    assert storage.list(f"runs/{run_id}/") == [run_key(run_id, "log")]


def test_the_aggregator_receives_every_finished_run(
    service_env: Settings, worker_process, aggregator_process, db_engine: Engine, redis_client
) -> None:
    succeeded = create_run(db_engine, baseline(sessions=2, max_periods=20_000, seed=71))
    failed = create_run(
        db_engine, baseline(sessions=2, max_periods=20_000, seed=72, regulation={"price_cap": {"value": 0.5}})
    )
    send_run(service_env, succeeded)
    send_run(service_env, failed)
    follow_events(service_env, redis_client, succeeded, worker_process.output)
    follow_events(service_env, redis_client, failed, worker_process.output)

    def metrics_of(run_id: uuid.UUID) -> RunMetrics | None:
        with Session(db_engine, expire_on_commit=False) as session:
            return session.get(RunMetrics, run_id)

    try:
        row = wait_until(lambda: metrics_of(succeeded), "the aggregator's row of the succeeded run", 15)
        failed_row = wait_until(lambda: metrics_of(failed), "the aggregator's row of the failed run", 15)
    except AssertionError as error:
        raise AssertionError(f"{error}\naggregator output:\n{aggregator_process.output()}") from None

    summary = load_result(db_engine, succeeded).summary
    assert row.status == "succeeded"
    assert row.scenario_hash == load_run(db_engine, succeeded).scenario_hash
    assert row.sessions == 2
    assert row.profit_gain == summary["profit_gain"]
    assert row.price_index == summary["price_index"]
    assert row.consumer_surplus_loss == summary["consumer_surplus_loss"]
    assert row.converged_share == summary["converged_share"]
    assert row.punishment_share == summary["punishment_share"]
    assert row.indicators["mean_price"] == summary["mean_price"]
    assert "price_grid" not in row.indicators and "scenario" not in row.indicators

    assert failed_row.status == "failed"
    assert failed_row.profit_gain is None and failed_row.indicators == {}


def test_the_sweeper_deletes_only_the_records_of_follow_ups_done_long_ago(db_engine: Engine) -> None:
    """Done records older than follow_up_keep_s go (a batch per pass); pending, failed and recent done ones stay."""
    old_done, recent_done, old_pending, old_failed = (
        create_run(db_engine, baseline(sessions=1, max_periods=1_000, seed=seed)) for seed in (901, 902, 903, 904)
    )
    with Session(db_engine) as session, session.begin():
        follow_ups = FollowUpRepository(session)
        for run_id in (old_done, recent_done, old_pending, old_failed):
            follow_ups.add(run_id, FINISH_TASK, ARTIFACTS_QUEUE)
        follow_ups.done(old_done, FINISH_TASK)
        follow_ups.done(recent_done, FINISH_TASK)
        follow_ups.failed(old_failed, FINISH_TASK, "an error no retry mends")
    with Session(db_engine) as session, session.begin():
        session.execute(
            update(FollowUp)
            .where(FollowUp.run_id.in_([old_done, old_pending, old_failed]))
            .values(updated_at=func.now() - timedelta(days=8))
        )
    week = 7 * 86_400.0
    with Session(db_engine) as session, session.begin():
        assert FollowUpRepository(session).purge_done(older_than_s=week, limit=1) == 1  # one batch of one
    for _ in range(100):  # the next passes take what is left (of this test's or any other's)
        with Session(db_engine) as session, session.begin():
            if FollowUpRepository(session).purge_done(older_than_s=week) == 0:
                break
    assert follow_up_record(db_engine, old_done, FINISH_TASK) is None
    assert follow_up_record(db_engine, recent_done, FINISH_TASK).status == "done"
    assert follow_up_record(db_engine, old_pending, FINISH_TASK).status == "pending"
    assert follow_up_record(db_engine, old_failed, FINISH_TASK).status == "failed"
