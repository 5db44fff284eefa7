"""What secrets and hard-coded hosts look like, shared by the Kubernetes and Dockerfile rules."""

from __future__ import annotations

import re

SECRET_NAME = re.compile(r"(?i)pass|secret|token|api_?key|private|credential|dsn|database_url|redis_url")
"""Names whose literal value would be a credential (env vars, ConfigMap keys, Dockerfile ENV/ARG)."""

_SECRET_VALUES = (
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@"),  # URL carrying user:password
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key id
    re.compile(r"\b(ghp|gho|ghs|github_pat|glpat|xox[abp])[-_][0-9A-Za-z_-]{10,}"),
    re.compile(r"(?i)\bbearer\s+[0-9a-z._~+/-]{16,}"),
    re.compile(r"\beyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}\."),  # JWT
)

HOST = re.compile(
    r"[a-z][a-z0-9+.-]*://"  # any URL names a host
    r"|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.svc(\.cluster\.local)?\b"
    r"|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b",
    re.IGNORECASE,
)


def looks_secret(value: str) -> bool:
    return any(p.search(value) for p in _SECRET_VALUES)


def is_file_reference(name: str, value: str) -> bool:
    """`*_FILE=/run/secrets/...` is the accepted way to hand a secret over: a path, not the secret."""
    return name.upper().endswith("_FILE") and value.startswith("/")


def secret_by_name(name: str, value: str) -> bool:
    """A literal value under a secret-looking name (empty values and file paths are harmless)."""
    return bool(value) and SECRET_NAME.search(name) is not None and not is_file_reference(name, value)
