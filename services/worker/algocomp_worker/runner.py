"""One run, from claim to terminal status: the body of the worker's run task, free of Celery.

Delivery is at least once, so everything here is written to be harmless when repeated:
- the claim is one conditional UPDATE (queued → running, or a running run whose heartbeat is older than the
  lease), so of two deliveries of the same run only one proceeds;
- every later write to the run row is conditional on still owning the claim (same attempt, still running), so a
  worker that lost its lease cannot overwrite the outcome of the worker that took over;
- files go under the run's deterministic prefix and the result row's primary key is the run id, so a second
  delivery can never add a second result set.

The order of the final steps matters: files are uploaded before the database says `succeeded` (a reader who sees
the status finds the files), and the terminal progress event is published after the commit (a client that reacts
to it finds the final row). Tracking in MLflow and the hand-off to the aggregator come last and never change the
run's outcome.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import JSONB, insert

from algocomp.db import Result, Run, RunStatus, session_scope
from algocomp.engine.experiment import run_experiment
from algocomp.engine.results import ExperimentResult, ProgressEvent
from algocomp.output.panel import read_table
from algocomp.output.writer import draw_plots, json_ready, write_run
from algocomp.progress import ProgressChannel
from algocomp.scenarios import Scenario, load_scenario
from algocomp.settings import Settings
from algocomp.storage import ARTIFACTS, Storage, run_key, upload_run_folder
from algocomp.tracking import log_run

log = logging.getLogger(__name__)

RUN_LOG_FILE = ARTIFACTS["log"]
RUN_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The run folder is scratch, uploaded then deleted: in memory where the system offers it, so its durable writes
# (fsync) cost nothing.
SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# How often should_stop may hit the database: the engine polls it between every chunk of every session.
CANCEL_CHECK_INTERVAL_S = 0.5
# Summary entries repeated in the terminal "succeeded" event, so a client can show the outcome without a request.
SUMMARY_HIGHLIGHTS = (
    "sessions",
    "profit_gain",
    "profit_gain_ci95",
    "mean_price",
    "price_index",
    "consumer_surplus_loss",
    "converged_share",
    "punishment_share",
    "periods_total",
)
# Scalar summary entries logged as MLflow metrics.
TRACKED_METRICS = (
    "profit_gain",
    "profit_gain_sd",
    "profit_gain_median",
    "share_profit_gain_above_half",
    "mean_price",
    "price_index",
    "mean_profit",
    "consumer_surplus",
    "consumer_surplus_loss",
    "total_welfare",
    "lerner_index",
    "hhi",
    "converged_share",
    "mean_convergence_period",
    "mean_cycle_length",
    "focal_share",
    "punishment_share",
    "deviation_pays_share",
    "periods_total",
    "periods_per_second",
    "elapsed_s",
)


class ClaimLost(RuntimeError):
    """The run is no longer this task's: its lease expired and another delivery claimed it, or it was finished
    by someone else. The task stops without touching the run."""


@dataclass(frozen=True)
class Claim:
    """What a successful claim returns: the run as this attempt owns it."""

    run_id: uuid.UUID
    attempt: int
    spec: dict[str, Any]
    sessions: int
    scenario_hash: str


@dataclass
class RunServices:
    """The connections one run needs; created once per worker process and shared by its tasks."""

    settings: Settings
    engine: Engine
    redis: Any  # redis.Redis
    storage: Storage
    notify_finished: Callable[[uuid.UUID], None]
    request_follow_up: Callable[[uuid.UUID], None]  # sends the render_and_track task


@dataclass
class RunOutcome:
    """What the task did, for its return value and the worker's log."""

    run_id: uuid.UUID
    status: str  # a RunStatus value, or "skipped" when another delivery owns or finished the run
    attempt: int | None = None
    error: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "status": self.status, "attempt": self.attempt, "error": self.error}


# --------------------------------------------------------------------------------------------- claims


