"""Choosing a rollback target from the stack's history and redeploying its state through the stack.

A rollback is an ordinary `pulumi up` with the earlier update's settings in config, so Pulumi state stays the
single source of truth. By default it restores the target update's whole non-secret config (image, release,
replicas, resources, ...: `deploy/restore.py`); `--image-only` changes only the release keys. Either way it sets
`shipsafe:rollback=true`, which skips the migration Job: the schema is forward-only and the old code runs on it.
The committed stack file stays the source of truth: the next deploy from git re-applies it (and says which values
the rollback had reverted, `reverted_by_rollback`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rich.markup import escape

from components.settings import ConfigError
from components.timeline import DeployTimeline
from deploy.backend import StackBackend, UpdateRecord
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.progress import UpTimeline, up_wait, waiting
from deploy.release import (
    GIT_SHA_KEY,
    IMAGE_REF_KEY,
    IMAGE_SOURCE,
    ROLLBACK,
    ImageRef,
    git_sha_of,
    image_of,
    release_config,
)
from deploy.restore import (
    ConfigChange,
    RestoredConfig,
    check_settings,
    config_changes,
    fingerprint,
    rendered_diff,
    restore_settings,
    with_release,
)

SUCCEEDED = "succeeded"
# How every rollback's update message starts (`rollback_message`).
ROLLBACK_UPDATE = re.compile(r"^rollback to update (\d+) ")
# How every rollback's update message ends: the release it moved away from (`release_key`). The default target
# skips releases that an earlier rollback already abandoned, so two rollbacks in a row never bring a bad one back.
# Read only there (`rolled_back_from`), so text a user typed (--reason, `pulumi up -m`) never counts as a marker.
MARKER = "[rolled back from "
_MARKER_AT_END = re.compile(r" \[rolled back from (\S{1,2000})\]\Z")
_MARKER_TAIL = 2100
CONFIG_PART = "+config:"
RELEASE_KEYS = (IMAGE_SOURCE, IMAGE_REF_KEY, GIT_SHA_KEY, ROLLBACK)


class RollbackScope(StrEnum):
    CONFIG = "config"
    """The target update's whole non-secret config (the default)."""
    IMAGE = "image"
    """Only the image and release keys; today's other settings stay (`--image-only`)."""


@dataclass(frozen=True)
class RollbackTarget:
    record: UpdateRecord
    image: ImageRef
    git_sha: str


def release_key(config: Mapping[str, str], scope: RollbackScope) -> str:
    """What makes two updates the same release: the image, and with the whole config also its settings."""
    image = image_of(config)
    base = image.identity if image else f"build:{git_sha_of(config) or '-'}"
    return base if scope is RollbackScope.IMAGE else f"{base}{CONFIG_PART}{fingerprint(config)}"


def current_image(backend: StackBackend, history: list[UpdateRecord]) -> ImageRef | None:
    """What the pods run now: the stack output, else the image of the newest successful update."""
    reference = backend.outputs().get("imageRef")
    if isinstance(reference, str) and reference:
        return ImageRef.parse(reference)
    for record in _updates(history):
        if record.result == SUCCEEDED:
            return image_of(record.config)
    return None


def current_release(backend: StackBackend, history: list[UpdateRecord], scope: RollbackScope) -> str | None:
    """The release a rollback moves away from. With the whole config it is the newest update's, failed or not:
    a failed update leaves its new settings partly applied, and the last good state is what to go back to."""
    if scope is RollbackScope.IMAGE:
        image = current_image(backend, history)
        return image.identity if image else None
    updates = _updates(history)
    return release_key(updates[0].config, scope) if updates else None


