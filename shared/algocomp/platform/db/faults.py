"""Which database errors are transient, and the error of a database that stayed away past the retry budget.

Transient: the connection could not be made (refused, reset, timed out: no SQLSTATE), was lost (class 08), or the
server is shutting down, crashed or starting (57P01 admin_shutdown, which pg_terminate_backend also sends; 57P02;
57P03 cannot_connect_now). Not transient: everything else, including the OperationalErrors a query earns on its
own (lock_timeout's 55P03, statement_timeout's 57014), which a retry would only repeat.

The retrying itself is the unit of work's (algocomp.platform.unit_of_work): it takes its connection with retries
and runs whole transactions again (UnitOfWorkFactory.run); this module only classifies.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from algocomp.platform.retry import RetriesExhausted, describe

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
    if not isinstance(error, OperationalError):
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
