"""The record of a finished run's follow-up tasks, so none is lost: the aggregator's notice (`algocomp.run_finished`),
for a success its MLflow logging (`algocomp.track`), and its plots once a client asked for them
(`algocomp.draw_plots`, recorded by the API's `claim`, so concurrent first requests send it once).

A follow-up is recorded `pending` in the transaction that finishes its run (the unit of work's `send_follow_up`,
which also sends the task after the commit). The task marks it `done`, or `failed` with its error when it meets an
error no retry mends or a fault that outlasted its retries (algocomp.platform.queue.retries). The stale-run sweeper
re-sends a follow-up still pending `resend_after_s` after its last send (its message was lost: the broker was
down past the retry budget, its worker's node died), at most MAX_SENDS times in all; after that it is marked
`failed` ("not done after N sends") and never sent again. The tasks are idempotent, so a re-send of one whose
message was only slow does no harm, and `done` wins over an earlier `failed`.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from algocomp.platform.db.models import FollowUp

PENDING = "pending"
DONE = "done"
FAILED = "failed"
# the sends of one follow-up (the first included) before the sweeper gives up on it
MAX_SENDS = 5
# rows the sweeper re-sends in one pass (the rest wait for the next)
RESEND_BATCH = 500
# done records the sweeper deletes in one pass (the rest go in the next: one pass every sweep_interval_s)
PURGE_BATCH = 1000


class FollowUpRepository:
    """Follow-ups of runs, read and changed within one session's transaction (it never commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run_id: uuid.UUID, task: str, queue: str) -> None:
        """Record a pending follow-up (nothing when it is recorded already: a finish runs once per run)."""
        self.session.execute(
            insert(FollowUp)
            .values(run_id=run_id, task=task, queue=queue, status=PENDING)
            .on_conflict_do_nothing(index_elements=[FollowUp.run_id, FollowUp.task])
        )

    def claim(self, run_id: uuid.UUID, task: str, queue: str, *, retry_failed_after_s: float) -> bool:
        """Record an on-demand follow-up pending, counted as sent now; True when the caller must send it: the record
        is new, or it failed more than `retry_failed_after_s` ago (tried afresh, its sends counted from one). False
        when it is pending (someone sent it), done, or failed recently (its error stands until then). One statement:
        of concurrent callers, exactly one gets True."""
        inserted = insert(FollowUp).values(run_id=run_id, task=task, queue=queue, status=PENDING, sends=1)
        claimed = self.session.execute(
            inserted.on_conflict_do_update(
                index_elements=[FollowUp.run_id, FollowUp.task],
                set_={"status": PENDING, "error": None, "sends": 1, "queue": queue, "updated_at": func.now()},
                where=(FollowUp.status == FAILED)
                & (FollowUp.updated_at < func.now() - timedelta(seconds=retry_failed_after_s)),
            ).returning(FollowUp.run_id)
        ).scalar_one_or_none()
        return claimed is not None

    def done(self, run_id: uuid.UUID, task: str) -> None:
        self.session.execute(
            update(FollowUp)
            .where(FollowUp.run_id == run_id, FollowUp.task == task)
            .values(status=DONE, error=None, updated_at=func.now())
        )

    def failed(self, run_id: uuid.UUID, task: str, error: str) -> None:
        """Record that the follow-up failed for good (unless it is done already)."""
        self.session.execute(
            update(FollowUp)
            .where(FollowUp.run_id == run_id, FollowUp.task == task, FollowUp.status != DONE)
            .values(status=FAILED, error=error, updated_at=func.now())
        )

    def get(self, run_id: uuid.UUID, task: str) -> FollowUp | None:
        return self.session.get(FollowUp, (run_id, task))

    def purge_done(self, *, older_than_s: float, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` records of follow-ups done more than `older_than_s` ago (they matter only until done:
        a re-send of a done follow-up does nothing, and a plot asked for again after its record is gone is claimed
        afresh and finds the plots stored). Pending and failed records stay. Rows another transaction holds are
        skipped. Returns how many were deleted."""
        old = (
            select(FollowUp.run_id, FollowUp.task)
            .where(FollowUp.status == DONE, FollowUp.updated_at < func.now() - timedelta(seconds=older_than_s))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deleted = self.session.execute(
            delete(FollowUp).where(tuple_(FollowUp.run_id, FollowUp.task).in_(old)).returning(FollowUp.run_id)
        )
        return len(deleted.all())

    def due(self, *, resend_after_s: float) -> list[tuple[uuid.UUID, str, str]]:
        """(run_id, task, queue) of the follow-ups to send again: pending since their last send more than
        `resend_after_s` ago, with sends left; each is counted as sent now. Those without sends left are marked
        failed. Rows another sweeper holds are skipped."""
        stale = FollowUp.status == PENDING, FollowUp.updated_at < func.now() - timedelta(seconds=resend_after_s)
        self.session.execute(
            update(FollowUp)
            .where(*stale, FollowUp.sends >= MAX_SENDS)
            .values(
                status=FAILED,
                error=f"not done after {MAX_SENDS} sends (its messages were lost or its task never ended)",
                updated_at=func.now(),
            )
        )
        rows = self.session.execute(
            select(FollowUp.run_id, FollowUp.task, FollowUp.queue)
            .where(*stale)
            .order_by(FollowUp.updated_at)
            .limit(RESEND_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            self.session.execute(
                update(FollowUp)
                .where(tuple_(FollowUp.run_id, FollowUp.task).in_([(row.run_id, row.task) for row in rows]))
                .values(sends=FollowUp.sends + 1, updated_at=func.now())
            )
        return [(row.run_id, row.task, row.queue) for row in rows]
