"""Runs the ASGI app under uvicorn with the shutdown sequence Kubernetes expects (twelve-factor IX).

On the first SIGTERM/SIGINT: /readyz answers 503 at once, the listener keeps accepting for
SHUTDOWN_DRAIN_SECONDS (so whoever routes traffic sees "not ready" and stops sending), then uvicorn stops
accepting, lets in-flight requests finish (at most SHUTDOWN_TIMEOUT_SECONDS), runs the lifespan shutdown
(closes the pools) and the process exits 0. A second signal forces the exit.

uvicorn bounds a request head's size (h11's 16 KiB) and an idle keep-alive connection (`timeout_keep_alive`), but
not how long a client may take to send a request: a fresh connection, or one sending its head a byte at a time,
stays open for as long as the client likes. `ReadDeadlineProtocol` closes it once the head is not complete
`HEADER_READ_TIMEOUT_SECONDS` after the connection opened (or the previous response ended), and once a body is not
complete `BODY_READ_TIMEOUT_SECONDS` later (plus a margin: the app's own body read answers 408 first when it reads).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import Settings
from .payloads import BODY_READ_TIMEOUT_SECONDS
from .web import Lifecycle, create_app

log = logging.getLogger(__name__)

HEADER_READ_TIMEOUT_SECONDS = 10.0
# Past the app's own body deadline, for bodies no route reads (a body sent with a GET): the connection is closed.
BODY_READ_BACKSTOP_SECONDS = BODY_READ_TIMEOUT_SECONDS + 5.0


class ReadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head, then for its body.

    uvicorn 0.54 `protocols/http/h11_impl.py`: `connection_made` arms no timer, and `data_received` cancels the
    keep-alive timer on any byte, so neither an idle fresh connection nor a dripped head is ever closed. This arms
    one timer per request: at the head deadline, h11 still waiting for the head (`their_state` IDLE) closes the
    connection; a head with its body still arriving gets the body deadline; a request fully read is the app's.
    """

    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEADER_READ_TIMEOUT_SECONDS, self._head_deadline)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start reading the next (pipelined) request
        if not self.transport.is_closing():
            self._arm(HEADER_READ_TIMEOUT_SECONDS, self._head_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        super().connection_lost(exc)

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        self._read_deadline = self.loop.call_later(seconds, callback)

    def _head_deadline(self) -> None:
        if self.conn.their_state is h11.IDLE:
            self._close("no complete request head")
        elif self.conn.their_state is h11.SEND_BODY:
            self._arm(BODY_READ_BACKSTOP_SECONDS, self._body_deadline)

    def _body_deadline(self) -> None:
        if self.conn.their_state is h11.SEND_BODY:
            self._close("request body still arriving")

    def _close(self, why: str) -> None:
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's next receive() is http.disconnect
            self.cycle.message_event.set()
        log.debug("closed a slow connection", extra={"reason": why})
        self.transport.close()


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
        http=ReadDeadlineProtocol,
        backlog=2048,
    )
    GracefulServer(config, lifecycle, settings.shutdown_drain_seconds).run()
