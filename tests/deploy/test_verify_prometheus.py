"""Verification and rollback against a real Prometheus scraping the real notes app on 127.0.0.1.

An in-memory stack stands in for Pulumi: each successful update (re)starts the app process with the
release's APP_VERSION, and the "bad" releases start it with the test-only fault injection on. Other faults
come from the database itself (a trigger that sleeps or raises), so the app's own code answers slowly or fails.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from rich.console import Console

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from tests.app.faults import faulty
from tests.deploy.fake_apiserver import InProcessCluster
from tests.deploy.memory_stack import NO_POLICY, MemoryStack, MemoryStacks, image, sha
from tests.support.prometheus import PrometheusServer, ScrapeJob, prometheus_binary, running_prometheus
from tests.support.services import AppProcess, PostgresServer, RedisServer, app_env, free_port, stopped

pytestmark = [
    pytest.mark.services,
    pytest.mark.skipif(prometheus_binary() is None, reason="needs Debian's prometheus package"),
]

WINDOW_SECONDS = 12
INTERVAL_SECONDS = 3  # three scrapes: increase() needs two samples in every interval
FAULTS: dict[int, dict[str, Any]] = {  # release number -> faults of the app it runs
    2: {"error_rate": 0.3},
    3: {"latency_ms": 700},
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
        env = {**self.env, "APP_VERSION": version}
        self.current = self.start(faulty(env, **FAULTS[release]) if release in FAULTS else env)
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
    # Every update records the verification settings, so a whole-config rollback keeps verifying against this server.
    return MemoryStack.deployed(
        "staging", [1], on_up=fleet.deploy, settings={"shipsafe:verification": verification_config(prometheus)}
    )


RELAXED_P99 = 10.0
"""Seconds: far above any loopback request of a healthy release, even on a loaded machine."""
SLOW_P99 = 0.5
"""Seconds: below the latency the slow releases inject (0.7 s, 0.8 s a request)."""


def verify_with(stack: MemoryStack, prometheus: PrometheusServer, **changes: object) -> None:
    stack.set_config({"shipsafe:verification": verification_config(prometheus, **changes)})


def verification_config(prometheus: PrometheusServer, **changes: object) -> str:
    verification = {
        "prometheusUrl": prometheus.url,
        "windowSeconds": WINDOW_SECONDS,
        "intervalSeconds": INTERVAL_SECONDS,
        "maxErrorRatio": 0.05,
        # A pass path must not depend on the machine's speed: the latency bound binds only where a test sets it
        # (SLOW_P99) on an app made slower than it, which a slow machine can only make slower.
        "maxP99LatencySeconds": RELAXED_P99,
        "minRequests": 50,
    }
    return json.dumps(verification | changes)


@pytest.fixture
def run_cli(staging: MemoryStack, project_dir: Path) -> Callable[..., Result]:
    context = DeployContext(
        open_stack=MemoryStacks(staging=staging),
        project_dir=project_dir,
        open_cluster=lambda config: InProcessCluster(),  # a cluster with every prerequisite
        console=Console(width=200),
    )

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=context)

    return run


def create_read_list(client: httpx.Client) -> None:
    created = client.post("/notes", json={"title": "load", "body": "a real request"})
    if created.status_code == 201:
        client.get(f"/notes/{created.json()['id']}")
    client.get("/notes")


@contextmanager
def load(
    fleet: Fleet,
    *,
    threads: int = 4,
    pause_seconds: float = 0.02,
    max_requests: int | None = None,
    work: Callable[[httpx.Client], object] = create_read_list,
) -> Iterator[Counter[int]]:
    """Real traffic to 127.0.0.1 from a few threads until the block ends (create, read, list notes by default).

    Yields the statuses seen (a `work` that makes several requests is counted by its last one).
    """
    stop = threading.Event()
    sent = itertools.count()
    statuses: Counter[int] = Counter()

    def worker() -> None:
        assert fleet.current is not None
        with httpx.Client(base_url=fleet.current.base_url, timeout=5.0) as client:
            while not stop.wait(pause_seconds):
                if max_requests is not None and next(sent) >= max_requests:
                    return
                try:
                    response = work(client)
                    if isinstance(response, httpx.Response):
                        statuses[response.status_code] += 1
                except httpx.HTTPError:
                    pass  # a fault or a restart; the metrics tell the story

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in workers:
        thread.start()
    timer = threading.Timer(LOAD_MAX_SECONDS, stop.set)
    timer.start()
    try:
        yield statuses
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


def test_injected_latency_fails_verification(run_cli, fleet, staging, prometheus):
    verify_with(staging, prometheus, maxP99LatencySeconds=SLOW_P99)
    staging.set_config({"shipsafe:imageRef": image(3), "shipsafe:gitSha": sha(3)})
    staging.up(message="slow release", policy=NO_POLICY, on_output=lambda _: None)
    with load(fleet, threads=24):  # 0.7 s a request: enough threads for 20 requests a route in each interval
        result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED, result.output
    assert "p99 latency" in result.stderr


def test_too_little_traffic_is_inconclusive(run_cli, fleet):
    with load(fleet, threads=1, pause_seconds=0.2, max_requests=5):
        result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_INCONCLUSIVE, result.output
    assert "requests on served routes in 3s, 50 needed to judge" in result.stderr


def test_smoke_checks_the_real_app(run_cli, fleet, postgres_server):
    assert fleet.current is not None
    ok = run_cli("smoke", "staging", "--url", fleet.current.base_url)
    assert ok.exit_code == 0, ok.output
    assert "GET /notes: HTTP 200" in ok.output
    with stopped(postgres_server):  # the real path needs Postgres (a Redis outage only slows reads down)
        broken = run_cli("smoke", "staging", "--url", fleet.current.base_url)
    assert broken.exit_code == ExitCode.SMOKE_FAILED
    assert "GET /notes: HTTP 503" in broken.output


# ── What the adversarial review found (issue 10): each of these passed before ──────────────────────────────


def test_every_route_starts_with_its_error_series_at_zero(staging, prometheus):
    """A counter that first appears at 10 loses those 10 to increase(): the app creates its series at 0."""
    selector = f'version="{sha(1)}",route="/notes",method="POST"'
    for status in ("500", "503", "400", "404", "422"):
        samples = prometheus.query(f'http_requests_total{{{selector},status="{status}"}}')
        assert [s["value"][1] for s in samples] == ["0"], status
    routes = prometheus.query(f'http_request_duration_seconds_count{{version="{sha(1)}"}}')
    assert {(s["metric"]["method"], s["metric"]["route"]) for s in routes} >= {
        ("POST", "/notes"),
        ("GET", "/notes"),
        ("GET", "/notes/{note_id}"),
    }


def test_scanner_404s_alone_are_not_traffic(run_cli, fleet):
    """300 404s and no real traffic passed: they were counted as requests to the new version."""
    with load(fleet, threads=1, pause_seconds=0.04, max_requests=300, work=lambda c: c.get("/wp-login.php")) as seen:
        result = run_cli("verify", "staging")
    assert seen[404] >= 250, seen
    assert result.exit_code == ExitCode.VERIFICATION_INCONCLUSIVE, result.output
    assert "only 0 requests on served routes" in result.stderr


@contextmanager
def insert_trigger(postgres: PostgresServer, database: str, body: str) -> Iterator[None]:
    """Every INSERT INTO notes runs `body` first (plpgsql), until the block ends."""
    postgres.psql(
        f"CREATE FUNCTION verify_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NEW; END $$;"
        " CREATE TRIGGER verify_fault BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION verify_fault();",
        database,
    )
    try:
        yield
    finally:
        postgres.psql("DROP TRIGGER verify_fault ON notes; DROP FUNCTION verify_fault();", database)


def read_one_note(fleet: Fleet) -> Callable[[httpx.Client], httpx.Response]:
    assert fleet.current is not None
    created = httpx.post(f"{fleet.current.base_url}/notes", json={"title": "read me", "body": "often"}, timeout=5)
    path = f"/notes/{created.json()['id']}"
    return lambda client: client.get(path)


def test_a_slow_route_is_not_hidden_by_a_flood_of_fast_404s(
    run_cli, fleet, staging, prometheus, postgres_server, migrated_database
):
    """POST /notes at 800 ms plus thousands of scanner 404s: the p99 over everything was 5 ms and passed."""
    verify_with(
        staging,
        prometheus,
        windowSeconds=20,
        intervalSeconds=10,
        minRequests=20,
        minRouteRequests=10,
        maxP99LatencySeconds=SLOW_P99,
    )
    scan = ("/.env", "/wp-login.php")
    with (
        insert_trigger(postgres_server, migrated_database, "PERFORM pg_sleep(0.8)"),
        load(
            fleet, threads=2, pause_seconds=0, work=lambda c: c.post("/notes", json={"title": "t", "body": "b"})
        ) as slow,
        load(fleet, threads=1, pause_seconds=0.05, work=read_one_note(fleet)) as reads,
        load(fleet, threads=6, pause_seconds=0, work=lambda c: c.get(scan[threading.get_ident() % 2])) as scans,
    ):
        result = run_cli("verify", "staging")
    print(f"slow POST /notes {dict(slow)}, reads {dict(reads)}, scanner {dict(scans)}")
    assert scans[404] >= 100 * slow[201], (slow, scans)  # under 1 % slow: a p99 over all requests looks fast
    assert result.exit_code == ExitCode.VERIFICATION_FAILED, result.output
    assert "p99 latency" in result.stderr and "on POST /notes" in result.stderr


@dataclass
class Burst:
    """Ten creates that fail in the app's own code (the database raises), each on a new connection."""

    base_url: str
    postgres: PostgresServer
    database: str
    statuses: list[int] = field(default_factory=list)

    def __call__(self) -> None:
        with insert_trigger(self.postgres, self.database, "RAISE EXCEPTION 'burst'"):
            for _ in range(10):  # uvicorn closes the connection after an unhandled error: one client each
                self.statuses.append(httpx.post(f"{self.base_url}/notes", json={"title": "t", "body": "b"}).status_code)


