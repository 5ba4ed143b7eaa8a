"""A sweep's per-cell metrics from the database and S3: one implementation shared by the API (GET
/sweeps/{id}/metrics) and the aggregator (which stores them in `sweep_cell_metrics` as runs finish, and writes
CSV, Parquet and plots to S3 when the sweep is over), so both always report the same numbers.

A cell's metrics pool the sessions of its succeeded runs, read from each run's summary.json on S3 (the engine's
per-session summaries; Postgres holds only the means). For a grid with a `regulation.*` path, each regulated cell
is compared, pair by pair of session seeds, with the cell that has the same other coordinates and every
regulation path null (no intervention).

The computation itself (cells, metrics, paired effects, tables, plots) is in algocomp.aggregate.grid, which
needs neither the database nor S3; its names are importable from here too. This module needs the `server`
extra (SQLAlchemy, boto3).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection
from typing import Any

from algocomp.aggregate.grid import (
    REGULATION_SECTION,
    cell_overrides,
    cell_values,
    delta_heatmap_png,
    is_baseline,
    metrics_csv,
    metrics_parquet,
    metrics_rows,
    regulation_effect,
    regulation_effects_png,
    regulation_paths,
    related_cells,
    sweep_cells,
)
from algocomp.extras import raise_missing_extra

try:
    from sqlalchemy import func, select, text
    from sqlalchemy.dialects.postgresql import insert
    from sqlalchemy.orm import Session

    from algocomp.platform.db import TERMINAL_STATUSES, Run, RunStatus, Sweep, SweepCellMetrics
    from algocomp.platform.storage import Storage, StorageError, run_key
    from algocomp.platform.storage.keys import sweep_key
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.db.sweep_metrics (sweep metrics from the database and S3)")

__all__ = [
    "REGULATION_SECTION",
    "SweepDataError",
    "cell_overrides",
    "cell_values",
    "compute_sweep_metrics",
    "delta_heatmap_png",
    "is_baseline",
    "lock_sweep",
    "metrics_csv",
    "metrics_parquet",
    "metrics_rows",
    "regulation_effect",
    "regulation_effects_png",
    "regulation_paths",
    "related_cells",
    "run_counts",
    "run_sessions",
    "store_sweep_metrics",
    "stored_cell_count",
    "stored_sweep_metrics",
    "sweep_cells",
    "sweep_over",
    "write_sweep_artifacts",
]


class SweepDataError(RuntimeError):
    """A succeeded run's summary could not be read: `missing` when it is absent (a broken invariant; the worker
    uploads it before committing), otherwise S3 could not be reached."""

    def __init__(self, run_id: uuid.UUID, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.missing = missing


def run_sessions(storage: Storage, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The per-session summaries of a succeeded run, from its summary.json on S3."""
    try:
        summary = json.loads(storage.get_bytes(run_key(run_id, "summary")))
    except KeyError as error:
        raise SweepDataError(run_id, f"succeeded run {run_id} has no summary.json on S3", missing=True) from error
    except StorageError as error:
        raise SweepDataError(
            run_id, f"could not read the summary of run {run_id} from S3: {error}", missing=False
        ) from error
    return list(summary.get("sessions", []))


def run_counts(session: Session, sweep_id: uuid.UUID) -> tuple[Counter[int], Counter[int]]:
    """(runs per cell, succeeded runs per cell)."""
    rows = session.execute(
        select(Run.cell, Run.status, func.count()).where(Run.sweep_id == sweep_id).group_by(Run.cell, Run.status)
    ).all()
    total: Counter[int] = Counter()
    succeeded: Counter[int] = Counter()
    for cell, status, count in rows:
        if cell is None:  # every run of a sweep has its cell; the column is nullable for runs outside sweeps
            continue
        total[cell] += count
        if status == RunStatus.succeeded:
            succeeded[cell] += count
    return total, succeeded


