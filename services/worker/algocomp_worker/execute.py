"""One run, from claim to terminal status: the body of the worker's run task, free of Celery.

Delivery is at least once, so every step is harmless when repeated:
- the claim is one conditional UPDATE (algocomp.platform.db.runs), so of two deliveries of the same run only one
  proceeds; every later write is conditional on still owning the claim, so a worker that lost its lease cannot
  overwrite the outcome of the worker that took over;
- files go under the run's deterministic prefix and the result row's primary key is the run id, so a second
  delivery can never add a second result set;
- a delivery that finds the run held by another attempt under a live lease returns "leased" with the time the
  lease has left: the task (algocomp_worker.tasks) decides whether to try again once it expires.

While the run executes, its Heartbeat thread keeps the lease (algocomp_worker.heartbeat). An attempt that takes
over a run first removes the files its predecessor left; a run that ends failed or cancelled keeps only its
run.log (removed while its row is locked by the finish, before the terminal event).

Each transition is a unit of work whose messages go out after its commit: the `started` event after the claim,
the terminal event, the aggregator's message and the follow-up (MLflow) after the finish, so a client
that reacts to an event finds the row. Files are uploaded before the run is marked succeeded, so a reader who
sees the status finds them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from algocomp.engine.experiment import run_experiment
from algocomp.engine.results import ExperimentResult
from algocomp.output.writer import json_ready
from algocomp.platform.db import RunStatus
from algocomp.platform.db.runs import Claim, ClaimLost
from algocomp.platform.queue import AGGREGATE_QUEUE, ARTIFACTS_QUEUE, FINISH_TASK, RUN_FINISHED_TASK
from algocomp.platform.retry import Backoff
from algocomp.platform.storage import StorageError
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp.scenarios import load_scenario
from algocomp_worker.context import WorkerContext
from algocomp_worker.heartbeat import Heartbeat
from algocomp_worker.progress import ProgressReporter
from algocomp_worker.run_log import RunLogCapture, capturing_run_log
from algocomp_worker.uploads import remove_partial_files, upload_log, upload_results

log = logging.getLogger(__name__)

# best-effort S3 work that must not wait out a retry budget
ONE_TRY = Backoff(budget_s=0)

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


@dataclass
class RunOutcome:
    """What the task did, for its return value and the worker's log."""

    run_id: uuid.UUID
    # a RunStatus value; "skipped" when the run is finished or this attempt lost it; "leased" when another attempt
    # holds it under a lease that has `lease_left_s` left (its worker may be dead: see algocomp_worker.tasks)
    status: str
    attempt: int | None = None
    error: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    lease_left_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "status": self.status, "attempt": self.attempt, "error": self.error}


def describe_error(error: BaseException) -> str:
    """The run's error column: the exception's type and message, e.g. "ScenarioError: regulation.price_cap: …"."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def claim(context: WorkerContext, run_id: uuid.UUID, worker: str) -> Claim | None:
    """Claim the run; announce `started` once the claim is committed. (A claim whose commit was lost to a
    database fault and retried finds the run running under its own fresh lease: this delivery then gives up, and
    the run is claimed again once that lease expires.)"""

    def work(uow: UnitOfWork) -> Claim | None:
        claimed = uow.runs.claim(run_id, worker=worker, lease_s=context.settings.lease_s)
        if claimed is not None:
            data = {"status": RunStatus.running.value, "attempt": claimed.attempt, "worker": worker}
            uow.publish(run_id, "started", data)
        return claimed

    return context.units_of_work.run(work, what=f"claim run {run_id}")


def finish(
    context: WorkerContext,
    claim: Claim,
    heartbeat: Heartbeat,
    status: RunStatus,
    event: dict[str, Any],
    **values: Any,
) -> bool:
    """Stop the heartbeat, set the terminal status (RunRepository.finish) and, once committed, publish the
    terminal event, tell the aggregator, and for a success ask for the follow-up (MLflow logging; the plots are drawn
    when first asked for, algocomp_worker.follow_ups). A failed or cancelled run's partial files (all but run.log) are
    removed before the commit, while the finish holds the row: no other attempt can claim the run meanwhile, and a
    reader who sees the terminal status finds only the log. False when the claim was lost."""
    heartbeat.stop()

    def work(uow: UnitOfWork) -> bool:
        if not uow.runs.finish(claim, status, **values):
            log.warning("run %s was taken over before it could be finished; the new owner decides", claim.run_id)
            return False
        if status != RunStatus.succeeded:
            # one try: the row is locked meanwhile, and the files are unreferenced whatever happens to them
            remove_partial_files(context.storage.with_backoff(ONE_TRY), claim.run_id, keep_log=True)
        uow.publish(claim.run_id, status.value, json_ready({"status": status.value, **event}))
        uow.send_follow_up(RUN_FINISHED_TASK, claim.run_id, AGGREGATE_QUEUE)
        if status == RunStatus.succeeded:
            uow.send_follow_up(FINISH_TASK, claim.run_id, ARTIFACTS_QUEUE)
        return True

    return context.units_of_work.run(work, what=f"finish run {claim.run_id} as {status.value}")


def execute_run(context: WorkerContext, run_id: uuid.UUID | str, *, worker: str) -> RunOutcome:
    """Claim the run and take it to a terminal status (see the module docstring). Never raises for a failure of
    the run itself: that is recorded as the run's status, and the task must not be retried."""
    run_id = uuid.UUID(str(run_id))
    claimed = claim(context, run_id, worker)
    if claimed is None:
        lease = context.units_of_work.run(
            lambda uow: uow.runs.lease(run_id, lease_s=context.settings.lease_s), what=f"read the lease of run {run_id}"
        )
        if lease is None:
            log.info("run %s is finished; nothing to do for this delivery", run_id)
            return RunOutcome(run_id, "skipped")
        log.info(
            "run %s is held by attempt %d, whose lease has %.1f s left; this delivery cannot claim it",
            run_id,
            lease.attempt,
            lease.left_s,
        )
        return RunOutcome(run_id, "leased", attempt=lease.attempt, lease_left_s=lease.left_s)

    with capturing_run_log() as run_log, Heartbeat(context, claimed) as heartbeat:
        log.info("run %s claimed by %s (attempt %d)", run_id, worker, claimed.attempt)
        if claimed.attempt > 1:  # what an earlier attempt uploaded before it died: this attempt writes afresh
            remove_partial_files(context.storage, run_id, keep_log=False)
        try:
            scenario = load_scenario(dict(claimed.spec))
            reporter = ProgressReporter(context, claimed, heartbeat)
            log.info(
                "simulating scenario %r (%s): %d sessions from seed %d",
                scenario.name,
                claimed.scenario_hash[:12],
                scenario.sessions,
                scenario.seed,
            )
            result = run_experiment(
                scenario,
                workers=1,
                progress=reporter.progress,
                should_stop=reporter.should_stop,
                agent_classes_allowed=context.settings.python_agent_allowed,  # checked again: the API's may differ
            )
            heartbeat.check()
            if result.cancelled:
                return _cancelled(context, claimed, heartbeat, run_log, result)
            return _succeeded(context, claimed, heartbeat, run_log, result)
        except ClaimLost as lost:
            log.warning("%s; leaving the run to its new owner", lost)
            return RunOutcome(run_id, "skipped", attempt=claimed.attempt)
        except Exception as error:  # noqa: BLE001 - the run's failure, whatever its cause, is its outcome
            return _failed(context, claimed, heartbeat, run_log, error)