def claim_run(engine: Engine, run_id: uuid.UUID, *, worker: str, lease_s: int) -> Claim | None:
    """Take the run for this delivery, or None if another delivery owns or finished it.

    One conditional UPDATE … RETURNING, so two deliveries racing for the same run cannot both win: Postgres
    re-checks the WHERE clause on the row it locks.
    """
    stale = func.now() - timedelta(seconds=lease_s)
    statement = (
        update(Run)
        .where(
            Run.id == run_id,
            or_(
                Run.status == RunStatus.queued,
                and_(Run.status == RunStatus.running, Run.heartbeat_at < stale),
            ),
        )
        .values(
            status=RunStatus.running,
            attempt=Run.attempt + 1,
            started_at=func.now(),
            heartbeat_at=func.now(),
            worker=worker,
            error=None,
        )
        .returning(Run.attempt, Run.spec, Run.sessions, Run.scenario_hash)
    )
    with session_scope(engine) as session:
        row = session.execute(statement).one_or_none()
    if row is None:
        return None
    return Claim(
        run_id=run_id, attempt=row.attempt, spec=row.spec, sessions=row.sessions, scenario_hash=row.scenario_hash
    )


def _owned(claim: Claim) -> Any:
    """The WHERE clause of every write made under a claim."""
    return and_(Run.id == claim.run_id, Run.attempt == claim.attempt, Run.status == RunStatus.running)


def heartbeat(engine: Engine, claim: Claim, **values: Any) -> bool:
    """Refresh the run's heartbeat (and set `values`); returns whether cancellation was requested.

    Raises ClaimLost if the run is no longer owned by this claim.
    """
    statement = (
        update(Run).where(_owned(claim)).values(heartbeat_at=func.now(), **values).returning(Run.cancel_requested)
    )
    with session_scope(engine) as session:
        row = session.execute(statement).one_or_none()
    if row is None:
        raise ClaimLost(f"run {claim.run_id} attempt {claim.attempt} is no longer owned by this worker")
    return bool(row.cancel_requested)


def finish_run(
    engine: Engine,
    claim: Claim,
    status: RunStatus,
    *,
    error: str | None = None,
    summary: dict[str, Any] | None = None,
    artifacts: dict[str, str] | None = None,
    **values: Any,
) -> bool:
    """Set the run's terminal status (and, for a success, insert its result) if this claim still owns it.

    Both happen in one transaction: a result row exists exactly when its run succeeded. Returns False (and
    writes nothing) when the claim was lost.
    """
    statement = (
        update(Run)
        .where(_owned(claim))
        .values(status=status, error=error, finished_at=func.now(), heartbeat_at=func.now(), **values)
        .returning(Run.id)
    )
    with session_scope(engine) as session:
        if session.execute(statement).one_or_none() is None:
            session.rollback()
            return False
        if status == RunStatus.succeeded:
            assert summary is not None and artifacts is not None, "a succeeded run needs its summary and artifacts"
            session.execute(
                insert(Result)
                .values(run_id=claim.run_id, summary=summary, artifacts=artifacts)
                .on_conflict_do_nothing(index_elements=[Result.run_id])
            )
    return True


def find_stale_runs(engine: Engine, *, requeue_after_s: int, lease_s: int) -> list[uuid.UUID]:
    """Runs whose task must be sent again: queued for longer than requeue_after_s (a lost enqueue, or a broker
    that lost the message) and running without a heartbeat for longer than lease_s (a dead worker).

    A queued run's queued_at is moved to now as it is picked, so a run waiting behind a long queue is re-sent at
    most once per requeue_after_s instead of at every sweep.
    """
    queued_before = func.now() - timedelta(seconds=requeue_after_s)
    heartbeat_before = func.now() - timedelta(seconds=lease_s)
    with session_scope(engine) as session:
        queued = (
            session.execute(
                update(Run)
                .where(Run.status == RunStatus.queued, Run.queued_at < queued_before)
                .values(queued_at=func.now())
                .returning(Run.id)
            )
            .scalars()
            .all()
        )
        abandoned = (
            session.execute(select(Run.id).where(Run.status == RunStatus.running, Run.heartbeat_at < heartbeat_before))
            .scalars()
            .all()
        )
    return [*queued, *abandoned]


# --------------------------------------------------------------------------------------------- the run's log


