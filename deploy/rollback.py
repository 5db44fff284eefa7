"""Choosing a rollback target from the stack's history and redeploying it through the stack.

A rollback is an ordinary `pulumi up` with the earlier image pinned in config, so Pulumi state stays the
single source of truth. It sets `shipsafe:rollback=true`, which skips the migration Job: the schema is
forward-only and the old code runs on it. The next normal deploy sets it back to false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from deploy.backend import StackBackend, UpdateRecord
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import IMAGE_REF_KEY, ImageRef, git_sha_of, image_of, release_config

SUCCEEDED = "succeeded"
# Recorded in every rollback's update message: the image it moved away from. The default target skips
# images that an earlier rollback already abandoned, so two rollbacks in a row never bring a bad one back.
ROLLED_BACK_FROM = re.compile(r"\[rolled back from (\S+)\]")


@dataclass(frozen=True)
class RollbackTarget:
    record: UpdateRecord
    image: ImageRef
    git_sha: str


def current_image(backend: StackBackend, history: list[UpdateRecord]) -> ImageRef | None:
    """What the pods run now: the stack output, else the image of the newest successful update."""
    reference = backend.outputs().get("imageRef")
    if isinstance(reference, str) and reference:
        return ImageRef.parse(reference)
    for record in _updates(history):
        if record.result == SUCCEEDED:
            return image_of(record.config)
    return None


def choose_target(
    history: list[UpdateRecord],
    current: ImageRef | None,
    *,
    to_version: int | None = None,
    to_sha: str | None = None,
) -> RollbackTarget:
    """Picks the update to go back to; refuses (exit REFUSED) with the reason when there is none."""
    if to_version is not None and to_sha is not None:
        raise ShipsafeError("give either --to-version or --to-sha, not both", ExitCode.USAGE)
    if to_version is not None:
        return _explicit(_by_version(history, to_version), current)
    if to_sha is not None:
        return _explicit(_by_sha(history, to_sha), current)
    return _default(history, current)


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


def _explicit(record: UpdateRecord, current: ImageRef | None) -> RollbackTarget:
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
    if current is not None and target.image.identity == current.identity:
        raise ShipsafeError(
            f"update {record.version} deployed {target.image.short}, which is what the stack runs now",
            ExitCode.REFUSED,
        )
    return target


def _default(history: list[UpdateRecord], current: ImageRef | None) -> RollbackTarget:
    """The newest successful update whose image differs from the current one and was not rolled back from."""
    abandoned: set[str] = set()
    for record in _updates(history):
        target = _target(record) if record.result == SUCCEEDED else None
        if (
            target is not None
            and (current is None or target.image.identity != current.identity)
            and target.image.identity not in abandoned
        ):
            return target
        abandoned.update(ROLLED_BACK_FROM.findall(record.message))
    running = current.short if current else "nothing"
    raise ShipsafeError(
        f"nothing to roll back to: no earlier successful update deployed a pushed image other than {running}",
        ExitCode.REFUSED,
    )


def rollback_message(target: RollbackTarget, current: ImageRef | None, reason: str) -> str:
    moved_from = f" [rolled back from {current.identity}]" if current else ""
    return f"rollback to update {target.record.version} ({target.git_sha[:12]}): {reason}{moved_from}"


def rollback_stack(
    ctx: DeployContext,
    backend: StackBackend,
    *,
    reason: str,
    to_version: int | None = None,
    to_sha: str | None = None,
) -> RollbackTarget:
    """Redeploys the chosen earlier image through the stack, without migrations."""
    history = backend.history()
    current = current_image(backend, history)
    target = choose_target(history, current, to_version=to_version, to_sha=to_sha)
    ctx.console.print(
        f"Rolling back [bold]{backend.name}[/bold] from {current.short if current else 'unknown'} to "
        f"update {target.record.version}: {target.image.short} (migrations skipped)"
    )
    backend.set_config(release_config(target.image, target.git_sha, rollback=True))
    # No separate preview: a rollback is urgent and `up` runs the policy pack on every resource anyway.
    with ctx.step(f"pulumi up {backend.name} (rollback)"):
        backend.up(
            message=rollback_message(target, current, reason),
            policy=ctx.policy_for(backend.name),
            on_output=ctx.engine_line,
        )
    return target
