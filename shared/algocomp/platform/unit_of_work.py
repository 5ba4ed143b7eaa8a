"""A unit of work: one database transaction, the repositories that work in it, and the messages that announce
what it did, sent only once it has committed.

Every change to run and sweep state goes through one: the API's routes (create, cancel), the worker's claim,
heartbeats and finish, the stale-run sweeper. Each message (a Celery task, a progress event on a run's stream)
is queued with the change that causes it and sent after COMMIT, in the order queued, so nobody hears of a row
that a rollback could still undo: a worker never receives a run it cannot find, and a client that reacts to a
terminal event finds the final row. A rollback drops the queued messages.

The messages are sent once the transaction has committed and their failures are logged, not raised: the
transaction is committed and the row is the truth. Tasks are sent with retries through a broker outage within the
factory's backoff (the worker's: Settings.retry_budget_s; the API's: none, a request does not wait for Redis).
Each message has its repair: a run's task that was not sent is re-sent by the stale-run sweeper
(algocomp.requeue_stale), which also re-sends the follow-ups (the aggregator's notice, MLflow logging) recorded
pending with the finish (`send_follow_up`, algocomp.platform.db.follow_ups) and the plots the API asked for; a
client that missed an event reads the row.

Postgres faults: `UnitOfWorkFactory.run(work)` runs a short transaction again in a fresh unit of work when it meets
a transient fault (a refused or reset connection, a server restarting: algocomp.platform.db.faults), within the
factory's backoff, messages included (they are only sent after the commit that succeeded); past the budget it
raises DatabaseUnavailable. (The API's requests, which cannot be run again, retry only their connect:
db.faults.retry_connections.)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, TypeVar

from celery import Celery
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from algocomp.platform.db.accounts import AccountRepository
from algocomp.platform.db.faults import DatabaseUnavailable, db_transient
from algocomp.platform.db.follow_ups import FollowUpRepository
from algocomp.platform.db.idempotency import IdempotencyRepository
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.db.scenarios import ScenarioRepository
from algocomp.platform.db.sweeps import SweepRepository
from algocomp.platform.progress import publish_events
from algocomp.platform.queue import RUN_TASK, RUNS_QUEUE
from algocomp.platform.retry import Backoff, RetriesExhausted
from algocomp.platform.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Message:
    """One message of an outbox: a progress `event` of a run, or a Celery `task` about a run."""

    kind: Literal["event", "task"]
    run_id: uuid.UUID
    name: str  # the event's or the task's name
    description: str  # what it is, for the log line if it cannot be sent
    data: dict[str, Any] | None = None  # an event's data
    queue: str | None = None  # a task's queue


class DeliveryError(Exception):
    """Some messages of a batch were not sent: `unsent` (the first failure is the cause)."""

    def __init__(self, unsent: Sequence[Message]) -> None:
        super().__init__(f"{len(unsent)} messages not sent")
        self.unsent = list(unsent)


@dataclass
class Messaging:
    """Where a unit of work's messages go: Celery's producer for tasks, Redis for run progress events. Each
    sends a batch at once: events in two Redis round trips (progress.publish_events), tasks over one producer."""

    celery: Celery
    redis: Redis
    key_prefix: str
    progress_maxlen: int
    # how long a batch of tasks is retried through a broker outage (none by default: the API's requests do not wait)
    backoff: Backoff = field(default_factory=lambda: Backoff(budget_s=0))

    @classmethod
    def from_settings(
        cls, settings: Settings, celery: Celery, client: Redis, backoff: Backoff | None = None
    ) -> Messaging:
        return cls(celery, client, settings.key_prefix, settings.progress_maxlen, backoff or Backoff(budget_s=0))

    def publish_events(self, events: Sequence[Message]) -> None:
        """All or none (one pipeline): on failure every event is unsent."""
        try:
            publish_events(
                self.redis,
                [(message.run_id, message.name, message.data or {}) for message in events],
                prefix=self.key_prefix,
                maxlen=self.progress_maxlen,
            )
        except Exception as error:
            raise DeliveryError(events) from error

    def send_tasks(self, tasks: Sequence[Message]) -> None:
        """In order over one producer; a failure is retried (what is left of the batch, on a fresh producer)
        within the backoff's budget, then stops the batch, leaving the message that failed and the rest unsent."""
        sent = 0

        def send_rest() -> None:
            nonlocal sent
            with self.celery.producer_or_acquire() as producer:
                for message in tasks[sent:]:
                    self.celery.send_task(
                        message.name, args=[str(message.run_id)], queue=message.queue, producer=producer
                    )
                    sent += 1

        try:
            self.backoff.call(
                send_rest, transient=broker_transient, what=f"send {len(tasks) - sent} tasks to the broker"
            )
        except Exception as error:
            raise DeliveryError(tasks[sent:]) from error


