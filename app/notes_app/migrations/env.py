"""Alembic environment: online runs use DATABASE_URL; offline (--sql) renders PostgreSQL SQL for linting."""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.ddl.postgresql import PostgresqlImpl
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, Table, Text, create_engine, pool

# Bounded waits: an ALTER that queues behind a long transaction would block every query behind it,
# so give up (and fail the migration Job, halting the deploy) instead.
TIMEOUTS = ("SET lock_timeout = '5s'", "SET statement_timeout = '60s'")


class LintCleanPostgresqlImpl(PostgresqlImpl):
    """Alembic's documented hook (1.14+) for the version table's shape: TEXT instead of VARCHAR(32), so its
    own bookkeeping passes the same migration linter (squawk prefer-text-field) as our migrations."""

    __dialect__ = "postgresql"  # replaces alembic's PostgreSQL implementation in its registry

    def version_table_impl(
        self, *, version_table: str, version_table_schema: str | None, version_table_pk: bool, **kw: Any
    ) -> Table:
        return Table(
            version_table,
            MetaData(),
            Column("version_num", Text, nullable=False),
            PrimaryKeyConstraint("version_num", name=f"{version_table}_pkc"),
            schema=version_table_schema,
        )


def run_offline() -> None:
    context.configure(dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        for statement in TIMEOUTS:
            context.execute(statement)
        context.run_migrations()


def run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "migrate.py sets sqlalchemy.url from DATABASE_URL"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            for statement in TIMEOUTS:
                context.execute(statement)
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