def choose_target(
    history: list[UpdateRecord],
    current: str | None,
    *,
    scope: RollbackScope = RollbackScope.CONFIG,
    to_version: int | None = None,
    to_sha: str | None = None,
) -> RollbackTarget:
    """Picks the update to go back to from `current` (a `release_key`); refuses (exit REFUSED) with the reason."""
    if to_version is not None and to_sha is not None:
        raise ShipsafeError("give either --to-version or --to-sha, not both", ExitCode.USAGE)
    if to_version is not None:
        return _explicit(_by_version(history, to_version), current, scope)
    if to_sha is not None:
        return _explicit(_by_sha(history, to_sha), current, scope)
    return _default(history, current, scope)


def _updates(history: Iterable[UpdateRecord]) -> list[UpdateRecord]:
    return sorted((r for r in history if r.kind == "update"), key=lambda r: r.version, reverse=True)


def _by_version(history: list[UpdateRecord], version: int) -> UpdateRecord:
    for record in _updates(history):
        if record.version == version:
            return record
    raise ShipsafeError(f"the stack has no update with version {version}", ExitCode.REFUSED)


def _by_sha(history: list[UpdateRecord], sha: str) -> UpdateRecord:
    """The newest update that deployed this git SHA or image digest (prefixes allowed), successful first."""
    wanted = sha.removeprefix("sha256:").lower()
    matches = [r for r in _updates(history) if _matches_sha(r, wanted)]
    if not matches:
        raise ShipsafeError(f"no update of this stack deployed an image with SHA {sha}", ExitCode.REFUSED)
    return next((r for r in matches if r.result == SUCCEEDED), matches[0])


def _matches_sha(record: UpdateRecord, wanted: str) -> bool:
    image = image_of(record.config)
    git_sha = git_sha_of(record.config) or ""
    digest = (image.digest or "").removeprefix("sha256:") if image else ""
    return git_sha.startswith(wanted) or (bool(digest) and digest.startswith(wanted))


def _target(record: UpdateRecord) -> RollbackTarget | None:
    image = image_of(record.config)
    git_sha = git_sha_of(record.config)
    if image is None or git_sha is None:
        return None
    return RollbackTarget(record, image, git_sha)


def _explicit(record: UpdateRecord, current: str | None, scope: RollbackScope) -> RollbackTarget:
    if record.result != SUCCEEDED:
        raise ShipsafeError(
            f"update {record.version} did not succeed (result: {record.result}); only a successful update "
            "can be rolled back to",
            ExitCode.REFUSED,
        )
    target = _target(record)
    if target is None:
        raise ShipsafeError(
            f"update {record.version} built its image inside the stack and recorded no {IMAGE_REF_KEY}; "
            "a rollback redeploys a pushed image and never rebuilds",
            ExitCode.REFUSED,
        )
    if release_key(record.config, scope) == current:
        what = target.image.short if scope is RollbackScope.IMAGE else f"{target.image.short} with the same settings"
        raise ShipsafeError(
            f"update {record.version} deployed {what}, which is what the stack runs now", ExitCode.REFUSED
        )
    return target


def _abandoned(key: str, markers: set[str], scope: RollbackScope) -> bool:
    """An image-only rollback abandons an image; a whole-config rollback abandons that image with those settings."""
    image = key.split(CONFIG_PART)[0]
    if scope is RollbackScope.IMAGE:
        return image in {marker.split(CONFIG_PART)[0] for marker in markers}
    return key in markers or image in markers


def _default(history: list[UpdateRecord], current: str | None, scope: RollbackScope) -> RollbackTarget:
    """The newest successful update whose release differs from the current one and was not rolled back from."""
    markers: set[str] = set()
    for record in _updates(history):
        target = _target(record) if record.result == SUCCEEDED else None
        key = release_key(record.config, scope)
        if target is not None and key != current and not _abandoned(key, markers, scope):
            return target
        marker = rolled_back_from(record.message)[1]
        if marker:
            markers.add(marker)
    what = "image" if scope is RollbackScope.IMAGE else "image or settings"
    raise ShipsafeError(
        f"nothing to roll back to: no earlier successful update of a pushed image differs in {what} from what runs "
        f"now ({current or 'nothing'}) without having been rolled back from",
        ExitCode.REFUSED,
    )


