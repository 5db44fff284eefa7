"""Prometheus metrics. The names and labels are a contract: the deploy verifier queries them."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Fine enough to estimate a p99 anywhere between ~50 ms and 2 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)


class AppMetrics:
    """One registry per app instance, so tests can build several apps in one process."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status.",
            ["method", "route", "status", "version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress", "HTTP requests being served.", ["version"], registry=self.registry
        )
        self.backfilled = Counter(
            "worker_backfilled_notes_total", "Notes whose word_count the worker filled in.", registry=self.registry
        )
        Gauge("app_info", "Always 1; carries the running version.", ["version"], registry=self.registry).labels(
            version
        ).set(1)


class MetricsMiddleware:
    """Pure ASGI middleware: labels by route template (bounded cardinality), never by raw path."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app raises before starting a response
        started = time.perf_counter()

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_progress = self.metrics.in_progress.labels(self.metrics.version)
        in_progress.inc()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            in_progress.dec()
            route = scope.get("route")
            template = route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else "unmatched"
            labels = {"method": scope["method"], "route": template, "version": self.metrics.version}
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)
            self.metrics.requests.labels(status=str(status), **labels).inc()
