"""Follow-ups: the `follow_ups` table, one row per follow-up task of a finished run (the aggregator's notice, the
plots and MLflow logging), recorded pending with the run's terminal status and marked done or failed (with its
error) by the task; the stale-run sweeper re-sends those that stay pending. Deleting a run deletes its rows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follow_ups",
        sa.Column("run_id", sa.UUID(), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sends", sa.Integer(), server_default="1", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_follow_ups_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "task", name=op.f("pk_follow_ups")),
    )
    op.create_index(op.f("ix_follow_ups_status"), "follow_ups", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_follow_ups_status"), table_name="follow_ups")
    op.drop_table("follow_ups")
