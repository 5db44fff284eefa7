"""`shipsafe status`: what runs where (release, image, last update, last verification), and the verification log.

Pulumi records updates, not verifications, so each verdict is kept in a small file per stack under
`out/verifications/` of the project directory: it shows the verifications run from this checkout (a CI runner's
log goes with the runner).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from deploy.backend import StackBackend
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.reports import STATUS_SCHEMA_VERSION, update_entry
from deploy.rollback import SUCCEEDED
from harness.local_files import LocalFileError, load_json

# How each verification exit leaves the record; other failures (a bad config, a failed `up`) verified nothing.
VERDICTS = {
    ExitCode.VERIFICATION_FAILED: "failed",
    ExitCode.ROLLED_BACK: "failed, rolled back",
    ExitCode.VERIFICATION_INCONCLUSIVE: "inconclusive",
    ExitCode.PROMETHEUS_UNAVAILABLE: "inconclusive",
}


@dataclass(frozen=True)
class VerificationRecord:
    version: str
    outcome: str
    """passed, failed, "failed, rolled back" or inconclusive."""
    reason: str
    at: str
    """When it ended, ISO 8601 in UTC."""


class VerificationLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, stack: str) -> Path:
        return self.directory / f"{stack.replace('/', '_')}.json"

    def record(self, stack: str, record: VerificationRecord) -> None:
        """Writes the record; a file system that refuses it is LOCAL_WRITE_FAILED, never a crash (exit FAILED reads
        as "the stack may be bad" to a pipeline)."""
        path = self._path(stack)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(asdict(record), indent=2) + "\n")
        except OSError as error:
            raise ShipsafeError(
                f"the verification ({record.outcome}) was not recorded in {path}: {error.strerror or error}",
                ExitCode.LOCAL_WRITE_FAILED,
            ) from None

    def last(self, stack: str) -> VerificationRecord | None:
        """The stack's last record; a file that is not one (corrupted, edited, too large) is a LocalFileError."""
        path = self._path(stack)
        if not path.exists():
            return None
        document = load_json(path)
        fields = [field.name for field in dataclasses.fields(VerificationRecord)]
        if not isinstance(document, dict) or sorted(document) != sorted(fields):
            raise LocalFileError(f"{path}: not a verification record (an object with exactly {', '.join(fields)})")
        if not all(isinstance(value, str) for value in document.values()):
            raise LocalFileError(f"{path}: not a verification record ({', '.join(fields)} are strings)")
        return VerificationRecord(**document)


def _running_version(backend: StackBackend) -> str:
    outputs = backend.outputs()
    version = outputs.get("appVersion") or outputs.get("gitSha")
    return version if isinstance(version, str) and version else "(none deployed)"


@contextmanager
def recorded_verification(ctx: DeployContext, backend: StackBackend) -> Iterator[None]:
    """Logs how the verification inside the block ended, for the version running when it started."""
    version = _running_version(backend)

    def log(outcome: str, reason: str) -> None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        VerificationLog(ctx.verification_dir).record(backend.name, VerificationRecord(version, outcome, reason, at))

    try:
        yield
    except ShipsafeError as error:
        if error.exit_code in VERDICTS:
            try:
                log(VERDICTS[error.exit_code], error.message)
            except ShipsafeError as unrecorded:  # the verdict's own code decides what a pipeline does
                ctx.console.print(f"[yellow]![/yellow] {escape(unrecorded.message)}", highlight=False, soft_wrap=True)
        raise
    log("passed", "")


def stack_status(ctx: DeployContext, stack: str) -> dict[str, Any]:
    """One stack's entry of the status document (`docs/schemas/status.schema.json`)."""
    try:
        backend = ctx.open_stack(stack)
    except ShipsafeError as error:
        if error.exit_code is not ExitCode.STACK_NOT_FOUND:
            raise
        return {
            "stack": stack,
            "exists": False,
            "release": None,
            "imageRef": None,
            "namespace": None,
            "appUrl": None,
            "lastUpdate": None,
            "lastSuccessfulUpdate": None,
            "lastVerification": None,
            "lastVerificationUnreadable": None,
        }
    outputs = backend.outputs()
    updates = sorted((r for r in backend.history() if r.kind == "update"), key=lambda r: r.version, reverse=True)
    last_good = next((r for r in updates if r.result == SUCCEEDED), None)
    verification, unreadable = None, None
    try:
        verification = VerificationLog(ctx.verification_dir).last(backend.name)
    except LocalFileError as error:  # one line; the rest of the status stands and the next verification rewrites it
        unreadable = str(error)
        ctx.console.print(f"[yellow]![/yellow] {escape(unreadable)}", highlight=False, soft_wrap=True)

    def text(key: str) -> str | None:
        value = outputs.get(key)
        return value if isinstance(value, str) and value else None

    return {
        "stack": stack,
        "exists": True,
        "release": text("appVersion") or text("gitSha"),
        "imageRef": text("imageRef"),
        "namespace": text("namespace"),
        "appUrl": text("appUrl"),
        "lastUpdate": update_entry(updates[0]) if updates else None,
        "lastSuccessfulUpdate": update_entry(last_good) if last_good else None,
        "lastVerification": asdict(verification) if verification else None,
        "lastVerificationUnreadable": unreadable,
    }


def status_document(ctx: DeployContext, stacks: list[str]) -> dict[str, Any]:
    return {
        "schemaVersion": STATUS_SCHEMA_VERSION,
        "command": "status",
        "stacks": [stack_status(ctx, stack) for stack in stacks],
    }
