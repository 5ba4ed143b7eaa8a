"""Response model of GET /aggregates: one run's coordination indicators as the aggregator recorded them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

# The columns of one aggregate row, in the order of the CSV form (and of the JSON objects).
AGGREGATE_COLUMNS = (
    "run_id",
    "scenario_hash",
    "status",
    "sessions",
    "sweep_id",
    "cell",
    "profit_gain",
    "price_index",
    "consumer_surplus_loss",
    "converged_share",
    "punishment_share",
    "computed_at",
)


class AggregateOut(BaseModel):
    """The indicators of one finished run (means over its sessions); sweep_id and cell are set for a sweep's
    runs."""

    run_id: uuid.UUID
    scenario_hash: str = Field(description="fingerprint of the run's effective scenario")
    status: str = Field(description="the run's final status when the aggregator recorded it")
    sessions: int
    sweep_id: uuid.UUID | None = None
    cell: int | None = Field(None, description="the run's cell index in its sweep's grid order")
    profit_gain: float | None = Field(None, description="mean Delta (profit gain) over the sessions")
    price_index: float | None = Field(None, description="mean price relative to Nash (0) and monopoly (1)")
    consumer_surplus_loss: float | None = Field(None, description="consumer surplus lost against Nash")
    converged_share: float | None = Field(None, description="share of sessions that converged")
    punishment_share: float | None = Field(None, description="share of sessions whose impulse shows punishment")
    computed_at: datetime
