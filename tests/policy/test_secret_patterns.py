"""What a secret on a command line or in metadata looks like (`patterns`), one shape per case; the catalogue
(test_bad_variants) runs the rules that use them through the analyzer."""

from __future__ import annotations

import pytest

from deploy.policy_link import pack_registry

patterns = pack_registry().patterns


@pytest.mark.parametrize(
    ("words", "secret"),
    [
        (["redis-server", "--requirepass", "s3cr3t"], True),
        (["--db-password=s3cr3t"], True),
        (["sh", "-c", "PGPASSWORD=s3cr3t pg_isready"], True),
        (["--client-secret", "abc"], True),
        (["--url", "postgresql://app:s3cr3t@db:5432/app"], True),
        (["--password-file", "/run/secrets/db/password"], False),
        (["--db-password=$(DB_PASSWORD)"], False),
        (["--token", "${TOKEN}"], False),
        (["--password-stdin", "registry.example.com"], False),
        (["--tls-secret-name", "notes-tls"], False),
        (["--private-registry", "registry.example.com"], False),
        (["sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/auth/password)" redis-cli ping'], False),
        (["-c", "max_connections=200"], False),
        (["--auth", "true"], False),
    ],
)
def test_secret_on_command_line(words: list[str], secret: bool) -> None:
    assert patterns.secret_on_command_line(words) is secret


@pytest.mark.parametrize(
    ("key", "value", "secret"),
    [
        ("notes/db-password", "s3cr3t", True),
        ("example.com/api-key", "k-123", True),
        ("notes/backend", "postgresql://app:s3cr3t@db:5432/app", True),
        ("checksum/db-password", "a" * 64, False),
        ("nginx.ingress.kubernetes.io/auth-secret", "basic-auth", False),
        ("example.com/auth", "true", False),
        ("prometheus.io/port", "3002", False),
    ],
)
def test_secret_in_metadata(key: str, value: str, secret: bool) -> None:
    assert patterns.secret_in_metadata(key, value) is secret