class RunLogCapture(logging.Handler):
    """Keeps the log lines written while one run executes, to upload them as the run's run.log.

    A prefork worker process executes one task at a time, so every record of the process during the run belongs
    to it (the engine's, the writer's, the storage client's warnings).
    """

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter(RUN_LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted must not break the run
            self.handleError(record)

    def write(self, folder: Path) -> Path:
        path = folder / RUN_LOG_FILE
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path


@contextmanager
def capturing_run_log() -> Iterator[RunLogCapture]:
    capture = RunLogCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    # The run log wants this package's INFO lines even when the process logs only warnings.
    own = logging.getLogger("algocomp_worker")
    previous_level = own.level
    if own.getEffectiveLevel() > logging.INFO:
        own.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        own.setLevel(previous_level)


# --------------------------------------------------------------------------------------------- progress


class ProgressReporter:
    """The engine's progress callback and should_stop: throttled writes to the run row and the run's stream.

    Progress is reported after every finished session; at most one event per settings.progress_interval_s goes
    out, except the first and the last, so even a run shorter than the interval shows progress. should_stop also
    refreshes the heartbeat, so a long session keeps its lease between the per-session progress reports.
    """

    def __init__(self, services: RunServices, claim: Claim, channel: ProgressChannel) -> None:
        self.services = services
        self.claim = claim
        self.channel = channel
        self.interval_s = services.settings.progress_interval_s
        self._last_report = -math.inf
        self._last_check = -math.inf
        self._cancel_requested = False
        self.last_event: ProgressEvent | None = None

    def progress(self, event: ProgressEvent) -> None:
        self.last_event = event
        now = time.monotonic()
        final = event.sessions_done >= event.sessions_total
        if not final and now - self._last_report < self.interval_s and self._last_report > -math.inf:
            return
        self._last_report = now
        self._cancel_requested = (
            heartbeat(
                self.services.engine,
                self.claim,
                progress=event.share_done,
                sessions_done=event.sessions_done,
                periods_done=event.periods_done,
            )
            or self._cancel_requested
        )
        self._last_check = now
        self.channel.publish("progress", progress_data(event))

    def should_stop(self) -> bool:
        if self._cancel_requested:
            return True
        now = time.monotonic()
        if now - self._last_check >= CANCEL_CHECK_INTERVAL_S:
            self._last_check = now
            self._cancel_requested = heartbeat(self.services.engine, self.claim)
            if self._cancel_requested:
                log.info("cancellation requested for run %s; stopping at the next chunk", self.claim.run_id)
        return self._cancel_requested


def progress_data(event: ProgressEvent) -> dict[str, Any]:
    """The payload of a "progress" event (docs/architecture.md, "Progress events"); NaN becomes null."""
    return json_ready(
        {
            "sessions_done": event.sessions_done,
            "sessions_total": event.sessions_total,
            "share_done": event.share_done,
            "periods_done": event.periods_done,
            "mean_price": event.mean_price,
            "profit_gain": event.profit_gain,
            "elapsed_s": event.elapsed_s,
        }
    )


# --------------------------------------------------------------------------------------------- the run


def describe_error(error: BaseException) -> str:
    """The run's error column: the exception's type and message, e.g. "ScenarioError: regulation.price_cap: …"."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def execute_run(services: RunServices, run_id: uuid.UUID | str, *, worker: str) -> RunOutcome:
    """Claim the run and take it to a terminal status (see the module docstring). Never raises for a failure of
    the run itself: that is recorded as the run's status, and the task must not be retried."""
    run_id = uuid.UUID(str(run_id))
    settings = services.settings
    claim = claim_run(services.engine, run_id, worker=worker, lease_s=settings.lease_s)
    if claim is None:
        log.info("run %s is already claimed or finished; nothing to do for this delivery", run_id)
        return RunOutcome(run_id, "skipped")

    channel = ProgressChannel(services.redis, run_id, prefix=settings.key_prefix, maxlen=settings.progress_maxlen)
    with capturing_run_log() as run_log:
        log.info("run %s claimed by %s (attempt %d)", run_id, worker, claim.attempt)
        try:
            channel.publish("started", {"status": RunStatus.running.value, "attempt": claim.attempt, "worker": worker})
            scenario = load_scenario(dict(claim.spec))
            reporter = ProgressReporter(services, claim, channel)
            log.info(
                "simulating scenario %r (%s): %d sessions from seed %d",
                scenario.name,
                claim.scenario_hash[:12],
                scenario.sessions,
                scenario.seed,
            )
            result = run_experiment(scenario, workers=1, progress=reporter.progress, should_stop=reporter.should_stop)
            if result.cancelled:
                return _cancelled(services, claim, channel, run_log, result)
            return _succeeded(services, claim, channel, run_log, scenario, result)
        except ClaimLost as lost:
            log.warning("%s; leaving the run to its new owner", lost)
            return RunOutcome(run_id, "skipped", attempt=claim.attempt)
        except Exception as error:  # noqa: BLE001 - the run's failure, whatever its cause, is its outcome
            return _failed(services, claim, channel, run_log, error)


def _succeeded(
    services: RunServices,
    claim: Claim,
    channel: ProgressChannel,
    run_log: RunLogCapture,
    scenario: Scenario,
    result: ExperimentResult,
) -> RunOutcome:
    summary = json_ready(result.summary)
    log.info(
        "simulated %d sessions in %.1f s: profit gain %s, mean price %s",
        len(result.sessions),
        result.elapsed_s,
        summary.get("profit_gain"),
        summary.get("mean_price"),
    )
    with tempfile.TemporaryDirectory(prefix=f"algocomp-run-{claim.run_id}-", dir=SCRATCH_DIR) as scratch:
        folder = Path(scratch)
        # Plots are drawn by the follow-up task (render_and_track), off this run's critical path.
        write_run(result, folder, workers=1, command=["algocomp-worker", "run", str(claim.run_id)], plots=False)
        log.info("uploading the run folder to s3://%s/runs/%s/", services.storage.bucket, claim.run_id)
        run_log.write(folder)
        artifacts = upload_run_folder(services.storage, claim.run_id, folder)
    owned = finish_run(
        services.engine,
        claim,
        RunStatus.succeeded,
        summary=summary,
        artifacts=artifacts,
        progress=1.0,
        sessions_done=len(result.sessions),
        periods_done=int(summary.get("periods_total") or 0),
    )
    if not owned:
        log.warning(
            "run %s was taken over before it could be marked succeeded; its outcome is the new owner's", claim.run_id
        )
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt)
    log.info("run %s succeeded", claim.run_id)
    highlights = {key: summary.get(key) for key in SUMMARY_HIGHLIGHTS}
    _announce(channel, "succeeded", {"status": RunStatus.succeeded.value, "summary": highlights})
    _notify(services, claim)
    _follow_up(services, claim)
    return RunOutcome(claim.run_id, RunStatus.succeeded.value, attempt=claim.attempt, artifacts=artifacts)


