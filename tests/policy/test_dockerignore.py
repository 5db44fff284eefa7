"""What `docker build` sends: a file .dockerignore excludes says nothing about the build (moby `patternmatcher`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from shipsafe_policies.dockerignore import sent


@pytest.mark.parametrize(
    ("patterns", "path", "is_sent"),
    [
        ("", "requirements.txt", True),
        ("requirements.txt\n", "requirements.txt", False),
        ("/requirements.txt\n", "requirements.txt", False),
        ("*.txt\n", "requirements.txt", False),
        ("*.txt\n!requirements.txt\n", "requirements.txt", True),
        ("!requirements.txt\n*.txt\n", "requirements.txt", False),
        ("deploy/\n", "deploy/package.json", False),
        ("**/package.json\n", "web/package.json", False),
        ("*\n!app/\n", "app/go.mod", True),
        ("# requirements.txt\n", "requirements.txt", True),
    ],
)
def test_the_last_matching_pattern_decides(tmp_path: Path, patterns: str, path: str, is_sent: bool) -> None:
    (tmp_path / ".dockerignore").write_text(patterns)
    assert sent(tmp_path, tmp_path / path) is is_sent