def _succeeded(
    context: WorkerContext, claim: Claim, heartbeat: Heartbeat, run_log: RunLogCapture, result: ExperimentResult
) -> RunOutcome:
    summary = json_ready(result.summary)
    log.info(
        "simulated %d sessions in %.1f s: profit gain %s, mean price %s",
        len(result.sessions),
        result.elapsed_s,
        summary.get("profit_gain"),
        summary.get("mean_price"),
    )
    artifacts = upload_results(context.storage, claim, result, run_log)
    heartbeat.check()
    highlights = {key: summary.get(key) for key in SUMMARY_HIGHLIGHTS}
    owned = finish(
        context,
        claim,
        heartbeat,
        RunStatus.succeeded,
        {"summary": highlights},
        summary=summary,
        artifacts=artifacts,
        progress=1.0,
        sessions_done=len(result.sessions),
        periods_done=int(summary.get("periods_total") or 0),
    )
    if not owned:
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt)
    log.info("run %s succeeded", claim.run_id)
    return RunOutcome(claim.run_id, RunStatus.succeeded.value, attempt=claim.attempt, artifacts=artifacts)


def _cancelled(
    context: WorkerContext, claim: Claim, heartbeat: Heartbeat, run_log: RunLogCapture, result: ExperimentResult
) -> RunOutcome:
    sessions_done = len(result.sessions)
    log.info("run %s cancelled after %d of %d sessions", claim.run_id, sessions_done, result.scenario.sessions)
    upload_log(context.storage, claim, run_log)
    owned = finish(
        context,
        claim,
        heartbeat,
        RunStatus.cancelled,
        {"sessions_done": sessions_done, "sessions_total": result.scenario.sessions},
        sessions_done=sessions_done,
        periods_done=sum(int(s.metrics["periods"]) for s in result.sessions),
    )
    if not owned:
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt)
    return RunOutcome(claim.run_id, RunStatus.cancelled.value, attempt=claim.attempt)


def _failed(
    context: WorkerContext, claim: Claim, heartbeat: Heartbeat, run_log: RunLogCapture, error: Exception
) -> RunOutcome:
    message = describe_error(error)
    log.error("run %s failed: %s", claim.run_id, message, exc_info=error)
    # after S3 failed for a whole retry budget, the log gets one try, not another budget
    upload_log(
        context.storage.with_backoff(ONE_TRY) if isinstance(error, StorageError) else context.storage, claim, run_log
    )
    if not finish(context, claim, heartbeat, RunStatus.failed, {"error": message}, error=message):
        return RunOutcome(claim.run_id, "skipped", attempt=claim.attempt, error=message)
    return RunOutcome(claim.run_id, RunStatus.failed.value, attempt=claim.attempt, error=message)
