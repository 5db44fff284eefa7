"""SIGTERM under load: readiness goes false first, the listener closes, every accepted request completes,
the pools close and the process exits 0 well inside the pod's 30 s grace period."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
    hooks = {"APP_ENABLE_TEST_HOOKS": "1", "FAULT_LATENCY_MS": str(REQUEST_LATENCY_MS)}
    app = start_app(app_env(postgres_server, redis_server, migrated_database, SHUTDOWN_DRAIN_SECONDS="1", **hooks))

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
