"""Which database errors are transient, and the error of a database that stayed away past the retry budget.

Transient: the connection could not be made (refused, reset, timed out: no SQLSTATE), was lost (class 08), or the
server is shutting down, crashed or starting (57P01 admin_shutdown, which pg_terminate_backend also sends; 57P02;
57P03 cannot_connect_now). Not transient: everything else, including the OperationalErrors a query earns on its
own (lock_timeout's 55P03, statement_timeout's 57014), which a retry would only repeat.

Two ways of retrying use these: `retry_connections(engine, backoff)` makes every new connection of an engine retry
its connect (the API's: a request waits out a short outage, lazily, only when it needs a connection), and the unit
of work runs whole short transactions again (UnitOfWorkFactory.run, the worker's).
"""

from __future__ import annotations

from typing import Any

import psycopg
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from algocomp.platform.retry import Backoff, RetriesExhausted, describe

# SQLSTATEs of a server that is going away or coming back
_TRANSIENT_STATES = {"57P01", "57P02", "57P03"}


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error (SQLAlchemy's wrapper or psycopg's own), if the server sent one."""
    original = error.orig if isinstance(error, DBAPIError) else error
    return getattr(original, "sqlstate", None)


def db_transient(error: BaseException) -> bool:
    """Whether a database error is a lost or refused connection or a server restarting (see the module)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, (OperationalError, psycopg.OperationalError)):  # SQLAlchemy's wrapper or the driver's
        return False
    state = sqlstate(error)
    return state is None or state.startswith("08") or state in _TRANSIENT_STATES


class DatabaseUnavailable(RuntimeError):
    """Postgres did not answer within the retry budget: names the server (never its password) and the last error.
    The API answers it with 503 and Retry-After."""

    @classmethod
    def after(cls, database_url: str, exhausted: RetriesExhausted) -> DatabaseUnavailable:
        """The error for `exhausted` retries of the database at `database_url`."""
        url = make_url(database_url)
        where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"
        return cls(
            f"Postgres at {where} did not answer ({exhausted.tries} tries over {exhausted.elapsed_s:.1f} s): "
            f"{describe(exhausted.last)}"
        )


def retry_connections(engine: Engine, backoff: Backoff) -> None:
    """Make each new connection of `engine` (a first one, or one replacing a connection found dead by the pool's
    pre-ping) retry a transient connect failure within `backoff`'s budget; past it, DatabaseUnavailable. A
    connection is only made when a query needs one, so under load nothing is held longer than before."""

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> Any:
        try:
            return backoff.call(
                lambda: dialect.connect(*cargs, **cparams), transient=db_transient, what="connect to Postgres"
            )
        except RetriesExhausted as exhausted:
            raise DatabaseUnavailable.after(str(engine.url), exhausted) from exhausted.last
