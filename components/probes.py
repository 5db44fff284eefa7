"""Probe and shutdown timings of every pod the stack runs: the pod specs and the deploy timeline both read them.

Kubernetes defaults (kubernetes `pkg/apis/core/v1/defaults.go`, `SetDefaults_Probe` and `SetDefaults_PodSpec`):
periodSeconds 10, timeoutSeconds 1, failureThreshold 3, initialDelaySeconds 0, terminationGracePeriodSeconds 30.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_TERMINATION_GRACE_SECONDS = 30
# A database checkpoints on shutdown; it gets longer than the app.
BACKING_SERVICE_TERMINATION_GRACE_SECONDS = 60


@dataclass(frozen=True)
class Probe:
    period_seconds: int
    failure_threshold: int = 3
    timeout_seconds: int = 1
    initial_delay_seconds: int = 0

    @property
    def budget_seconds(self) -> int:
        """How long the probe tolerates failures before the kubelet acts (restarts the container for a startup
        or liveness probe)."""
        return self.initial_delay_seconds + self.period_seconds * self.failure_threshold

    def spec(self, handler: dict[str, Any]) -> dict[str, Any]:
        """The Kubernetes probe: `handler` (`http_get`, `exec`, `tcp_socket`) with these timings."""
        timings = {
            "period_seconds": self.period_seconds,
            "timeout_seconds": self.timeout_seconds,
            "failure_threshold": self.failure_threshold,
        }
        if self.initial_delay_seconds:
            timings["initial_delay_seconds"] = self.initial_delay_seconds
        return {**handler, **timings}


@dataclass(frozen=True)
class PodTiming:
    """The probes that bound a container's way from start to Ready."""

    readiness: Probe
    liveness: Probe
    startup: Probe | None = None

    @property
    def boot_budget_seconds(self) -> int:
        """Longest a started container may take to serve before the kubelet restarts it: the startup probe's
        budget, or without one the liveness probe's (a slower container is failing, not slow)."""
        return (self.startup or self.liveness).budget_seconds

    @property
    def ready_after_start_seconds(self) -> int:
        """From container start to Ready: the boot budget, then the readiness probe's first period after it."""
        return self.boot_budget_seconds + self.readiness.initial_delay_seconds + self.readiness.period_seconds


# The app: startup gates the others, so a slow boot is not killed by liveness.
APP_STARTUP = Probe(period_seconds=2, timeout_seconds=2, failure_threshold=30)
APP = PodTiming(
    startup=APP_STARTUP,
    readiness=Probe(period_seconds=5, timeout_seconds=2, failure_threshold=2),
    liveness=Probe(period_seconds=10, timeout_seconds=3, failure_threshold=3),
)
# Postgres and Redis: a database may replay its WAL or AOF before it listens.
BACKING_SERVICE_STARTUP = Probe(period_seconds=5, failure_threshold=60)
BACKING_SERVICE = PodTiming(
    startup=BACKING_SERVICE_STARTUP,
    readiness=Probe(period_seconds=5, timeout_seconds=3, failure_threshold=3),
    liveness=Probe(period_seconds=15, timeout_seconds=5, failure_threshold=6),
)
REGISTRY = PodTiming(
    readiness=Probe(period_seconds=5),
    liveness=Probe(period_seconds=15, failure_threshold=6),
)
