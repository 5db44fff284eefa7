"""`shipsafe up`, `promote`, `smoke`, `verify` and `rollback`: changing what runs, and checking it."""

from __future__ import annotations

from collections.abc import Mapping

import click
from rich.markup import escape

from components.settings import Environment
from deploy.backend import StackBackend
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline.commands import offline_preview
from deploy.options import OUTPUT, SKIP_PREREQUISITES, emit_json, pass_deploy, quiet_console_for_json, stack_argument
from deploy.planned_objects import stack_objects
from deploy.prerequisites import require_prerequisites
from deploy.promote import check_health, promote
from deploy.release import ImageRef
from deploy.reports import verify_document
from deploy.rollback import (
    RollbackScope,
    apply_rollback,
    check_reason,
    describe_plan,
    plan_rollback,
    show_rendered_diff,
)
from deploy.rollout import (
    deploy_release,
    deployed_target,
    named_release_config,
    require_pass,
    verify_or_roll_back,
    verify_stack,
)
from deploy.stacks import stack_of_environment
from deploy.status import recorded_verification
from deploy.verify import Outcome

VERDICT_CODES = {
    Outcome.PASSED: ExitCode.OK,
    Outcome.FAILED: ExitCode.VERIFICATION_FAILED,
    Outcome.INCONCLUSIVE: ExitCode.VERIFICATION_INCONCLUSIVE,
}


def _check_prerequisites(
    deploy: DeployContext, backend: StackBackend, skip: bool, release: Mapping[str, str] | None = None
) -> None:
    """`release`: the release keys the deploy will set (`named_release_config`): what it creates is rendered with
    them (the migration Job's name carries the release's SHA)."""
    if skip:
        deploy.console.print(f"[yellow]![/yellow] prerequisites of {backend.name} not checked (--skip-prerequisites)")
        return
    with deploy.step(f"check the cluster's prerequisites for {backend.name}"):
        config = {**backend.get_config(), **(release or {})}
        objects = stack_objects(deploy.project_dir, backend, config)
        checked = require_prerequisites(config, deploy.open_cluster, objects)
    deploy.console.print(f"  present: {escape(checked)}", highlight=False)


def _verify_or_roll_back(deploy: DeployContext, backend: StackBackend) -> None:
    with recorded_verification(deploy, backend):
        verify_or_roll_back(deploy, backend)


@click.command("up")
@stack_argument
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
    """Check the cluster's prerequisites, preview, then update STACK with the pack (migration Job, if any, first)."""
    if offline:
        offline_preview(deploy, stack, [], "text")
        return
    image = ImageRef.parse(image_ref) if image_ref else None
    backend = deploy.open_stack(stack)
    _check_prerequisites(
        deploy, backend, skip_prerequisites, named_release_config(backend.get_config(), image, git_sha)
    )
    release = git_sha or (image.tag if image else None)
    default_message = f"deploy {release[:12]}" if release else "deploy"
    deploy_release(deploy, backend, image=image, git_sha=git_sha, message=message or default_message)
    if verify:
        _verify_or_roll_back(deploy, backend)


@click.command("promote")
@click.option(
    "--from", "source", help="Stack whose image is promoted (default: the one stack with environment staging)."
)
@click.option("--to", "target", help="Stack to deploy it to (default: the one stack with environment production).")
@click.option("--staging-url", help="Where to smoke-test the source stack (default: its appUrl output).")
@click.option("--expect-image-ref", help="Refuse unless the source stack runs exactly this image.")
@click.option("--verify", is_flag=True, help="Verify prod after the update; roll back on failure.")
@SKIP_PREREQUISITES
@pass_deploy
def promote_command(
    deploy: DeployContext,
    source: str | None,
    target: str | None,
    staging_url: str | None,
    expect_image_ref: str | None,
    verify: bool,
    skip_prerequisites: bool,
) -> None:
    """Deploy to prod exactly the image digest staging runs (never a rebuild)."""
    expected = ImageRef.parse(expect_image_ref) if expect_image_ref else None
    source = source or stack_of_environment(deploy.project_dir, Environment.STAGING, "--from")
    target = target or stack_of_environment(deploy.project_dir, Environment.PRODUCTION, "--to")
    prod = deploy.open_stack(target)
    _check_prerequisites(deploy, prod, skip_prerequisites)
    promote(deploy, deploy.open_stack(source), prod, staging_url=staging_url, expect_image=expected)
    if verify:
        _verify_or_roll_back(deploy, prod)


@click.command("smoke")
@stack_argument
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


@click.command("verify")
@stack_argument
@OUTPUT
@pass_deploy
def verify_command(deploy: DeployContext, stack: str, output: str) -> None:
    """Watch STACK's new version in Prometheus for the configured window (thresholds from stack config).

    Changes nothing; the verdict is kept for `shipsafe status`.
    """
    quiet_console_for_json(deploy, output)
    backend = deploy.open_stack(stack)
    with recorded_verification(deploy, backend):
        version = deployed_target(backend).version
        verdict = verify_stack(deploy, backend)
        if output == "json" and verdict.outcome is not Outcome.PASSED:
            emit_json(verify_document(stack, version, verdict, VERDICT_CODES[verdict.outcome]))
        require_pass(verdict)
    if output == "json":  # a pass is printed once its record is written: a failed write's document is the error
        emit_json(verify_document(stack, version, verdict, VERDICT_CODES[verdict.outcome]))


@click.command("rollback")
@stack_argument
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
    check_reason(reason)
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