def _cancelled(
    services: RunServices,
    claim: Claim,
    channel: ProgressChannel,
    run_log: RunLogCapture,
    result: ExperimentResult,
) -> RunOutcome:
    sessions_done = len(result.sessions)
    log.info("run %s cancelled after %d of %d sessions", claim.run_id, sessions_done, result.scenario.sessions)
    _upload_log(services, claim, run_log)
    periods_done = sum(int(s.metrics["periods"]) for s in result.sessions)
    owned = finish_run(
        services.engine, claim, RunStatus.cancelled, sessions_done=sessions_done, periods_done=periods_done
    )
    if not owned:
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt)
    _announce(
        channel,
        "cancelled",
        {
            "status": RunStatus.cancelled.value,
            "sessions_done": sessions_done,
            "sessions_total": result.scenario.sessions,
        },
    )
    _notify(services, claim)
    return RunOutcome(claim.run_id, RunStatus.cancelled.value, attempt=claim.attempt)


def _failed(
    services: RunServices,
    claim: Claim,
    channel: ProgressChannel,
    run_log: RunLogCapture,
    error: Exception,
) -> RunOutcome:
    message = describe_error(error)
    log.error("run %s failed: %s", claim.run_id, message, exc_info=error)
    _upload_log(services, claim, run_log)
    owned = finish_run(services.engine, claim, RunStatus.failed, error=message)
    if not owned:
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt, error=message)
    _announce(channel, "failed", {"status": RunStatus.failed.value, "error": message})
    _notify(services, claim)
    return RunOutcome(claim.run_id, RunStatus.failed.value, attempt=claim.attempt, error=message)


# --------------------------------------------------------------------------------------------- after the outcome


def _upload_log(services: RunServices, claim: Claim, run_log: RunLogCapture) -> None:
    """Upload run.log alone (for a failed or cancelled run). A failing upload is logged: it must not hide the
    run's own outcome."""
    try:
        with tempfile.TemporaryDirectory(prefix=f"algocomp-run-{claim.run_id}-") as scratch:
            run_log.write(Path(scratch))
            upload_run_folder(services.storage, claim.run_id, scratch)
    except Exception:
        log.exception("could not upload the log of run %s", claim.run_id)


