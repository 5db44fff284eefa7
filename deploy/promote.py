"""Promotion: deploy to prod exactly the image digest staging runs, after checking staging is healthy.

Nothing is rebuilt: prod gets the digest-pinned reference from staging's stack outputs, so the bytes that
passed staging's smoke tests are the bytes that run in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.markup import escape

from components.config_keys import CONFIG_NAMESPACE
from deploy.backend import StackBackend, UpdateRecord
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import ImageRef, image_of
from deploy.rollback import SUCCEEDED
from deploy.rollout import deploy_release
from deploy.smoke import SmokeReport


@dataclass(frozen=True)
class Release:
    image: ImageRef
    git_sha: str
    app_url: str | None


def _refuse(message: str) -> ShipsafeError:
    return ShipsafeError(f"promotion refused: {message}", ExitCode.REFUSED)


def staging_release(staging: StackBackend) -> Release:
    """The release staging runs, if it is fit for production (digest-pinned, clean, last update succeeded)."""
    outputs = staging.outputs()
    reference = outputs.get("imageRef")
    if not isinstance(reference, str) or not reference:
        raise _refuse(f"stack {staging.name} has no imageRef output (was it ever deployed?)")
    image = ImageRef.parse(reference)
    if image.digest is None:
        raise _refuse(f"{staging.name} runs {reference}, which is not pinned by a digest")
    git_sha = outputs.get("gitSha")
    if not isinstance(git_sha, str) or not git_sha:
        raise _refuse(f"stack {staging.name} has no gitSha output")
    if outputs.get("dirty") is not False or git_sha.endswith("-dirty"):
        raise _refuse(f"{staging.name} runs a dirty build ({git_sha}); only clean commits go to production")
    if image.tag is not None and image.tag != git_sha:
        raise _refuse(f"{staging.name}'s image tag {image.tag} disagrees with its gitSha {git_sha}")
    _check_last_update(staging, image)
    app_url = outputs.get("appUrl")
    return Release(image, git_sha, app_url if isinstance(app_url, str) else None)


def _check_last_update(staging: StackBackend, image: ImageRef) -> None:
    updates = [record for record in staging.history() if record.kind == "update"]
    if not updates:
        raise _refuse(f"{staging.name} has no update history")
    last = max(updates, key=lambda record: record.version)
    if last.result != SUCCEEDED:
        raise _refuse(f"{staging.name}'s last update ({last.version}) did not succeed: {last.result}")
    recorded = image_of(last.config)
    if recorded is not None and recorded.identity != image.identity:
        raise _refuse(f"{staging.name}'s last update deployed {recorded.short} but its outputs report {image.short}")


def check_health(ctx: DeployContext, url: str) -> SmokeReport:
    with ctx.step(f"smoke test {url}"):
        report = ctx.check_app(url)
    for check in report.checks:
        mark = "[green]✓[/green]" if check.passed else "[red]✗[/red]"
        ctx.console.print(f"  {mark} GET {check.path}: {escape(check.detail)}", highlight=False)
    return report


def _app_name(stack: StackBackend) -> str | None:
    """`shipsafe:app.name` of the stack's config (the app whose image it runs)."""
    try:
        app = json.loads(stack.get_config().get(f"{CONFIG_NAMESPACE}:app", "{}"))
    except json.JSONDecodeError:
        return None
    return app.get("name") if isinstance(app, dict) else None


def promote(
    ctx: DeployContext,
    staging: StackBackend,
    prod: StackBackend,
    *,
    staging_url: str | None,
    expect_image: ImageRef | None = None,
) -> UpdateRecord:
    """`expect_image` guards a pipeline: promote only if staging still runs the image this run built."""
    source_app, target_app = _app_name(staging), _app_name(prod)
    if source_app != target_app:
        raise _refuse(
            f"{staging.name} deploys the app {source_app} and {prod.name} the app {target_app}: promote only between "
            "stacks of one app (shipsafe:app.name)"
        )
    release = staging_release(staging)
    if expect_image is not None and expect_image.identity != release.image.identity:
        raise _refuse(f"{staging.name} runs {release.image.short}, not the expected {expect_image.short}")
    url = staging_url or release.app_url
    if not url:
        raise _refuse(f"{staging.name} has no appUrl output; pass --staging-url")
    if not check_health(ctx, url).passed:
        message = f"promotion refused: {staging.name} is not healthy at {url}"
        raise ShipsafeError(message, ExitCode.SMOKE_FAILED)
    ctx.console.print(f"Promoting {release.image.reference} from {staging.name} to {prod.name}")
    return deploy_release(
        ctx,
        prod,
        image=release.image,
        git_sha=release.git_sha,
        message=f"promote {release.git_sha[:12]} from {staging.name} ({release.image.digest})",
    )
