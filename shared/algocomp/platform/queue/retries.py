"""Retries of the follow-up tasks (a run's plots and MLflow logging, the aggregator's notice of a finished run).

Each of their S3 and Postgres operations already retries through a transient fault for Settings.retry_budget_s.
A fault that outlasts that (S3 or Postgres down for minutes) does not end the follow-up: the task is sent again
(Celery's retry, a new message on the broker) after a wait that grows exponentially with full jitter, up to
Settings.follow_up_max_retries times. An error that no retry can mend (a bug, a missing object, an S3 answer of
403) fails the task at once, as do the retries running out: the follow-up's record says `failed` with the error
(algocomp.platform.db.follow_ups), and the log says so. The tasks acknowledge late and are rejected when their
worker is lost (algocomp.platform.queue.create_celery), so a killed worker's follow-up is redelivered; one whose
message was lost is re-sent by the stale-run sweeper from its record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn

from celery import Task

from algocomp.platform.db.faults import DatabaseUnavailable, db_transient
from algocomp.platform.retry import Backoff, RetriesExhausted, describe
from algocomp.platform.storage import StorageError

log = logging.getLogger(__name__)

# the wait before the task's n-th retry: full jitter over min(MAX, BASE * 2**n) seconds
FOLLOW_UP_RETRY_BASE_S = 2.0
FOLLOW_UP_RETRY_MAX_S = 300.0


def transient_fault(error: BaseException) -> bool:
    """Whether a follow-up's error may go away by itself: S3, Postgres or the broker out of reach."""
    from algocomp.platform.storage.s3 import s3_transient
    from algocomp.platform.unit_of_work import broker_transient

    if isinstance(error, StorageError):
        return error.transient
    if isinstance(error, (DatabaseUnavailable, RetriesExhausted)):
        return True
    return db_transient(error) or s3_transient(error) or broker_transient(error)


def retry_or_fail(
    task: Task, error: Exception, *, what: str, max_retries: int, record_failure: Callable[[str], None]
) -> NoReturn:
    """From a follow-up task's `except`: send the task again later if `error` is transient and retries are left,
    else record (`record_failure(error text)`) and log that `what` failed for good, and re-raise `error`."""
    retries = int(task.request.retries or 0)
    if transient_fault(error) and retries < max_retries:
        countdown = Backoff(budget_s=0, base_s=FOLLOW_UP_RETRY_BASE_S, max_delay_s=FOLLOW_UP_RETRY_MAX_S).delay(retries)
        log.warning(
            "%s failed (%s); retry %d of %d in %.1f s", what, describe(error), retries + 1, max_retries, countdown
        )
        raise task.retry(exc=error, countdown=countdown, max_retries=max_retries)
    reason = "a transient fault outlasted every retry" if transient_fault(error) else "not a transient fault"
    log.error("%s failed for good (%s): %s", what, reason, describe(error))
    try:
        record_failure(describe(error))
    except Exception:  # noqa: BLE001 - the record is repaired by the sweeper (still pending: sent again later)
        log.warning("could not record that %s failed", what, exc_info=True)
    raise error
