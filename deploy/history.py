"""Rows of the `history` table, from the config each update recorded."""

from __future__ import annotations

from dataclasses import dataclass

from deploy.backend import UpdateRecord
from deploy.release import ROLLBACK, git_sha_of, image_of
from deploy.rollback import CONFIG_PART, MARKER, rolled_back_from


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


MESSAGE_CHARS = 500
"""How much of an update message (and its author) a row shows: a message is any text `pulumi up -m` was given."""


def _shortened(text: str, limit: int = MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def shown_message(message: str) -> str:
    """The message cut to MESSAGE_CHARS, with a rollback's marker kept and shortened: it carries a full digest (and
    settings fingerprint) for the rollback logic; a table needs less."""
    text, marker = rolled_back_from(message)
    if marker is None:
        return _shortened(text)
    image, _, settings = marker.partition(CONFIG_PART)
    return f"{_shortened(text)} {MARKER}{image[:19]}{f' settings {settings}' if settings else ''}]"


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
                by=_shortened(who(record)),
                message=shown_message(record.message),
            )
        )
    return rows
