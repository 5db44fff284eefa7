"""Test-only fault injection for the notes app: slow down or fail a fraction of `/notes` requests on purpose.

Deploy verification must roll back a release that does this. It lives outside `notes_app` and outside the
production image; `sitecustomize.py` next to it activates it. The faults sit inside the app's metrics middleware,
so the injected latency and 500s are measured exactly like real ones.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

FAULTED_PATH = "/notes"


@dataclass(frozen=True)
class Faults:
    error_rate: float
    latency_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Faults:
        return cls(
            error_rate=_number(env, "FAULT_ERROR_RATE", 0, 1),
            latency_seconds=_number(env, "FAULT_LATENCY_MS", 0, 60_000) / 1000,
        )


class FaultInjectionMiddleware:
    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(FAULTED_PATH):
            if self.faults.latency_seconds:
                await asyncio.sleep(self.faults.latency_seconds)
            if random.random() < self.faults.error_rate:
                await JSONResponse({"error": "injected fault"}, status_code=500)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(faults: Faults) -> None:
    """Every Starlette app built from now on runs the faults innermost (inside the app's own middleware)."""
    original_init = Starlette.__init__

    def init_with_faults(self: Starlette, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.user_middleware.append(Middleware(FaultInjectionMiddleware, faults=faults))

    Starlette.__init__ = init_with_faults  # type: ignore[method-assign]


def install_from_env() -> None:
    try:
        faults = Faults.from_env(os.environ)
    except ValueError as error:
        # `site` only prints exceptions raised here and carries on: a typo must not run a healthy release instead.
        print(f"fault injection: {error}", file=sys.stderr)
        os._exit(2)
    install(faults)


def _number(env: Mapping[str, str], name: str, low: float, high: float) -> float:
    raw = env.get(name, "0")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number from {low} to {high}. Got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}. Got {value}")
    return value
