"""Sweep metrics: the `sweep_cell_metrics` table, one row per sweep cell written by the aggregator (the cell's
pooled coordination indicators and its paired regulation effect), so a sweep's metrics are stored in Postgres
instead of being recomputed from every run's summary on each request. Deleting a sweep deletes its rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweep_cell_metrics",
        sa.Column("sweep_id", sa.UUID(), nullable=False),
        sa.Column("cell", sa.Integer(), nullable=False),
        sa.Column("overrides", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("effects", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("runs_done", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name=op.f("fk_sweep_cell_metrics_sweep_id_sweeps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("sweep_id", "cell", name=op.f("pk_sweep_cell_metrics")),
    )


def downgrade() -> None:
    op.drop_table("sweep_cell_metrics")
