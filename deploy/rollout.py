"""preview, up and verify of one stack, and the automatic rollback when verification fails."""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape

from components.settings import ConfigError
from components.timeline import verification_seconds
from deploy.backend import PreviewSummary, StackBackend, UpdateRecord
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.progress import UpTimeline, Wait, duration, up_wait, waiting
from deploy.prometheus import without_credentials
from deploy.release import (
    GIT_SHA_KEY,
    IMAGE_REF_KEY,
    IMAGE_SOURCE,
    ROLLBACK,
    ImageRef,
    check_git_sha,
    release_config,
)
from deploy.restore import check_settings
from deploy.rollback import SUCCEEDED, reverted_by_rollback, rollback_stack
from deploy.verify import Measurement, Outcome, Target, Verdict, settings_from_config, watch


def pin_deployed_release(ctx: DeployContext, backend: StackBackend) -> None:
    """Re-pins a prebuilt stack's config to the release it runs, before a redeploy without a new image."""
    backend.set_config(deployed_release_config(ctx, backend))


def deployed_release_config(ctx: DeployContext, backend: StackBackend) -> dict[str, str]:
    """The release keys that pin a prebuilt stack to the release it runs (empty for a stack that builds).

    promote and rollback write the release keys into the stack config of the machine that ran them; a CI
    checkout of `Pulumi.<stack>.yaml` is thrown away afterwards. The state is the source of truth: imageRef and
    gitSha come from the stack outputs, rollback from the last successful update (a redeploy after a rollback
    must not migrate). Stacks that build their image are left alone: they deploy the working tree.
    """
    config = backend.get_config()
    if config.get(IMAGE_SOURCE) != "prebuilt":
        return {}
    outputs = backend.outputs()
    reference = outputs.get("imageRef")
    if not isinstance(reference, str) or not reference:
        ctx.console.print(
            f"{backend.name} has no outputs yet (first deploy): keeping imageRef "
            f"{escape(config.get(IMAGE_REF_KEY, '(unset)'))}, gitSha {escape(config.get(GIT_SHA_KEY, '(unset)'))} "
            f"and rollback={escape(config.get(ROLLBACK, 'false'))} from the stack config",
            highlight=False,
            soft_wrap=True,
        )
        return {}
    image = ImageRef.parse(reference)
    git_sha = outputs.get("gitSha") or image.tag
    if not isinstance(git_sha, str) or not git_sha:
        raise ShipsafeError(f"stack {backend.name} has no gitSha output to re-pin", ExitCode.FAILED)
    successful = [r for r in backend.history() if r.kind == "update" and r.result == SUCCEEDED]
    last_good = max(successful, key=lambda record: record.version, default=None)
    # Without a successful update on record (e.g. an imported stack) the config's own flag is all there is.
    rolled_back = (last_good.config if last_good else config).get(ROLLBACK) == "true"
    pinned = release_config(image, git_sha, rollback=rolled_back)
    replaced = {key: config.get(key, "(unset)") for key, value in pinned.items() if config.get(key) != value}
    source = f"update {last_good.version}" if last_good else "the stack config"
    ctx.console.print(
        f"Pinned {backend.name} to the release it runs (stack outputs, rollback flag from {source}): "
        f"{escape(image.reference)}, gitSha {escape(git_sha)}, rollback={pinned[ROLLBACK]}",
        highlight=False,
        soft_wrap=True,
    )
    if replaced:
        stale = ", ".join(f"{key}={value}" for key, value in replaced.items())
        ctx.console.print(f"  replaced stale local config: {escape(stale)}", highlight=False, soft_wrap=True)
    return pinned


def report_reverted_values(ctx: DeployContext, backend: StackBackend) -> None:
    """After a rollback, the committed stack file is still the source of truth: say what this deploy re-applies."""
    reverted = reverted_by_rollback(backend, backend.get_config())
    if reverted is None:
        return
    ctx.console.print(
        f"Update {reverted.rollback.version} rolled {backend.name} back to the settings of update "
        f"{reverted.target_version}; this deploy re-applies the stack config's values it had reverted:",
        highlight=False,
    )
    for change in reverted.changes:
        ctx.console.print(f"  {escape(change.describe())}", highlight=False, soft_wrap=True)


def preview_stack(
    ctx: DeployContext, backend: StackBackend, *, config_overlay: Mapping[str, str] | None = None
) -> PreviewSummary:
    """`pulumi preview` with the pack; `config_overlay` is previewed from a temporary copy of the stack file."""
    report_reverted_values(ctx, backend)
    with ctx.step(f"pulumi preview {backend.name} (policy pack on)"):
        summary = backend.preview(
            policy=ctx.policy_for(backend.name), on_output=ctx.engine_line, config_overlay=config_overlay or {}
        )
    changes = ", ".join(f"{op}: {count}" for op, count in sorted(summary.change_summary.items())) or "none"
    ctx.console.print(f"Planned changes: {changes}")
    return summary


def named_release_config(
    config: Mapping[str, str], image: ImageRef | None, git_sha: str | None
) -> dict[str, str] | None:
    """The config keys a deploy of `image` / `git_sha` sets before its preview; None when a prebuilt stack redeploys
    the release it runs (`pin_deployed_release`, which reads the state)."""
    if image is not None:
        sha = git_sha or image.tag
        if sha is None:
            raise ShipsafeError("the image reference has no SHA tag: pass --git-sha", ExitCode.FAILED)
        return release_config(image, sha, rollback=False)
    if config.get(IMAGE_SOURCE) == "prebuilt":
        if git_sha is not None:
            raise ShipsafeError(
                "--git-sha without --image-ref only applies to stacks that build their image", ExitCode.FAILED
            )
        return None
    changes = {ROLLBACK: "false"}  # the stack builds a new image from the tree: migrations run
    if git_sha is not None:
        changes[GIT_SHA_KEY] = check_git_sha(git_sha)
    return changes


