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
