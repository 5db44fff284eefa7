"""Runs the ASGI app under uvicorn with the shutdown sequence Kubernetes expects (twelve-factor IX).

On the first SIGTERM/SIGINT: /readyz answers 503 at once, the listener keeps accepting for
SHUTDOWN_DRAIN_SECONDS (so whoever routes traffic sees "not ready" and stops sending), then uvicorn stops
accepting, lets in-flight requests finish (at most SHUTDOWN_TIMEOUT_SECONDS), runs the lifespan shutdown
(closes the pools) and the process exits 0. A second signal forces the exit.
"""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn

from .config import Settings
from .web import Lifecycle, create_app

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_seconds = drain_seconds
        self._shutdown_requested_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._shutdown_requested_at is not None:
            super().handle_exit(sig, frame)  # second signal: stop draining now
            return
        # Not calling super() on the first signal also keeps uvicorn from re-raising it after a clean
        # shutdown, which would turn our exit code 0 into "killed by SIGTERM".
        self._shutdown_requested_at = time.monotonic()
        self._lifecycle.shutting_down = True
        log.info("shutdown requested: not ready", extra={"signal": signal.Signals(sig).name})

    async def on_tick(self, counter: int) -> bool:
        requested = self._shutdown_requested_at
        if requested is not None and not self.should_exit:
            self.should_exit = time.monotonic() - requested >= self._drain_seconds
            if self.should_exit:
                log.info("draining: stopped accepting, finishing in-flight requests")
        return await super().on_tick(counter)


def run(settings: Settings, role: str) -> None:
    lifecycle = Lifecycle()
    config = uvicorn.Config(
        create_app(settings, lifecycle, role=role),
        host="0.0.0.0",  # all interfaces of the container; the pod network decides who can reach it
        port=settings.port,
        log_config=None,  # logs.configure_logging already sends everything to stdout as JSON
        access_log=False,  # MetricsMiddleware covers requests; per-request lines would double the volume
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        timeout_keep_alive=5,
        backlog=2048,
    )
    GracefulServer(config, lifecycle, settings.shutdown_drain_seconds).run()
