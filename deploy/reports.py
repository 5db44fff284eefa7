"""The `--output json` documents of preview (Pulumi mode), diff, history, status, verify, config validate and
stack list.

Each has a `schemaVersion` and a JSON Schema in `docs/schemas/<command>.schema.json` (tests validate every document
against it). A change that removes or renames a field, or changes its meaning, raises that command's version;
adding an optional field does not. The offline preview writes its own document (`deploy.offline.report`, same schema).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deploy.backend import UpdateRecord
from deploy.errors import ExitCode, ShipsafeError
from deploy.history import history_rows
from deploy.offline.diff import ObjectChange
from deploy.offline.report import PREVIEW_SCHEMA_VERSION
from deploy.release import ROLLBACK, git_sha_of, image_of
from deploy.verify import Measurement, Verdict

HISTORY_SCHEMA_VERSION = 1
STATUS_SCHEMA_VERSION = 1
VERIFY_SCHEMA_VERSION = 1
DIFF_SCHEMA_VERSION = 1
CONFIG_VALIDATE_SCHEMA_VERSION = 1
STACK_LIST_SCHEMA_VERSION = 1


def outcome(code: ExitCode) -> dict[str, Any]:
    return {"result": "passed" if code is ExitCode.OK else "failed", "exitCode": code.value, "exitName": code.name}


def preview_document(
    stack: str, changes: Mapping[str, int] | None, code: ExitCode, error: ShipsafeError | None = None
) -> dict[str, Any]:
    """A real `pulumi preview`: the engine's change summary (None when it did not get that far), and why it failed."""
    return {
        "schemaVersion": PREVIEW_SCHEMA_VERSION,
        "command": "preview",
        "stack": stack,
        "mode": "pulumi",
        **outcome(code),
        "manifests": None,
        "changes": dict(changes) if changes is not None else None,
        "phases": [],
        **({"error": {"message": error.message, "problems": error.problems}} if error else {}),
    }


def update_entry(record: UpdateRecord) -> dict[str, Any]:
    image = image_of(record.config)
    [row] = history_rows([record])
    return {
        "version": record.version,
        "time": record.start_time.isoformat(),
        "kind": record.kind,
        "result": record.result,
        "imageRef": image.reference if image else None,
        "gitSha": git_sha_of(record.config),
        "rollback": record.config.get(ROLLBACK) == "true",
        "by": row.by,
        "message": row.message,
    }


def history_document(stack: str, records: list[UpdateRecord]) -> dict[str, Any]:
    newest_first = sorted(records, key=lambda r: r.version, reverse=True)
    return {
        "schemaVersion": HISTORY_SCHEMA_VERSION,
        "command": "history",
        "stack": stack,
        "updates": [update_entry(record) for record in newest_first],
    }


def _measurement(measurement: Measurement) -> dict[str, Any]:
    return {
        "elapsedSeconds": measurement.elapsed_seconds,
        "phase": str(measurement.phase),
        "requests": measurement.requests,
        "errorRatio": measurement.error_ratio,
        "clientErrorRatio": measurement.client_error_ratio,
        "p99LatencySeconds": measurement.p99_latency_seconds,
        "slowestRoute": measurement.slowest_route,
        "worstRouteErrorRatio": measurement.worst_route_error_ratio,
        "worstErrorRoute": measurement.worst_error_route,
        "reasons": list(measurement.reasons),
    }


def verify_document(stack: str, version: str, verdict: Verdict, code: ExitCode) -> dict[str, Any]:
    return {
        "schemaVersion": VERIFY_SCHEMA_VERSION,
        "command": "verify",
        "stack": stack,
        "version": version,
        "outcome": str(verdict.outcome),
        "reasons": list(verdict.reasons),
        **outcome(code),
        "measurements": [_measurement(m) for m in verdict.measurements],
    }


def config_validate_document(problems: Mapping[str, list[str]], code: ExitCode) -> dict[str, Any]:
    return {
        "schemaVersion": CONFIG_VALIDATE_SCHEMA_VERSION,
        "command": "config validate",
        **outcome(code),
        "stacks": [{"stack": stack, "valid": not found, "problems": found} for stack, found in problems.items()],
    }


def stack_list_document(names: list[str]) -> dict[str, Any]:
    return {
        "schemaVersion": STACK_LIST_SCHEMA_VERSION,
        "command": "stack list",
        **outcome(ExitCode.OK),
        "stacks": names,
    }


def diff_document(stack: str, against: dict[str, Any], changes: list[ObjectChange]) -> dict[str, Any]:
    return {
        "schemaVersion": DIFF_SCHEMA_VERSION,
        "command": "diff",
        "stack": stack,
        "against": against,
        "changed": bool(changes),
        "objects": [
            {
                "kind": change.key.kind,
                "namespace": change.key.namespace or None,
                "name": change.key.name,
                "change": str(change.change),
                "diff": change.diff,
            }
            for change in changes
        ],
    }
