"""The real-server fixtures find the PostgreSQL server whatever major the OS ships (Debian 12: 15, Ubuntu 24.04: 16)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.services import postgres_bin


def install(root: Path, version: str, binary: str = "postgres") -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / binary).touch()
    return bin_dir


def test_the_newest_major_wins_numerically(tmp_path: Path) -> None:
    install(tmp_path, "9.6")
    install(tmp_path, "15")
    newest = install(tmp_path, "16")
    assert postgres_bin(tmp_path) == newest


def test_a_client_only_install_does_not_count(tmp_path: Path) -> None:
    server = install(tmp_path, "15")
    install(tmp_path, "17", binary="psql")  # postgresql-client-17 without the server
    assert postgres_bin(tmp_path) == server


def test_no_server_names_the_place_searched(tmp_path: Path) -> None:
    install(tmp_path, "16", binary="psql")
    with pytest.raises(FileNotFoundError, match=re.escape(f"nothing matches {tmp_path}/*/bin/postgres")):
        postgres_bin(tmp_path)
