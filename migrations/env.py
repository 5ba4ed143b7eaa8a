"""Alembic environment: the one place the schema is created and changed.

The URL comes from `-x url=...` when given (tools and tests migrate a database other than the configured one),
otherwise from algocomp.platform.settings, so `alembic upgrade head` migrates exactly the database the services use.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from algocomp.platform.db.models import Base
from algocomp.platform.settings import get_settings

config = context.config

# Only configure logging from the ini when Alembic runs as a command: a program that calls
# alembic.command.upgrade() in-process (the tests, devstack) keeps its own logging set-up.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    """The database to migrate: `-x url=...`, else a url set by the caller in the config, else the settings."""
    x_arguments = context.get_x_argument(as_dictionary=True)
    if x_arguments.get("url"):
        return x_arguments["url"]
    configured = config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    return get_settings().database_url


def run_migrations_offline() -> None:
    """Emit the SQL (`alembic upgrade head --sql`) without connecting."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a connection; NullPool because a migration is a one-off, not a long-lived process."""
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = database_url()
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
