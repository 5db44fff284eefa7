"""Post-deploy verification: measure the new version in Prometheus interval by interval, decide like Argo Rollouts.

Each measurement covers only its own interval (a window growing from the start would dilute a late failure and
hide a short burst among everything before it) and counts only served routes: unmatched paths (scanners' 404s),
probes and scrapes would make an idle or slow release look busy and fast. A measurement is

- inconclusive with too little served traffic in its interval,
- an error when a value it needs is missing, NaN, infinite or negative, or a query has the wrong series shape,
- failed when a threshold is breached, successful otherwise. Errors are judged per route as latency is, besides the
  whole: a route whose every request fails is a broken release even when its traffic is a small share of the whole.

The verdict follows Argo Rollouts' analysis (argoproj/argo-rollouts `analysis/analysis.go`, `runMeasurements`
and `assessMetricFailureInconclusiveOrError`): more failed measurements than `failureLimit` fail it; more errors
in a row than `consecutiveErrorLimit` end it (Argo's Error phase: here inconclusive). Argo does not count an
error towards the measurements it needs, so a window with any error or quiet interval is inconclusive, never a
pass.

The whole watch has one deadline (`components.timeline.verification_seconds`, which the deploy timeline and the
workflows' job timeouts count): every query gets only what is left of it, and a watch that reaches it has failed,
never passed, so the pipeline rolls back before its job timeout could kill it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from pydantic import ValidationError

from components.settings import CONFIG_NAMESPACE, Verification, describe_errors
from components.timeline import verification_seconds
from deploy.errors import ExitCode, ShipsafeError
from deploy.prometheus import MetricsSource, Sample
from deploy.release import VERIFICATION, object_config

# What is not a served route: the app's label for paths no route matched (app/notes_app/metrics.py
# UNMATCHED_ROUTE), then probes and scrapes, which hit every pod all the time.
_NOT_SERVED = 'route!~"unmatched|/healthz|/readyz|/metrics"'
_ROUTE_LABELS = ("method", "route")
# Each interval is queried this long after it ended, so a scrape that started just before its end is stored.
SETTLE_SECONDS = 1.0


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


class Phase(StrEnum):
    """One measurement's result, named like Argo's AnalysisPhase."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Measurement:
    elapsed_seconds: float
    phase: Phase
    reasons: tuple[str, ...] = ()
    requests: float | None = None
    error_ratio: float | None = None
    client_error_ratio: float | None = None
    p99_latency_seconds: float | None = None
    slowest_route: str | None = None
    worst_route_error_ratio: float | None = None
    """The highest server error ratio among the routes with enough requests to be judged."""
    worst_error_route: str | None = None

    def describe(self) -> str:
        def show(value: float | None, fmt: str, unit: str = "") -> str:
            return "no data" if value is None else format(value, fmt) + unit

        text = (
            f"t={self.elapsed_seconds:>5.1f}s requests={show(self.requests, '.0f')} "
            f"error_ratio={show(self.error_ratio, '.2%')}"
        )
        if self.worst_route_error_ratio:
            text += f" ({self.worst_error_route} {self.worst_route_error_ratio:.2%})"
        text += f" p99={show(self.p99_latency_seconds, '.3f', 's')}"
        if self.slowest_route:
            text += f" ({self.slowest_route})"
        if self.client_error_ratio is not None:
            text += f" client_error_ratio={self.client_error_ratio:.2%}"
        return f"{text} {self.phase}" + (f": {'; '.join(self.reasons)}" if self.reasons else "")


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...]
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class Target:
    """Whose metrics to judge: the new version's pods in the stack's namespace.

    The namespace matters because staging and prod run the *same* version after a promotion; one shared
    Prometheus would otherwise mix staging's traffic into prod's verdict. (Kubernetes service discovery
    puts a `namespace` label on every scraped series.)
    """

    version: str
    namespace: str | None = None

    def selector(self) -> str:
        labels = [f'version="{_escape(self.version)}"', _NOT_SERVED]
        if self.namespace:
            labels.append(f'namespace="{_escape(self.namespace)}"')
        return ",".join(labels)


