"""Reading the aggregator's per-run indicators: `run_metrics` joined with `runs` for the sweep coordinates."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from algocomp.platform.db import Run, RunMetrics
from algocomp_api.aggregates.schemas import AGGREGATE_COLUMNS, AggregateOut


def _query(team_id: uuid.UUID, sweep_id: uuid.UUID | None, scenario_hash: str | None, status: str | None) -> Select:
    query = (
        select(
            RunMetrics.run_id,
            RunMetrics.scenario_hash,
            RunMetrics.status,
            RunMetrics.sessions,
            Run.sweep_id,
            Run.cell,
            RunMetrics.profit_gain,
            RunMetrics.price_index,
            RunMetrics.consumer_surplus_loss,
            RunMetrics.converged_share,
            RunMetrics.punishment_share,
            RunMetrics.computed_at,
        )
        .join(Run, Run.id == RunMetrics.run_id)
        .where(Run.team_id == team_id)
    )
    if sweep_id is not None:
        query = query.where(Run.sweep_id == sweep_id)
    if scenario_hash is not None:
        query = query.where(RunMetrics.scenario_hash == scenario_hash)
    if status is not None:
        query = query.where(RunMetrics.status == status)
    return query


def list_aggregates(
    session: Session,
    *,
    team_id: uuid.UUID,
    sweep_id: uuid.UUID | None,
    scenario_hash: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[AggregateOut], int]:
    """One page of the team's rows in a stable order (oldest run first, then by run id, so pages never overlap) and the
    total matching the filters."""
    query = _query(team_id, sweep_id, scenario_hash, status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Run.created_at, Run.cell, RunMetrics.run_id).limit(limit).offset(offset)
    ).all()
    return [AggregateOut.model_validate(row._asdict()) for row in rows], total


def aggregates_csv(rows: Sequence[AggregateOut]) -> str:
    """The rows as CSV with a header (empty cells for missing values)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(AGGREGATE_COLUMNS), restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        record = row.model_dump(mode="json")
        writer.writerow({key: ("" if record[key] is None else record[key]) for key in AGGREGATE_COLUMNS})
    return buffer.getvalue()
