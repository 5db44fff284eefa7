"""Liveness vs readiness on real servers: readiness follows the backing services, liveness does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import PostgresServer, RedisServer, app_env, migrate, stopped, wait_until

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[PostgresServer, RedisServer]]:
    """Servers only this module stops and restarts, so other tests never see them go away."""
    postgres, redis = PostgresServer(), RedisServer()
    postgres.start()
    redis.start()
    yield postgres, redis
    redis.stop()
    postgres.destroy()


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_readiness_goes_false_while_a_backing_service_is_down(own_servers, start_app, service: str) -> None:
    postgres, redis = own_servers
    assert migrate(postgres.url()).returncode == 0
    app = start_app(app_env(postgres, redis, "postgres"))
    with stopped(postgres if service == "postgres" else redis):
        wait_until(lambda: app.status("/readyz") == 503, 10, f"readyz 503 without {service}")
        assert app.status("/healthz") == 200, "liveness must not depend on backing services"
    wait_until(lambda: app.status("/readyz") == 200, 20, f"readyz 200 once {service} is back")


def test_app_starts_unready_and_becomes_ready_when_postgres_comes_up(own_servers, start_app) -> None:
    postgres, redis = own_servers
    with stopped(postgres):
        app = start_app(app_env(postgres, redis, "postgres"), wait=False)
        wait_until(lambda: app.status("/healthz") == 200, 20, "healthz")
        assert app.status("/readyz") == 503
    app.wait_ready(timeout=30)
