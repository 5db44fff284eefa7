"""Verification and rollback against a real Prometheus scraping the real notes app on 127.0.0.1.

An in-memory stack stands in for Pulumi: each successful update (re)starts the app process with the
release's APP_VERSION, and the "bad" releases start it with the app's fault-injection test hooks on.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from tests.deploy.fake_apiserver import InProcessCluster
from tests.deploy.memory_stack import NO_POLICY, MemoryStack, MemoryStacks, image, sha
from tests.support.prometheus import PrometheusServer, ScrapeJob, prometheus_binary, running_prometheus
from tests.support.services import AppProcess, PostgresServer, RedisServer, app_env, free_port, stopped

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(prometheus_binary() is None, reason="needs Debian's prometheus package"),
]

WINDOW_SECONDS = 10
FAULTS = {  # release number -> test hooks of the app it runs
    2: {"FAULT_ERROR_RATE": "0.3"},
    3: {"FAULT_LATENCY_MS": "700"},
}
LOAD_MAX_SECONDS = 40  # every load loop stops by itself


@pytest.fixture(scope="module")
def app_port() -> int:
    """One port for every app process of this module, so one Prometheus config scrapes them all."""
    return free_port()


@pytest.fixture(scope="module")
def prometheus(app_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    job = ScrapeJob("app", [f"127.0.0.1:{app_port}"], {"namespace": "notes-staging"})
    with running_prometheus([job], tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@dataclass
class Fleet:
    """What the cluster would run: one app process per update, restarted with the release's version."""

    start: Callable[..., AppProcess]
    env: dict[str, str]
    prometheus: PrometheusServer
    current: AppProcess | None = None
    versions: list[str] = field(default_factory=list)

    def deploy(self, config: Mapping[str, str]) -> None:
        version = config["shipsafe:gitSha"]
        release = next(n for n in itertools.count(1) if sha(n) == version)
        if self.current is not None:
            self.current.stop()
        hooks = FAULTS.get(release, {})
        extra = {"APP_ENABLE_TEST_HOOKS": "1", **hooks} if hooks else {}
        self.current = self.start({**self.env, "APP_VERSION": version, **extra})
        self.versions.append(version)
        self.prometheus.wait_for_series(f'app_info{{version="{version}"}}')


@pytest.fixture
def fleet(
    start_app: Callable[..., AppProcess],
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    migrated_database: str,
    prometheus: PrometheusServer,
    app_port: int,
) -> Fleet:
    env = app_env(postgres_server, redis_server, migrated_database, PORT=str(app_port))
    return Fleet(start_app, env, prometheus)


@pytest.fixture
def staging(fleet: Fleet, prometheus: PrometheusServer) -> MemoryStack:
    """Staging after one healthy deploy of release 1, verified with a short window on the real Prometheus."""
    stack = MemoryStack.deployed("staging", [1], on_up=fleet.deploy)
    verification = {
        "prometheusUrl": prometheus.url,
        "windowSeconds": WINDOW_SECONDS,
        "intervalSeconds": 2,
        "maxErrorRatio": 0.05,
        "maxP99LatencySeconds": 0.5,
        "minRequests": 50,
    }
    stack.set_config({"shipsafe:verification": json.dumps(verification)})
    return stack


@pytest.fixture
def run_cli(staging: MemoryStack, tmp_path: Path) -> Callable[..., Result]:
    (tmp_path / "policy" / "config").mkdir(parents=True)
    (tmp_path / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    (tmp_path / "policy" / "config" / "staging.json").write_text("{}\n")
    context = DeployContext(
        open_stack=MemoryStacks(staging=staging),
        project_dir=tmp_path,
        open_cluster=lambda config: InProcessCluster(),  # a cluster with every prerequisite
        console=Console(width=200),
    )

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=context)

    return run


@contextmanager
def load(fleet: Fleet, *, threads: int = 4, pause_seconds: float = 0.02, max_requests: int | None = None):
    """Real traffic to 127.0.0.1 (create, read, list notes) from a few threads until the block ends."""
    stop = threading.Event()
    sent = itertools.count()

    def worker() -> None:
        assert fleet.current is not None
        with httpx.Client(base_url=fleet.current.base_url, timeout=5.0) as client:
            while not stop.wait(pause_seconds):
                if max_requests is not None and next(sent) >= max_requests:
                    return
                try:
                    created = client.post("/notes", json={"title": "load", "body": "a real request"})
                    if created.status_code == 201:
                        client.get(f"/notes/{created.json()['id']}")
                    client.get("/notes")
                except httpx.HTTPError:
                    pass  # a fault or a restart; the metrics tell the story

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    timer = threading.Timer(LOAD_MAX_SECONDS, stop.set)
    timer.start()
    try:
        yield
    finally:
        stop.set()
        timer.cancel()
        for thread in workers:
            thread.join(timeout=10)


def test_healthy_release_passes_verification(run_cli, fleet):
    with load(fleet):
        result = run_cli("verify", "staging")
    assert result.exit_code == 0, result.output
    assert "Verification PASSED" in result.output
    assert f"Verifying version {sha(1)}" in result.output


def test_injected_errors_fail_verification_and_roll_back(run_cli, fleet, staging):
    with load(fleet):
        result = run_cli("up", "staging", "--image-ref", image(2), "--verify")
    assert result.exit_code == ExitCode.ROLLED_BACK, result.output
    assert "error ratio" in result.stderr
    assert staging.outputs()["imageRef"] == image(1)
    assert staging.config["shipsafe:rollback"] == "true"
    assert fleet.versions == [sha(1), sha(2), sha(1)]  # the rollback really put release 1 back
    with load(fleet):
        again = run_cli("verify", "staging")
    assert again.exit_code == 0, again.output


def test_injected_latency_fails_verification(run_cli, fleet, staging):
    staging.set_config({"shipsafe:imageRef": image(3), "shipsafe:gitSha": sha(3)})
    staging.up(message="slow release", policy=NO_POLICY, on_output=lambda _: None)
    with load(fleet, threads=8):
        result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED, result.output
    assert "p99 latency" in result.stderr


def test_too_little_traffic_is_inconclusive(run_cli, fleet):
    with load(fleet, threads=1, pause_seconds=0.2, max_requests=5):
        result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_INCONCLUSIVE, result.output
    assert "requests for the new version, 50 needed" in result.stderr


def test_smoke_checks_the_real_app(run_cli, fleet, redis_server):
    assert fleet.current is not None
    ok = run_cli("smoke", "staging", "--url", fleet.current.base_url)
    assert ok.exit_code == 0, ok.output
    assert "GET /notes: HTTP 200" in ok.output
    with stopped(redis_server):
        broken = run_cli("smoke", "staging", "--url", fleet.current.base_url)
    assert broken.exit_code == ExitCode.SMOKE_FAILED
    assert "GET /readyz: HTTP 503" in broken.output
