"""Every migration passes a real PostgreSQL migration linter (squawk) on the SQL alembic generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import APP_DIR

SQUAWK = str(Path(sys.executable).with_name("squawk"))


def squawk(sql_file: Path) -> subprocess.CompletedProcess[str]:
    command = [SQUAWK, "--pg-version=15", "--reporter=gcc", str(sql_file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_generated_migration_sql_has_zero_violations(tmp_path: Path) -> None:
    rendered = subprocess.run(
        [sys.executable, "-m", "notes_app", "migrate", "--sql", "base:head"],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ALTER TABLE notes ADD COLUMN word_count BIGINT;" in rendered.stdout
    sql_file = tmp_path / "migrations.sql"
    sql_file.write_text(rendered.stdout)
    result = squawk(sql_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_linter_rejects_a_required_column_without_default(tmp_path: Path) -> None:
    """Control: the expand rule is really enforced, so the check above can fail."""
    sql_file = tmp_path / "bad.sql"
    sql_file.write_text("BEGIN;\nSET lock_timeout = '5s';\nALTER TABLE notes ADD COLUMN tag TEXT NOT NULL;\nCOMMIT;\n")
    result = squawk(sql_file)
    assert result.returncode != 0
    assert "adding-required-field" in result.stdout
