"""What secrets and hard-coded hosts look like, shared by the Kubernetes and Dockerfile rules."""

from __future__ import annotations

import functools
import re

SECRET_NAME = re.compile(r"(?i)pass|secret|token|api_?key|private|credential|dsn|database_url|redis_url")
"""Names whose literal value would be a credential (env vars, ConfigMap keys, Dockerfile ENV/ARG)."""
_ABOUT_A_SECRET = re.compile(
    r"(?i)[-_.](file|path|dir|min|max|length|ttl|seconds|timeout|header|enabled|required|policy|algorithm|"
    r"expiry|expires|rotation|name|id|type|mode)$"
)
"""Names that say something about a secret, not the secret: PASSWORD_MIN_LENGTH, TOKEN_TTL, JWT_ALGORITHM,
DB_SECRET_NAME (which Secret to read)."""


def names_a_secret(name: str) -> bool:
    """A name whose literal value would be the credential itself."""
    return SECRET_NAME.search(name) is not None and _ABOUT_A_SECRET.search(name) is None


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
    return bool(value) and names_a_secret(name) and not is_file_reference(name, value)


_REFERENCE = re.compile(r"^[\"']?(\$|/)")
"""A value that is not the secret itself: an env expansion (`$(VAR)`, `${VAR}`, `"$(cat /run/secrets/x)"`) or a
file path."""
_SECRET_NOUN = (
    r"(pass(word|wd)?|passphrase|token|auth|api[-_]?key|private[-_]?key|credentials?|dsn|(database|redis)[-_]?url)"
)
_SECRET_OPTION = re.compile(rf"(?i)({_SECRET_NOUN}|secret)$")
"""Option and variable names whose value is the secret: they end in a secret noun (`--requirepass`,
`--db-password`, `PGPASSWORD`, `--client-secret`); `--password-file`, `--tls-secret-name` or `--private-registry`
end in something else and pass."""
_SECRET_KEY = re.compile(rf"(?i){_SECRET_NOUN}$")
"""Annotation and label keys (their name part) whose value would be the secret itself; a key ending in `secret`
usually names a Secret object (`nginx.ingress.kubernetes.io/auth-secret`), so only its value is judged."""
_OPTION = re.compile(r"^--?([A-Za-z][A-Za-z0-9_.-]*)$")
_ASSIGNMENT = re.compile(r"^(?:--?)?([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$")
_NOT_A_VALUE = re.compile(r"(?i)^(true|false|yes|no|on|off|enabled|disabled|none|null)$")
_CHECKSUM = re.compile(r"(?i)^(sha(1|256|512):)?[0-9a-f]{32,}$")


def _literal(value: str) -> bool:
    """A value that would be the secret itself: not empty, no expansion or path, no switch, no checksum (a Secret's
    hash, which rolls the pods when it changes)."""
    bare = value.strip("\"'")
    return bool(bare) and not _REFERENCE.match(value) and not _NOT_A_VALUE.match(bare) and not _CHECKSUM.match(bare)


def secret_on_command_line(words: list[str]) -> bool:
    """A command line (its words, each maybe a shell script) that carries a secret: a credential-looking value, or a
    literal given to a secret-named option or variable (`--requirepass x`, `--password=x`, `PGPASSWORD=x psql`).
    Env expansions and file paths are the accepted ways and pass."""
    tokens = [token for word in words for token in word.split()]
    for index, token in enumerate(tokens):
        if looks_secret(token):
            return True
        assignment = _ASSIGNMENT.match(token)
        if assignment and _SECRET_OPTION.search(assignment.group(1)) and _literal(assignment.group(2)):
            return True
        option = _OPTION.match(token)
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if option and _SECRET_OPTION.search(option.group(1)) and not following.startswith("-") and _literal(following):
            return True
    return False


@functools.lru_cache(maxsize=4096)  # the same labels recur on every workload and in every phase
def secret_in_metadata(key: str, value: str) -> bool:
    """An annotation or label that carries a credential: a credential-looking value, or a literal value under a
    secret-named key."""
    return looks_secret(value) or (_SECRET_KEY.search(key.rsplit("/", 1)[-1]) is not None and _literal(value))