@dataclass(frozen=True)
class Queries:
    """The PromQL of one measurement: each looks back exactly one interval."""

    requests: str
    server_errors: str
    client_errors: str
    route_requests: str
    route_server_errors: str
    route_p99: str

    @classmethod
    def for_target(cls, target: Target, interval_seconds: int) -> Queries:
        selector = target.selector()
        window = f"[{interval_seconds}s]"

        def total(extra: str = "") -> str:
            return f"sum(increase(http_requests_total{{{selector}{extra}}}{window}))"

        by_route = ", ".join(_ROUTE_LABELS)
        return cls(
            requests=total(),
            # No `or vector(0)`: the app creates its 4xx/5xx series at 0, so a missing one means broken data.
            server_errors=total(',status=~"5.."'),
            client_errors=total(',status=~"4.."'),
            route_requests=f"sum by ({by_route}) (increase(http_request_duration_seconds_count{{{selector}}}{window}))",
            route_server_errors=(
                f'sum by ({by_route}) (increase(http_requests_total{{{selector},status=~"5.."}}{window}))'
            ),
            # Per route, never max() over routes: PromQL's max() skips NaN, so a broken route would vanish.
            route_p99=(
                f"histogram_quantile(0.99, sum by ({by_route}, le) "
                f"(rate(http_request_duration_seconds_bucket{{{selector}}}{window})))"
            ),
        )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def settings_from_config(config: Mapping[str, str]) -> Verification:
    """`shipsafe:verification` of the stack, validated by the stack's own model."""
    try:
        return Verification.model_validate(object_config(config, VERIFICATION))
    except ValidationError as error:
        problems = "; ".join(describe_errors(error, at=(VERIFICATION.removeprefix(f"{CONFIG_NAMESPACE}:"),)))
        raise ShipsafeError(f"invalid stack configuration: {problems}", ExitCode.CONFIG_ERROR) from None


class _BadData(Exception):
    """A value the measurement needs is missing, not a finite non-negative number, or has the wrong shape."""


