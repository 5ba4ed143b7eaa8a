"""The initial schema: scenarios, runs (with the run_status enum), results and run_metrics.

Mirrors shared/algocomp/db/models.py exactly (tests/services/test_migrations.py compares them). The columns the
worker and API always set from Python also get server defaults, so a row inserted by hand (psql, a repair script)
is still valid.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
# create_type=False: the enum is created and dropped explicitly below, so downgrade leaves no type behind.
run_status = postgresql.ENUM(*RUN_STATUSES, name="run_status", create_type=False)


def upgrade() -> None:
    run_status.create(op.get_bind(), checkfirst=False)

    op.create_table(
        "scenarios",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scenario_hash", sa.String(length=64), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenarios")),
        sa.UniqueConstraint("scenario_hash", name=op.f("uq_scenarios_scenario_hash")),
    )
    op.create_index(op.f("ix_scenarios_name"), "scenarios", ["name"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("scenario_id", sa.UUID(), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("scenario_hash", sa.String(length=64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column(
            "overrides", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("status", run_status, server_default="queued", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("sessions_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("periods_done", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["scenario_id"], ["scenarios.id"], name=op.f("fk_runs_scenario_id_scenarios")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_scenario_id"), "runs", ["scenario_id"], unique=False)
    op.create_index(op.f("ix_runs_status"), "runs", ["status"], unique=False)

    op.create_table(
        "results",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("artifacts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_results_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_results")),
    )

    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("scenario_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("profit_gain", sa.Float(), nullable=True),
        sa.Column("price_index", sa.Float(), nullable=True),
        sa.Column("consumer_surplus_loss", sa.Float(), nullable=True),
        sa.Column("converged_share", sa.Float(), nullable=True),
        sa.Column("punishment_share", sa.Float(), nullable=True),
        sa.Column("indicators", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_metrics_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_metrics")),
    )
    op.create_index(op.f("ix_run_metrics_scenario_hash"), "run_metrics", ["scenario_hash"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_metrics_scenario_hash"), table_name="run_metrics")
    op.drop_table("run_metrics")
    op.drop_table("results")
    op.drop_index(op.f("ix_runs_status"), table_name="runs")
    op.drop_index(op.f("ix_runs_scenario_id"), table_name="runs")
    op.drop_table("runs")
    op.drop_index(op.f("ix_scenarios_name"), table_name="scenarios")
    op.drop_table("scenarios")
    run_status.drop(op.get_bind(), checkfirst=False)
