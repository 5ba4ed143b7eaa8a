"""Idempotency keys: the first answer to a POST made with an `Idempotency-Key` header, kept so that a retry of
that request gets the same answer instead of creating a second run or sweep.

A request claims its (user, key) before it does any work, by inserting the record in its own transaction; the
work and the answer follow in that transaction, so the record and what the request created commit together or
not at all. The primary key decides between concurrent requests with one key: the second INSERT waits for the
first transaction, then either finds the committed record (and the second request replays its answer) or, if the
first rolled back, takes the key itself. A record older than the time to live is taken over by the next request
with its key, as if it did not exist; expired records are also deleted a batch at a time as answers are stored.

No wait here can close a cycle: a claim is a request's first write, so a request waiting on a key holds no lock
another waits for; the purge skips locked rows and is a request's last statement, so the rows it deletes (and
locks) are released at once by the commit that follows.

The repository works inside its caller's transaction (a UnitOfWork) and never commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, null, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from algocomp.platform.db.models import IdempotencyRecord

# Expired records deleted at most per stored answer: enough to keep up (each adds one record), cheap to do.
PURGE_BATCH = 100
# SQLSTATE of lock_not_available: a lock wait ran into lock_timeout
LOCK_NOT_AVAILABLE = "55P03"


class KeyInUse(RuntimeError):
    """Another request with the same key was still running when the wait for it ran out."""


@dataclass(frozen=True)
class StoredAnswer:
    """A live record of a key: the fingerprint of the request it answered and that answer (status None only
    while its request's transaction is open, which another transaction never sees)."""

    method: str
    path: str
    fingerprint: str
    status_code: int | None
    body: Any
    location: str | None


class IdempotencyRepository:
    """Idempotency records, within one session's transaction."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(
        self,
        user_id: uuid.UUID,
        key: str,
        *,
        method: str,
        path: str,
        fingerprint: str,
        ttl_s: float,
        wait_s: float,
    ) -> StoredAnswer | None:
        """Take `key` for this transaction (None), or return the live record another request committed for it.

        Waits at most `wait_s` for a transaction that holds the key uncommitted, then raises KeyInUse (the
        transaction is then unusable: the caller rolls back). An expired record is overwritten: the key is new
        again."""
        cutoff = func.now() - timedelta(seconds=ttl_s)
        new = insert(IdempotencyRecord).values(
            user_id=user_id, key=key, method=method, path=path, fingerprint=fingerprint
        )
        statement = new.on_conflict_do_update(
            index_elements=[IdempotencyRecord.user_id, IdempotencyRecord.key],
            set_={
                "method": new.excluded.method,
                "path": new.excluded.path,
                "fingerprint": new.excluded.fingerprint,
                "status_code": null(),
                "body": null(),
                "location": null(),
                "created_at": func.now(),
            },
            where=IdempotencyRecord.created_at < cutoff,
        ).returning(IdempotencyRecord.key)
        # the INSERT waits for a transaction holding the key uncommitted, but only so long
        previous = self.session.execute(select(func.current_setting("lock_timeout"))).scalar_one()
        self._set_lock_timeout(f"{max(1, round(wait_s * 1000))}ms")
        try:
            taken = self.session.execute(statement).first() is not None
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise KeyInUse(key) from error
            raise
        self._set_lock_timeout(previous)
        if taken:
            return None
        # READ COMMITTED: this statement sees the record the INSERT conflicted with (committed, and now locked by
        # this transaction, so no one changes or purges it before this transaction ends)
        row = self.session.execute(
            select(
                IdempotencyRecord.method,
                IdempotencyRecord.path,
                IdempotencyRecord.fingerprint,
                IdempotencyRecord.status_code,
                IdempotencyRecord.body,
                IdempotencyRecord.location,
            ).where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        ).one()
        return StoredAnswer(*row)

    def record(
        self, user_id: uuid.UUID, key: str, *, status_code: int, body: Any, location: str | None, ttl_s: float
    ) -> None:
        """Store the answer of the request that claimed `key`, as the last statement of its transaction (just
        before it commits), then delete a batch of records older than `ttl_s`."""
        self.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
            .values(status_code=status_code, body=body, location=location)
        )
        self.purge_expired(ttl_s)

    def purge_expired(self, ttl_s: float, limit: int = PURGE_BATCH) -> int:
        """Delete up to `limit` records older than `ttl_s` (skipping any another transaction holds); how many."""
        return self._purge(func.now() - timedelta(seconds=ttl_s), limit)

    def _purge(self, cutoff: Any, limit: int = PURGE_BATCH) -> int:
        expired = (
            select(IdempotencyRecord.user_id, IdempotencyRecord.key)
            .where(IdempotencyRecord.created_at < cutoff)
            .order_by(IdempotencyRecord.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        deleted = self.session.execute(
            delete(IdempotencyRecord)
            .where(tuple_(IdempotencyRecord.user_id, IdempotencyRecord.key).in_(expired))
            .returning(IdempotencyRecord.key)
        )
        return len(deleted.all())

    def _set_lock_timeout(self, value: str) -> None:
        """lock_timeout for the rest of this transaction (SET LOCAL)."""
        self.session.execute(select(func.set_config("lock_timeout", value, True)))
