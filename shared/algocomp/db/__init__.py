"""Postgres through SQLAlchemy 2: the models and one engine per process (see docs/architecture.md)."""

from algocomp.db.models import (
    TERMINAL_STATUSES,
    Base,
    Result,
    Run,
    RunMetrics,
    RunStatus,
    ScenarioRecord,
    Sweep,
    SweepCellMetrics,
)
from algocomp.db.session import (
    get_engine,
    reset_engine,
    session_scope,
    sessionmaker_for,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Base",
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
