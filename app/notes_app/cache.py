"""The Redis cache as an optimisation, never a dependency: when Redis fails, reads fall back to Postgres.

An outage shows as a metric (`cache_errors_total`, `cache_available`) and one log line per interval,
not as a failed readiness probe (Kubernetes would take every pod out of service for a cache failure) or a log flood.
After a failure the cache is bypassed for BYPASS_SECONDS, so requests do not each wait for Redis's timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from prometheus_client import CollectorRegistry, Counter, Gauge

from .logs import RateLimitedWarning

BYPASS_SECONDS = 2.0
Result = TypeVar("Result")


class Cache:
    def __init__(self, client: redis.Redis, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._clock = clock
        self._bypass_until = 0.0
        self._warn = RateLimitedWarning(logging.getLogger(__name__), "cache unavailable: answering from postgres")
        self._errors = Counter(
            "cache_errors_total", "Redis operations that failed (the app answered from Postgres).", ["operation"],
            registry=registry,
        )  # fmt: skip
        self._available = Gauge(
            "cache_available", "1 while Redis answers, 0 after a failure until it answers again.", registry=registry
        )
        self._available.set(1)

    async def get(self, key: str) -> bytes | str | None:
        return await self._call("get", lambda: self._client.get(key), None)

    async def set(self, key: str, value: str, ttl_seconds: int) -> None:
        await self._call("set", lambda: self._client.set(key, value, ex=ttl_seconds), None)

    async def delete(self, keys: list[str]) -> None:
        # A stale entry only lacks fresh data until its TTL ends.
        await self._call("delete", lambda: self._client.delete(*keys), None)

    async def _call(self, operation: str, command: Callable[[], Awaitable[Result]], fallback: Result) -> Result:
        if self._clock() < self._bypass_until:
            return fallback
        try:
            result = await command()
        except (redis.RedisError, OSError) as error:
            self._failed(operation, error)
            return fallback
        self._available.set(1)
        return result

    def _failed(self, operation: str, error: Exception) -> None:
        now = self._clock()
        self._bypass_until = now + BYPASS_SECONDS
        self._errors.labels(operation).inc()
        self._available.set(0)
        self._warn(error, now)
