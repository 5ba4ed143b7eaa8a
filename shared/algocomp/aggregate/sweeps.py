"""A sweep's per-cell metrics: one implementation shared by the API (GET /sweeps/{id}/metrics) and the aggregator
(which stores them in `sweep_cell_metrics` as runs finish, and writes CSV, Parquet and plots to S3 when the sweep
is over), so both always report the same numbers.

A cell's metrics pool the sessions of its succeeded runs, read from each run's summary.json on S3 (the engine's
per-session summaries; Postgres holds only the means). For a grid with a `regulation.*` path, each regulated cell
is compared, pair by pair of session seeds, with the cell that has the same other coordinates and every
regulation path null (no intervention).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import uuid
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from algocomp.aggregate.metrics import cell_metrics, paired_effects
from algocomp.db import TERMINAL_STATUSES, Run, RunStatus, Sweep, SweepCellMetrics
from algocomp.storage import Storage, StorageError, run_key
from algocomp.storage.keys import sweep_key

# Grid paths under this section are interventions: their effect is measured against the unregulated cell.
REGULATION_SECTION = "regulation"


class SweepDataError(RuntimeError):
    """A succeeded run's summary could not be read: `missing` when it is absent (a broken invariant; the worker
    uploads it before committing), otherwise S3 could not be reached."""

    def __init__(self, run_id: uuid.UUID, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.missing = missing


def cell_values(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The grid's cells as {path: value}, in the cartesian product's order: paths as given, each path's values in
    order, the last path varying fastest. The order is the cell index, stored on every run."""
    paths = list(grid)
    return [dict(zip(paths, combination, strict=True)) for combination in itertools.product(*grid.values())]


def cell_overrides(values: dict[str, Any]) -> list[str]:
    """The cell's "PATH=VALUE" overrides; VALUE is JSON (valid YAML), so lists, objects and null survive."""
    return [f"{path}={json.dumps(value)}" for path, value in values.items()]


def is_baseline(value: Any) -> bool:
    """An unregulated coordinate: the regulation path set to null (no intervention)."""
    return value is None


def regulation_paths(grid: dict[str, list[Any]]) -> list[str]:
    return [path for path in grid if path.split(".", 1)[0] == REGULATION_SECTION]


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


