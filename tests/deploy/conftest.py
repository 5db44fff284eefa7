"""Fixtures for the deploy tool: in-memory stacks, fake metrics and clock, and a CliRunner helper."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.offline.preview import Progress, Report
from deploy.prometheus import Sample
from deploy.smoke import Check, SmokeReport
from deploy.terminal import TerminalConsole
from tests.conftest import STACKS
from tests.deploy.fake_apiserver import InProcessCluster
from tests.deploy.memory_stack import REPO, MemoryStack, MemoryStacks


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeMetrics:
    """Answers the verification queries (one served route) from fixed values and remembers what was asked."""

    requests: float | None = 500.0
    error_ratio: float | None = 0.0
    p99: float | None = 0.05
    queries: list[str] = field(default_factory=list)

    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        self.queries.append(promql)
        route = {"method": "GET", "route": "/notes"}
        if promql.startswith("histogram_quantile"):
            return [] if self.p99 is None else [Sample(route, self.p99)]
        if self.requests is None:
            return []
        if "_count" in promql:
            return [Sample(route, self.requests)]
        if 'status=~"5' in promql:
            labels = route if promql.startswith("sum by") else {}
            return [] if self.error_ratio is None else [Sample(labels, self.requests * self.error_ratio)]
        if 'status=~"4' in promql:
            return [Sample({}, 0.0)]
        return [Sample({}, self.requests)]


@dataclass
class FakeApp:
    healthy: bool = True
    checked: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> SmokeReport:
        self.checked.append(url)
        status = "HTTP 200 in 3 ms" if self.healthy else "HTTP 503"
        return SmokeReport(url, (Check("/healthz", True, "HTTP 200 in 1 ms"), Check("/readyz", self.healthy, status)))


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """A project with this repository's program and stack files (`up` renders what it creates) and the policy pack
    layout the tool requires (pack dir + per-stack config)."""
    # Copies, never links: commands write stack files, and the repository's must stay as committed.
    shutil.copytree(REPO / "components", tmp_path / "components", ignore=shutil.ignore_patterns("__pycache__"))
    for program_file in [REPO / "__main__.py", *REPO.glob("Pulumi*.yaml")]:
        shutil.copy(program_file, tmp_path)
    config = tmp_path / "policy" / "config"
    config.mkdir(parents=True)
    (tmp_path / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    for stack in STACKS:
        (config / f"{stack}.json").write_text("{}\n")
    return tmp_path


@pytest.fixture
def stacks() -> MemoryStacks:
    return MemoryStacks(
        staging=MemoryStack.deployed("staging", [1, 2], app_url="http://staging.test"),
        prod=MemoryStack.deployed("prod", [1]),
    )


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


@pytest.fixture
def app() -> FakeApp:
    return FakeApp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cluster() -> InProcessCluster:
    """A cluster that meets every prerequisite (tests/deploy/test_prerequisites.py covers the gaps)."""
    return InProcessCluster()


@pytest.fixture
def offline_calls() -> list[tuple[str, dict[str, object], Path]]:
    """Each offline preview a command asked for: the stack, the config overrides, the project directory."""
    return []


@pytest.fixture
def deploy_ctx(
    project_dir: Path,
    stacks: MemoryStacks,
    metrics: FakeMetrics,
    app: FakeApp,
    clock: FakeClock,
    offline_calls: list[tuple[str, dict[str, object], Path]],
    cluster: InProcessCluster,
) -> DeployContext:
    def offline_preview(
        stack: str,
        overrides: Mapping[str, object],
        *,
        project_dir: Path,
        progress: Progress,
        analysis_reuse: str | None = None,
    ) -> Report:
        offline_calls.append((stack, dict(overrides), project_dir))
        return Report(stack)

    return DeployContext(
        open_stack=stacks,
        project_dir=project_dir,
        open_metrics=lambda url: metrics,
        check_app=app,
        offline_preview=offline_preview,
        prelaunch_pack=lambda project_dir, stack: None,  # the fake preview runs no pack
        open_cluster=lambda config: cluster,
        create_stack=stacks.create,
        console=TerminalConsole(width=200, force_terminal=False),
        clock=clock,
        sleep=clock.sleep,
    )


@pytest.fixture
def run_cli(deploy_ctx: DeployContext) -> Callable[..., Result]:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), obj=deploy_ctx)

    return run
