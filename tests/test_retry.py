"""The retry helper (algocomp.platform.retry) with a fake clock and a fixed random draw: which errors are retried,
how long it waits, when the budget ends it, and what it says; and the per-backend transient predicates."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from algocomp.platform.retry import Backoff, RetriesExhausted


class FakeTime:
    """A clock that moves only when slept on (and by each try's `cost_s`)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def backoff(fake: FakeTime, budget_s: float, draw: float = 1.0, **kwargs: float) -> Backoff:
    return Backoff(budget_s=budget_s, clock=fake.clock, sleep=fake.sleep, random=lambda: draw, **kwargs)


def failing(times: int, error: Callable[[], Exception], fake: FakeTime | None = None, cost_s: float = 0.0):
    """An operation that raises `error()` its first `times` calls, then returns the number of calls."""
    calls = {"n": 0}

    def operation() -> int:
        calls["n"] += 1
        if fake is not None:
            fake.now += cost_s
        if calls["n"] <= times:
            raise error()
        return calls["n"]

    return operation, calls


def is_connection_error(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def test_a_transient_error_is_retried_with_exponential_waits_until_it_succeeds() -> None:
    fake = FakeTime()
    operation, calls = failing(4, lambda: ConnectionRefusedError("refused"))
    result = backoff(fake, 60, base_s=0.5, max_delay_s=3.0).call(operation, transient=is_connection_error, what="x")
    assert result == 5 and calls["n"] == 5
    # a draw of 1.0 shows the ceilings: 0.5, 1, 2, then capped at 3
    assert fake.sleeps == [0.5, 1.0, 2.0, 3.0]


def test_full_jitter_draws_each_wait_between_zero_and_its_ceiling() -> None:
    fake = FakeTime()
    draws = iter([0.0, 0.25, 0.5, 0.999])
    policy = Backoff(
        budget_s=60, base_s=1.0, max_delay_s=100, clock=fake.clock, sleep=fake.sleep, random=lambda: next(draws)
    )
    operation, _ = failing(4, lambda: ConnectionResetError())
    policy.call(operation, transient=is_connection_error, what="x")
    assert fake.sleeps == pytest.approx([0.0, 0.5, 2.0, 7.992])


def test_an_error_that_is_not_transient_goes_through_at_once() -> None:
    fake = FakeTime()
    operation, calls = failing(1, lambda: KeyError("no such object"))
    with pytest.raises(KeyError):
        backoff(fake, 60).call(operation, transient=is_connection_error, what="x")
    assert calls["n"] == 1 and fake.sleeps == []


def test_the_budget_ends_the_retries_counting_the_tries_themselves_and_names_what_failed() -> None:
    fake = FakeTime()
    # each try costs 1 s (a connect timeout, say); waits of at most 2 s; a budget of 10 s
    operation, calls = failing(1000, lambda: ConnectionRefusedError("refused"), fake, cost_s=1.0)
    with pytest.raises(RetriesExhausted) as raised:
        backoff(fake, 10, base_s=2.0, max_delay_s=2.0).call(operation, transient=is_connection_error, what="S3 upload")
    exhausted = raised.value
    assert isinstance(exhausted.__cause__, ConnectionRefusedError) and exhausted.last is exhausted.__cause__
    # tries at 0, 3, 6 and 9 s (1 s each, 2 s apart): the 4th ends at the deadline, so no 5th
    assert calls["n"] == exhausted.tries == 4
    assert exhausted.elapsed_s == pytest.approx(10.0)
    assert fake.sleeps == [2.0, 2.0, 2.0]
    assert str(exhausted) == "S3 upload failed 4 times over 10.0 s: refused"


def test_the_last_wait_is_cut_short_so_that_a_last_try_happens_at_the_deadline() -> None:
    fake = FakeTime()
    operation, calls = failing(1000, lambda: ConnectionRefusedError(), fake, cost_s=0.0)
    with pytest.raises(RetriesExhausted) as raised:
        backoff(fake, 5, base_s=4.0, max_delay_s=4.0).call(operation, transient=is_connection_error, what="x")
    assert fake.sleeps == [4.0, 1.0]  # the second wait is cut to the 1 s left
    assert raised.value.tries == calls["n"] == 3 and raised.value.elapsed_s == pytest.approx(5.0)


def test_no_wait_ever_passes_the_deadline() -> None:
    fake = FakeTime()
    operation, _ = failing(1000, lambda: ConnectionRefusedError(), fake, cost_s=0.3)
    with pytest.raises(RetriesExhausted):
        backoff(fake, 7, base_s=1.0, max_delay_s=5.0).call(operation, transient=is_connection_error, what="x")
    # the last try started no later than the deadline
    assert fake.now - 0.3 <= 107.0 + 1e-9


def test_a_budget_of_zero_tries_once_and_raises_the_error_itself() -> None:
    fake = FakeTime()
    operation, calls = failing(1, lambda: ConnectionRefusedError("refused"))
    with pytest.raises(ConnectionRefusedError):
        backoff(fake, 0).call(operation, transient=is_connection_error, what="x")
    assert calls["n"] == 1 and fake.sleeps == []


def test_each_retry_writes_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    operation, _ = failing(2, lambda: ConnectionRefusedError("refused"))
    with caplog.at_level(logging.WARNING, logger="algocomp.platform.retry"):
        backoff(fake, 60).call(operation, transient=is_connection_error, what="S3 upload of panel.parquet")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("S3 upload of panel.parquet failed (try 1,")
    assert "ConnectionRefusedError: refused" in lines[0] and "retrying in" in lines[0]


def test_s3_transient_faults_are_connection_errors_and_5xx_not_4xx() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    from algocomp.platform.storage.s3 import s3_transient

    def client_error(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert s3_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert s3_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))
    assert s3_transient(client_error(500, "InternalError"))
    assert s3_transient(client_error(503, "SlowDown"))
    assert not s3_transient(client_error(404, "NoSuchKey"))
    assert not s3_transient(client_error(403, "AccessDenied"))
    assert not s3_transient(ValueError("bug"))


def test_database_transient_faults_are_lost_connections_and_restarts_not_a_query_s_own_errors() -> None:
    import psycopg
    from psycopg import errors
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from algocomp.platform.db.faults import db_transient

    def wrapped(original: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, original)

    assert db_transient(wrapped(psycopg.OperationalError("connection refused")))  # no SQLSTATE: no connection
    # terminating connection due to administrator command (pg_terminate_backend, a shutdown)
    assert db_transient(wrapped(errors.AdminShutdown()))
    assert db_transient(wrapped(errors.CannotConnectNow()))  # the database system is starting up
    assert db_transient(wrapped(errors.ConnectionFailure()))
    assert not db_transient(wrapped(errors.LockNotAvailable()))  # lock_timeout: the idempotency wait's 409
    assert not db_transient(wrapped(errors.QueryCanceled()))  # statement_timeout
    assert not db_transient(ProgrammingError("SELECT", {}, Exception("syntax")))


def test_the_errors_of_exhausted_retries_survive_pickling_and_name_no_password() -> None:
    """Celery's pool pickles a task's exception to send it to its parent process."""
    import pickle

    from algocomp.platform.db.faults import DatabaseUnavailable

    exhausted = RetriesExhausted("connect to Postgres", 7, 5.2, ConnectionRefusedError("refused"))
    copy = pickle.loads(pickle.dumps(exhausted))
    assert (copy.what, copy.tries, copy.elapsed_s, str(copy)) == (
        "connect to Postgres",
        7,
        5.2,
        "connect to Postgres failed 7 times over 5.2 s: refused",
    )
    unavailable = DatabaseUnavailable.after(
        "postgresql+psycopg://algocomp:s3cret-password@db.internal:6543/algocomp", exhausted
    )
    assert str(unavailable) == (
        "Postgres at db.internal:6543/algocomp did not answer (7 tries over 5.2 s): ConnectionRefusedError: refused"
    )
    assert str(pickle.loads(pickle.dumps(unavailable))) == str(unavailable)

    from algocomp.platform.storage import StorageError

    storage_error = pickle.loads(pickle.dumps(StorageError("cannot upload x: S3 did not answer", transient=True)))
    assert storage_error.transient and str(storage_error) == "cannot upload x: S3 did not answer"
