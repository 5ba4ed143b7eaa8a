"""A unit of work: one database transaction, the repositories that work in it, and the messages that announce
what it did, sent only once it has committed.

Every change to run and sweep state goes through one: the API's routes (create, cancel), the worker's claim,
heartbeats and finish, the stale-run sweeper. Each message (a Celery task, a progress event on a run's stream)
is queued with the change that causes it and sent after COMMIT, in the order queued, so nobody hears of a row
that a rollback could still undo: a worker never receives a run it cannot find, and a client that reacts to a
terminal event finds the final row. A rollback drops the queued messages.

The messages are sent at most once and their failures are logged, not raised: the transaction is committed and
the row is the truth. Each message has its repair: a task that was not sent is re-sent by the stale-run sweeper
(algocomp.requeue_stale), a follow-up or aggregator message that was lost is redone by the next one or
rebuilt from the rows, and a client that missed an event reads the row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from celery import Celery
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from algocomp.platform.db.accounts import AccountRepository
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.db.scenarios import ScenarioRepository
from algocomp.platform.db.sweeps import SweepRepository
from algocomp.platform.progress import ProgressChannel
from algocomp.platform.queue import RUN_TASK, RUNS_QUEUE
from algocomp.platform.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Messaging:
    """Where a unit of work's messages go: Celery's producer for tasks, Redis for run progress events."""

    celery: Celery
    redis: Redis
    key_prefix: str
    progress_maxlen: int

    @classmethod
    def from_settings(cls, settings: Settings, celery: Celery, client: Redis) -> Messaging:
        return cls(celery, client, settings.key_prefix, settings.progress_maxlen)

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.celery.send_task(name, args=args, queue=queue)

    def publish(self, run_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        ProgressChannel(self.redis, run_id, prefix=self.key_prefix, maxlen=self.progress_maxlen).publish(event, data)


class UnitOfWork:
    """One transaction on `session` with its repositories (`accounts`, `scenarios`, `runs`, `sweeps`) and its
    outbox of messages.

    Used as a context manager it commits when the block succeeds (then sends the outbox) and rolls back when it
    raises (and drops it); commit() may also be called inside the block, as often as needed. The session is
    closed at the end of the block.
    """

    def __init__(self, session: Session, messaging: Messaging) -> None:
        self.session = session
        self.messaging = messaging
        self.accounts = AccountRepository(session)
        self.scenarios = ScenarioRepository(session)
        self.runs = RunRepository(session)
        self.sweeps = SweepRepository(session)
        # (what it is, the run it concerns, how to send it)
        self._outbox: list[tuple[str, uuid.UUID | None, Callable[[], object]]] = []

    # ------------------------------------------------------------------------------------------ messages

    def send_task(self, name: str, run_id: uuid.UUID, queue: str, *, description: str | None = None) -> None:
        """Send Celery task `name` for the run on `queue` once the transaction commits."""
        self._outbox.append(
            (
                description or f"send task {name} of run {run_id}",
                run_id,
                lambda: self.messaging.send_task(name, [str(run_id)], queue),
            )
        )

    def enqueue_run(self, run_id: uuid.UUID) -> None:
        """Send the run's task to the workers once the transaction commits (the sweeper re-sends it if this
        fails)."""
        self.send_task(
            RUN_TASK, run_id, RUNS_QUEUE, description=f"send the task of run {run_id}; the sweeper will resend it"
        )

    def publish(self, run_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Publish a progress event of the run once the transaction commits."""
        self._outbox.append(
            (
                f"publish the {event!r} event of run {run_id}",
                run_id,
                lambda: self.messaging.publish(run_id, event, data),
            )
        )

    @property
    def pending(self) -> list[str]:
        """What will be sent at the next commit, described (for logs and tests)."""
        return [description for description, _, _ in self._outbox]

    # ------------------------------------------------------------------------------------------ the transaction

    def commit(self) -> None:
        """Commit, then send the outbox in order; a message that fails is logged and the rest still go."""
        self.session.commit()
        outbox, self._outbox = self._outbox, []
        for description, run_id, send in outbox:
            try:
                send()
            except Exception:  # the row is committed and is the truth; each message has its repair (see above)
                extra = {"run_id": str(run_id)} if run_id is not None else None
                log.warning("after commit, could not %s", description, exc_info=True, extra=extra)

    def rollback(self) -> None:
        """Roll back and drop the outbox."""
        self._outbox.clear()
        self.session.rollback()

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if kind is None:
                self.commit()
            else:
                self.rollback()
        finally:
            self.session.close()


@dataclass
class UnitOfWorkFactory:
    """What a process needs to open units of work: its session factory and its messaging (one of each per
    process, created after any fork)."""

    sessions: sessionmaker[Session]
    messaging: Messaging

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.sessions(), self.messaging)
