"""Request and response shapes of /runs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from algocomp.platform.db import RunStatus
from algocomp_api.limits import MAX_NAME_CHARS
from algocomp_api.scenarios.schemas import EXAMPLE_INLINE_SCENARIO


class RunCreate(BaseModel):
    """A run of a scenario: exactly one of `scenario_id` (a stored scenario), `scenario` (inline) or `preset`,
    plus optional changes applied in this order: `overrides` ("PATH=VALUE", as on the command line), then
    `seed`, `sessions` and `log_interval` (periods averaged into one row of the panel)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"preset": "calvano-2020-baseline", "seed": 1, "sessions": 4, "overrides": ["agents.beta=1e-4"]},
                {"scenario": EXAMPLE_INLINE_SCENARIO, "seed": 7, "log_interval": 1000},
            ]
        },
    )

    scenario_id: uuid.UUID | None = Field(None, description="id of a scenario stored with POST /scenarios")
    scenario: dict[str, Any] | None = Field(None, description="an inline scenario document")
    preset: str | None = Field(None, max_length=MAX_NAME_CHARS, description="name of a built-in preset")
    seed: int | None = Field(None, ge=0, lt=2**63, description="master seed (default: the scenario's)")
    sessions: int | None = Field(
        None, ge=1, description="independent sessions (default: the scenario's); at most max_sessions_per_run"
    )
    log_interval: int | None = Field(None, ge=1, description="sets logging.interval")
    overrides: list[str] = Field(
        default_factory=list,
        description='"PATH=VALUE" changes, e.g. "agents.alpha=0.1"; at most max_override_count of at most '
        "max_override_chars characters",
    )


class RunLinks(BaseModel):
    self: str
    stream: str
    results: str
    cancel: str
    scenario: str


class RunAccepted(BaseModel):
    """The answer to POST /runs: the run is stored as queued and its task sent."""

    id: uuid.UUID
    status: RunStatus
    links: RunLinks


class RunOut(BaseModel):
    """A run's state: status, progress and timestamps; `error` is set when it failed."""

    id: uuid.UUID
    scenario_id: uuid.UUID
    scenario_hash: str
    scenario_name: str | None = Field(description="the scenario's name (its `name` field)")
    status: RunStatus
    seed: int
    sessions: int
    overrides: list[str]
    progress: float = Field(description="share of the run done, 0..1")
    sessions_done: int
    periods_done: int
    attempt: int = Field(description="how many times a worker claimed the run")
    cancel_requested: bool
    error: str | None
    worker: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    links: RunLinks


class RunDetail(RunOut):
    spec: dict[str, Any] = Field(description="the effective scenario: overrides, seed and sessions applied")
