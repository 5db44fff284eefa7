"""Backing services (twelve-factor IV): Postgres and Redis, attached by URL and swappable by config."""

from __future__ import annotations

import asyncio
import logging

import psycopg
import redis.asyncio as redis
from psycopg_pool import AsyncConnectionPool

from .config import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0


class Backends:
    def __init__(self, settings: Settings) -> None:
        # open=False: the process starts (and answers /healthz) even while Postgres is still coming up;
        # /readyz stays 503 until it is reachable.
        self.pool = AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=10,
            open=False,
            timeout=10,
            kwargs={"connect_timeout": 3, "application_name": f"notes_app@{settings.app_version}"},
        )
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close(timeout=5)
        await self.redis.aclose()

    async def unreachable(self) -> list[str]:
        """Names of the backing services that do not answer right now (empty when all are fine)."""
        postgres, redis_ok = await asyncio.gather(self._postgres_answers(), self._redis_answers())
        return [name for name, ok in (("postgres", postgres), ("redis", redis_ok)) if not ok]

    async def _postgres_answers(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS * 2):
                async with self.pool.connection(timeout=PROBE_TIMEOUT_SECONDS) as conn:
                    await conn.execute("SELECT 1")
            return True
        except (psycopg.Error, TimeoutError, OSError) as error:
            log.warning("postgres unreachable", extra={"error": type(error).__name__})
            return False

    async def _redis_answers(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (redis.RedisError, OSError) as error:
            log.warning("redis unreachable", extra={"error": type(error).__name__})
            return False
