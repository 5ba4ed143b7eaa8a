"""The tables: teams, users and their API tokens; scenarios, runs, their results, the aggregator's per-run
indicators and sweeps (grids of runs), each scenario, run and sweep belonging to a team; and the answers to
requests made with an Idempotency-Key.

The schema is created only by the Alembic migrations in migrations/; these models are how code reads and writes
it. A result's primary key is its run's id, so a run can never have two result sets.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RunStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})

_now = func.now()


class Team(Base):
    """Who owns scenarios, runs and sweeps: every member reads them, no one outside sees them."""

    __tablename__ = "teams"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class User(Base):
    """A member of one team; a team admin may cancel any of the team's runs and sweeps."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)

    team: Mapped[Team] = relationship()


class ApiToken(Base):
    """A user's API token, stored as its SHA-256 (the token itself is shown once, when issued)."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the token's first characters, to tell tokens apart in lists without storing the secret
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class ScenarioRecord(Base):
    """A validated scenario, stored once per team and fingerprint."""

    __tablename__ = "scenarios"
    __table_args__ = (UniqueConstraint("team_id", "scenario_hash"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    scenario_hash: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)

    runs: Mapped[list[Run]] = relationship(back_populates="scenario")


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    # who launched it (null only for runs made before accounts existed)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    scenario_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scenarios.id"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    scenario_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    sessions: Mapped[int] = mapped_column(Integer)
    overrides: Mapped[list[str]] = mapped_column(JSONB, default=list)
    status: Mapped[RunStatus] = mapped_column(Enum(RunStatus, name="run_status"), index=True, default=RunStatus.queued)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    sessions_done: Mapped[int] = mapped_column(Integer, default=0)
    periods_done: Mapped[int] = mapped_column(BigInteger, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), server_default=_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # set when the run is one cell x seed of a sweep; `cell` is the cell's index in the sweep's grid order
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    cell: Mapped[int | None] = mapped_column(Integer)

    scenario: Mapped[ScenarioRecord] = relationship(back_populates="runs")
    result: Mapped[Result | None] = relationship(back_populates="run")
    sweep: Mapped[Sweep | None] = relationship(back_populates="runs")

    @property
    def scenario_name(self) -> str | None:
        """The effective scenario's `name` (what db.runs' read-only views select as the column scenario_name)."""
        name = (self.spec or {}).get("name")
        return None if name is None else str(name)


class Sweep(Base):
    """A grid of runs of one base scenario: every cell of the cartesian product of `grid` ({dotted path: values})
    run once per experiment seed in `seeds`. Its runs carry sweep_id and their cell index. The live status is
    derived from the runs; `status` and `finished_at` record the terminal status once a reader has seen every run
    finish, and `cancel_requested` that a user cancelled the sweep (so a partly succeeded sweep ends cancelled)."""

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id"), index=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    grid: Mapped[dict[str, list[Any]]] = mapped_column(JSONB)
    seeds: Mapped[list[int]] = mapped_column(JSONB, default=lambda: [0])
    sessions: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.queued.value)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    runs: Mapped[list[Run]] = relationship(back_populates="sweep")


class Result(Base):
    __tablename__ = "results"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    artifacts: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)

    run: Mapped[Run] = relationship(back_populates="result")


class FollowUp(Base):
    """One follow-up task of a finished run (the aggregator's notice, MLflow logging, and the plots once asked for):
    recorded `pending` in the transaction that finishes the run (the plots: in the API's request that first asks),
    `done` or `failed` (with its error) by the task, and re-sent by the stale-run sweeper while it stays pending
    (algocomp.platform.db.follow_ups)."""

    __tablename__ = "follow_ups"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    sends: Mapped[int] = mapped_column(Integer, server_default="1")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class RunMetrics(Base):
    """One row of coordination indicators per finished run (written by the aggregator)."""

    __tablename__ = "run_metrics"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    scenario_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20))
    sessions: Mapped[int] = mapped_column(Integer)
    profit_gain: Mapped[float | None] = mapped_column(Float)
    price_index: Mapped[float | None] = mapped_column(Float)
    consumer_surplus_loss: Mapped[float | None] = mapped_column(Float)
    converged_share: Mapped[float | None] = mapped_column(Float)
    punishment_share: Mapped[float | None] = mapped_column(Float)
    indicators: Mapped[dict[str, Any]] = mapped_column(JSONB)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class SweepCellMetrics(Base):
    """One row per sweep cell, written by the aggregator as the sweep's runs finish: the cell's coordination
    indicators pooled over the sessions of its succeeded runs (`algocomp.aggregate.cell_metrics`) and, for a grid
    with a regulation axis, the paired effect against the unregulated cell. Stored so that the metrics survive
    without rereading every summary from S3, and recomputed from those summaries whenever a run finishes."""

    __tablename__ = "sweep_cell_metrics"

    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    cell: Mapped[int] = mapped_column(Integer, primary_key=True)
    overrides: Mapped[list[str]] = mapped_column(JSONB)
    # cell_metrics over the pooled sessions; None while the cell has no succeeded run
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # {"control_cell", "effects", "reason"?} for a regulated cell; None for an unregulated cell or grid
    effects: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    runs_done: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now)


class IdempotencyRecord(Base):
    """The first answer to a POST made with an `Idempotency-Key` header, so a retry gets that answer instead of
    creating again (algocomp.platform.db.idempotency). Keys are scoped per user: (user_id, key) is the primary
    key, which decides between concurrent requests with one key. Written in the transaction of what the request
    creates, so both exist or neither. `status_code`, `body` and `location` are set before that commit (a
    committed record always has them). A record older than the settings' idempotency_ttl_s is ignored (a new
    request with its key takes it over) and may be purged; `created_at` is indexed for that.

    `body` is `json`, not `jsonb`: it keeps the answer's members in their order, so a replay is the same bytes."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(200))
    # SHA-256 (hex) of the method, the path and the body (canonical JSON)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[Any | None] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now, index=True)
