"""Request and response shapes of /sweeps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from algocomp.platform.db import RunStatus
from algocomp_api.limits import MAX_NAME_CHARS

EXAMPLE_SWEEP: dict[str, Any] = {
    "preset": "calvano-2020-baseline",
    "grid": {
        "agents.alpha": [0.05, 0.15],
        "regulation.price_cap": [None, {"basis": "absolute", "value": 1.75}],
    },
    "seeds": [0, 1],
    "sessions": 10,
    "overrides": ["horizon.max_periods=200000"],
}


class SweepCreate(BaseModel):
    """A sweep: a base scenario (exactly one of `scenario_id`, `scenario` or `preset`, then `overrides`), a grid
    {dotted path: [values]} whose cartesian product gives the cells (paths in the order given, each path's values
    in order, the last path varying fastest), and the experiment seeds each cell runs with (`seeds`, or
    `seeds_per_cell` = k for seeds 0..k-1; default [0]). Every cell x seed is one run of `sessions` sessions.

    Or a built-in sweep by name (`sweep_preset`, listed by GET /sweeps/presets): it gives the base preset, the
    grid, the seeds, the sessions and overrides; fields given beside it replace its own (`overrides` are applied
    after its overrides)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_SWEEP]})

    scenario_id: uuid.UUID | None = Field(None, description="id of a scenario stored with POST /scenarios")
    scenario: dict[str, Any] | None = Field(None, description="an inline scenario document")
    preset: str | None = Field(None, max_length=MAX_NAME_CHARS, description="name of a built-in preset")
    sweep_preset: str | None = Field(
        None,
        max_length=MAX_NAME_CHARS,
        description="name of a built-in sweep (GET /sweeps/presets); instead of scenario_id, scenario or preset",
    )
    name: str | None = Field(None, max_length=200, description="a label (default: the base scenario's name)")
    grid: dict[str, list[Any]] | None = Field(
        None,
        description='{dotted path: [values]}, e.g. {"agents.alpha": [0.05, 0.15], "regulation.price_cap": [null, '
        '{"basis": "absolute", "value": 1.75}]}; at most max_grid_values values in all; required unless '
        "sweep_preset gives it",
        min_length=1,
    )
    seeds: list[int] | None = Field(None, min_length=1, description="experiment seeds each cell runs with")
    seeds_per_cell: int | None = Field(
        None, ge=1, description="shorthand for seeds 0..k-1; cells x seeds is at most max_sweep_runs"
    )
    sessions: int | None = Field(
        None, ge=1, description="sessions per run (default: the scenario's); at most max_sessions_per_run"
    )
    overrides: list[str] = Field(
        default_factory=list, description='"PATH=VALUE" changes applied to the base scenario before the grid'
    )


class SweepPresetOut(BaseModel):
    """A built-in sweep: POST /sweeps with {"sweep_preset": name} launches it."""

    name: str
    description: str
    scenario: str = Field(description="its base: a preset's name")
    grid: dict[str, list[Any]]
    seeds: list[int]
    sessions: int | None = Field(description="sessions of each run (null: the base scenario's)")
    overrides: list[str]
    cells: int
    runs: int


class SweepLinks(BaseModel):
    self: str
    stream: str
    cancel: str
    metrics: str


class SweepAccepted(BaseModel):
    """The answer to POST /sweeps: the sweep and all its runs are stored as queued and their tasks sent."""

    id: uuid.UUID
    status: RunStatus
    cells: int
    runs: int
    links: SweepLinks


class SweepCell(BaseModel):
    """One cell of the grid: its coordinates, its runs (one per seed) and how far they are."""

    index: int
    overrides: list[str] = Field(description='the cell\'s "PATH=VALUE" overrides of the base scenario')
    values: dict[str, Any] = Field(description="the cell's value of each grid path")
    counts: dict[str, int] = Field(description="number of the cell's runs in each status")
    progress: float = Field(description="mean progress of the cell's runs, 0..1")
    run_ids: list[uuid.UUID]


class SweepOut(BaseModel):
    """A sweep's state, derived from its runs: queued (none started), running, or once every run is over,
    succeeded (all succeeded), cancelled (the sweep was cancelled, or runs were and none failed) or failed."""

    id: uuid.UUID
    name: str
    status: RunStatus
    grid: dict[str, list[Any]]
    seeds: list[int]
    sessions: int
    cells: int
    runs: int
    counts: dict[str, int] = Field(description="number of runs in each status")
    progress: float = Field(description="mean progress of all runs, 0..1")
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None
    links: SweepLinks


class SweepFileLink(BaseModel):
    """One of the files the aggregator writes to S3 once a sweep is over (metrics.csv, metrics.parquet, plots)."""

    key: str = Field(description="the object's key in the bucket")
    url: str = Field(description="download through the API")
    presigned_url: str = Field(description="time-limited direct download from S3")


class SweepDetail(SweepOut):
    files: dict[str, SweepFileLink] = Field(
        default_factory=dict,
        description="the sweep's files present in S3 by name (metrics_csv, metrics_parquet, delta_heatmap, "
        "regulation_effects); empty until the aggregator has written them after the sweep ended",
    )
    base_spec: dict[str, Any] = Field(description="the base scenario the grid's overrides apply to")
    per_cell: list[SweepCell] = Field(description="every cell, in grid order")
