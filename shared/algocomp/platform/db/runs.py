"""The one home of run state: how a run row is built and every transition it goes through.

A run is created `queued` (alone or as a cell x seed of a sweep), claimed by a worker (`running`, one attempt at a
time), kept alive by heartbeats that also carry its progress, and ends `succeeded` (with its result row),
`failed` or `cancelled`; a queued run may be cancelled at once, a running one only asked to stop. Every
transition is one conditional UPDATE, so two actors racing on the same run (two deliveries of its task, a cancel
against a claim, a worker that lost its lease against the one that took over) end in exactly one outcome:
Postgres re-checks the WHERE clause on the row it locks.

The repository works inside its caller's transaction (a UnitOfWork, algocomp.platform.unit_of_work): it never
commits, and it sends nothing. Messages that announce a transition are the unit of work's, sent after commit.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, Row, Select, and_, bindparam, extract, func, or_, select, update
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session

from algocomp.platform.db.models import TERMINAL_STATUSES, Result, Run, RunStatus
from algocomp.scenarios import Scenario, scenario_hash


class ClaimLost(RuntimeError):
    """The run is no longer this attempt's: its lease expired and another delivery claimed it, or someone else
    finished it. The attempt stops without touching the run."""


@dataclass(frozen=True)
class Lease:
    """Who holds a running run: the attempt, and how long its lease has left (0 once it expired)."""

    attempt: int
    left_s: float


@dataclass(frozen=True)
class Claim:
    """A run as one attempt of its task owns it: every write under the claim is conditional on it."""

    run_id: uuid.UUID
    attempt: int
    spec: dict[str, Any]
    sessions: int
    scenario_hash: str


class CancelOutcome(enum.Enum):
    """What a cancel request did: `cancelled` a queued run at once, `requested` a running run to stop, or found
    the run `finished` already (nothing changed)."""

    cancelled = "cancelled"
    requested = "requested"
    finished = "finished"


def new_run(
    scenario_id: uuid.UUID,
    scenario: Scenario,
    overrides: Sequence[str],
    *,
    team_id: uuid.UUID,
    owner_id: uuid.UUID | None,
    sweep_id: uuid.UUID | None = None,
    cell: int | None = None,
) -> Run:
    """A queued run of an effective scenario (its seed and sessions included) for a team, launched by `owner_id`,
    not yet added to a session: the one place a Run row is built. `overrides` turn scenario_id's stored scenario
    into `scenario`."""
    return Run(
        id=uuid.uuid4(),
        team_id=team_id,
        owner_id=owner_id,
        scenario_id=scenario_id,
        spec=scenario.model_dump(mode="json"),
        scenario_hash=scenario_hash(scenario),
        seed=scenario.seed,
        sessions=scenario.sessions,
        overrides=list(overrides),
        status=RunStatus.queued,
        attempt=0,
        progress=0.0,
        sessions_done=0,
        periods_done=0,
        cancel_requested=False,
        sweep_id=sweep_id,
        cell=cell,
    )


def _owned(claim: Claim) -> ColumnElement[bool]:
    """The WHERE clause of every write made under a claim."""
    return and_(Run.id == claim.run_id, Run.attempt == claim.attempt, Run.status == RunStatus.running)


def _run_view(*, with_spec: bool) -> Select[Any]:
    columns = [getattr(Run, column.key) for column in Run.__table__.columns if with_spec or column.key != "spec"]
    # the scenario's name for lists (Run.scenario_name on an ORM object), without the whole document
    return select(*columns, Run.spec["name"].astext.label("scenario_name"))


# A run as the API shows it: its columns as one plain row (a Core query: no ORM object to build, which costs more
# than the query on a page of runs), the scenario document only for a single run. Built once.
RUN_VIEW = _run_view(with_spec=True).where(Run.id == bindparam("run_id"))


def _run_page(*, by_scenario: bool, by_status: bool) -> Select[Any]:
    """A page of a team's runs, newest first, each row with the count of the whole filter (`total`: one query a
    page, not two)."""
    conditions = [Run.team_id == bindparam("team_id")]
    if by_scenario:
        conditions.append(Run.scenario_id == bindparam("scenario_id"))
    if by_status:
        conditions.append(Run.status == bindparam("status"))
    return (
        _run_view(with_spec=False)
        .add_columns(func.count().over().label("total"))
        .where(*conditions)
        .order_by(Run.created_at.desc(), Run.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


# by (filtered by scenario, filtered by status)
RUN_PAGES = {
    (scenario, status): _run_page(by_scenario=scenario, by_status=status)
    for scenario in (False, True)
    for status in (False, True)
}


class RunRepository:
    """Runs and their results, read and changed within one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # ------------------------------------------------------------------------------------------ creation, reads

    def add(self, runs: Sequence[Run]) -> None:
        """Insert queued runs (from new_run). Server defaults (created_at, queued_at) load when first read."""
        self.session.add_all(runs)
        self.session.flush()

    def get(self, run_id: uuid.UUID, *, team_id: uuid.UUID | None = None) -> Run | None:
        """The run, or None if there is none (or it is another team's, when `team_id` is given)."""
        run = self.session.get(Run, run_id)
        if run is None or (team_id is not None and run.team_id != team_id):
            return None
        return run

    def view(self, run_id: uuid.UUID, *, team_id: uuid.UUID) -> Row[Any] | None:
        """The run as a read-only row (attributes named as the Run's), or None if there is none or it is another
        team's. A plain query: changes of this transaction not flushed yet are not in it."""
        row = self.session.connection().execute(RUN_VIEW, {"run_id": run_id}).one_or_none()
        return row if row is not None and row.team_id == team_id else None

    def page(
        self,
        *,
        team_id: uuid.UUID,
        scenario_id: uuid.UUID | None,
        status: RunStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[Sequence[Row[Any]], int]:
        """A page of the team's runs, newest first, filtered by scenario and status, as read-only rows without the
        scenario document (see `view`), and the total count of the filter."""
        parameters = {
            "team_id": team_id,
            "scenario_id": scenario_id,
            "status": status,
            "limit": limit,
            "offset": offset,
        }
        connection = self.session.connection()
        rows = connection.execute(RUN_PAGES[scenario_id is not None, status is not None], parameters).all()
        if rows:
            total = rows[0].total
        elif offset == 0:
            total = 0
        else:  # past the last page: count the filter on its own
            conditions = [Run.team_id == team_id]
            if scenario_id is not None:
                conditions.append(Run.scenario_id == scenario_id)
            if status is not None:
                conditions.append(Run.status == status)
            total = connection.execute(select(func.count()).select_from(Run).where(*conditions)).scalar_one()
        return rows, total

    def active_count(self, team_id: uuid.UUID) -> int:
        """How many of the team's runs are queued or running, counted under a per-team transaction lock, so two
        concurrent requests of one team cannot both pass a quota check on the same count."""
        self.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"quota:{team_id}", 0))))
        return self.session.execute(
            select(func.count())
            .select_from(Run)
            .where(Run.team_id == team_id, Run.status.in_([RunStatus.queued, RunStatus.running]))
        ).scalar_one()

    def result(self, run_id: uuid.UUID) -> Result | None:
        return self.session.get(Result, run_id)

    # ------------------------------------------------------------------------------------------ cancellation

    def cancel(self, run_id: uuid.UUID) -> CancelOutcome:
        """Cancel a queued run at once, or ask a running one to stop (its worker ends it between sessions)."""
        cancelled = self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.queued)
            .values(status=RunStatus.cancelled, finished_at=func.now(), error=None)
            .returning(Run.id)
        ).scalar_one_or_none()
        if cancelled is not None:
            outcome = CancelOutcome.cancelled
        else:
            requested = self.session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.running)
                .values(cancel_requested=True)
                .returning(Run.id)
            ).scalar_one_or_none()
            outcome = CancelOutcome.requested if requested is not None else CancelOutcome.finished
        self._reload(run_id)
        return outcome

    def retry(self, run_id: uuid.UUID) -> bool:
        """Queue a failed or cancelled run again: the same run (its id, its S3 folder), with its error, progress
        and worker cleared; its next claim is its next attempt. False, changing nothing, for a run in any other
        status."""
        requeued = self.session.execute(
            update(Run)
            .where(Run.id == run_id, Run.status.in_([RunStatus.failed, RunStatus.cancelled]))
            .values(
                status=RunStatus.queued,
                queued_at=func.now(),
                started_at=None,
                heartbeat_at=None,
                finished_at=None,
                error=None,
                worker=None,
                cancel_requested=False,
                progress=0.0,
                sessions_done=0,
                periods_done=0,
            )
            .returning(Run.id)
        ).scalar_one_or_none()
        self._reload(run_id)
        return requeued is not None

    def cancel_sweep_runs(self, sweep_id: uuid.UUID) -> list[Run]:
        """Cancel every queued run of a sweep at once and ask every running one to stop; returns the runs
        cancelled now."""
        cancelled_ids = (
            self.session.execute(
                update(Run)
                .where(Run.sweep_id == sweep_id, Run.status == RunStatus.queued)
                .values(status=RunStatus.cancelled, finished_at=func.now(), error=None)
                .returning(Run.id)
            )
            .scalars()
            .all()
        )
        self.session.execute(
            update(Run).where(Run.sweep_id == sweep_id, Run.status == RunStatus.running).values(cancel_requested=True)
        )
        self.session.flush()
        self.session.expire_all()
        if not cancelled_ids:
            return []
        return list(self.session.execute(select(Run).where(Run.id.in_(cancelled_ids))).scalars())

    # ------------------------------------------------------------------------------------------ a worker's claim

    def claim(self, run_id: uuid.UUID, *, worker: str, lease_s: int) -> Claim | None:
        """Take the run for this delivery: a queued run, or a running one whose heartbeat is older than the lease
        (its worker died). None if another delivery owns or finished it."""
        stale = func.now() - timedelta(seconds=lease_s)
        row = self.session.execute(
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
        ).one_or_none()
        if row is None:
            return None
        return Claim(run_id, row.attempt, row.spec, row.sessions, row.scenario_hash)

    def lease(self, run_id: uuid.UUID, *, lease_s: int) -> Lease | None:
        """The lease on a running run, by the database's clock (the one claim() reads); None if it is not running
        (finished, or gone)."""
        row = self.session.execute(
            select(
                Run.attempt,
                extract("epoch", Run.heartbeat_at + timedelta(seconds=lease_s) - func.now()).label("left_s"),
            ).where(Run.id == run_id, Run.status == RunStatus.running)
        ).one_or_none()
        if row is None:
            return None
        return Lease(row.attempt, max(0.0, float(row.left_s or 0.0)))

    def heartbeat(self, claim: Claim, **values: Any) -> bool:
        """Refresh the run's heartbeat (and set `values`, e.g. its progress); returns whether cancellation was
        requested. Raises ClaimLost if the claim no longer owns the run."""
        row = self.session.execute(
            update(Run).where(_owned(claim)).values(heartbeat_at=func.now(), **values).returning(Run.cancel_requested)
        ).one_or_none()
        if row is None:
            raise ClaimLost(f"run {claim.run_id} attempt {claim.attempt} is no longer owned by this worker")
        return bool(row.cancel_requested)

    def finish(
        self,
        claim: Claim,
        status: RunStatus,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
        artifacts: dict[str, str] | None = None,
        **values: Any,
    ) -> bool:
        """Set the run's terminal status and, for a success, insert its result, in the caller's transaction (so a
        result row exists exactly when its run succeeded). False, writing nothing, when the claim was lost.

        True, writing nothing, when this attempt already finished the run with this status: a finish whose commit
        happened but whose answer was lost to a database fault is run again (UnitOfWorkFactory.run), and must
        still send the messages that announce it. Nobody else ends a run with its worker's attempt number."""
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"{status} is not a terminal status")
        owned = self.session.execute(
            update(Run)
            .where(_owned(claim))
            .values(status=status, error=error, finished_at=func.now(), heartbeat_at=func.now(), **values)
            .returning(Run.id)
        ).one_or_none()
        if owned is None:
            already = self.session.execute(
                select(Run.id).where(Run.id == claim.run_id, Run.attempt == claim.attempt, Run.status == status)
            ).one_or_none()
            return already is not None
        if status == RunStatus.succeeded:
            if summary is None or artifacts is None:
                raise ValueError("a succeeded run needs its summary and artifacts")
            self.session.execute(
                insert(Result)
                .values(run_id=claim.run_id, summary=summary, artifacts=artifacts)
                .on_conflict_do_nothing(index_elements=[Result.run_id])
            )
        return True

    def stale(self, *, requeue_after_s: int, lease_s: int) -> list[uuid.UUID]:
        """Runs whose task must be sent again: queued for longer than requeue_after_s (a lost enqueue, or a broker
        that lost the message) and running without a heartbeat for longer than lease_s (a dead worker).

        A run's queued_at moves to now as it is picked (it is when its task was last sent), so a run waiting behind a
        long queue is re-sent at most once per requeue_after_s, and a dead worker's run once per lease_s, instead
        of at every pass while the copies queue up behind the backlog."""
        queued = (
            self.session.execute(
                update(Run)
                .where(Run.status == RunStatus.queued, Run.queued_at < func.now() - timedelta(seconds=requeue_after_s))
                .values(queued_at=func.now())
                .returning(Run.id)
            )
            .scalars()
            .all()
        )
        expired = func.now() - timedelta(seconds=lease_s)
        abandoned = (
            self.session.execute(
                update(Run)
                .where(Run.status == RunStatus.running, Run.heartbeat_at < expired, Run.queued_at < expired)
                .values(queued_at=func.now())
                .returning(Run.id)
            )
            .scalars()
            .all()
        )
        return [*queued, *abandoned]

    # ------------------------------------------------------------------------------------------ after success

    def succeeded_result(self, run_id: uuid.UUID) -> Row[Any] | None:
        """(spec, scenario_hash, attempt, sessions, summary, artifacts) of a succeeded run, None for any other."""
        return self.session.execute(
            select(Run.spec, Run.scenario_hash, Run.attempt, Run.sessions, Result.summary, Result.artifacts)
            .join(Result, Result.run_id == Run.id)
            .where(Run.id == run_id, Run.status == RunStatus.succeeded)
        ).one_or_none()

    def add_artifacts(self, run_id: uuid.UUID, artifacts: dict[str, str]) -> None:
        """Merge `artifacts` (name -> S3 key) into a result's artifacts, in one statement (a JSONB merge), so
        concurrent follow-ups cannot lose each other's keys."""
        self.session.execute(
            update(Result)
            .where(Result.run_id == run_id)
            .values(artifacts=Result.artifacts.op("||")(sa_cast(artifacts, JSONB)))
        )

    # ------------------------------------------------------------------------------------------ helpers

    def _reload(self, run_id: uuid.UUID) -> None:
        self.session.flush()
        run = self.session.get(Run, run_id)
        if run is not None:
            self.session.refresh(run)
