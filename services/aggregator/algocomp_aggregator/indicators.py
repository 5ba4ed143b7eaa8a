"""The per-run coordination indicators the aggregator stores: read from the run's stored summary.

The summary already holds the means over sessions (profit gain, price index, consumer-surplus loss, shares of
converged sessions and of sessions that punish a deviation); the aggregator keeps them in one narrow row per
run so cross-run questions ("how does the profit gain move with alpha?") are one SQL query, and keeps every
other scalar of the summary in `indicators`.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.dialects.postgresql import insert

from algocomp.platform.db import TERMINAL_STATUSES, Result, Run, RunMetrics, session_scope

log = logging.getLogger(__name__)

HEADLINE_COLUMNS = ("profit_gain", "price_index", "consumer_surplus_loss", "converged_share", "punishment_share")


def scalar_indicators(summary: dict[str, Any]) -> dict[str, float | int | bool | None]:
    """Every scalar metric of a summary (numbers, flags and undefined values), without the lists, tables and
    names; a non-finite number becomes None (JSON has no NaN)."""
    scalars: dict[str, float | int | bool | None] = {}
    for key, value in summary.items():
        if isinstance(value, float):
            scalars[key] = value if math.isfinite(value) else None
        elif value is None or isinstance(value, (bool, int)):
            scalars[key] = value
    return scalars


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def record_run_metrics(engine: Engine, run_id: uuid.UUID | str) -> RunMetrics | None:
    """Upsert the run's RunMetrics row from its status and result; None if the run is unknown or not finished.

    An upsert, so a redelivered message rewrites the same row instead of failing or adding one.
    """
    run_id = uuid.UUID(str(run_id))
    with session_scope(engine) as session:
        run = session.get(Run, run_id)
        if run is None:
            log.warning("run %s does not exist; nothing to aggregate", run_id)
            return None
        if run.status not in TERMINAL_STATUSES:
            log.warning("run %s is %s, not finished; nothing to aggregate yet", run_id, run.status.value)
            return None
        result = session.get(Result, run_id)
        summary: dict[str, Any] = dict(result.summary) if result is not None else {}
        sessions = summary.get("sessions")
        values: dict[str, Any] = {
            "scenario_hash": run.scenario_hash,
            "status": run.status.value,
            "sessions": int(sessions) if isinstance(sessions, int) else run.sessions_done,
            **{column: _number(summary.get(column)) for column in HEADLINE_COLUMNS},
            "indicators": scalar_indicators(summary),
            "computed_at": func.now(),
        }
        statement = (
            insert(RunMetrics)
            .values(run_id=run_id, **values)
            .on_conflict_do_update(index_elements=[RunMetrics.run_id], set_=values)
            .returning(RunMetrics)
        )
        metrics = session.execute(statement).scalar_one()
    log.info(
        "run %s (%s): profit gain %s, price index %s, converged share %s",
        run_id,
        metrics.status,
        metrics.profit_gain,
        metrics.price_index,
        metrics.converged_share,
    )
    return metrics