def rolled_back_from(message: str) -> tuple[str, str | None]:
    """The message without its marker, and the release the marker names (None when it has none). Only the marker
    `rollback_message` writes counts: at the end of a message that starts as a rollback's does. Work is bounded by
    the marker's length, whatever the message's."""
    if not ROLLBACK_UPDATE.match(message):
        return message, None
    match = _MARKER_AT_END.search(message, max(0, len(message) - _MARKER_TAIL))
    return (message[: match.start()], match.group(1)) if match else (message, None)


def check_reason(reason: str) -> str:
    """A --reason is the user's text, recorded as it is; the marker is shipsafe's own, so a reason holding it (which
    would make the next rollback skip a good release) is refused."""
    if MARKER in reason:
        raise ShipsafeError(
            f"--reason must not contain {MARKER.strip()!r}: shipsafe writes that marker itself to record which "
            "release a rollback moved away from",
            ExitCode.USAGE,
        )
    return reason


def rollback_message(target: RollbackTarget, current: str | None, reason: str, scope: RollbackScope) -> str:
    only = " [image only]" if scope is RollbackScope.IMAGE else ""
    moved_from = f" {MARKER}{current}]" if current else ""
    return f"rollback to update {target.record.version} ({target.git_sha[:12]}): {reason}{only}{moved_from}"


@dataclass(frozen=True)
class RollbackPlan:
    target: RollbackTarget
    scope: RollbackScope
    current: str | None
    before: dict[str, str]
    restored: RestoredConfig
    timeline: DeployTimeline
    refused: list[str] = field(default_factory=list)
    """Why the whole config could not be restored, when the plan fell back to image-only."""

    @property
    def changes(self) -> list[ConfigChange]:
        return config_changes(self.before, self.restored.config)


def _refusal(target: RollbackTarget, scope: RollbackScope, error: ConfigError) -> ShipsafeError:
    problems = "\n".join(f"  - {problem}" for problem in error.problems)
    if scope is RollbackScope.IMAGE:
        what = f"today's config with the image of update {target.record.version}"
        hint = "fix the stack config first"
    else:
        what = f"the config of update {target.record.version}"
        hint = "roll back only the image with --image-only (or --fallback-image-only), or fix the config and deploy"
    return ShipsafeError(
        f"{what} is refused by today's settings schema, so nothing was changed:\n{problems}\n{hint}", ExitCode.REFUSED
    )


def plan_rollback(
    backend: StackBackend,
    *,
    scope: RollbackScope = RollbackScope.CONFIG,
    fallback_image_only: bool = False,
    to_version: int | None = None,
    to_sha: str | None = None,
) -> RollbackPlan:
    """The target and the config it restores, validated as the program will validate it; changes nothing.

    A whole-config restore that today's settings refuse raises REFUSED with every problem, unless
    `fallback_image_only`: then the plan is what `--image-only` would do, with the problems kept in `refused`.
    """
    history = backend.history()
    before = backend.get_config()
    current = current_release(backend, history, scope)
    target = choose_target(history, current, scope=scope, to_version=to_version, to_sha=to_sha)
    if scope is RollbackScope.IMAGE:
        restored = with_release(before, release_config(target.image, target.git_sha, rollback=True))
    else:
        restored = restore_settings(before, target.record.config)
    try:
        timeline = check_settings(restored.config)
    except ConfigError as error:
        if scope is RollbackScope.IMAGE or not fallback_image_only:
            raise _refusal(target, scope, error) from None
        image_only = plan_rollback(backend, scope=RollbackScope.IMAGE, to_version=to_version, to_sha=to_sha)
        return replace(image_only, refused=error.problems)
    return RollbackPlan(target, scope, current, before, restored, timeline)


