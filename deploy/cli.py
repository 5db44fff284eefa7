"""`python -m deploy`: commands only parse arguments and delegate to functions that get a DeployContext."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deploy.backend import StackBackend
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.history import history_rows
from deploy.prerequisites import require_prerequisites
from deploy.promote import check_health, promote
from deploy.release import NOT_BUILT_DIGEST, ImageRef, not_yet_built, release_config, stack_file_registry
from deploy.rollback import RollbackScope, apply_rollback, describe_plan, plan_rollback, show_rendered_diff
from deploy.rollout import (
    deploy_release,
    pin_deployed_release,
    preview_stack,
    require_pass,
    verify_or_roll_back,
    verify_stack,
)
from deploy.stacks import init_stacks

STACK = click.argument("stack")
SKIP_PREREQUISITES = click.option(
    "--skip-prerequisites",
    is_flag=True,
    help="Do not check the cluster's prerequisites first (e.g. a kubeconfig with an exec plugin); see the docs.",
)


class _Cli(click.Group):
    """Renders every ShipsafeError in one place, as a red message on stderr with its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShipsafeError as error:
            stderr = Console(stderr=True)
            stderr.print(f"[bold red]error:[/bold red] {escape(error.message)}", highlight=False, soft_wrap=True)
            ctx.exit(int(error.exit_code))


