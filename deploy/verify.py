"""Post-deploy verification: watch the new version's error ratio and p99 latency in Prometheus.

The verdict is one of passed / failed / inconclusive. A window with fewer requests than `minRequests` is
inconclusive, never a pass: an idle service proves nothing about the new version.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError

from components.settings import Verification
from deploy.errors import ExitCode, ShipsafeError
from deploy.prometheus import MetricsSource
from deploy.release import VERIFICATION, object_config

# Probes and scrapes hit every pod all the time; counting them would let an idle window look busy.
_NOT_TRAFFIC = 'route!~"/healthz|/readyz|/metrics"'


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Measurement:
    elapsed_seconds: float
    requests: float | None
    error_ratio: float | None
    p99_latency_seconds: float | None

    def describe(self) -> str:
        def show(value: float | None, fmt: str) -> str:
            return "no data" if value is None else format(value, fmt) + ("s" if fmt == ".3f" else "")

        return (
            f"t={self.elapsed_seconds:>5.1f}s requests={show(self.requests, '.0f')} "
            f"error_ratio={show(self.error_ratio, '.2%')} p99={show(self.p99_latency_seconds, '.3f')}"
        )


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
        labels = [f'version="{_escape(self.version)}"', _NOT_TRAFFIC]
        if self.namespace:
            labels.append(f'namespace="{_escape(self.namespace)}"')
        return ",".join(labels)


@dataclass(frozen=True)
class Queries:
    """The PromQL for one target over the last `range_seconds`."""

    requests: str
    error_ratio: str
    p99_latency: str

    @classmethod
    def for_target(cls, target: Target, range_seconds: int) -> Queries:
        selector = target.selector()
        window = f"[{range_seconds}s]"
        return cls(
            requests=f"sum(increase(http_requests_total{{{selector}}}{window}))",
            # `or vector(0)`: no 5xx series yet means a ratio of 0 (still no data when there is no traffic).
            error_ratio=(
                f'(sum(rate(http_requests_total{{{selector},status=~"5.."}}{window})) or vector(0))'
                f" / sum(rate(http_requests_total{{{selector}}}{window}))"
            ),
            p99_latency=(
                "histogram_quantile(0.99, sum by (le)"
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
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ShipsafeError(f"stack config {VERIFICATION} is invalid: {problems}", ExitCode.FAILED) from None


def breaches(measurement: Measurement, settings: Verification) -> list[str]:
    """Thresholds the measurement exceeds (only meaningful once enough requests were seen)."""
    found = []
    # No error series at all means no 5xx: the ratio query then has data only for the denominator.
    error_ratio = measurement.error_ratio or 0.0
    if error_ratio > settings.max_error_ratio:
        found.append(f"error ratio {error_ratio:.2%} > {settings.max_error_ratio:.2%}")
    p99 = measurement.p99_latency_seconds
    if p99 is not None and (math.isinf(p99) or p99 > settings.max_p99_latency_seconds):
        found.append(f"p99 latency {p99:.3f}s > {settings.max_p99_latency_seconds:.3f}s")
    return found


def judge(measurement: Measurement, settings: Verification, *, final: bool) -> Verdict | None:
    """A verdict for this measurement, or None to keep watching.

    Fails as soon as a threshold is breached with enough traffic (a bad version should not keep serving
    for the rest of the window); passes only at the end of the window.
    """
    enough = (measurement.requests or 0.0) >= settings.min_requests
    found = breaches(measurement, settings) if enough else []
    if found:
        return Verdict(Outcome.FAILED, tuple(found), ())
    if not final:
        return None
    if not enough:
        seen = measurement.requests or 0.0
        reason = f"only {seen:.0f} requests for the new version, {settings.min_requests} needed to judge"
        return Verdict(Outcome.INCONCLUSIVE, (reason,), ())
    return Verdict(Outcome.PASSED, ("error ratio and p99 latency within thresholds",), ())


def measure(metrics: MetricsSource, queries: Queries, elapsed_seconds: float) -> Measurement:
    return Measurement(
        elapsed_seconds=elapsed_seconds,
        requests=metrics.scalar(queries.requests),
        error_ratio=metrics.scalar(queries.error_ratio),
        p99_latency_seconds=metrics.scalar(queries.p99_latency),
    )


def watch(
    metrics: MetricsSource,
    target: Target,
    settings: Verification,
    *,
    on_measurement: Callable[[Measurement], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Samples every `intervalSeconds` until `windowSeconds` have passed or a threshold is breached.

    Each query looks back only as far as the watch has run: a version that ran before (the target of a
    rollback) must not be judged on its pods' traffic from before this deploy.
    """
    started = clock()
    measurements: list[Measurement] = []
    while True:
        elapsed = clock() - started
        final = elapsed >= settings.window_seconds
        queries = Queries.for_target(target, max(math.ceil(elapsed), 1))
        measurement = measure(metrics, queries, elapsed)
        measurements.append(measurement)
        on_measurement(measurement)
        verdict = judge(measurement, settings, final=final)
        if verdict is not None:
            return Verdict(verdict.outcome, verdict.reasons, tuple(measurements))
        sleep(min(settings.interval_seconds, max(settings.window_seconds - elapsed, 0.0)))
