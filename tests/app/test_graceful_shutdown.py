"""SIGTERM under load: readiness goes false first, the listener closes, every accepted request completes,
the pools close and the process exits 0 well inside the pod's 30 s grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.faults import faulty
from tests.support.services import AppProcess, PostgresServer, RedisServer, app_env, wait_until

pytestmark = pytest.mark.services

IN_FLIGHT = 600
REQUEST_LATENCY_MS = 4000  # long enough that the listener closes while these are still being served
LOAD_BALANCER_PROBE_SECONDS = 0.25
GRACE_PERIOD_SECONDS = 30


@dataclass
class Timeline:
    sigterm: float = 0.0
    readiness_false: float | None = None
    listener_closed: float | None = None
    last_response: float = 0.0
    exited: float = 0.0
    outcomes: dict[str, list[str]] = field(default_factory=lambda: {"in-flight": [], "arriving": []})


async def in_progress(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    return sum(sample.value for sample in families["http_requests_in_progress"].samples)


async def run_scenario(app: AppProcess) -> Timeline:
    timeline = Timeline()
    unlimited = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with (
        httpx.AsyncClient(base_url=app.base_url, limits=unlimited, timeout=GRACE_PERIOD_SECONDS) as load,
        httpx.AsyncClient(base_url=app.base_url, timeout=5) as probe,
    ):

        async def post(phase: str, number: int) -> None:
            try:
                response = await load.post("/notes", json={"title": f"{phase}-{number}", "body": "x"})
                outcome = str(response.status_code)
            except httpx.ConnectError:
                outcome = "refused"  # never accepted: the listener was closed, a client retries elsewhere
            except httpx.HTTPError as error:
                outcome = type(error).__name__  # accepted, then dropped: what graceful shutdown must prevent
            timeline.outcomes[phase].append(outcome)
            timeline.last_response = max(timeline.last_response, time.monotonic())

        async def watch_listener() -> None:
            while time.monotonic() - timeline.sigterm < GRACE_PERIOD_SECONDS:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", app.port)
                    writer.close()
                except ConnectionRefusedError:
                    timeline.listener_closed = time.monotonic()
                    return
                await asyncio.sleep(0.02)

        in_flight = [asyncio.create_task(post("in-flight", n)) for n in range(IN_FLIGHT)]
        deadline = time.monotonic() + REQUEST_LATENCY_MS / 1000
        while await in_progress(probe) < IN_FLIGHT + 1 and time.monotonic() < deadline:  # +1: this scrape
            await asyncio.sleep(0.05)
        assert await in_progress(probe) >= IN_FLIGHT + 1, "the load never reached the server in full"

        timeline.sigterm = time.monotonic()
        app.process.send_signal(signal.SIGTERM)
        watcher = asyncio.create_task(watch_listener())
        # New traffic keeps arriving, as from a load balancer that only stops once its probe sees "not ready".
        arriving: list[asyncio.Task[None]] = []
        next_probe = timeline.sigterm + LOAD_BALANCER_PROBE_SECONDS  # it probed just before SIGTERM
        while timeline.readiness_false is None and time.monotonic() - timeline.sigterm < 5:
            arriving.append(asyncio.create_task(post("arriving", len(arriving))))
            if time.monotonic() >= next_probe:
                next_probe += LOAD_BALANCER_PROBE_SECONDS
                if (await probe.get("/readyz")).status_code == 503:
                    timeline.readiness_false = time.monotonic()
            await asyncio.sleep(0.01)
        await asyncio.gather(*in_flight, *arriving, watcher)
    await asyncio.to_thread(app.process.wait, GRACE_PERIOD_SECONDS)
    timeline.exited = time.monotonic()
    return timeline


def test_sigterm_under_load_drops_no_accepted_request(
    postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app
) -> None:
    env = app_env(postgres_server, redis_server, migrated_database, SHUTDOWN_DRAIN_SECONDS="1")
    app = start_app(faulty(env, latency_ms=REQUEST_LATENCY_MS))

    # Not asyncio.run(): it leaves the main thread without an event loop, which Pulumi's mocks need later.
    loop = asyncio.new_event_loop()
    try:
        timeline = loop.run_until_complete(run_scenario(app))
    finally:
        loop.close()

    in_flight, arriving = timeline.outcomes["in-flight"], timeline.outcomes["arriving"]
    assert timeline.readiness_false is not None, "readiness never went false"
    assert timeline.listener_closed is not None, "the listener never closed"
    print(
        f"\nshutdown: {len(in_flight)} in flight + {len(arriving)} arriving;"
        f" not ready after {timeline.readiness_false - timeline.sigterm:.2f} s;"
        f" listener closed after {timeline.listener_closed - timeline.sigterm:.2f} s;"
        f" last response after {timeline.last_response - timeline.sigterm:.2f} s;"
        f" exit {app.process.returncode} after {timeline.exited - timeline.sigterm:.2f} s"
    )
    assert in_flight == ["201"] * IN_FLIGHT, "every request in flight at SIGTERM completes"
    dropped = [outcome for outcome in arriving if outcome not in ("201", "refused")]
    assert not dropped, f"accepted requests failed: {dropped}"
    assert arriving.count("201") > 0, "traffic kept arriving after SIGTERM"
    assert timeline.sigterm < timeline.readiness_false < timeline.listener_closed, "not ready before closing"
    assert timeline.listener_closed < timeline.last_response, "in-flight requests outlived the listener"
    assert app.process.returncode == 0
    assert timeline.exited - timeline.sigterm < GRACE_PERIOD_SECONDS

    with psycopg.connect(postgres_server.url(migrated_database)) as conn:
        stored = conn.execute("SELECT count(*) FROM notes").fetchone()
    assert stored == (IN_FLIGHT + arriving.count("201"),), "every acknowledged write is in Postgres"
    messages = [line["msg"] for line in app.log_lines()]
    order = ["shutdown requested: not ready", "Shutting down", "stopped: pools closed"]
    assert [message for message in messages if message in order] == order
    wait_until(lambda: app.status("/healthz") is None, 5, "port released")


# ── keep-alive connections during the drain ─────────────────────────────────────────────────────────────────────

KEEP_ALIVE_RUNS = 4
KEEP_ALIVE_REQUESTS = 10_000  # at least, over all runs
KEEP_ALIVE_CLIENTS = 16


@dataclass
class KeepAliveLoad:
    """Clients on keep-alive connections, like an ingress controller's upstream pool: once its probe saw the pod
    not ready it opens no new connection to it, but it keeps reusing the open ones until the pod closes them."""

    not_ready: bool = False
    answered: int = 0
    refused: int = 0
    server_errors: int = 0
    dropped: list[str] = field(default_factory=list)

    async def client(self, base_url: str, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=base_url, limits=httpx.Limits(max_connections=1), timeout=10) as http:
            reusable = False  # whether the connection stays open after the last response
            while not stop.is_set() and (reusable or not self.not_ready):
                try:
                    response = await http.get("/healthz")
                except httpx.ConnectError:
                    self.refused += 1  # never accepted: a client retries elsewhere
                    return
                except httpx.HTTPError as error:
                    self.dropped.append(repr(error))  # accepted, then lost: what the drain must prevent
                    return
                self.answered += 1
                self.server_errors += response.status_code >= 500
                reusable = response.headers.get("connection", "").lower() != "close"

    async def probe(self, base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            while not self.not_ready:
                await asyncio.sleep(LOAD_BALANCER_PROBE_SECONDS)
                self.not_ready = (await http.get("/readyz")).status_code == 503


async def keep_alive_run(app: AppProcess, load: KeepAliveLoad, requests_before_sigterm: int) -> int:
    """One run; returns the app's peak RSS (bytes) under the load, read just before SIGTERM."""
    stop = asyncio.Event()
    clients = [asyncio.create_task(load.client(app.base_url, stop)) for _ in range(KEEP_ALIVE_CLIENTS)]
    started_with = load.answered
    while load.answered - started_with < requests_before_sigterm and not all(task.done() for task in clients):
        await asyncio.sleep(0.05)
    peak_rss = _peak_rss_bytes(app)
    app.process.send_signal(signal.SIGTERM)
    probe = asyncio.create_task(load.probe(app.base_url))
    await asyncio.to_thread(app.process.wait, GRACE_PERIOD_SECONDS)
    stop.set()
    await asyncio.gather(*clients)
    probe.cancel()
    await asyncio.gather(probe, return_exceptions=True)
    return peak_rss


