"""The written decisions on a peer tool's checks (`docs/peer-decisions.json`): for each checkov check, the pack rules
that make the same finding or why the pack does not. `make peer-check` (`tests/support/peer_check.py`) holds checkov's
findings to it, and docs/policies.md shows it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.stack_config import REPO_ROOT

DECISIONS = REPO_ROOT / "docs" / "peer-decisions.json"


def load_decisions(path: Path = DECISIONS) -> dict[str, Any]:
    decisions: dict[str, Any] = json.loads(path.read_text())
    for check, entry in decisions["checks"].items():
        if not (entry.get("rules") or entry.get("decision")):
            raise SystemExit(f"{path}: {check} names neither pack rules nor a decision")
    return decisions
