"""The feature: notes stored in Postgres, single-note reads cached in Redis (cache-aside)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row

from .cache import Cache

CACHE_TTL_SECONDS = 300
_COLUMNS = "id, title, body, word_count, created_at"


@dataclass(frozen=True)
class Note:
    id: int
    title: str
    body: str
    word_count: int | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "created_at": self.created_at.isoformat()}


def count_words(body: str) -> int:
    """One definition shared by the API (new rows) and the worker (backfill of rows older code wrote)."""
    return len(body.split())


class NoteStore:
    def __init__(
        self, connection: Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]], cache: Cache
    ) -> None:
        self._connection = connection
        self._cache = cache

    async def create(self, title: str, body: str) -> Note:
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=class_row(Note))
            await cur.execute(
                f"INSERT INTO notes (title, body, word_count) VALUES (%s, %s, %s) RETURNING {_COLUMNS}",
                (title, body, count_words(body)),
            )
            note = await cur.fetchone()
        assert note is not None  # INSERT ... RETURNING always yields the row
        return note

    async def get(self, note_id: int) -> Note | None:
        cached = await self._cache_get(note_id)
        if cached is not None:
            return cached
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=class_row(Note))
            await cur.execute(f"SELECT {_COLUMNS} FROM notes WHERE id = %s", (note_id,))
            note = await cur.fetchone()
        if note is not None:
            await self._cache_set(note)
        return note

    async def page(self, limit: int, before: int | None = None) -> list[Note]:
        """Newest first, at most `limit` notes with an id below `before` (keyset paging: stable as notes are added)."""
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=class_row(Note))
            if before is None:
                await cur.execute(f"SELECT {_COLUMNS} FROM notes ORDER BY id DESC LIMIT %s", (limit,))
            else:
                query = f"SELECT {_COLUMNS} FROM notes WHERE id < %s ORDER BY id DESC LIMIT %s"
                await cur.execute(query, (before, limit))
            return await cur.fetchall()

    async def backfill_word_counts(self, batch_size: int = 100) -> int:
        """Fill word_count for rows written by a release that did not know the column (expand step)."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT id, body FROM notes WHERE word_count IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (batch_size,),
            )
            rows = await cur.fetchall()
            async with conn.cursor() as update:
                await update.executemany(
                    "UPDATE notes SET word_count = %s WHERE id = %s",
                    [(count_words(body), note_id) for note_id, body in rows],
                )
        if rows:
            await self._cache.delete([_cache_key(note_id) for note_id, _ in rows])
        return len(rows)

    async def _cache_get(self, note_id: int) -> Note | None:
        raw = await self._cache.get(_cache_key(note_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return Note(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})

    async def _cache_set(self, note: Note) -> None:
        await self._cache.set(_cache_key(note.id), json.dumps(note.to_json()), CACHE_TTL_SECONDS)


def _cache_key(note_id: int) -> str:
    return f"notes:v1:{note_id}"
