"""Fault injection is test code: absent from the app package and the production stage, switched on only by the
test wrapper (`app/fault_injection`, on PYTHONPATH in tests, the `faulty` image target in e2e)."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.app.faults import FAULT_INJECTION_DIR, faulty
from tests.support.services import APP_DIR, PostgresServer, RedisServer, app_env

FAULT_CODE = re.compile(r"\bFAULT_|APP_ENABLE_TEST_HOOKS|fault_injection|\binject", re.IGNORECASE)


def dockerfile_stages() -> dict[str, tuple[str, list[str]]]:
    """alias -> (FROM base, instructions) of app/Dockerfile."""
    stages: dict[str, tuple[str, list[str]]] = {}
    text = re.sub(r"\\\n\s*", " ", (APP_DIR / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for line in lines:
        if match := re.fullmatch(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.IGNORECASE):
            stages[match.group(2)] = (match.group(1), [])
        elif stages:
            next(reversed(stages.values()))[1].append(line)
    return stages


def test_the_app_package_has_no_fault_code() -> None:
    offenders = [
        f"{path.relative_to(APP_DIR)}:{number}"
        for path in sorted((APP_DIR / "notes_app").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if FAULT_CODE.search(line)
    ]
    assert offenders == []


def test_the_production_stage_never_contains_the_fault_code() -> None:
    stages = dockerfile_stages()
    production = " ".join(stages["production"][1])
    assert "fault_injection" not in production and "PYTHONPATH" not in production
    assert stages["faulty"][0] == "production", "the test image is built FROM the production stage"
    assert any(line.startswith("COPY fault_injection") for line in stages["faulty"][1])
    last_alias, (last_base, last_body) = list(stages.items())[-1]
    assert (last_base, last_body) == ("production", []), f"a build without --target yields {last_alias}, unchanged"


@pytest.mark.services
def test_switching_the_old_hooks_on_changes_nothing(
    postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app
) -> None:
    hooks = {"APP_ENABLE_TEST_HOOKS": "1", "FAULT_ERROR_RATE": "1", "FAULT_LATENCY_MS": "2000"}
    app = start_app(app_env(postgres_server, redis_server, migrated_database, **hooks))
    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        responses = [client.get("/notes") for _ in range(5)]
    assert [response.status_code for response in responses] == [200] * 5
    assert max(response.elapsed.total_seconds() for response in responses) < 1


@pytest.mark.services
def test_the_wrapper_injects_faults_the_metrics_count(
    postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app
) -> None:
    env = app_env(postgres_server, redis_server, migrated_database)
    app = start_app(faulty(env, error_rate=1, latency_ms=300))
    with httpx.Client(base_url=app.base_url, timeout=10) as client:
        response = client.get("/notes")
        metrics = client.get("/metrics").text
        assert client.get("/healthz").status_code == 200, "only /notes is faulted"
    assert response.status_code == 500 and response.elapsed.total_seconds() >= 0.3
    assert re.search(r'http_requests_total\{method="GET",route="/notes",status="500",[^}]*\} 1\.0', metrics)


def test_the_wrapper_refuses_bad_settings() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(FAULT_INJECTION_DIR), "FAULT_ERROR_RATE": "2"}
    result = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "FAULT_ERROR_RATE must be from 0 to 1. Got 2.0" in result.stderr