def describe_plan(ctx: DeployContext, stack: str, plan: RollbackPlan) -> None:
    if plan.refused:
        ctx.console.print(
            "[yellow]![/yellow] the config of the target update is refused by today's settings schema; "
            "rolling back the image only (--fallback-image-only):",
            highlight=False,
        )
        for problem in plan.refused:
            ctx.console.print(f"    {escape(problem)}", highlight=False, soft_wrap=True)
    what = "the image only" if plan.scope is RollbackScope.IMAGE else "its whole non-secret config"
    ctx.console.print(
        f"Rollback of [bold]{escape(stack)}[/bold] to update {plan.target.record.version} "
        f"({escape(plan.target.image.short)}): {what}, migrations skipped",
        highlight=False,
    )
    changes = plan.changes
    ctx.console.print(f"Config changes ({len(changes)}; secrets are never restored):", highlight=False)
    for change in changes:
        ctx.console.print(f"  {escape(change.describe())}", highlight=False, soft_wrap=True)


def show_rendered_diff(ctx: DeployContext, stack: str, plan: RollbackPlan) -> None:
    """`--dry-run`: the Kubernetes objects before and after, rendered offline from the project directory."""
    with ctx.step(f"render {stack} offline, now and after the rollback"):
        diff = rendered_diff(ctx.project_dir, stack.rsplit("/", 1)[-1], plan.before, plan.restored.config)
    ctx.console.print(
        "Rendered objects (per changed object):" if diff else "Rendered objects: no change", highlight=False
    )
    if diff:
        ctx.console.print(escape(diff.rstrip("\n")), highlight=False, soft_wrap=True)
    ctx.console.print("Dry run: nothing was changed.", highlight=False)


def apply_rollback(ctx: DeployContext, backend: StackBackend, plan: RollbackPlan, *, reason: str) -> RollbackTarget:
    """Writes the planned config and runs `pulumi up` (no separate preview: a rollback is urgent, and `up` runs the
    policy pack on every resource anyway)."""
    if plan.restored.removed:
        backend.remove_config(plan.restored.removed)
    backend.set_config(plan.restored.set_values)
    wait = up_wait(f"pulumi up {backend.name} (rollback)", UpTimeline.of(plan.timeline))
    with waiting(ctx.console, ctx.clock, wait) as display:

        def on_output(line: str) -> None:
            ctx.engine_line(line)
            display.tick()

        backend.up(
            message=rollback_message(plan.target, plan.current, reason, plan.scope),
            policy=ctx.policy_for(backend.name),
            on_output=on_output,
        )
    return plan.target


def rollback_stack(
    ctx: DeployContext,
    backend: StackBackend,
    *,
    reason: str,
    scope: RollbackScope = RollbackScope.CONFIG,
    fallback_image_only: bool = False,
    to_version: int | None = None,
    to_sha: str | None = None,
) -> RollbackTarget:
    """Redeploys the chosen earlier update's state (or only its image) through the stack, without migrations."""
    plan = plan_rollback(
        backend, scope=scope, fallback_image_only=fallback_image_only, to_version=to_version, to_sha=to_sha
    )
    describe_plan(ctx, backend.name, plan)
    return apply_rollback(ctx, backend, plan, reason=reason)


@dataclass(frozen=True)
class Reverted:
    rollback: UpdateRecord
    target_version: int
    changes: list[ConfigChange]


def reverted_by_rollback(backend: StackBackend, config: Mapping[str, str]) -> Reverted | None:
    """When the stack's last successful update was a rollback: the settings it had reverted that `config` (the
    committed stack file, in a fresh checkout) now applies again. Release keys are re-pinned from state instead."""
    successful = [r for r in _updates(backend.history()) if r.result == SUCCEEDED]
    match = ROLLBACK_UPDATE.match(successful[0].message) if successful else None
    if match is None:
        return None

    def settings(values: Mapping[str, str]) -> dict[str, str]:
        return {key: value for key, value in values.items() if key not in RELEASE_KEYS}

    changes = config_changes(settings(successful[0].config), settings(config))
    return Reverted(successful[0], int(match.group(1)), changes) if changes else None