def compute_sweep_metrics(
    session: Session, storage: Storage, sweep_id: uuid.UUID, *, cells: Collection[int] | None = None
) -> list[dict[str, Any]]:
    """Per cell, in index order: index, overrides, values, runs, runs_succeeded, metrics (cell_metrics over the
    pooled sessions of its succeeded runs, None while it has none) and regulation_effect (None for an unregulated
    cell or a grid without a regulation axis). Raises SweepDataError when a summary cannot be read.

    cells: only these cells, reading only their runs' summaries; with a regulation axis they must hold every cell
    a regulated one is compared with (related_cells gives such a set)."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise LookupError(f"sweep {sweep_id} does not exist")
    query = select(Run.id, Run.cell).where(Run.sweep_id == sweep_id, Run.status == RunStatus.succeeded)
    if cells is not None:
        query = query.where(Run.cell.in_(sorted(cells)))
    succeeded = session.execute(query.order_by(Run.cell, Run.seed)).all()
    total, _ = run_counts(session, sweep_id)
    sessions_by_cell: dict[int, list[dict[str, Any]]] = defaultdict(list)
    runs_by_cell: Counter[int] = Counter()
    for row in succeeded:
        sessions_by_cell[row.cell].extend(run_sessions(storage, row.id))
        runs_by_cell[row.cell] += 1

    computed = sweep_cells(sweep.grid, sessions_by_cell, runs=total, runs_succeeded=runs_by_cell)
    return computed if cells is None else [cell for cell in computed if cell["index"] in cells]


def store_sweep_metrics(session: Session, sweep_id: uuid.UUID, cells: list[dict[str, Any]]) -> None:
    """Upsert one `sweep_cell_metrics` row per cell (a redelivered message rewrites the same rows)."""
    for cell in cells:
        values = {
            "overrides": cell["overrides"],
            "metrics": cell["metrics"],
            "effects": cell["regulation_effect"],
            "runs_done": cell["runs_succeeded"],
            "computed_at": func.now(),
        }
        session.execute(
            insert(SweepCellMetrics)
            .values(sweep_id=sweep_id, cell=cell["index"], **values)
            .on_conflict_do_update(index_elements=[SweepCellMetrics.sweep_id, SweepCellMetrics.cell], set_=values)
        )
    session.flush()


def lock_sweep(session: Session, sweep_id: uuid.UUID) -> None:
    """Serialise recomputations of one sweep until the transaction ends, so a slower computation over fewer
    finished runs can never overwrite a newer one."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"sweep:{sweep_id}"})


def stored_sweep_metrics(session: Session, sweep: Sweep) -> list[dict[str, Any]] | None:
    """The stored cells in compute_sweep_metrics' shape, or None when they are missing or stale (a cell's
    succeeded runs differ from those its row was computed from): then the caller computes them."""
    rows = {
        row.cell: row
        for row in session.execute(select(SweepCellMetrics).where(SweepCellMetrics.sweep_id == sweep.id)).scalars()
    }
    values = cell_values(sweep.grid)
    if len(rows) != len(values):
        return None
    total, succeeded = run_counts(session, sweep.id)
    cells = []
    for index, cell in enumerate(values):
        row = rows.get(index)
        if row is None or row.runs_done != succeeded[index]:
            return None
        cells.append(
            {
                "index": index,
                "overrides": cell_overrides(cell),
                "values": cell,
                "runs": total[index],
                "runs_succeeded": row.runs_done,
                "metrics": row.metrics,
                "regulation_effect": row.effects,
            }
        )
    return cells


def stored_cell_count(session: Session, sweep_id: uuid.UUID) -> int:
    """How many of the sweep's cells have a `sweep_cell_metrics` row."""
    count = select(func.count()).select_from(SweepCellMetrics).where(SweepCellMetrics.sweep_id == sweep_id)
    return int(session.execute(count).scalar_one())


def sweep_over(session: Session, sweep_id: uuid.UUID) -> bool:
    """Whether every run of the sweep is in a terminal status."""
    statuses = session.execute(select(Run.status).where(Run.sweep_id == sweep_id)).scalars().all()
    return bool(statuses) and all(status in TERMINAL_STATUSES for status in statuses)


def write_sweep_artifacts(storage: Storage, sweep: Sweep, cells: list[dict[str, Any]]) -> dict[str, str]:
    """Upload metrics.csv, metrics.parquet and the plots (those the grid allows) under `sweeps/{id}/`; returns
    artifact name -> S3 key."""
    written: dict[str, str] = {}
    files: dict[str, tuple[bytes | None, str]] = {
        "metrics_csv": (metrics_csv(sweep.grid, cells).encode(), "text/csv; charset=utf-8"),
        "metrics_parquet": (metrics_parquet(sweep.grid, cells), "application/vnd.apache.parquet"),
        "delta_heatmap": (delta_heatmap_png(sweep.grid, cells), "image/png"),
        "regulation_effects": (regulation_effects_png(cells), "image/png"),
    }
    for name, (data, content_type) in files.items():
        if data is None:
            continue
        key = sweep_key(sweep.id, name)
        storage.put_bytes(key, data, content_type)
        written[name] = key
    return written
