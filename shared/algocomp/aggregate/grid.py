"""A sweep's cells and per-cell metrics as pure functions: the grid's cells, the regulated cells' paired effects
against their unregulated controls, and the per-cell table (CSV, Parquet) and plots.

They take the sessions of each cell's succeeded runs (the engine's per-session summaries) and need neither the
database nor S3, so they work on local runs as well; algocomp.platform.db.sweep_metrics reads those sessions for the API
and the aggregator and stores the results.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping
from typing import Any

from algocomp.aggregate.metrics import cell_metrics, paired_effects

# Grid paths under this section are interventions: their effect is measured against the unregulated cell.
REGULATION_SECTION = "regulation"


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


def related_cells(grid: dict[str, list[Any]], index: int) -> set[int]:
    """The cells whose metrics depend on cell `index`'s runs: the cell itself and, in a grid with a regulation
    axis, every cell with the same other coordinates (its control, and the regulated cells compared with it)."""
    values = cell_values(grid)
    regulated = regulation_paths(grid)
    if not regulated:
        return {index}
    mine = values[index]
    others = [path for path in grid if path not in regulated]
    return {i for i, cell in enumerate(values) if all(cell[path] == mine[path] for path in others)}


def regulation_effect(
    cell: dict[str, Any], control: dict[str, Any] | None, sessions_by_cell: Mapping[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The paired effect of a regulated cell against its unregulated control, or why there is none."""
    if control is None:
        return {
            "control_cell": None,
            "effects": None,
            "reason": "the grid has no unregulated (null) value for this cell's other coordinates",
        }
    treated, baseline = sessions_by_cell.get(cell["index"], []), sessions_by_cell.get(control["index"], [])
    if not treated or not baseline:
        return {
            "control_cell": control["index"],
            "effects": None,
            "reason": "the cell or its control has no succeeded run yet",
        }
    try:
        return {"control_cell": control["index"], "effects": paired_effects(treated, baseline)}
    except ValueError as error:
        return {"control_cell": control["index"], "effects": None, "reason": str(error)}


def sweep_cells(
    grid: dict[str, list[Any]],
    sessions_by_cell: Mapping[int, list[dict[str, Any]]],
    *,
    runs: Mapping[int, int] | None = None,
    runs_succeeded: Mapping[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Per cell, in index order: index, overrides, values, runs, runs_succeeded, metrics (cell_metrics over the
    pooled sessions of its succeeded runs, None while it has none) and regulation_effect (None for an unregulated
    cell or a grid without a regulation axis). `runs` and `runs_succeeded` count the cell's runs (default: 0);
    the result is JSON-ready (no numpy scalars, no NaN)."""
    runs = runs or {}
    runs_succeeded = runs_succeeded or {}
    cells: list[dict[str, Any]] = []
    for index, values in enumerate(cell_values(grid)):
        sessions = sessions_by_cell.get(index, [])
        cells.append(
            {
                "index": index,
                "overrides": cell_overrides(values),
                "values": values,
                "runs": runs.get(index, 0),
                "runs_succeeded": runs_succeeded.get(index, 0),
                "metrics": cell_metrics(sessions) if sessions else None,
                "regulation_effect": None,
            }
        )
    regulated = regulation_paths(grid)
    if regulated:
        for cell in cells:
            if all(is_baseline(cell["values"][path]) for path in regulated):
                continue
            control = next(
                (
                    other
                    for other in cells
                    if all(is_baseline(other["values"][path]) for path in regulated)
                    and all(other["values"][p] == cell["values"][p] for p in grid if p not in regulated)
                ),
                None,
            )
            cell["regulation_effect"] = regulation_effect(cell, control, sessions_by_cell)
    # JSON round trip: what is returned is exactly what the JSONB columns give back (no numpy scalars, no NaN)
    return json.loads(json.dumps(cells, allow_nan=False))


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
    image = axes.imshow(np.ma.masked_invalid(delta), origin="lower", cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
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
            axes.errorbar(
                numbers["effect"],
                position,
                xerr=[[numbers["effect"] - low], [high - numbers["effect"]]],
                fmt="o",
                capsize=4,
            )
        axes.axvline(0.0, color="grey", linewidth=0.8)
        axes.set_yticks(range(len(measured)), labels if axes is panels[0][0] else [""] * len(measured), fontsize=7)
        axes.set_title(f"effect on {key}")
    figure.suptitle("Regulation effects vs the unregulated cell (95% CI)")
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()