def broker_transient(error: BaseException) -> bool:
    """Whether sending to the broker may succeed later: a connection error of kombu or Redis, or a timeout."""
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(
        error, (KombuOperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
    )


class UnitOfWork:
    """One transaction on `session` with its repositories (`accounts`, `scenarios`, `runs`, `sweeps`,
    `idempotency`) and its outbox of messages.

    Used as a context manager it commits when the block succeeds (then sends the outbox) and rolls back when it
    raises (and drops it); commit() may also be called inside the block, as often as needed. The session is
    closed at the end of the block. After a commit the events go first, then the tasks, each kind in the order
    queued and in one batch (a sweep of thousands of runs costs a few round trips, not thousands).
    """

    def __init__(self, session: Session, messaging: Messaging) -> None:
        self.session = session
        self.messaging = messaging
        self.accounts = AccountRepository(session)
        self.scenarios = ScenarioRepository(session)
        self.runs = RunRepository(session)
        self.sweeps = SweepRepository(session)
        self.idempotency = IdempotencyRepository(session)
        self.follow_ups = FollowUpRepository(session)
        self._outbox: list[Message] = []

    # ------------------------------------------------------------------------------------------ messages

    def send_task(self, name: str, run_id: uuid.UUID, queue: str, *, description: str | None = None) -> None:
        """Send Celery task `name` for the run on `queue` once the transaction commits."""
        text = description or f"send task {name} of run {run_id}"
        self._outbox.append(Message("task", run_id, name, text, queue=queue))

    def send_follow_up(self, name: str, run_id: uuid.UUID, queue: str) -> None:
        """Record follow-up task `name` of the run as pending in this transaction and send it once it commits: a
        send that fails is repaired by the sweeper, which re-sends pending follow-ups (db.follow_ups)."""
        self.follow_ups.add(run_id, name, queue)
        self.send_task(name, run_id, queue, description=f"send {name} of run {run_id}; the sweeper will resend it")

    def enqueue_run(self, run_id: uuid.UUID) -> None:
        """Send the run's task to the workers once the transaction commits (the sweeper re-sends it if this
        fails)."""
        self.send_task(
            RUN_TASK, run_id, RUNS_QUEUE, description=f"send the task of run {run_id}; the sweeper will resend it"
        )

    def publish(self, run_id: uuid.UUID, event: str, data: dict[str, Any]) -> None:
        """Publish a progress event of the run once the transaction commits."""
        self._outbox.append(Message("event", run_id, event, f"publish the {event!r} event of run {run_id}", data))

    @property
    def pending(self) -> list[str]:
        """What will be sent at the next commit, described (for logs and tests)."""
        return [message.description for message in self._outbox]

    # ------------------------------------------------------------------------------------------ the transaction

    def commit(self) -> None:
        """Commit, then send the outbox: events, then tasks. A batch that fails is logged; the other still goes."""
        self.session.commit()
        outbox, self._outbox = self._outbox, []
        events = [message for message in outbox if message.kind == "event"]
        tasks = [message for message in outbox if message.kind == "task"]
        for batch, send in ((events, self.messaging.publish_events), (tasks, self.messaging.send_tasks)):
            if not batch:
                continue
            try:
                send(batch)
            except DeliveryError as failure:  # the rows are committed and are the truth; each message has its repair
                _log_unsent(failure)

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


# Unsent messages named one by one in the log, at most; the rest are counted in one line.
LOGGED_UNSENT_MAX = 10


def _log_unsent(failure: DeliveryError) -> None:
    cause = failure.__cause__
    for index, message in enumerate(failure.unsent[:LOGGED_UNSENT_MAX]):
        log.warning(
            "after commit, could not %s",
            message.description,
            exc_info=cause if index == 0 else None,
            extra={"run_id": str(message.run_id)},
        )
    if len(failure.unsent) > LOGGED_UNSENT_MAX:
        log.warning("after commit, %d more messages could not be sent", len(failure.unsent) - LOGGED_UNSENT_MAX)


@dataclass
class UnitOfWorkFactory:
    """What a process needs to open units of work: its session factory and its messaging (one of each per
    process, created after any fork)."""

    sessions: sessionmaker[Session]
    messaging: Messaging
    # how long run() retries Postgres through a transient fault (none by default)
    backoff: Backoff = field(default_factory=lambda: Backoff(budget_s=0))

    def __call__(self) -> UnitOfWork:
        """A unit of work (it connects when first used)."""
        return UnitOfWork(self.sessions(), self.messaging)

    def run(self, work: Callable[[UnitOfWork], T], *, what: str) -> T:
        """`work(uow)` in a unit of work, committed; run again in a fresh one when it meets a transient database
        fault, within the budget (DatabaseUnavailable past it). For short transactions whose work may be
        repeated: a commit whose answer was lost may have happened, so the work must be harmless when repeated
        (every transition of algocomp.platform.db.runs is conditional, and RunRepository.finish recognises its own
        earlier commit)."""

        def once() -> T:
            with self() as uow:
                return work(uow)

        try:
            return self.backoff.call(once, transient=db_transient, what=what)
        except RetriesExhausted as exhausted:
            bind = self.sessions.kw.get("bind")
            raise DatabaseUnavailable.after(str(getattr(bind, "url", "")), exhausted) from exhausted.last