def test_keep_alive_connections_are_closed_during_the_drain(
    postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app
) -> None:
    load = KeepAliveLoad()
    peak_rss = 0
    for _ in range(KEEP_ALIVE_RUNS):
        app = start_app(app_env(postgres_server, redis_server, migrated_database, SHUTDOWN_DRAIN_SECONDS="1"))
        run = KeepAliveLoad()
        loop = asyncio.new_event_loop()
        try:
            rss = loop.run_until_complete(keep_alive_run(app, run, KEEP_ALIVE_REQUESTS // KEEP_ALIVE_RUNS))
        finally:
            loop.close()
        peak_rss = max(peak_rss, rss)
        assert app.process.returncode == 0
        load.answered += run.answered
        load.refused += run.refused
        load.server_errors += run.server_errors
        load.dropped += run.dropped
    print(
        f"\nkeep-alive drain, {KEEP_ALIVE_RUNS} SIGTERM runs: {load.answered} answered, {load.server_errors} 5xx,"
        f" {len(load.dropped)} dropped, {load.refused} refused; peak RSS {peak_rss / 2**20:.0f} MiB"
    )
    assert load.answered >= KEEP_ALIVE_REQUESTS
    assert load.dropped == [], "requests on kept-alive connections were lost at shutdown"
    assert load.server_errors == 0


def _peak_rss_bytes(app: AppProcess) -> int:
    status = Path(f"/proc/{app.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) * 1024
