"""Sweeps: the `sweeps` table (a grid of runs of one base scenario) and, on `runs`, the sweep a run belongs to
and its cell index in the grid.

Both new run columns are nullable: a run started on its own (POST /runs) belongs to no sweep. Deleting a sweep
deletes its runs (ON DELETE CASCADE), so a sweep and its runs go together.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("grid", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "seeds", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[0]'::jsonb"), nullable=False
        ),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="queued", nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sweeps")),
    )
    op.create_index(op.f("ix_sweeps_created_at"), "sweeps", ["created_at"], unique=False)
    op.add_column("runs", sa.Column("sweep_id", sa.UUID(), nullable=True))
    op.add_column("runs", sa.Column("cell", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_runs_sweep_id_sweeps"), "runs", "sweeps", ["sweep_id"], ["id"], ondelete="CASCADE")
    op.create_index(op.f("ix_runs_sweep_id"), "runs", ["sweep_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_sweep_id"), table_name="runs")
    op.drop_constraint(op.f("fk_runs_sweep_id_sweeps"), "runs", type_="foreignkey")
    op.drop_column("runs", "cell")
    op.drop_column("runs", "sweep_id")
    op.drop_index(op.f("ix_sweeps_created_at"), table_name="sweeps")
    op.drop_table("sweeps")
