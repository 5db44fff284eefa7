"""Rows of the `history` table, from the config each update recorded."""

from __future__ import annotations

import re
from dataclasses import dataclass

from deploy.backend import UpdateRecord
from deploy.release import ROLLBACK, git_sha_of, image_of
from deploy.rollback import CONFIG_PART, ROLLED_BACK_FROM


@dataclass(frozen=True)
class HistoryRow:
    version: int
    time: str
    kind: str
    result: str
    image: str
    by: str
    message: str


def who(record: UpdateRecord) -> str:
    """Pulumi records the git author, or the CI system the update ran in."""
    env = record.environment
    return env.get("git.author") or env.get("ci.system") or env.get("exec.kind") or "-"


def _short_marker(match: re.Match[str]) -> str:
    """The marker carries a full digest (and settings fingerprint) for the rollback logic; a table needs less."""
    image, _, settings = match.group(1).partition(CONFIG_PART)
    return f"[rolled back from {image[:19]}{f' settings {settings}' if settings else ''}]"


def history_rows(records: list[UpdateRecord]) -> list[HistoryRow]:
    rows = []
    for record in sorted(records, key=lambda r: r.version, reverse=True):
        image = image_of(record.config)
        sha = git_sha_of(record.config)
        described = image.short if image else (f"{sha} (built in stack)" if sha else "-")
        if record.config.get(ROLLBACK) == "true":
            described += " (rollback)"
        rows.append(
            HistoryRow(
                version=record.version,
                time=record.start_time.strftime("%Y-%m-%d %H:%M:%S UTC"),
                kind=record.kind,
                result=record.result,
                image=described,
                by=who(record),
                message=ROLLED_BACK_FROM.sub(_short_marker, record.message),
            )
        )
    return rows