def _announce(channel: ProgressChannel, event: str, data: dict[str, Any]) -> None:
    """Publish a terminal event. The status is already committed, so a Redis failure is logged, not raised: a
    client that misses the event still finds the final status with GET /runs/{id}."""
    try:
        channel.publish(event, json_ready(data))
    except Exception:
        log.exception("could not publish the %r event of run %s", event, channel.run_id)


def _follow_up(services: RunServices, claim: Claim) -> None:
    """Ask for the run's plots and MLflow record. A failed send is logged: the run's outcome stands, and the
    API serves the tables and summary without the plots."""
    try:
        services.request_follow_up(claim.run_id)
    except Exception:
        log.exception("could not request the plots and tracking of run %s", claim.run_id)


def render_and_track(services: RunServices, run_id: uuid.UUID | str) -> dict[str, str]:
    """Draw a succeeded run's plots from its stored tables, upload them, add them to its artifacts, then log the
    run to MLflow. Idempotent: a repeat redraws the same keys. Returns the plot artifacts."""
    run_id = uuid.UUID(str(run_id))
    with session_scope(services.engine) as session:
        row = session.execute(
            select(Run.spec, Run.scenario_hash, Run.attempt, Run.sessions, Result.summary, Result.artifacts)
            .join(Result, Result.run_id == Run.id)
            .where(Run.id == run_id, Run.status == RunStatus.succeeded)
        ).one_or_none()
    if row is None:
        log.info("run %s has no stored result; nothing to draw", run_id)
        return {}
    scenario = load_scenario(dict(row.spec))
    summary = dict(row.summary)
    storage = services.storage
    panel = read_table(io.BytesIO(storage.get_bytes(run_key(run_id, "panel"))))
    impulse = read_table(io.BytesIO(storage.get_bytes(run_key(run_id, "impulse"))))
    with tempfile.TemporaryDirectory(prefix=f"algocomp-plots-{run_id}-") as scratch:
        folder = Path(scratch)
        (folder / "plots").mkdir()
        draw_plots(panel, impulse, summary.get("benchmarks"), folder, scenario.name, scenario.logging.deviating_firm)
        plots = upload_run_folder(storage, run_id, folder)
    with session_scope(services.engine) as session:
        session.execute(
            update(Result)
            .where(Result.run_id == run_id)
            .values(artifacts=Result.artifacts.op("||")(sa_cast(plots, JSONB)))
        )
    log.info("run %s: plots uploaded (%s)", run_id, ", ".join(sorted(plots)))
    claim = Claim(
        run_id=run_id, attempt=row.attempt, spec=row.spec, sessions=row.sessions, scenario_hash=row.scenario_hash
    )
    _track(services, claim, scenario, summary, {**dict(row.artifacts), **plots})
    return plots


def _track(
    services: RunServices, claim: Claim, scenario: Scenario, summary: dict[str, Any], artifacts: dict[str, str]
) -> None:
    """Log the run to MLflow; log_run never raises (a tracking failure never fails a run)."""
    params: dict[str, Any] = {
        "scenario_hash": claim.scenario_hash,
        "seed": scenario.seed,
        "sessions": scenario.sessions,
        "n_firms": scenario.market.n_firms,
        "demand": scenario.market.demand.model,
        "agents": ",".join(sorted({agent.type for agent in scenario.agent_list()})),
        "max_periods": scenario.horizon.max_periods,
        "regulated": scenario.regulation.is_active,
    }
    metrics = {key: summary[key] for key in TRACKED_METRICS if isinstance(summary.get(key), (int, float))}
    storage = services.storage
    links = {name: f"s3://{storage.bucket}/{key}" for name, key in artifacts.items()}
    tracking_id = log_run(
        services.settings,
        run_id=str(claim.run_id),
        scenario_name=scenario.name,
        params=params,
        metrics=metrics,
        artifacts=links,
        tags={"attempt": str(claim.attempt), "worker_task": "algocomp.run"},
    )
    if tracking_id:
        log.info("run %s tracked in MLflow as %s", claim.run_id, tracking_id)


def _notify(services: RunServices, claim: Claim) -> None:
    """Hand the finished run to the aggregator. A failed send is logged: the run's outcome stands."""
    try:
        services.notify_finished(claim.run_id)
    except Exception:
        log.exception("could not tell the aggregator that run %s finished", claim.run_id)
