"""Request and response shapes of /scenarios."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from algocomp_api.limits import MAX_NAME_CHARS

EXAMPLE_INLINE_SCENARIO: dict[str, Any] = {
    "name": "small-duopoly",
    "market": {"n_firms": 2, "demand": {"model": "logit", "mu": 0.25}},
    "prices": {"kind": "benchmark_grid", "m": 7},
    "agents": {"type": "qlearning", "alpha": 0.15, "beta": 1e-4},
    "horizon": {"max_periods": 20000, "convergence_periods": 1000},
    "sessions": 4,
}


class ScenarioSource(BaseModel):
    """Where a scenario comes from: exactly one of `preset` (a built-in preset's name) or `scenario` (a full
    scenario document in the format of docs/scenario-format.md; omitted fields take their defaults)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"preset": "calvano-2020-baseline"}, {"scenario": EXAMPLE_INLINE_SCENARIO}]},
    )

    preset: str | None = Field(
        None, max_length=MAX_NAME_CHARS, description="name of a built-in preset, e.g. calvano-2020-baseline"
    )
    scenario: dict[str, Any] | None = Field(None, description="an inline scenario document")


class ScenarioLinks(BaseModel):
    self: str
    runs: str


class ScenarioOut(BaseModel):
    """A stored scenario: its full specification with every default spelt out, and its fingerprint."""

    id: uuid.UUID
    name: str
    scenario_hash: str
    spec: dict[str, Any]
    created_at: datetime
    links: ScenarioLinks


class PresetOut(BaseModel):
    name: str
    description: str


class ScenarioCheck(BaseModel):
    """A scenario to validate without storing it: exactly one of `scenario_id`, `scenario` or `preset`, then the
    changes a run would apply (`overrides`, `seed`, `sessions`), so an editor can show the field at fault as the
    user types."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"preset": "calvano-2020-baseline", "overrides": ["agents.alpha=0.1"], "sessions": 4}]
        },
    )

    scenario_id: uuid.UUID | None = Field(None, description="id of a scenario stored with POST /scenarios")
    scenario: dict[str, Any] | None = Field(None, description="an inline scenario document")
    preset: str | None = Field(None, max_length=MAX_NAME_CHARS, description="name of a built-in preset")
    overrides: list[str] = Field(default_factory=list, description='"PATH=VALUE" changes, as for POST /runs')
    seed: int | None = Field(None, ge=0, lt=2**63, description="master seed")
    sessions: int | None = Field(None, ge=1, description="independent sessions")


class ScenarioChecked(BaseModel):
    """A scenario that validates: its name, fingerprint and full specification (every default spelt out), as
    POST /scenarios would store it; nothing is stored."""

    name: str
    scenario_hash: str
    spec: dict[str, Any]
