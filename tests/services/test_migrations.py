"""The schema exists only through Alembic: upgrade and downgrade both work on an empty database, and the
migrated schema is exactly the one the models describe."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from algocomp.platform.db.models import Base
from devstack import ALEMBIC_INI, REPO_ROOT

from .conftest import POSTGRES_ADMIN_URL, _database_url, _drop_database

TABLES = {
    "teams",
    "users",
    "api_tokens",
    "scenarios",
    "runs",
    "results",
    "run_metrics",
    "sweeps",
    "sweep_cell_metrics",
    "idempotency_keys",
    "follow_ups",
}


@pytest.fixture
def empty_database(servers: None) -> Iterator[str]:
    """A brand-new database of its own (not the session's migrated one), dropped afterwards."""
    name = f"algocomp_test_migrations_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _database_url(name)
    finally:
        _drop_database(name)


def alembic_config(url: str) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    return config


def schema(engine: Engine) -> tuple[set[str], set[str]]:
    """(tables, enum types) in the public schema."""
    with engine.connect() as connection:
        enums = set(connection.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'")).scalars())
    return set(inspect(engine).get_table_names()), enums


def insert_early_run(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    """A scenario and a run as the schema before accounts (0001-0003) stores them: (scenario id, run id)."""
    scenario_id, run_id = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO scenarios (id, name, scenario_hash, spec) VALUES (:id, 'baseline', 'h', '{}')"),
            {"id": scenario_id},
        )
        connection.execute(
            text(
                "INSERT INTO runs (id, scenario_id, spec, scenario_hash, seed, sessions) "
                "VALUES (:id, :scenario_id, '{}', 'h', 1, 2)"
            ),
            {"id": run_id, "scenario_id": scenario_id},
        )
    return scenario_id, run_id


def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    config = alembic_config(empty_database)
    engine = create_engine(empty_database)
    try:
        assert schema(engine) == (set(), set())

        command.upgrade(config, "head")
        tables, enums = schema(engine)
        assert tables == TABLES | {"alembic_version"}
        assert enums == {"run_status"}

        command.downgrade(config, "base")
        engine.dispose()
        assert schema(engine) == ({"alembic_version"}, set())

        command.upgrade(config, "head")
        engine.dispose()
        tables, enums = schema(engine)
        assert tables == TABLES | {"alembic_version"}
        with engine.connect() as connection:
            labels = connection.execute(text("SELECT unnest(enum_range(NULL::run_status))::text")).scalars().all()
        assert labels == ["queued", "running", "succeeded", "failed", "cancelled"]
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(empty_database: str) -> None:
    command.upgrade(alembic_config(empty_database), "head")
    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == [], f"models and migrations disagree; write a migration for: {differences}"
    finally:
        engine.dispose()


def test_server_defaults_let_a_minimal_run_row_be_inserted(empty_database: str) -> None:
    """A run inserted with only its required facts (a repair script, psql) starts queued at attempt 0."""
    command.upgrade(alembic_config(empty_database), "head")
    engine = create_engine(empty_database)
    try:
        with engine.begin() as connection:
            team_id, scenario_id, run_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            connection.execute(text("INSERT INTO teams (id, name) VALUES (:id, 'lab')"), {"id": team_id})
            connection.execute(
                text(
                    "INSERT INTO scenarios (id, team_id, name, scenario_hash, spec) "
                    "VALUES (:id, :team, 'baseline', 'h', '{}')"
                ),
                {"id": scenario_id, "team": team_id},
            )
            connection.execute(
                text(
                    "INSERT INTO runs (id, team_id, scenario_id, spec, scenario_hash, seed, sessions) "
                    "VALUES (:id, :team, :scenario_id, '{}', 'h', 1, 2)"
                ),
                {"id": run_id, "team": team_id, "scenario_id": scenario_id},
            )
            row = connection.execute(
                text("SELECT status::text, attempt, progress, cancel_requested, overrides FROM runs WHERE id = :id"),
                {"id": run_id},
            ).one()
        assert tuple(row) == ("queued", 0, 0.0, False, [])
    finally:
        engine.dispose()


def test_sweeps_migration_goes_down_to_0001_and_up_again(empty_database: str) -> None:
    """0002 adds the sweeps table and the runs' sweep_id and cell; its downgrade takes exactly those away, and a
    run row stored before the sweeps existed survives both directions."""
    config = alembic_config(empty_database)
    engine = create_engine(empty_database)
    try:
        command.upgrade(config, "0001")
        scenario_id, run_id = insert_early_run(engine)
        for _ in range(2):
            command.upgrade(config, "0002")
            engine.dispose()
            assert "sweeps" in inspect(engine).get_table_names()
            run_columns = {column["name"] for column in inspect(engine).get_columns("runs")}
            assert {"sweep_id", "cell"} <= run_columns
            with engine.connect() as connection:
                row = connection.execute(text("SELECT sweep_id, cell FROM runs WHERE id = :id"), {"id": run_id}).one()
            assert tuple(row) == (None, None)

            command.downgrade(config, "0001")
            engine.dispose()
            assert "sweeps" not in inspect(engine).get_table_names()
            run_columns = {column["name"] for column in inspect(engine).get_columns("runs")}
            assert not {"sweep_id", "cell"} & run_columns
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM runs")).scalar_one() == 1
    finally:
        engine.dispose()


def test_accounts_migration_gives_earlier_rows_to_a_legacy_team(empty_database: str) -> None:
    """0004 adds teams, users and tokens; scenarios, runs and sweeps made before it belong to a `legacy` team (so
    team_id can be NOT NULL) with no owner, and its downgrade takes exactly those columns away again."""
    config = alembic_config(empty_database)
    engine = create_engine(empty_database)
    try:
        command.upgrade(config, "0003")
        scenario_id, run_id = insert_early_run(engine)
        command.upgrade(config, "0004")
        engine.dispose()
        with engine.connect() as connection:
            teams = connection.execute(text("SELECT id, name FROM teams")).all()
            assert [name for _, name in teams] == ["legacy"]
            run = connection.execute(text("SELECT team_id, owner_id FROM runs WHERE id = :id"), {"id": run_id}).one()
            assert tuple(run) == (teams[0][0], None)
            scenario_team = connection.execute(
                text("SELECT team_id FROM scenarios WHERE id = :id"), {"id": scenario_id}
            ).scalar_one()
            assert scenario_team == teams[0][0]
        command.downgrade(config, "0003")
        engine.dispose()
        assert not {"teams", "users", "api_tokens"} & set(inspect(engine).get_table_names())
        assert "team_id" not in {column["name"] for column in inspect(engine).get_columns("runs")}
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM runs")).scalar_one() == 1
    finally:
        engine.dispose()