def _default_context(project_dir: Path) -> DeployContext:
    from deploy.automation import create_stack, open_stack  # only the real commands need the Automation API

    stack_factory = functools.partial(open_stack, project_dir=project_dir)
    creator = functools.partial(create_stack, project_dir=project_dir)
    return DeployContext(open_stack=stack_factory, project_dir=project_dir, create_stack=creator)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    envvar="SHIPSAFE_PROJECT_DIR",
    show_default=True,
    help="Directory holding Pulumi.yaml and policy/.",
)
@click.option(
    "--prometheus-url",
    envvar="SHIPSAFE_PROMETHEUS_URL",
    help="Query this Prometheus instead of shipsafe:verification.prometheusUrl (thresholds stay).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, prometheus_url: str | None) -> None:
    """shipsafe rollout tool: preview, up, promote, smoke, verify, history and rollback per stack.

    Exit codes: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 verification inconclusive,
    5 verification failed and rolled back, 6 smoke test failed, 7 refused by a safety check,
    8 stack not found, 9 concurrent update, 10 Pulumi command failed, 11 no pulumi CLI,
    12 Prometheus unavailable, 13 cluster prerequisites missing, 14 cluster unavailable for the check.
    """
    if ctx.obj is None:
        ctx.obj = _default_context(project_dir.resolve())
    if prometheus_url:
        ctx.obj.prometheus_url = prometheus_url


pass_deploy = click.make_pass_decorator(DeployContext)


def _offline(deploy: DeployContext, stack: str, overrides: dict[str, str] | None = None) -> None:
    settings = [f"--set={key}={value}" for key, value in (overrides or {}).items()]
    if deploy.offline_preview([stack, *settings]) != 0:
        raise ShipsafeError(f"offline preview of {stack} failed (see the report above)", ExitCode.FAILED)


def _head_sha(project_dir: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise ShipsafeError(f"cannot read the commit with git ({error}); pass --git-sha", ExitCode.FAILED) from None
    return result.stdout.strip()


def _as_pipeline(deploy: DeployContext, stack: str, git_sha: str | None) -> dict[str, str]:
    """What the deploy pipeline will set: this commit as a prebuilt image, which is not built yet."""
    sha = git_sha or _head_sha(deploy.project_dir)
    image = not_yet_built(stack_file_registry(deploy.project_dir, stack), sha)
    deploy.console.print(
        f"Previewing {stack} as the deploy pipeline will update it: prebuilt image {escape(image.reference)}. "
        f"NOT YET BUILT: the pipeline builds and pushes it after merge; the digest {NOT_BUILT_DIGEST[:15]}… is a "
        "placeholder.",
        highlight=False,
        soft_wrap=True,
    )
    return release_config(image, sha, rollback=False)


def _check_prerequisites(deploy: DeployContext, backend: StackBackend, skip: bool) -> None:
    if skip:
        deploy.console.print(f"[yellow]![/yellow] prerequisites of {backend.name} not checked (--skip-prerequisites)")
        return
    with deploy.step(f"check the cluster's prerequisites for {backend.name}"):
        checked = require_prerequisites(backend.get_config(), deploy.open_cluster)
    deploy.console.print(f"  present: {escape(checked)}", highlight=False)


@cli.command("init")
@click.argument("stacks", nargs=-1)
@pass_deploy
def init_command(deploy: DeployContext, stacks: tuple[str, ...]) -> None:
    """Create STACKS (default: every Pulumi.<stack>.yaml) with the secrets provider each file names.

    Idempotent: an existing stack is left as it is. With a passphrase provider (the default of a file:// or
    cloud-bucket backend), PULUMI_CONFIG_PASSPHRASE must be set first.
    """
    if deploy.create_stack is None:
        raise ShipsafeError("this context cannot create stacks", ExitCode.FAILED)
    for result in init_stacks(deploy.project_dir, list(stacks), deploy.create_stack, os.environ):
        state = "created" if result.created else "exists, left as it is"
        provider = result.secrets_provider or "the backend's default"
        deploy.console.print(f"stack {result.name}: {state} (secrets provider: {provider})")


@cli.command("preview")
@STACK
@click.option("--offline", is_flag=True, help="Run the offline preview (mock runtime + policy pack, no CLI).")
@click.option(
    "--as-pipeline",
    is_flag=True,
    help="With --offline: preview this commit as the deploy pipeline ships it, a prebuilt image marked not yet built.",
)
@click.option("--git-sha", help="With --as-pipeline: the commit the image will be built from (default: git HEAD).")
@pass_deploy
def preview_command(deploy: DeployContext, stack: str, offline: bool, as_pipeline: bool, git_sha: str | None) -> None:
    """Preview STACK with the policy pack and the stack's policy config.

    A stack that deploys a prebuilt image is first re-pinned to the release it runs (from its state).
    """
    if (as_pipeline or git_sha) and not offline:
        raise ShipsafeError("--as-pipeline and --git-sha only apply to --offline", ExitCode.USAGE)
    if git_sha and not as_pipeline:
        raise ShipsafeError("--git-sha needs --as-pipeline", ExitCode.USAGE)
    if offline:
        _offline(deploy, stack, _as_pipeline(deploy, stack, git_sha) if as_pipeline else None)
        return
    backend = deploy.open_stack(stack)
    pin_deployed_release(deploy, backend)
    preview_stack(deploy, backend)


@cli.command("up")
@STACK
@click.option("--image-ref", help="Deploy this pushed image (<registry>/<app>:<sha>@sha256:<digest>).")
@click.option("--git-sha", help="Release SHA (defaults to the image tag).")
@click.option("-m", "--message", help="Update message recorded in the stack history.")
@click.option("--verify", is_flag=True, help="Verify the new version; roll back automatically if it fails.")
@click.option("--offline", is_flag=True, help="Only run the offline preview; deploys nothing.")
@SKIP_PREREQUISITES
@pass_deploy
def up_command(
    deploy: DeployContext,
    stack: str,
    image_ref: str | None,
    git_sha: str | None,
    message: str | None,
    verify: bool,
    offline: bool,
    skip_prerequisites: bool,
) -> None:
    """Check the cluster's prerequisites, preview, then update STACK with the policy pack (migration Job first)."""
    if offline:
        _offline(deploy, stack)
        return
    image = ImageRef.parse(image_ref) if image_ref else None
    backend = deploy.open_stack(stack)
    _check_prerequisites(deploy, backend, skip_prerequisites)
    release = git_sha or (image.tag if image else None)
    default_message = f"deploy {release[:12]}" if release else "deploy"
    deploy_release(deploy, backend, image=image, git_sha=git_sha, message=message or default_message)
    if verify:
        verify_or_roll_back(deploy, backend)


@cli.command("promote")
@click.option("--from", "source", default="staging", show_default=True, help="Stack whose image is promoted.")
@click.option("--to", "target", default="prod", show_default=True, help="Stack to deploy it to.")
@click.option("--staging-url", help="Where to smoke-test the source stack (default: its appUrl output).")
@click.option("--expect-image-ref", help="Refuse unless the source stack runs exactly this image.")
@click.option("--verify", is_flag=True, help="Verify prod after the update; roll back on failure.")
@SKIP_PREREQUISITES
@pass_deploy
def promote_command(
    deploy: DeployContext,
    source: str,
    target: str,
    staging_url: str | None,
    expect_image_ref: str | None,
    verify: bool,
    skip_prerequisites: bool,
) -> None:
    """Deploy to prod exactly the image digest staging runs (never a rebuild)."""
    expected = ImageRef.parse(expect_image_ref) if expect_image_ref else None
    prod = deploy.open_stack(target)
    _check_prerequisites(deploy, prod, skip_prerequisites)
    promote(deploy, deploy.open_stack(source), prod, staging_url=staging_url, expect_image=expected)
    if verify:
        verify_or_roll_back(deploy, prod)


@cli.command("smoke")
@STACK
@click.option("--url", help="Base URL of the app (default: the stack's appUrl output).")
@pass_deploy
def smoke_command(deploy: DeployContext, stack: str, url: str | None) -> None:
    """Check health, readiness and one real request path of STACK's app."""
    if url is None:
        app_url = deploy.open_stack(stack).outputs().get("appUrl")
        if not isinstance(app_url, str):
            raise ShipsafeError(f"stack {stack} has no appUrl output; pass --url", ExitCode.FAILED)
        url = app_url
    if not check_health(deploy, url).passed:
        raise ShipsafeError(f"smoke test of {stack} at {url} failed", ExitCode.SMOKE_FAILED)


@cli.command("verify")
@STACK
@pass_deploy
def verify_command(deploy: DeployContext, stack: str) -> None:
    """Watch STACK's new version in Prometheus for the configured window (thresholds from stack config)."""
    require_pass(verify_stack(deploy, deploy.open_stack(stack)))


@cli.command("history")
@STACK
@pass_deploy
def history_command(deploy: DeployContext, stack: str) -> None:
    """Table of STACK's past updates: version, time, result, image SHA, who and message."""
    table = Table(title=f"history of {stack}")
    for column in ("version", "time", "kind", "result", "image", "by", "message"):
        table.add_column(column, overflow="fold")
    for row in history_rows(deploy.open_stack(stack).history()):
        colour = {"succeeded": "green", "failed": "red"}.get(row.result, "yellow")
        table.add_row(
            str(row.version),
            row.time,
            row.kind,
            f"[{colour}]{row.result}[/{colour}]",
            escape(row.image),
            escape(row.by),
            escape(row.message),
        )
    deploy.console.print(table)


@cli.command("rollback")
@STACK
@click.option("--to-version", type=int, help="Roll back to this update version.")
@click.option("--to-sha", help="Roll back to the newest successful update of this git SHA or image digest.")
@click.option("--reason", default="manual rollback", show_default=True, help="Recorded in the history.")
@click.option(
    "--image-only", is_flag=True, help="Restore only the target's image and release; keep today's other settings."
)
@click.option(
    "--fallback-image-only",
    is_flag=True,
    help="If today's settings schema refuses the target's config, roll back the image only instead of refusing.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the config changes and the diff of the rendered objects (offline render); change nothing.",
)
@pass_deploy
def rollback_command(
    deploy: DeployContext,
    stack: str,
    to_version: int | None,
    to_sha: str | None,
    reason: str,
    image_only: bool,
    fallback_image_only: bool,
    dry_run: bool,
) -> None:
    """Redeploy an earlier update's state through STACK without migrations (default: the last good, different one).

    Restores the target update's whole non-secret config (secrets keep their current values) with rollback=true.
    """
    if image_only and fallback_image_only:
        raise ShipsafeError("--fallback-image-only only applies without --image-only", ExitCode.USAGE)
    backend = deploy.open_stack(stack)
    scope = RollbackScope.IMAGE if image_only else RollbackScope.CONFIG
    plan = plan_rollback(
        backend, scope=scope, fallback_image_only=fallback_image_only, to_version=to_version, to_sha=to_sha
    )
    describe_plan(deploy, stack, plan)
    if dry_run:
        show_rendered_diff(deploy, stack, plan)
        return
    target = apply_rollback(deploy, backend, plan, reason=reason)
    deploy.console.print(f"Rolled back {stack} to update {target.record.version}: {target.image.reference}")


def main() -> None:
    cli.main(prog_name="python -m deploy")
