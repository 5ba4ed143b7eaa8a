"""Postgres through SQLAlchemy 2: the models and one engine per process (see docs/architecture.md)."""

from algocomp.extras import raise_missing_extra

try:
    from algocomp.platform.db.models import (
        TERMINAL_STATUSES,
        Base,
        FollowUp,
        IdempotencyRecord,
        Result,
        Run,
        RunMetrics,
        RunStatus,
        ScenarioRecord,
        Sweep,
        SweepCellMetrics,
    )
    from algocomp.platform.db.session import (
        get_engine,
        reset_engine,
        session_scope,
        sessionmaker_for,
    )
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.db (the services' Postgres models)")

__all__ = [
    "TERMINAL_STATUSES",
    "Base",
    "FollowUp",
    "IdempotencyRecord",
    "Result",
    "Run",
    "RunMetrics",
    "RunStatus",
    "ScenarioRecord",
    "Sweep",
    "SweepCellMetrics",
    "get_engine",
    "reset_engine",
    "session_scope",
    "sessionmaker_for",
]