def deploy_release(
    ctx: DeployContext,
    backend: StackBackend,
    *,
    image: ImageRef | None,
    git_sha: str | None,
    message: str,
) -> UpdateRecord:
    """A normal deploy: pins the release (if given), re-enables migrations, previews, then updates.

    Without a new image on a stack pinned to a prebuilt one, the release the stack runs is redeployed (a
    config-only change; see `pin_deployed_release`) and `rollback` stays as it was deployed: after a
    rollback, the old image must not run migrations.
    """
    changes = named_release_config(backend.get_config(), image, git_sha)
    if changes is None:
        pin_deployed_release(ctx, backend)
    else:
        backend.set_config(changes)
    preview_stack(ctx, backend)
    timeline = expected_timeline(backend)
    # An app without migrations (or a rollback) has no Job stage; an unknown timeline keeps the usual promise.
    job_first = ", migration Job first" if timeline is None or "migration" in timeline.stages else ""
    wait = up_wait(f"pulumi up {backend.name} (policy pack on{job_first})", timeline)
    with waiting(ctx.console, ctx.clock, wait) as display:

        def on_output(line: str) -> None:
            ctx.engine_line(line)
            display.tick()

        record = backend.up(message=message, policy=ctx.policy_for(backend.name), on_output=on_output)
    ctx.console.print(f"Update {record.version} of {backend.name}: {record.result}")
    return record


def expected_timeline(backend: StackBackend) -> UpTimeline | None:
    """The worst case of the coming `up`, from the config it deploys (the program's own `deploy_timeline`, which it
    exports as `deployTimeline`). A config the program will refuse falls back to the last update's output."""
    try:
        return UpTimeline.of(check_settings(backend.get_config()))
    except ConfigError:
        return UpTimeline.from_output(backend.outputs().get("deployTimeline"))


def deployed_target(backend: StackBackend) -> Target:
    """The new pods: their `version` label (APP_VERSION = the git SHA) and the stack's namespace."""
    outputs = backend.outputs()
    version = outputs.get("appVersion") or outputs.get("gitSha")
    if not isinstance(version, str) or not version:
        raise ShipsafeError(
            f"stack {backend.name} has no appVersion output: deploy it before verifying", ExitCode.FAILED
        )
    namespace = outputs.get("namespace")
    return Target(version, namespace if isinstance(namespace, str) and namespace else None)


def verify_stack(ctx: DeployContext, backend: StackBackend) -> Verdict:
    settings = settings_from_config(backend.get_config())
    target = deployed_target(backend)
    prometheus_url = ctx.prometheus_url or settings.prometheus_url
    metrics = ctx.open_metrics(prometheus_url)
    ctx.console.print(
        f"Verifying version [bold]{target.version}[/bold] in namespace {target.namespace or '(any)'} of "
        f"{backend.name} for {settings.window_seconds}s "
        f"(error ratio ≤ {settings.max_error_ratio:.2%}, p99 ≤ {settings.max_p99_latency_seconds}s, "
        f"at least {settings.min_requests} requests) via {escape(without_credentials(prometheus_url))}"
    )
    measurements = settings.window_seconds // settings.interval_seconds
    wait = Wait(
        f"verify {target.version} on {backend.name}",
        f"{measurements} measurements, one every {duration(settings.interval_seconds)}",
        verification_seconds(settings),  # the watch's own deadline: it has failed by then
    )
    with waiting(ctx.console, ctx.clock, wait) as display:

        def show(measurement: Measurement) -> None:
            ctx.console.print(f"  {escape(measurement.describe())} ({display.left()})", highlight=False)

        verdict = watch(metrics, target, settings, on_measurement=show, clock=ctx.clock, sleep=ctx.sleep)
    colour = {Outcome.PASSED: "green", Outcome.FAILED: "red", Outcome.INCONCLUSIVE: "yellow"}[verdict.outcome]
    reasons = "; ".join(verdict.reasons)
    ctx.console.print(f"Verification [{colour}]{verdict.outcome.upper()}[/{colour}]: {escape(reasons)}")
    return verdict


def require_pass(verdict: Verdict) -> None:
    """Turns a verdict into the command's exit code (nothing rolled back)."""
    reasons = "; ".join(verdict.reasons)
    if verdict.outcome is Outcome.FAILED:
        raise ShipsafeError(f"verification failed: {reasons}", ExitCode.VERIFICATION_FAILED)
    if verdict.outcome is Outcome.INCONCLUSIVE:
        raise ShipsafeError(f"verification inconclusive: {reasons}", ExitCode.VERIFICATION_INCONCLUSIVE)


def verify_or_roll_back(ctx: DeployContext, backend: StackBackend) -> None:
    """`--verify`: a failed verification rolls the stack back and exits ROLLED_BACK.

    An inconclusive window is not rolled back (nothing shows the version is bad) but still fails the
    command, so a pipeline never treats "no traffic" as a green deploy.
    """
    verdict = verify_stack(ctx, backend)
    if verdict.outcome is not Outcome.FAILED:
        require_pass(verdict)
        return
    reason = f"verification failed: {'; '.join(verdict.reasons)}"
    try:
        target = rollback_stack(ctx, backend, reason=reason)
    except ShipsafeError as refused:
        if refused.exit_code is not ExitCode.REFUSED:
            raise
        raise ShipsafeError(f"{reason}; and {refused.message}", ExitCode.VERIFICATION_FAILED) from None
    rolled_back = f"{reason}; rolled back to update {target.record.version} ({target.image.short})"
    raise ShipsafeError(rolled_back, ExitCode.ROLLED_BACK)
