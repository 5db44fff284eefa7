"""Which files a COPY or ADD bakes credentials into a layer with, and how a fix gives them to the build instead.

Some files are credentials whatever they hold (env files, SSH and TLS private keys, cloud and cluster credentials).
Package-manager configs are often committed without any (Yarn Berry's .yarnrc.yml is the project's config, an
.npmrc may hold only `engine-strict=true`), so these are judged by what the build context holds: a credential key
with a literal value, or a URL with user info. A file the rule cannot read (outside the context, copied from
another stage, a glob) counts as credentials: the rule is never kinder than what it cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .languages import NODE, PYTHON
from .shell import instruction_commands

ALWAYS_SECRET = re.compile(
    r"(^|/)(\.env(\.(?!example$|sample$|template$|dist$)[^/]*)?|\.git-credentials|id_(rsa|dsa|ecdsa|ed25519)"
    r"|[^/]*\.(key|p12|pfx)|credentials(\.json)?|kubeconfig|\.aws|\.docker/config\.json)/?$"
)
"""Files that are credentials by name: env files, SSH and TLS private keys, git, cloud and cluster credentials."""


@dataclass(frozen=True)
class AuthConfig:
    """A tool's config file that may hold registry credentials."""

    pattern: re.Pattern[str]
    readers: frozenset[str]
    """The commands that read it: the RUN that needs the mounted secret runs one of them."""
    credentials: re.Pattern[str]
    """A line that holds a credential (a literal value; `${NPM_TOKEN}` is expanded by the tool at install time)."""
    install: Callable[[Path], str] | None = None
    """The locked install that reads it, when no later RUN of the stage names one; None: the build's own."""
    read_from: tuple[str, ...] = ()
    """Where the tool reads a user-level file (the first is the fix's target); empty for a project-level file, read
    in the project directory (npm, pnpm and Yarn read `<project>/.npmrc` and `<project>/.yarnrc.yml`). Home is
    root's: a builder stage installs as root."""

    def fetches(self, words: list[str]) -> bool:
        """A simple command that fetches from a registry with the file: one of its readers installing, downloading
        or publishing (`pnpm install`, `go mod download`, a bare `yarn`), not `npm run build`."""
        arguments = [w for w in words[1:] if not w.startswith("-")]
        return words[0].rsplit("/", 1)[-1] in self.readers and (not arguments or arguments[0] in _FETCHES)

    def target(self, destination: str) -> str:
        """Where a secret mount gives the file: where the COPY put it, if the tool reads it there."""
        return destination if not self.read_from or destination in self.read_from else self.read_from[0]


_FETCHES = frozenset(
    {"install", "i", "ci", "add", "fetch", "download", "sync", "mod", "get", "update", "upgrade", "publish", "upload"}
)
_KEY_VALUE = r"(?im)^(?![ \t]*[#;])[^\n]*?(?<![A-Za-z0-9]){keys}\"?\s*[=:]\s*(?![\"']?\$\{{?\w+\}}?[\"']?\s*$)[\"']?\S"
_USER_INFO = r"|://(?!\$\{?\w+\}?(:\$\{?\w+\}?)?@)[^\s/@]+@"
"""A URL with user info (`https://token@host`, `https://__token__:pypi-...@host`), unless it is only variables."""
_NODE_AUTH = r"(_authToken|_auth|_password|npmAuthToken|npmAuthIdent|password|token)"

AUTH_CONFIGS = (
    AuthConfig(
        re.compile(r"(^|/)\.npmrc$"),
        frozenset({"npm", "npx", "pnpm", "yarn"}),
        re.compile(_KEY_VALUE.format(keys=_NODE_AUTH) + _USER_INFO),
        NODE.install,
    ),
    AuthConfig(
        re.compile(r"(^|/)\.yarnrc\.yml$"),
        frozenset({"yarn"}),
        re.compile(_KEY_VALUE.format(keys=_NODE_AUTH) + _USER_INFO),
        lambda context: "yarn install --immutable",
    ),
    AuthConfig(
        re.compile(r"(^|/)\.yarnrc$"),
        frozenset({"yarn"}),
        re.compile(_KEY_VALUE.format(keys=_NODE_AUTH) + _USER_INFO),
        lambda context: "yarn install --frozen-lockfile",
    ),
    AuthConfig(
        re.compile(r"(^|/)pip\.(conf|ini)$"),
        frozenset({"pip", "pip3", "python", "python3"}),
        re.compile(_KEY_VALUE.format(keys="(password|token)") + _USER_INFO),
        PYTHON.install,
        ("/etc/pip.conf", "/root/.config/pip/pip.conf", "/root/.pip/pip.conf"),
    ),
    AuthConfig(
        re.compile(r"(^|/)\.pypirc$"),
        frozenset({"twine", "poetry", "python", "python3"}),
        re.compile(_KEY_VALUE.format(keys="(password|token)") + _USER_INFO),
        read_from=("/root/.pypirc",),
    ),
    AuthConfig(
        re.compile(r"(^|/)[._]netrc$"),
        frozenset({"go", "pip", "pip3", "curl", "git", "npm", "yarn", "pnpm", "cargo"}),
        re.compile(r"(?i)\b(password|account)\s+\S"),
        read_from=("/root/.netrc",),
    ),
)
"""Package-registry auth: npm/pnpm/Yarn 1 (.npmrc), Yarn 2+ (.yarnrc.yml), Yarn 1 (.yarnrc), PyPI and pip, netrc
(Go modules, pip, curl, git)."""


def auth_config(source: str) -> AuthConfig | None:
    return next((config for config in AUTH_CONFIGS if config.pattern.search(source)), None)


def holds_credentials(context: Path, source: str, from_stage: bool) -> bool:
    """Whether COPY/ADD `source` copies credentials: by name, or by what the context's file holds."""
    if ALWAYS_SECRET.search(source):
        return True
    config = auth_config(source)
    if source.endswith(".pem"):  # a CA bundle or certificate is public; a private key is not
        return from_stage or not _readable(context, source) or "PRIVATE KEY" in _text(context, source)
    if config is None:
        return False
    if from_stage or not _readable(context, source):
        return True
    return config.credentials.search(_text(context, source)) is not None


def credential_files(context: Path) -> list[str]:
    """The files in the context root holding credentials, other than env files (which .dockerignore must always
    exclude): the same files a named COPY is refused for, reached by copying the whole context."""
    root = sorted(path.name for path in context.iterdir() if path.is_file()) if context.is_dir() else []
    return [name for name in root if not name.startswith(".env") and holds_credentials(context, name, False)]


def _readable(context: Path, source: str) -> bool:
    return not re.search(r"[*?\[$]", source) and (context / source.lstrip("/")).is_file()


def _text(context: Path, source: str) -> str:
    try:
        return (context / source.lstrip("/")).read_text(errors="replace")
    except OSError:
        return ""


def fetching_step(commands: tuple[Any, ...], source: str) -> str | None:
    """The first of a stage's later instructions that fetches with the copied config (`pnpm install ...`)."""
    config = auth_config(source)
    for command in commands:
        for words in instruction_commands(command) if command.cmd == "RUN" else ():
            if config is not None and config.fetches(words):
                return " ".join(words)
    return None


def locked_install(context: Path, source: str, fallback: str) -> str:
    """The locked install of the tool that reads the file (Yarn's for .yarnrc.yml, the project's package manager's
    for .npmrc, pip's for pip.conf), else `fallback` (the build's own)."""
    config = auth_config(source)
    return config.install(context) if config is not None and config.install is not None else fallback
