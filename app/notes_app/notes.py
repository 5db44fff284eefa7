"""The feature: notes stored in Postgres, single-note reads cached in Redis (cache-aside)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 300
LIST_LIMIT = 50
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
    def __init__(self, pool: AsyncConnectionPool, cache: redis.Redis) -> None:
        self._pool = pool
        self._cache = cache

    async def create(self, title: str, body: str) -> Note:
        async with self._pool.connection() as conn:
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
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Note))
            await cur.execute(f"SELECT {_COLUMNS} FROM notes WHERE id = %s", (note_id,))
            note = await cur.fetchone()
        if note is not None:
            await self._cache_set(note)
        return note

    async def latest(self) -> list[Note]:
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(Note))
            await cur.execute(f"SELECT {_COLUMNS} FROM notes ORDER BY id DESC LIMIT %s", (LIST_LIMIT,))
            return await cur.fetchall()

    async def backfill_word_counts(self, batch_size: int = 100) -> int:
        """Fill word_count for rows written by a release that did not know the column (expand step)."""
        async with self._pool.connection() as conn, conn.transaction():
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
            await self._cache_delete([note_id for note_id, _ in rows])
        return len(rows)

    # The cache is an optimisation: when Redis misbehaves, answer from Postgres instead of failing.
    async def _cache_get(self, note_id: int) -> Note | None:
        try:
            raw = await self._cache.get(_cache_key(note_id))
        except (redis.RedisError, OSError) as error:
            log.warning("cache read failed", extra={"error": type(error).__name__})
            return None
        if raw is None:
            return None
        data = json.loads(raw)
        return Note(**{**data, "created_at": datetime.fromisoformat(data["created_at"])})

    async def _cache_set(self, note: Note) -> None:
        try:
            await self._cache.set(_cache_key(note.id), json.dumps(note.to_json()), ex=CACHE_TTL_SECONDS)
        except (redis.RedisError, OSError) as error:
            log.warning("cache write failed", extra={"error": type(error).__name__})

    async def _cache_delete(self, note_ids: list[int]) -> None:
        try:
            await self._cache.delete(*(_cache_key(note_id) for note_id in note_ids))
        except (redis.RedisError, OSError) as error:
            # A stale entry only lacks word_count and expires after CACHE_TTL_SECONDS.
            log.warning("cache invalidation failed", extra={"error": type(error).__name__})


def _cache_key(note_id: int) -> str:
    return f"notes:v1:{note_id}"
