"""The HTTP app: health, readiness and metrics for every role, plus the notes API for `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .backends import Backends
from .config import Settings
from .metrics import AppMetrics, MetricsMiddleware
from .notes import NoteStore
from .worker import run_backfill_loop

log = logging.getLogger(__name__)

TITLE_MAX = 200
BODY_MAX = 10_000


@dataclass
class Lifecycle:
    """Shared between the server (which flips it on SIGTERM) and /readyz (which reports it)."""

    shutting_down: bool = False
    background: list[asyncio.Task[None]] = field(default_factory=list)


def create_app(settings: Settings, lifecycle: Lifecycle, *, role: str = "serve") -> Starlette:
    backends = Backends(settings)
    metrics = AppMetrics(settings.app_version)
    store = NoteStore(backends.pool, backends.redis)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await backends.open()
        if role == "worker":
            task = asyncio.create_task(run_backfill_loop(store, metrics, settings.worker_interval_seconds))
            lifecycle.background.append(task)
        log.info("started", extra={"role": role, "port": settings.port})
        yield
        for task in lifecycle.background:
            task.cancel()
        await asyncio.gather(*lifecycle.background, return_exceptions=True)
        await backends.close()
        log.info("stopped: pools closed", extra={"role": role})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if lifecycle.shutting_down:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        unreachable = await backends.unreachable()
        if unreachable:
            return JSONResponse({"status": "unavailable", "unreachable": unreachable}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def create_note(request: Request) -> Response:
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=422)
        title, body = payload.get("title"), payload.get("body")
        if not isinstance(title, str) or not 0 < len(title) <= TITLE_MAX:
            return JSONResponse({"error": f"title must be a string of 1-{TITLE_MAX} characters"}, 422)
        if not isinstance(body, str) or len(body) > BODY_MAX:
            return JSONResponse({"error": f"body must be a string of at most {BODY_MAX} characters"}, 422)
        note = await store.create(title, body)
        return JSONResponse(note.to_json(), status_code=201)

    async def get_note(request: Request) -> Response:
        note = await store.get(request.path_params["note_id"])
        if note is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(note.to_json())

    async def list_notes(request: Request) -> Response:
        return JSONResponse([note.to_json() for note in await store.latest()])

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    if role == "serve":
        routes += [
            Route("/notes", create_note, methods=["POST"]),
            Route("/notes", list_notes, methods=["GET"]),
            Route("/notes/{note_id:int}", get_note),
        ]
    middleware = [Middleware(MetricsMiddleware, metrics=metrics)]
    if settings.enable_test_hooks:
        middleware.append(Middleware(FaultInjectionMiddleware, settings=settings))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


class FaultInjectionMiddleware:
    """Test hook for deploy verification: slow down or fail a fraction of /notes requests on purpose."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.error_rate = settings.fault_error_rate
        self.latency_seconds = settings.fault_latency_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/notes"):
            if self.latency_seconds:
                await asyncio.sleep(self.latency_seconds)
            if random.random() < self.error_rate:
                await JSONResponse({"error": "injected fault"}, status_code=500)(scope, receive, send)
                return
        await self.app(scope, receive, send)
