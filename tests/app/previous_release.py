"""Release N's data access, verbatim: the queries the app ran before migration 0002 added word_count.

During a rollout this code is still serving while the new schema is live, so it must keep working on the
schema at head (the chapter's rule: migrations run first, new columns are nullable or have a DEFAULT).
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