def _count(value: float, what: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise _BadData(f"{what} is {value}")
    return value


def _single(samples: list[Sample], what: str) -> float:
    if len(samples) != 1:
        raise _BadData(f"{what}: {len(samples)} series where the aggregation yields exactly one")
    return _count(samples[0].value, what)


def _per_route(samples: list[Sample], what: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for sample in samples:
        if any(label not in sample.labels for label in _ROUTE_LABELS):
            raise _BadData(f"{what}: a series without {' and '.join(_ROUTE_LABELS)} labels")
        route = " ".join(sample.labels[label] for label in _ROUTE_LABELS)
        if route in values:
            raise _BadData(f"{what}: more than one series for {route}")
        values[route] = sample.value
    return values


@dataclass
class _Read:
    """What a measurement has read so far (kept when a later value turns out bad)."""

    requests: float | None = None
    error_ratio: float | None = None
    client_error_ratio: float | None = None
    p99_latency_seconds: float | None = None
    slowest_route: str | None = None
    worst_route_error_ratio: float | None = None
    worst_error_route: str | None = None


def measure(
    metrics: MetricsSource, queries: Queries, settings: Verification, *, elapsed_seconds: float, at: float
) -> Measurement:
    """One measurement of the interval that ends at Unix time `at`."""
    read = _Read()

    def result(phase: Phase, *reasons: str) -> Measurement:
        return Measurement(elapsed_seconds, phase, reasons, **asdict(read))

    try:
        read.requests = requests = _single(metrics.query(queries.requests, at), "requests on served routes")
        if requests < settings.min_requests:
            return result(
                Phase.INCONCLUSIVE,
                f"only {requests:.0f} requests on served routes in {settings.interval_seconds}s, "
                f"{settings.min_requests} needed to judge",
            )
        read.error_ratio = _single(metrics.query(queries.server_errors, at), "server errors (5xx)") / requests
        if settings.max_client_error_ratio is not None:
            client_errors = _single(metrics.query(queries.client_errors, at), "client errors (4xx)")
            read.client_error_ratio = client_errors / requests
        _judge_routes(metrics, queries, settings, at, read)
    except _BadData as bad:
        return result(Phase.ERROR, str(bad))
    if read.slowest_route is None:
        return result(
            Phase.INCONCLUSIVE,
            f"no route served {settings.min_route_requests} requests in {settings.interval_seconds}s to judge "
            "its p99 and error ratio",
        )
    found = breaches(result(Phase.SUCCESSFUL), settings)
    return result(Phase.FAILED, *found) if found else result(Phase.SUCCESSFUL)


def _judge_routes(metrics: MetricsSource, queries: Queries, settings: Verification, at: float, read: _Read) -> None:
    """Among the routes with enough requests to be judged: the one with the highest p99 and the one with the highest
    server error ratio. A judged route without a p99 or a 5xx series (the app creates them at 0) is bad data."""
    counts = _per_route(metrics.query(queries.route_requests, at), "requests per route")
    p99s = _per_route(metrics.query(queries.route_p99, at), "p99 per route")
    errors = _per_route(metrics.query(queries.route_server_errors, at), "server errors (5xx) per route")
    if counts.keys() != p99s.keys():
        raise _BadData(f"p99 per route: series for {sorted(p99s)}, requests for {sorted(counts)}")
    judged = {route: _count(n, f"requests of {route}") for route, n in counts.items()}
    judged = {route: n for route, n in judged.items() if n >= settings.min_route_requests}
    for route, requests in sorted(judged.items()):
        served = f"(which served {requests:.0f} requests)"
        p99 = _count(p99s[route], f"p99 of {route} {served}")
        if route not in errors:
            raise _BadData(f"server errors (5xx) per route: no series for {route} {served}")
        error_ratio = _count(errors[route], f"server errors (5xx) of {route} {served}") / requests
        if read.p99_latency_seconds is None or p99 > read.p99_latency_seconds:
            read.slowest_route, read.p99_latency_seconds = route, p99
        if read.worst_route_error_ratio is None or error_ratio > read.worst_route_error_ratio:
            read.worst_error_route, read.worst_route_error_ratio = route, error_ratio


def breaches(measurement: Measurement, settings: Verification) -> list[str]:
    """Thresholds a complete measurement exceeds."""
    found = []
    if measurement.error_ratio is not None and measurement.error_ratio > settings.max_error_ratio:
        found.append(f"error ratio {measurement.error_ratio:.2%} > {settings.max_error_ratio:.2%}")
    route_ratio = measurement.worst_route_error_ratio
    if route_ratio is not None and route_ratio > settings.max_error_ratio:
        found.append(
            f"error ratio {route_ratio:.2%} > {settings.max_error_ratio:.2%} on {measurement.worst_error_route}"
        )
    limit = settings.max_client_error_ratio
    if limit is not None and measurement.client_error_ratio is not None and measurement.client_error_ratio > limit:
        found.append(f"client error ratio {measurement.client_error_ratio:.2%} > {limit:.2%}")
    p99 = measurement.p99_latency_seconds
    if p99 is not None and p99 > settings.max_p99_latency_seconds:
        found.append(f"p99 latency {p99:.3f}s > {settings.max_p99_latency_seconds:.3f}s on {measurement.slowest_route}")
    return found


@dataclass
class Tally:
    """The measurements so far and Argo's MetricResult bookkeeping."""

    settings: Verification
    measurements: list[Measurement] = field(default_factory=list)
    consecutive_errors: int = 0

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        # Argo `runMeasurements`: an Error adds to ConsecutiveError, every other completed phase resets it.
        self.consecutive_errors = self.consecutive_errors + 1 if measurement.phase is Phase.ERROR else 0

    def of(self, phase: Phase) -> list[Measurement]:
        return [m for m in self.measurements if m.phase is phase]

    def early_verdict(self) -> Verdict | None:
        """Argo's limits, checked after every measurement (`assessMetricFailureInconclusiveOrError`).

        Failure is checked first and wins: it rolls back, which is what Argo's Error phase does too.
        """
        failed, limit = self.of(Phase.FAILED), self.settings.failure_limit
        if len(failed) > limit:
            summary = f"{len(failed)} failed measurements > failureLimit {limit}"
            return self._verdict(Outcome.FAILED, *failed[-1].reasons, summary)
        error_limit = self.settings.consecutive_error_limit
        if self.consecutive_errors > error_limit:
            summary = (
                f"{self.consecutive_errors} measurements in a row had bad data > consecutiveErrorLimit {error_limit}"
            )
            return self._verdict(Outcome.INCONCLUSIVE, *self.measurements[-1].reasons, summary)
        return None

    def final_verdict(self) -> Verdict:
        """At the end of the window: a pass needs every measurement judged (Argo counts no Error towards `count`)."""
        unjudged = [m for m in self.measurements if m.phase in (Phase.INCONCLUSIVE, Phase.ERROR)]
        if unjudged:
            summary = f"{len(unjudged)} of {len(self.measurements)} measurements could not be judged"
            return self._verdict(Outcome.INCONCLUSIVE, *unjudged[0].reasons, summary)
        passed = (
            f"{len(self.measurements)} measurements, error ratio (overall and per route) and p99 latency "
            "within thresholds"
        )
        failed = self.of(Phase.FAILED)
        if not failed:
            return self._verdict(Outcome.PASSED, passed)
        shown = "; ".join(f"t={m.elapsed_seconds:.0f}s {', '.join(m.reasons)}" for m in failed)
        limit = self.settings.failure_limit
        return self._verdict(Outcome.PASSED, passed, f"{len(failed)} failed within failureLimit {limit}: {shown}")

    def deadline_verdict(self, deadline_seconds: float) -> Verdict:
        """The watch reached its deadline: failed, since a pass needs every measurement and the pipeline must still
        have the time to roll back."""
        count = self.settings.window_seconds // self.settings.interval_seconds
        summary = (
            f"no verdict within the verification deadline of {deadline_seconds:g}s (window "
            f"{self.settings.window_seconds}s and the time its last queries may take): {len(self.measurements)} of "
            f"{count} measurements were taken, Prometheus answered too slowly to judge the rest; failing closed"
        )
        return self._verdict(Outcome.FAILED, summary)

    def _verdict(self, outcome: Outcome, *reasons: str) -> Verdict:
        return Verdict(outcome, reasons, tuple(self.measurements))


class _DeadlineReached(Exception):
    pass


@dataclass
class _Bounded:
    """The metrics source, each query given only what is left until the deadline (a monotonic time)."""

    metrics: MetricsSource
    clock: Callable[[], float]
    deadline: float

    def left(self) -> float:
        return self.deadline - self.clock()

    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        left = self.left()
        if left <= 0:
            raise _DeadlineReached
        try:
            return self.metrics.query(promql, at, timeout_seconds=left)
        except ShipsafeError:
            if self.left() <= 0:  # the query timed out because the watch's own deadline came
                raise _DeadlineReached from None
            raise


def watch(
    metrics: MetricsSource,
    target: Target,
    settings: Verification,
    *,
    on_measurement: Callable[[Measurement], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
    deadline_seconds: float | None = None,
) -> Verdict:
    """One measurement at the end of each interval of the window, each covering exactly that interval.

    The intervals tile the window from the start of the watch: a version that ran before (the target of a
    rollback) is never judged on its pods' traffic from before this deploy. The watch ends by `deadline_seconds`
    after its start (default: `verification_seconds` of the settings), failed if it has no verdict by then.
    """
    started, wall_started = clock(), wall_clock()
    deadline_seconds = verification_seconds(settings) if deadline_seconds is None else deadline_seconds
    bounded = _Bounded(metrics, clock, started + deadline_seconds)
    queries = Queries.for_target(target, settings.interval_seconds)
    count = settings.window_seconds // settings.interval_seconds
    tally = Tally(settings)
    for number in range(1, count + 1):
        ends = number * settings.interval_seconds
        sleep(min(max(started + ends + SETTLE_SECONDS - clock(), 0.0), max(bounded.left(), 0.0)))
        try:
            measurement = measure(bounded, queries, settings, elapsed_seconds=ends, at=wall_started + ends)
        except _DeadlineReached:
            return tally.deadline_verdict(deadline_seconds)
        tally.add(measurement)
        on_measurement(measurement)
        verdict = tally.early_verdict()
        if verdict is not None:
            return verdict
    return tally.final_verdict()
