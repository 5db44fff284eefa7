"""The HTTP app: health, readiness and metrics for every role, plus the notes API for `serve`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .backends import OUTAGE_WAIT_SECONDS, Backends
from .cache import Cache
from .config import Settings
from .metrics import AppMetrics, MetricsMiddleware
from .middleware import CloseConnectionsWhenDrainingMiddleware, TrustedHostMiddleware
from .notes import NoteStore
from .pages import next_page_link, page_request
from .payloads import BadInput, checked_text, note_id_or_none, parse_json_object, read_body
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
    store = NoteStore(backends.connection, Cache(backends.redis, metrics.registry))

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

    # Probe answers name no backend: they may be reachable from outside, and the logs carry the detail.
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if lifecycle.shutting_down:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        if not await backends.postgres_answers():
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def create_note(request: Request) -> Response:
        payload = parse_json_object(await read_body(request))
        title = checked_text(payload, "title", min_length=1, max_length=TITLE_MAX)
        body = checked_text(payload, "body", min_length=0, max_length=BODY_MAX)
        note = await store.create(title, body)
        return JSONResponse(note.to_json(), status_code=201)

    async def get_note(request: Request) -> Response:
        # The template takes any segment; only ids Postgres can hold reach it (a 4301-digit id is a 404, not a 500).
        note_id = note_id_or_none(request.path_params["note_id"])
        note = None if note_id is None else await store.get(note_id)
        if note is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(note.to_json())

    async def list_notes(request: Request) -> Response:
        page = page_request(request.query_params)
        notes = await store.page(page.limit, page.before)
        link = next_page_link(request.url.path, page, [note.id for note in notes])
        return JSONResponse([note.to_json() for note in notes], headers={"link": link} if link else None)

    async def bad_input(request: Request, error: Exception) -> Response:
        assert isinstance(error, BadInput)
        headers = {"connection": "close"} if error.close_connection else None
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    async def postgres_unavailable(request: Request, error: Exception) -> Response:
        # psycopg_pool.PoolTimeout (no connection in time) and broken connections are both OperationalError.
        backends.warn_unavailable(error)
        retry_after = str(int(OUTAGE_WAIT_SECONDS))
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503, headers={"retry-after": retry_after})

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    if role == "serve":
        routes += [
            Route("/notes", create_note, methods=["POST"]),
            Route("/notes", list_notes, methods=["GET"]),
            Route("/notes/{note_id}", get_note),
        ]
    middleware = [
        # Outermost: even a refused host or an error response tells a draining client to close.
        Middleware(CloseConnectionsWhenDrainingMiddleware, draining=lambda: lifecycle.shutting_down),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts),
    ]
    handlers = {BadInput: bad_input, psycopg.OperationalError: postgres_unavailable}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    # A trailing-slash redirect is built from the Host header and the request's scheme (plain http behind the
    # ingress): a client could make it point anywhere. /notes/ is a 404 instead.
    app.router.redirect_slashes = False
    return app
