"""One engine per process, created on first use: a Celery worker forks before any task runs, so each child
opens its own connections instead of sharing its parent's sockets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from algocomp.platform.settings import get_settings

_engine: Engine | None = None
_engine_pid: int | None = None


def get_engine(url: str | None = None) -> Engine:
    """This process's engine for the settings' database (or `url`, for tools and tests)."""
    global _engine, _engine_pid
    if url is not None:
        return create_engine(url, pool_pre_ping=True)
    if _engine is None or _engine_pid != os.getpid():
        _engine = create_engine(get_settings().database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        _engine_pid = os.getpid()
    return _engine


def reset_engine() -> None:
    """Forget this process's engine (after settings change, in tests)."""
    global _engine
    if _engine is not None:
        _engine.dispose()
    _engine = None


def sessionmaker_for(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine | None = None, *, factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A session (from `factory`, or for `engine`) that commits when the block succeeds and rolls back when it
    raises."""
    session = (factory or sessionmaker_for(engine or get_engine()))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