def test_one_burst_of_ten_errors_is_seen_but_does_not_roll_back(
    run_cli, fleet, staging, prometheus, postgres_server, migrated_database
):
    """Ten 5xx in one burst were invisible (a brand-new series loses its first scrape); they must show, once."""
    verify_with(staging, prometheus, maxErrorRatio=0.01)
    assert fleet.current is not None
    burst = Burst(fleet.current.base_url, postgres_server, migrated_database)
    with load(fleet, threads=1, pause_seconds=0.02, work=read_one_note(fleet)) as reads:
        timer = threading.Timer(4.0, burst)  # inside the second interval (3-6 s)
        timer.start()
        result = run_cli("verify", "staging")
        timer.join()
    print(f"reads {dict(reads)}, burst {burst.statuses}")
    assert burst.statuses == [500] * 10
    assert result.exit_code == 0, result.output
    assert "1 failed within failureLimit 1: t=6s error ratio" in result.output
    assert result.output.count(" failed: error ratio") == 1


def test_a_release_whose_every_write_fails_is_caught_at_five_percent_of_the_traffic(
    run_cli, fleet, staging, prometheus, postgres_server, migrated_database
):
    """Issue 17: every POST /notes a 5xx, posts 5 % of the traffic: the global ratio (5.00 %) passed. Per route,
    POST /notes is 100 % errors and fails verification, whatever the global ratio says."""
    verify_with(staging, prometheus, windowSeconds=12, intervalSeconds=6, maxErrorRatio=0.1, minRouteRequests=10)
    assert fleet.current is not None
    write = lambda client: client.post("/notes", json={"title": "t", "body": "b"})  # noqa: E731
    with (
        load(fleet, threads=4, pause_seconds=0.05, work=read_one_note(fleet)) as reads,
        insert_trigger(postgres_server, migrated_database, "RAISE EXCEPTION 'every write fails'"),
        load(fleet, threads=1, pause_seconds=0.25, work=write) as writes,
    ):
        result = run_cli("verify", "staging")
    print(f"reads {dict(reads)}, writes {dict(writes)}\n{result.output}")
    assert set(writes) == {500} and writes[500] * 10 < reads[200], "writes fail, and are under 10 % of the traffic"
    ratios = [float(r) for r in re.findall(r"error_ratio=([\d.]+)%", result.output)]
    assert ratios and max(ratios) < 10, "within maxErrorRatio overall"
    assert result.exit_code == ExitCode.VERIFICATION_FAILED, result.output
    assert "> 10.00% on POST /notes" in result.stderr