def regulation_effect(cell: dict[str, Any], control: dict[str, Any] | None,
                      sessions_by_cell: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """The paired effect of a regulated cell against its unregulated control, or why there is none."""
    if control is None:
        return {"control_cell": None, "effects": None,
                "reason": "the grid has no unregulated (null) value for this cell's other coordinates"}
    treated, baseline = sessions_by_cell.get(cell["index"], []), sessions_by_cell.get(control["index"], [])
    if not treated or not baseline:
        return {"control_cell": control["index"], "effects": None,
                "reason": "the cell or its control has no succeeded run yet"}
    try:
        return {"control_cell": control["index"], "effects": paired_effects(treated, baseline)}
    except ValueError as error:
        return {"control_cell": control["index"], "effects": None, "reason": str(error)}


def run_counts(session: Session, sweep_id: uuid.UUID) -> tuple[Counter[int], Counter[int]]:
    """(runs per cell, succeeded runs per cell)."""
    rows = session.execute(
        select(Run.cell, Run.status, func.count()).where(Run.sweep_id == sweep_id).group_by(Run.cell, Run.status)
    ).all()
    total: Counter[int] = Counter()
    succeeded: Counter[int] = Counter()
    for cell, status, count in rows:
        total[cell] += count
        if status == RunStatus.succeeded:
            succeeded[cell] += count
    return total, succeeded


def compute_sweep_metrics(session: Session, storage: Storage, sweep_id: uuid.UUID) -> list[dict[str, Any]]:
    """Per cell, in index order: index, overrides, values, runs, runs_succeeded, metrics (cell_metrics over the
    pooled sessions of its succeeded runs, None while it has none) and regulation_effect (None for an unregulated
    cell or a grid without a regulation axis). Raises SweepDataError when a summary cannot be read."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise LookupError(f"sweep {sweep_id} does not exist")
    succeeded = session.execute(
        select(Run.id, Run.cell).where(Run.sweep_id == sweep_id, Run.status == RunStatus.succeeded)
        .order_by(Run.cell, Run.seed)
    ).all()
    total, _ = run_counts(session, sweep_id)
    sessions_by_cell: dict[int, list[dict[str, Any]]] = defaultdict(list)
    runs_by_cell: Counter[int] = Counter()
    for row in succeeded:
        sessions_by_cell[row.cell].extend(run_sessions(storage, row.id))
        runs_by_cell[row.cell] += 1

    cells: list[dict[str, Any]] = []
    for index, values in enumerate(cell_values(sweep.grid)):
        sessions = sessions_by_cell.get(index, [])
        cells.append(
            {
                "index": index,
                "overrides": cell_overrides(values),
                "values": values,
                "runs": total[index],
                "runs_succeeded": runs_by_cell[index],
                "metrics": cell_metrics(sessions) if sessions else None,
                "regulation_effect": None,
            }
        )
    regulated = regulation_paths(sweep.grid)
    if regulated:
        for cell in cells:
            if all(is_baseline(cell["values"][path]) for path in regulated):
                continue
            control = next(
                (
                    other for other in cells
                    if all(is_baseline(other["values"][path]) for path in regulated)
                    and all(other["values"][p] == cell["values"][p] for p in sweep.grid if p not in regulated)
                ),
                None,
            )
            cell["regulation_effect"] = regulation_effect(cell, control, sessions_by_cell)
    # JSON round trip: what is returned is exactly what the JSONB columns give back (no numpy scalars, no NaN)
    return json.loads(json.dumps(cells, allow_nan=False))


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


def sweep_over(session: Session, sweep_id: uuid.UUID) -> bool:
    """Whether every run of the sweep is in a terminal status."""
    statuses = session.execute(select(Run.status).where(Run.sweep_id == sweep_id)).scalars().all()
    return bool(statuses) and all(status in TERMINAL_STATUSES for status in statuses)


# --------------------------------------------------------------------------------------------- tables


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def metrics_rows(grid: dict[str, list[Any]], cells: list[dict[str, Any]], *, blank: Any = "") -> list[dict[str, Any]]:
    """One flat row per cell: index, overrides, each grid path's value, run counts, the cell metrics and the
    regulation effect flattened (effect_<key>, effect_<key>_low, effect_<key>_high, effect_<key>_pairs).
    Undefined values become `blank` ("" for CSV, None for Parquet)."""

    def flat(value: Any) -> Any:
        return blank if value is None else _csv_value(value)

    rows: list[dict[str, Any]] = []
    for cell in cells:
        row: dict[str, Any] = {"cell": cell["index"], "overrides": "; ".join(cell["overrides"])}
        for path in grid:
            row[path] = flat(cell["values"][path])
        row["runs"] = cell["runs"]
        row["runs_succeeded"] = cell["runs_succeeded"]
        for key, value in (cell["metrics"] or {}).items():
            row[key] = flat(value)
        effect = cell["regulation_effect"]
        if effect is not None:
            row["control_cell"] = flat(effect["control_cell"])
            for key, numbers in (effect["effects"] or {}).items():
                row[f"effect_{key}"] = flat(numbers["effect"])
                row[f"effect_{key}_low"] = flat(numbers["low"])
                row[f"effect_{key}_high"] = flat(numbers["high"])
                row[f"effect_{key}_pairs"] = numbers["pairs"]
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    return columns


def metrics_csv(grid: dict[str, list[Any]], cells: list[dict[str, Any]]) -> str:
    """The cells as CSV, one row per cell (metrics_rows)."""
    rows = metrics_rows(grid, cells)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def metrics_parquet(grid: dict[str, list[Any]], cells: list[dict[str, Any]]) -> bytes:
    """The cells as a Parquet table, one row per cell (metrics_rows, undefined values as nulls)."""
    import pandas as pd

    rows = metrics_rows(grid, cells, blank=None)
    frame = pd.DataFrame(rows, columns=_columns(rows))
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- plots


def _label(value: Any) -> str:
    """A grid value as an axis label: null is "none" (no intervention), objects are compact JSON."""
    if value is None:
        return "none"
    if isinstance(value, dict) and "value" in value:
        return str(value["value"])
    return value if isinstance(value, str) else json.dumps(value)


def delta_heatmap_png(grid: dict[str, list[Any]], cells: list[dict[str, Any]]) -> bytes | None:
    """Mean profit gain (Delta) over a 2-D grid, annotated per cell (Calvano et al. 2020, Fig. 1 style): x is the
    first path's values, y the second's. None unless the grid has exactly two paths."""
    if len(grid) != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    (x_path, x_values), (y_path, y_values) = grid.items()
    delta = np.full((len(y_values), len(x_values)), np.nan)
    for cell in cells:
        gain = (cell["metrics"] or {}).get("profit_gain_mean")
        if gain is not None:
            i, j = divmod(cell["index"], len(y_values))  # the last path varies fastest
            delta[j, i] = gain
    figure, axes = plt.subplots(figsize=(1.2 * len(x_values) + 3, 0.9 * len(y_values) + 2.5))
    image = axes.imshow(np.ma.masked_invalid(delta), origin="lower", cmap="viridis", vmin=0.0, vmax=1.0,
                        aspect="auto")
    axes.set_xticks(range(len(x_values)), [_label(v) for v in x_values])
    axes.set_yticks(range(len(y_values)), [_label(v) for v in y_values])
    axes.set_xlabel(x_path)
    axes.set_ylabel(y_path)
    for j in range(len(y_values)):
        for i in range(len(x_values)):
            text_value = "n/a" if np.isnan(delta[j, i]) else f"{delta[j, i]:.2f}"
            axes.text(i, j, text_value, ha="center", va="center", color="white", fontsize=9)
    figure.colorbar(image, ax=axes, label="mean profit gain (Delta)")
    axes.set_title("Profit gain by cell")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def regulation_effects_png(cells: list[dict[str, Any]]) -> bytes | None:
    """Each regulated cell's paired effect with its 95% interval, one panel per outcome. None when no cell has an
    effect (no regulation axis, or nothing measurable yet)."""
    measured = [c for c in cells if c["regulation_effect"] and c["regulation_effect"].get("effects")]
    if not measured:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(measured[0]["regulation_effect"]["effects"])
    figure, panels = plt.subplots(1, len(keys), figsize=(4 * len(keys), 0.6 * len(measured) + 2.0), squeeze=False)
    labels = ["\n".join(f"{path}={_label(value)}" for path, value in cell["values"].items()) for cell in measured]
    for axes, key in zip(panels[0], keys, strict=True):
        for position, cell in enumerate(measured):
            numbers = cell["regulation_effect"]["effects"][key]
            if numbers["effect"] is None:
                continue
            low = numbers["low"] if numbers["low"] is not None else numbers["effect"]
            high = numbers["high"] if numbers["high"] is not None else numbers["effect"]
            axes.errorbar(numbers["effect"], position, xerr=[[numbers["effect"] - low], [high - numbers["effect"]]],
                          fmt="o", capsize=4)
        axes.axvline(0.0, color="grey", linewidth=0.8)
        axes.set_yticks(range(len(measured)), labels if axes is panels[0][0] else [""] * len(measured), fontsize=7)
        axes.set_title(f"effect on {key}")
    figure.suptitle("Regulation effects vs the unregulated cell (95% CI)")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


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
