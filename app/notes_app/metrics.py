"""Prometheus metrics. The names and labels are a contract: the deploy verifier queries them."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Fine enough to estimate a p99 anywhere between ~50 ms and 2 s, and up to 30 s, the verifier's highest threshold
# (histogram_quantile reports a quantile in the +Inf bucket as the highest finite bound).
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 15, 20, 30
)  # fmt: skip
# The route label of a path no route matches (scanners' 404s): the verifier leaves it out of served traffic.
UNMATCHED_ROUTE = "unmatched"
# Created at 0 for every route at start: a counter that first appears at N loses those N to increase() and rate()
# (they need two samples), so a first burst of errors would be invisible to deploy verification.
USUAL_STATUSES = ("200", "201", "400", "404", "405", "408", "413", "422", "499", "500", "503")
# nginx's status for a request its client closed before the answer: a client's abort, never a server error (a 5xx
# rolls a release back). Starlette raises ClientDisconnect when the body read meets the client's `http.disconnect`.
CLIENT_CLOSED_REQUEST = 499


# RFC 9110's methods plus PATCH; any other token a client sends is one label, so it cannot multiply the series.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def method_label(method: str) -> str:
    return method if method in STANDARD_METHODS else "OTHER"


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

    def create_route_series(self, routes: Iterable[BaseRoute]) -> None:
        """Every route's latency series and its usual statuses' counters, at 0 (see USUAL_STATUSES)."""
        for route in routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                labels = {"method": method, "route": getattr(route, "path", UNMATCHED_ROUTE), "version": self.version}
                self.latency.labels(**labels)
                for status in USUAL_STATUSES:
                    self.requests.labels(status=status, **labels)


def route_template(scope: Scope) -> str:
    """The template of the route the path matches, also when a middleware answered before the router ran."""
    route = scope.get("route")
    if route is None:
        routes = getattr(scope.get("app"), "routes", ())
        route = next((r for r in routes if r.matches(scope)[0] is not Match.NONE), None)
    return route.path if isinstance(route, BaseRoute) and hasattr(route, "path") else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware: labels by route template (bounded cardinality), never by raw path."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # at start, before any request: Starlette puts itself in every scope
            self.metrics.create_route_series(getattr(scope.get("app"), "routes", ()))
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
        except ClientDisconnect:
            # Nothing can be sent on a closed connection, and nothing is wrong with the server: no error, no log
            # line (a client could flood the logs with aborts); the 499 series counts them.
            status = CLIENT_CLOSED_REQUEST
        finally:
            in_progress.dec()
            labels = {
                "method": method_label(scope["method"]),
                "route": route_template(scope),
                "version": self.metrics.version,
            }
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)
            self.metrics.requests.labels(status=str(status), **labels).inc()
