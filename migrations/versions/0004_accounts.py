"""Accounts: teams, users and their API tokens (stored hashed), and the team (and owner) of every scenario, run
and sweep. A scenario is now stored once per team and fingerprint.

Rows made before accounts existed are given to a team named `legacy` (created only when there are such rows), so
the columns can be NOT NULL; their owner stays null, and only that team's admins may cancel them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_TEAM = "legacy"
OWNED = ("scenarios", "runs", "sweeps")


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_teams_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_users_team_id_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_index(op.f("ix_users_team_id"), "users", ["team_id"], unique=False)
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)

    for table in OWNED:
        op.add_column(table, sa.Column("team_id", sa.UUID(), nullable=True))
        if table != "scenarios":
            op.add_column(table, sa.Column("owner_id", sa.UUID(), nullable=True))
    connection = op.get_bind()
    if any(connection.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar() for table in OWNED):
        legacy = uuid.uuid4()
        connection.execute(
            sa.text("INSERT INTO teams (id, name) VALUES (:id, :name)"), {"id": legacy, "name": LEGACY_TEAM}
        )
        for table in OWNED:
            connection.execute(sa.text(f"UPDATE {table} SET team_id = :id"), {"id": legacy})
    for table in OWNED:
        op.alter_column(table, "team_id", nullable=False)
        op.create_foreign_key(op.f(f"fk_{table}_team_id_teams"), table, "teams", ["team_id"], ["id"])
        op.create_index(op.f(f"ix_{table}_team_id"), table, ["team_id"], unique=False)
        if table != "scenarios":
            op.create_foreign_key(op.f(f"fk_{table}_owner_id_users"), table, "users", ["owner_id"], ["id"])
    op.drop_constraint(op.f("uq_scenarios_scenario_hash"), "scenarios", type_="unique")
    op.create_unique_constraint(op.f("uq_scenarios_team_id"), "scenarios", ["team_id", "scenario_hash"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_scenarios_team_id"), "scenarios", type_="unique")
    # a fingerprint stored by two teams goes back to one global row: the oldest, which takes over the others' runs
    keep = "SELECT DISTINCT ON (scenario_hash) id, scenario_hash FROM scenarios ORDER BY scenario_hash, created_at, id"
    op.execute(
        f"WITH keep AS ({keep}) UPDATE runs SET scenario_id = keep.id FROM scenarios s JOIN keep "
        "ON keep.scenario_hash = s.scenario_hash WHERE runs.scenario_id = s.id AND s.id <> keep.id"
    )
    op.execute(f"WITH keep AS ({keep}) DELETE FROM scenarios WHERE id NOT IN (SELECT id FROM keep)")
    op.create_unique_constraint(op.f("uq_scenarios_scenario_hash"), "scenarios", ["scenario_hash"])
    for table in reversed(OWNED):
        if table != "scenarios":
            op.drop_constraint(op.f(f"fk_{table}_owner_id_users"), table, type_="foreignkey")
            op.drop_column(table, "owner_id")
        op.drop_index(op.f(f"ix_{table}_team_id"), table_name=table)
        op.drop_constraint(op.f(f"fk_{table}_team_id_teams"), table, type_="foreignkey")
        op.drop_column(table, "team_id")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_index(op.f("ix_users_team_id"), table_name="users")
    op.drop_table("users")
    op.drop_table("teams")
