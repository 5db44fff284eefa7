"""Backing services (twelve-factor IV): Postgres and Redis, attached by URL and swappable by config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import redis.asyncio as redis
from psycopg_pool import AsyncConnectionPool

from .config import Settings
from .logs import RateLimitedWarning

PROBE_TIMEOUT_SECONDS = 1.0
# How long a request waits for a pooled Postgres connection before the app answers 503 with Retry-After: long
# while Postgres answers (a burst queues for the pool), short once connecting to it fails (an outage answers
# within seconds instead of holding every client for the long wait).
POOL_WAIT_SECONDS = 10.0
OUTAGE_WAIT_SECONDS = 2.0
# libpq's minimum (a smaller connect_timeout counts as 2 s).
CONNECT_TIMEOUT_SECONDS = 2


class Backends:
    def __init__(self, settings: Settings) -> None:
        # open=False: the process starts (and answers /healthz) even while Postgres is still coming up;
        # /readyz stays 503 until it is reachable.
        self.pool = AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=10,
            open=False,
            timeout=POOL_WAIT_SECONDS,
            configure=self._connected,
            kwargs={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": f"notes_app@{settings.app_version}",
            },
        )
        self._connect_errors_before_last_connect = 0
        self.warn_unavailable = RateLimitedWarning(logging.getLogger(__name__), "postgres unavailable")
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close(timeout=5)
        await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection; psycopg_pool.PoolTimeout (an OperationalError) when none comes in time."""
        wait = OUTAGE_WAIT_SECONDS if self._connects_failing() else POOL_WAIT_SECONDS
        async with self.pool.connection(timeout=wait) as conn:
            yield conn

    def _connects_failing(self) -> bool:
        """The pool's attempts to connect failed since it last connected (it retries in the background)."""
        return self.pool.get_stats().get("connections_errors", 0) > self._connect_errors_before_last_connect

    async def _connected(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._connect_errors_before_last_connect = self.pool.get_stats().get("connections_errors", 0)

    async def postgres_answers(self) -> bool:
        """Readiness depends on Postgres alone: without it no request can be served; without Redis every
        request still can (the cache falls back), so a Redis outage must not take pods out of service."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS * 2):
                async with self.pool.connection(timeout=PROBE_TIMEOUT_SECONDS) as conn:
                    await conn.execute("SELECT 1")
            return True
        except (psycopg.Error, TimeoutError, OSError) as error:
            self.warn_unavailable(error)
            return False
