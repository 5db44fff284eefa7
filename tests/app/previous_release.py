"""A stand-in for release N, the release built on migration 0001 (before 0002 added word_count).

Release N never existed as a commit: the app was committed with both migrations. This module is written for
the test and emulates the data access such a release has: column lists and an INSERT that know nothing of
word_count. During a rollout that code is still serving while the new schema is live, so it must keep working
on the schema at head (the chapter's rule: migrations run first, new columns are nullable or have a DEFAULT).
"""

from __future__ import annotations

from typing import Any

import psycopg

RELEASE_N_REVISION = "0001_create_notes"


class ReleaseNNotes:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def create(self, title: str, body: str) -> tuple[Any, ...]:
        row = self._conn.execute(
            "INSERT INTO notes (title, body) VALUES (%s, %s) RETURNING id, title, body, created_at", (title, body)
        ).fetchone()
        assert row is not None
        return row

    def get(self, note_id: int) -> tuple[Any, ...] | None:
        return self._conn.execute("SELECT id, title, body, created_at FROM notes WHERE id = %s", (note_id,)).fetchone()

    def latest(self) -> list[tuple[Any, ...]]:
        return self._conn.execute("SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50").fetchall()


def exercise_release_n(conn: psycopg.Connection) -> int:
    """Release N's own test of its store, run unchanged; returns the id of the note it wrote."""
    store = ReleaseNNotes(conn)
    note_id, title, body, _ = store.create("from release N", "written by the old code")
    assert (title, body) == ("from release N", "written by the old code")
    fetched = store.get(int(note_id))
    assert fetched is not None and fetched[:3] == (note_id, title, body)
    assert store.latest()[0][0] == note_id
    return int(note_id)
