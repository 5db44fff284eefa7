"""Backing-service outages on real servers: readiness follows Postgres (and shutdown) only; a Redis outage is a
metric and one log line while reads keep working; a Postgres outage answers 503 with Retry-After within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import AppProcess, PostgresServer, RedisServer, app_env, migrate, stopped, wait_until

pytestmark = pytest.mark.services

OUTAGE_ANSWER_SECONDS = 3.0
READS_DURING_OUTAGE = 200


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    """Servers only this module stops and restarts, so other tests never see them go away."""
    postgres, redis = PostgresServer(), RedisServer()
    postgres.start()
    redis.start()
    assert migrate(postgres.url()).returncode == 0
    yield postgres, redis
    redis.stop()
    postgres.destroy()


@pytest.fixture
def app(own_servers: tuple[PostgresServer, RedisServer], start_app) -> AppProcess:
    postgres, redis = own_servers
    return start_app(app_env(postgres, redis, "postgres"))


def metric(client: httpx.Client, name: str) -> float:
    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(sample.value for family in families for sample in family.samples if sample.name == name)


def test_redis_outage_keeps_pods_ready_and_reads_working(own_servers, app: AppProcess) -> None:
    _, redis = own_servers
    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        note = client.post("/notes", json={"title": "cached", "body": "a b"}).json()
        with stopped(redis):
            started = time.monotonic()
            reads = [client.get(f"/notes/{note['id']}") for _ in range(READS_DURING_OUTAGE)]
            seconds = time.monotonic() - started
            ready = client.get("/readyz")
            errors, available = metric(client, "cache_errors_total"), metric(client, "cache_available")
        print(f"\nredis down: {READS_DURING_OUTAGE} reads in {seconds:.1f} s, cache_errors_total {errors:.0f}")
        assert [read.status_code for read in reads] == [200] * READS_DURING_OUTAGE
        assert all(read.json() == note for read in reads)
        assert ready.status_code == 200, "a cache outage must not take the pod out of service"
        assert errors >= 1 and available == 0
        warnings = [line for line in app.log_lines() if str(line["msg"]).startswith("cache unavailable")]
        assert len(warnings) == 1, "one log line per interval, not one per request"

        def cache_back() -> bool:  # after the short bypass, a read uses Redis again
            client.get(f"/notes/{note['id']}")
            return metric(client, "cache_available") == 1

        wait_until(cache_back, 10, "the cache in use again")
        assert redis.cli("EXISTS", f"notes:v1:{note['id']}") == "1"


def test_postgres_outage_answers_503_with_retry_after_within_seconds(own_servers, app: AppProcess) -> None:
    postgres, _ = own_servers
    with httpx.Client(base_url=app.base_url, timeout=30) as client:
        note = client.post("/notes", json={"title": "before", "body": "the outage"}).json()
        with stopped(postgres):
            answers = []
            for request in [client.build_request("GET", "/notes")] * 3 + [
                client.build_request("POST", "/notes", json={"title": "t", "body": "b"}),
                client.build_request("GET", f"/notes/{note['id'] + 1}"),
            ]:
                started = time.monotonic()
                response = client.send(request)
                answers.append((response, time.monotonic() - started))
            ready = client.get("/readyz")
            assert client.get("/healthz").status_code == 200, "liveness must not depend on backing services"
        print("\npostgres down: " + ", ".join(f"{r.status_code} in {s:.2f} s" for r, s in answers))
        for response, seconds in answers:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"].isdigit()
            assert seconds <= OUTAGE_ANSWER_SECONDS
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable"}, "probe answers name no backend"
        wait_until(lambda: client.get("/readyz").status_code == 200, 20, "readyz 200 once postgres is back")
        assert client.get(f"/notes/{note['id']}").status_code == 200


def test_app_starts_unready_and_becomes_ready_when_postgres_comes_up(own_servers, start_app) -> None:
    postgres, redis = own_servers
    with stopped(postgres):
        app = start_app(app_env(postgres, redis, "postgres"), wait=False)
        wait_until(lambda: app.status("/healthz") == 200, 20, "healthz")
        assert app.status("/readyz") == 503
    app.wait_ready(timeout=30)
