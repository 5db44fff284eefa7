"""Migrations on a real Postgres: from empty to head, idempotent, and safe for the release still running."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from alembic import command
from notes_app.migrate import alembic_config, revisions

from tests.app.previous_release import RELEASE_N_REVISION, exercise_release_n
from tests.support.services import PostgresServer, RedisServer, app_env, migrate, wait_until

pytestmark = pytest.mark.services


def test_there_are_at_least_two_forward_only_migrations() -> None:
    chain = revisions()
    assert len(chain) >= 2
    assert chain[0][0] is None, "the first migration starts from an empty database"
    assert all(down == previous for (down, _), (_, previous) in zip(chain[1:], chain, strict=False))


def test_migrations_apply_from_empty_and_reapply_as_a_no_op(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database())
    head = revisions()[-1][1]

    first = migrate(url)
    assert first.returncode == 0, first.stdout + first.stderr
    for _, revision in revisions():
        assert f"-> {revision}" in first.stdout, "each migration ran once, logged as JSON on stdout"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
        columns = conn.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = 'notes'"
        ).fetchall()
    assert ("word_count", "YES") in columns

    again = migrate(url)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Running upgrade" not in again.stdout, "a second run must not execute any migration"


def test_previous_release_keeps_working_after_the_new_migration(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(postgres_server.create_database())
    command.upgrade(alembic_config(url), RELEASE_N_REVISION)
    with psycopg.connect(url, autocommit=True) as conn:
        exercise_release_n(conn)  # release N passes its own test on its own schema...

    assert migrate(url).returncode == 0  # ...the migration Job of release N+1 runs while N still serves...
    with psycopg.connect(url, autocommit=True) as conn:
        note_id = exercise_release_n(conn)  # ...and release N still passes it on the new schema.
        word_count = conn.execute("SELECT word_count FROM notes WHERE id = %s", (note_id,)).fetchone()
    assert word_count == (None,), "release N does not know the column; it stays NULL until the backfill"


def test_new_worker_backfills_rows_the_previous_release_wrote(
    postgres_server: PostgresServer, redis_server: RedisServer, start_app
) -> None:
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    assert migrate(url).returncode == 0
    with psycopg.connect(url, autocommit=True) as conn:
        note_id = exercise_release_n(conn)
    worker = start_app(app_env(postgres_server, redis_server, database, WORKER_INTERVAL_SECONDS="0.2"), "worker")

    def backfilled() -> bool:
        with psycopg.connect(url) as conn:
            return conn.execute("SELECT word_count FROM notes WHERE id = %s", (note_id,)).fetchone() == (5,)

    wait_until(backfilled, 15, "worker backfill")
    metrics = httpx.get(worker.base_url + "/metrics", timeout=5).text
    assert "worker_backfilled_notes_total 1.0" in metrics
    assert worker.status("/notes") == 404, "the worker serves health and metrics only"
