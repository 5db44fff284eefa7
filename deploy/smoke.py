"""Smoke test of a deployed app through its public URL: real, read-only request paths.

`GET /notes` goes through the edge, the router, Postgres and the Redis cache, and it only reads, so it is safe to
run against production; `GET /notes?limit=1` checks the paged list. Liveness and readiness are not checked here:
they are not routed publicly (`edge-internal-paths`), and Kubernetes already gates the rollout on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Check:
    path: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class SmokeReport:
    url: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def _expect_json(response: httpx.Response) -> str | None:
    try:
        response.json()
    except ValueError:
        return "body is not JSON"
    return None


# (path, extra check on a 200 response returning a problem or None)
_CHECKS: tuple[tuple[str, Callable[[httpx.Response], str | None] | None], ...] = (
    ("/notes", _expect_json),
    ("/notes?limit=1", _expect_json),
)


def smoke(url: str, *, timeout_seconds: float = 5.0) -> SmokeReport:
    checks = []
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout_seconds) as client:
        for path, extra in _CHECKS:
            checks.append(_run(client, path, extra))
    return SmokeReport(url, tuple(checks))


def _run(client: httpx.Client, path: str, extra: Callable[[httpx.Response], str | None] | None) -> Check:
    try:
        response = client.get(path)
    except httpx.HTTPError as error:
        return Check(path, False, f"{type(error).__name__}: {error}")
    if response.status_code != 200:
        return Check(path, False, f"HTTP {response.status_code}")
    problem = extra(response) if extra else None
    elapsed = f"{response.elapsed.total_seconds() * 1000:.0f} ms"
    return Check(path, problem is None, problem or f"HTTP 200 in {elapsed}")
