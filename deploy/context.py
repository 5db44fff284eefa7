"""Everything a command needs from the outside world, injected so tests can swap each part."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.markup import escape

from deploy.backend import PolicyPack, StackFactory
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline.prelaunch import prelaunch_preview_pack
from deploy.stacks import StackCreator
from deploy.terminal import TerminalConsole
from harness.stack_config import StackFileError, engine_config, policy_config_path, read_stack_config

if TYPE_CHECKING:
    from deploy.offline.preview import Progress, Report
    from deploy.prerequisites import ClusterApi, ClusterOpener
    from deploy.prometheus import MetricsSource
    from deploy.smoke import SmokeReport

# The outside world each command may need, imported when used: a command imports only what it talks to (the
# offline preview starts its policy pack before anything heavy is imported).


def open_prometheus(url: str) -> MetricsSource:
    from deploy.prometheus import PrometheusClient

    return PrometheusClient(url)


def smoke_check(url: str) -> SmokeReport:
    from deploy.smoke import smoke

    return smoke(url)


def open_kubernetes(stack_config: Mapping[str, str]) -> ClusterApi:
    from deploy.kubeconfig import open_cluster

    return open_cluster(stack_config)


class OfflinePreview(Protocol):
    def __call__(
        self,
        stack: str,
        overrides: Mapping[str, object],
        *,
        project_dir: Path,
        progress: Progress,
        analysis_reuse: str | None = None,
    ) -> Report: ...


def run_offline_preview(
    stack: str,
    overrides: Mapping[str, object],
    *,
    project_dir: Path,
    progress: Progress,
    analysis_reuse: str | None = None,
) -> Report:
    """The offline preview (mock runtime + the real policy pack, `deploy.offline.preview`); needs no Pulumi CLI.
    Imported when run: the commands that need the CLI never load the program's modules."""
    from deploy.offline.preview import offline_preview

    return offline_preview(stack, overrides, project_dir=project_dir, progress=progress, analysis_reuse=analysis_reuse)


@dataclass
class DeployContext:
    open_stack: StackFactory
    project_dir: Path
    open_metrics: Callable[[str], MetricsSource] = open_prometheus
    check_app: Callable[[str], SmokeReport] = smoke_check
    offline_preview: OfflinePreview = run_offline_preview
    prelaunch_pack: Callable[[Path, str], None] = prelaunch_preview_pack
    """Starts the offline preview's first policy pack (`deploy.offline.prelaunch`) before the SDKs are imported."""
    open_cluster: ClusterOpener = open_kubernetes
    """The cluster a stack deploys to, for the prerequisite check before `up` (from the kubeconfig)."""
    create_stack: StackCreator | None = None
    """`deploy init`'s `pulumi stack init`; None in contexts that only operate on existing stacks."""
    console: Console = field(default_factory=TerminalConsole)
    prometheus_url: str | None = None
    """Overrides `shipsafe:verification.prometheusUrl`, e.g. a port-forward from a CI runner."""
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @property
    def verification_dir(self) -> Path:
        """Where `status` finds the last verification of each stack (`deploy.status.VerificationLog`)."""
        return self.project_dir / "out" / "verifications"

    def policy_for(self, stack: str) -> PolicyPack:
        """The policy pack runs on every preview and update, with the stack's own enforcement config."""
        short_name = stack.rsplit("/", 1)[-1]  # "org/project/prod" -> "prod"
        policy_dir = self.project_dir / "policy"
        pack = PolicyPack(policy_dir, policy_config_path(self.project_dir, short_name))
        for path in (pack.path / "PulumiPolicy.yaml", pack.config):
            if not path.is_file():
                raise ShipsafeError(f"policy pack file {path} is missing", ExitCode.FAILED)
        from deploy.policy_link import is_production_stack, read_policy_config
        from harness.analyzer import PolicyPackError

        # The engine reads the file itself: a duplicate key or an unknown policy name would pass it silently (the
        # pack refuses a lowered floor too, but cannot name the file).
        try:
            _, values = read_stack_config(short_name, self.project_dir)
            production = is_production_stack(short_name, engine_config(values)[0])
        except StackFileError:
            production = True  # the stack file's own check names it; meanwhile the strictest reading
        try:
            read_policy_config(pack.config, production=production)
        except PolicyPackError as error:
            raise ShipsafeError(str(error), ExitCode.POLICY_PACK_FAILED) from None
        return pack

    def engine_line(self, line: str) -> None:
        """Streams the engine's output under the spinner, dimmed so the tool's own lines stand out."""
        self.console.print(escape(line.rstrip("\n")), style="dim", highlight=False)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A spinner for a long step, then a check mark (on failure the CLI renders the error)."""
        with self.console.status(description):
            yield
        self.console.print(f"[green]✓[/green] {escape(description)}")
