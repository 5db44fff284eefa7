"""The languages the Dockerfile rules judge: how each is recognised, installs from its lockfile, and writes its fixes.

A language is recognised from the build context (its manifest files) and from the Dockerfile (a stage's base image,
a RUN, CMD or ENTRYPOINT that runs its tools), never from a list of apps. A build whose RUN steps use a tool none of
these languages owns is reported as such (`unidentified_steps`), so the dependency-lock rule neither passes it
silently nor fails it for a tool it cannot judge.

The lock rules follow each tool's own documentation of a reproducible install: `npm ci` ("can only install entire
projects at a time", fails when package.json and package-lock.json disagree), `yarn install --frozen-lockfile` /
`--immutable`, `pnpm install --frozen-lockfile`, pip's hash-checking mode (`--require-hashes`), `uv sync --locked`,
`pipenv install --deploy`, and Go's default `-mod=readonly` (Go 1.16+) with go.sum verifying every module.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .dockerignore import sent
from .images import parse_image
from .shell import arguments_of, invokes


@dataclass(frozen=True)
class Language:
    name: str
    manifests: tuple[str, ...]
    """Files in the context root (glob patterns) that say the app is in this language."""
    base_images: frozenset[str]
    """Last path part of the repositories of its official images (`node`, `python`, `golang`)."""
    tools: frozenset[str]
    """Commands that are its tooling: a RUN, CMD or ENTRYPOINT running one marks the language."""
    install: Callable[[Path], str]
    """Its locked install command in the context (the package manager the project uses), as a fix names it."""
    builds: Callable[[Path], bool]
    """Whether the context's manifests need a build (dependencies to install, code to compile)."""
    build_step: Callable[[list[str]], bool]
    """Whether a simple command of a RUN installs dependencies or compiles."""
    unlocked: Callable[[list[str]], Iterator[str]]
    """What is unlocked about a simple command of a RUN (messages that name the locked way)."""
    missing_lock: Callable[[Path], Iterator[str]]
    """What the context lacks to install from a lockfile."""
    builder: Callable[[Path], str]
    """How a builder stage of this language reads for the context, for the multi-stage fix."""
    command: Callable[[Path], str]
    """An exec-form CMD of this language for the context."""
    healthcheck: str
    """An exec-form HEALTHCHECK that works in its usual runtime image."""
    user: str
    """How its images set a non-root user, as the object of "end the final stage with ..."."""
    toolchain_images: frozenset[str] = frozenset()
    """Base images that only build (a compiler): never the final stage's."""
    host_installs: tuple[str, ...] = ()
    """Directories a developer's machine installs dependencies into, which .dockerignore keeps out of the context."""
    unlocking_settings: tuple[tuple[re.Pattern[str], str], ...] = ()
    """Environment settings (`NAME=value`, in ENV, ARG or before a RUN's command) that unlock its installs."""


def _read_json(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ── Node ─────────────────────────────────────────────────────────────────────────────────────────────────────────────
_NODE_LOCKS = ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml")
_NODE_DEPENDENCIES = ("dependencies", "devDependencies", "optionalDependencies")


def _node_builds(context: Path) -> bool:
    package = _read_json(context / "package.json")
    scripts = package.get("scripts")
    return any(package.get(key) for key in _NODE_DEPENDENCIES) or (isinstance(scripts, dict) and "build" in scripts)


def _node_build_step(words: list[str]) -> bool:
    return any(invokes(words, tool) for tool in ("npm", "yarn", "pnpm", "tsc"))


TOOL_PINNING = (
    "a version pin is not a lock: `tool==1.2.3` or `tool@1.2.3` fixes the tool, while its own dependencies resolve "
    "anew from ranges"
)
"""The one rule for tools, in every ecosystem: a tool installed in the image is locked like the app's dependencies
(its whole tree pinned and verified). So `pip install poetry==1.8.5`, `npm install -g tool@1.2.3`, `yarn global add`
and `uv tool install` are refused alike, while `go install module@v1.2.3` is locked (Go resolves the module's own
go.mod by minimal version selection, fixed for a version, and verifies every module against go.sum's checksum
database), as are a hashed tools requirements file, Corepack (`packageManager` in package.json, with its hash) and
devDependencies installed with the lockfile. hadolint's DL3013/DL3016 accept a version pin; this pack is stricter,
as the chapter's "locked dependencies" asks of everything in the image."""


def _node_unlocked(words: list[str]) -> Iterator[str]:
    if invokes(words, "npm", "install", "i", "add") and {"-g", "--global"} & set(words):
        yield (
            f"`{' '.join(words)}` installs a global tool unlocked ({TOOL_PINNING}); give pnpm/yarn through Corepack "
            "(`corepack enable` with package.json `packageManager`), other tools as devDependencies installed by "
            "`npm ci` and run with `npx`"
        )
    elif invokes(words, "npm", "install", "i", "add", "update", "upgrade", "up"):
        yield "npm install resolves versions anew; use `npm ci` with the committed package-lock.json"
    if invokes(words, "yarn", "global"):
        yield f"`{' '.join(words)}` installs a global tool unlocked ({TOOL_PINNING}); add it as a devDependency"
    yarn_install = invokes(words, "yarn", "install") or arguments_of(words, "yarn") in ([], ["--production"])
    if invokes(words, "yarn", "add", "upgrade", "up") or (
        yarn_install and not {"--frozen-lockfile", "--immutable"} & set(words)
    ):
        yield "yarn may rewrite yarn.lock; use `yarn install --frozen-lockfile` (Yarn 2+: `--immutable`)"
    if invokes(words, "pnpm", "add", "update", "up") or (
        invokes(words, "pnpm", "install", "i") and "--frozen-lockfile" not in words
    ):
        yield "pnpm may rewrite pnpm-lock.yaml; use `pnpm install --frozen-lockfile`"


def _node_missing_lock(context: Path) -> Iterator[str]:
    package = _read_json(context / "package.json")
    if any(package.get(key) for key in _NODE_DEPENDENCIES) and not any((context / n).is_file() for n in _NODE_LOCKS):
        yield (
            f"package.json in {context} declares dependencies but there is no lockfile beside it; commit "
            "package-lock.json (`npm install --package-lock-only`) and install with `npm ci`"
        )


_NODE_INSTALLS = {
    "npm": "npm ci",
    "pnpm": "pnpm install --frozen-lockfile",
    "yarn": "yarn install --frozen-lockfile",
    "yarn-berry": "yarn install --immutable",
}
_NODE_LOCKFILES = {"npm": "package-lock.json", "pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock", "yarn-berry": "yarn.lock"}


def node_package_manager(context: Path) -> str:
    """The project's package manager: package.json `packageManager` (Corepack's field), else its lockfile; Yarn 2+
    ("yarn-berry") by its version or its .yarnrc.yml."""
    declared = str(_read_json(context / "package.json").get("packageManager") or "")
    name, _, version = declared.partition("@")
    if name not in _NODE_LOCKFILES:
        locks = [pm for pm in ("pnpm", "yarn") if (context / _NODE_LOCKFILES[pm]).is_file()]
        name = locks[0] if locks else "npm"
    if name == "yarn" and (not version.startswith("1.") if version else (context / ".yarnrc.yml").is_file()):
        return "yarn-berry"
    return name


def _node_output(context: Path) -> str:
    """Where the build writes: tsconfig.json `compilerOptions.outDir`, else the directory of package.json `main`."""
    options = _read_json(context / "tsconfig.json").get("compilerOptions")
    out_dir = options.get("outDir") if isinstance(options, dict) else None
    main = str(_read_json(context / "package.json").get("main") or "")
    found = str(out_dir or (main.rpartition("/")[0] if "/" in main else ""))
    return found.removeprefix("./").rstrip("/") or "<build output directory>"


def _node_entry(context: Path) -> str:
    """The script the app starts with: package.json `main`, else `main.js` in the build output (Nest's dist/main.js)."""
    main = str(_read_json(context / "package.json").get("main") or "")
    return main.removeprefix("./") or f"{_node_output(context)}/main.js"


def _node_builder(context: Path) -> str:
    manager = node_package_manager(context)
    tool = manager.removesuffix("-berry")
    lockfiles = " ".join(
        ["package.json", _NODE_LOCKFILES[manager], *([".yarnrc.yml"] if manager == "yarn-berry" else [])]
    )
    enable = "" if tool == "npm" else "corepack enable && "
    output = _node_output(context)
    return (
        f"`FROM node:20-alpine AS builder` with `COPY {lockfiles} ./`, `RUN {enable}{_NODE_INSTALLS[manager]}`, "
        f"`RUN {tool} run build`, then `COPY --from=builder /app/{output} ./{output}` in the runtime stage"
    )


NODE = Language(
    name="Node",
    manifests=("package.json", *_NODE_LOCKS),
    base_images=frozenset({"node"}),
    tools=frozenset({"node", "npm", "npx", "yarn", "pnpm", "corepack", "tsc"}),
    install=lambda context: _NODE_INSTALLS[node_package_manager(context)],
    builds=_node_builds,
    build_step=_node_build_step,
    unlocked=_node_unlocked,
    missing_lock=_node_missing_lock,
    builder=_node_builder,
    command=lambda context: f'CMD ["node", "{_node_entry(context)}"]',
    healthcheck='HEALTHCHECK CMD ["node", "-e", "fetch(\'http://127.0.0.1:\' + (process.env.PORT || 3002) + '
    "'/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))\"]",
    user="`USER node` (the node images' non-root user) or a numeric `USER <uid>:<gid>`",
    host_installs=("node_modules",),
)


# ── Python ───────────────────────────────────────────────────────────────────────────────────────────────────────────
PIP_LOCKED = "pip install --require-hashes -r requirements.txt"
_PYTHON_LOCKS = ("uv.lock", "poetry.lock", "Pipfile.lock", "pdm.lock")


def _requirements(context: Path) -> list[Path]:
    return sorted(context.glob("requirements*.txt"))


def _python_builds(context: Path) -> bool:
    requirements = any(
        line.strip() and not line.lstrip().startswith("#")
        for path in _requirements(context)
        for line in _read_text(path).splitlines()
    )
    return requirements or bool(_pyproject_dependencies(context)) or (context / "Pipfile").is_file()


def _pyproject_dependencies(context: Path) -> set[str]:
    """What pyproject.toml declares as dependencies (PEP 621 `[project]` or `[tool.poetry]`), without Python."""
    project = _read_toml(context / "pyproject.toml")
    declared: set[str] = set()
    for table, key in ((project.get("project"), "dependencies"), (_poetry(project), "dependencies")):
        if isinstance(table, dict):
            value = table.get(key) or ()
            declared |= {str(name) for name in value} - {"python"}
    return declared


def _poetry(project: dict[str, object]) -> object:
    tool = project.get("tool")
    return tool.get("poetry") if isinstance(tool, dict) else None


def _python_build_step(words: list[str]) -> bool:
    return (
        invokes(words, "pip", "install", "wheel", "download")
        or invokes(words, "pip3", "install", "wheel", "download")
        or invokes(words, "uv", "sync", "pip")
        or invokes(words, "poetry", "install", "sync")
        or invokes(words, "pipenv", "install", "sync")
    )


def _local_paths_only(words: list[str], after: str) -> bool:
    """`pip install --no-deps .`: the app itself, no dependency resolved (hashes cannot cover a directory)."""
    targets = [w for w in words[words.index(after) + 1 :] if not w.startswith("-")]
    return "--no-deps" in words and bool(targets) and all(t.startswith((".", "/")) for t in targets)


def _python_unlocked(words: list[str]) -> Iterator[str]:
    names = [w.rsplit("/", 1)[-1] for w in words]
    pip = invokes(words, "pip", "install") or invokes(words, "pip3", "install")
    uv_pip = invokes(words, "uv", "pip") and "install" in names
    if (
        (pip or uv_pip)
        and not {"--require-hashes", "--no-index"} & set(words)
        and not _local_paths_only(words, "install")
    ):
        yield (
            f"pip install without --require-hashes is not locked ({TOOL_PINNING}); use `{PIP_LOCKED}` (a tool: "
            "its own hashed requirements file, `pip-compile --generate-hashes tools.in`)"
        )
    if invokes(words, "uv", "tool") and "install" in names:
        yield f"`{' '.join(words)}` is not locked ({TOOL_PINNING}); install the tool from a hashed requirements file"
    if invokes(words, "uv", "sync") and not {"--locked", "--frozen"} & set(words):
        yield "uv sync may re-resolve; use `uv sync --locked` with the committed uv.lock"
    for tool, changes in (("uv", ("add", "lock")), ("poetry", ("add", "update", "lock")), ("pipenv", ("update",))):
        if invokes(words, tool, *changes) and "--check" not in words and "--locked" not in words:
            yield f"`{' '.join(words[:3])}` rewrites the lockfile during the build; lock before committing"
    if invokes(words, "pipenv", "install") and "--deploy" not in words:
        yield "pipenv install may re-lock; use `pipenv install --deploy` (fails on a stale Pipfile.lock)"


def _python_missing_lock(context: Path) -> Iterator[str]:
    if (
        _pyproject_dependencies(context)
        and not _requirements(context)
        and not any((context / n).is_file() for n in _PYTHON_LOCKS)
    ):
        yield (
            f"pyproject.toml in {context} declares dependencies but there is no lockfile beside it; commit a hashed "
            "requirements.txt (`pip-compile --generate-hashes`) or uv.lock (`uv lock`)"
        )


PYTHON = Language(
    name="Python",
    manifests=("requirements*.txt", "pyproject.toml", "Pipfile", *_PYTHON_LOCKS, "setup.py"),
    base_images=frozenset({"python"}),
    tools=frozenset({"python", "python3", "pip", "pip3", "uv", "poetry", "pipenv", "gunicorn", "uvicorn"}),
    install=lambda context: PIP_LOCKED,
    builds=_python_builds,
    build_step=_python_build_step,
    unlocked=_python_unlocked,
    missing_lock=_python_missing_lock,
    builder=lambda context: (
        "`FROM python:3.12-slim AS builder` with `RUN python -m venv /venv && /venv/bin/pip install "
        "--require-hashes -r requirements.txt`, then `COPY --from=builder /venv /venv` in the runtime stage"
    ),
    command=lambda context: 'CMD ["python", "-m", "<package>"]',
    healthcheck='HEALTHCHECK CMD ["python", "-c", "import urllib.request; '
    "urllib.request.urlopen('http://127.0.0.1:3002/healthz', timeout=2)\"]",
    user="`USER 10001:10001` after creating the user (`RUN useradd --system --uid 10001 app`)",
    host_installs=(".venv",),
)


# ── Go ───────────────────────────────────────────────────────────────────────────────────────────────────────────────
_GO_REQUIRE = re.compile(r"^\s*require\b", re.MULTILINE)


def _go_build_step(words: list[str]) -> bool:
    return invokes(words, "go", "build", "install", "mod", "get", "generate")


def _go_unlocked(words: list[str]) -> Iterator[str]:
    text = " ".join(words)
    if invokes(words, "go") and re.search(r"-mod[= ]mod\b", text):
        yield "-mod=mod lets the build rewrite go.mod and go.sum; keep the default -mod=readonly with go.sum committed"
    if invokes(words, "go", "get") or (invokes(words, "go", "mod") and re.search(r"\bmod\s+(tidy|edit)\b", text)):
        yield f"`{text}` rewrites go.mod/go.sum during the build; run it before committing, then `go mod download`"
    if invokes(words, "go", "install"):
        # Without @version, module mode installs the version go.mod and go.sum lock; @latest or a branch floats.
        versions = [w.partition("@")[2] for w in (arguments_of(words, "go") or [])[1:] if "@" in w]
        if any(re.match(r"v\d", version) is None for version in versions):
            yield f"`{text}` installs a tool at a moving version; pin it as `go install <module>@v<version>`"


def _go_missing_lock(context: Path) -> Iterator[str]:
    if _GO_REQUIRE.search(_read_text(context / "go.mod")) and not (context / "go.sum").is_file():
        yield (
            f"go.mod in {context} requires modules but there is no go.sum beside it; commit go.sum (`go mod tidy`), "
            "then `COPY go.mod go.sum ./` and `RUN go mod download` in the builder"
        )


GO = Language(
    name="Go",
    manifests=("go.mod", "go.sum"),
    base_images=frozenset({"golang"}),
    tools=frozenset({"go"}),
    install=lambda context: "go mod download",
    builds=lambda context: _GO_REQUIRE.search(_read_text(context / "go.mod")) is not None,
    build_step=_go_build_step,
    unlocked=_go_unlocked,
    missing_lock=_go_missing_lock,
    builder=lambda context: (
        "`FROM golang:1.23-bookworm AS builder` with `COPY go.mod go.sum ./`, `RUN go mod download`, "
        "`RUN CGO_ENABLED=0 go build -o /app/server .`, then `COPY --from=builder /app/server /app/server` in a "
        "distroless or scratch stage"
    ),
    command=lambda context: 'CMD ["/app/server"]',
    healthcheck='HEALTHCHECK CMD ["/app/server", "-healthcheck"] (distroless and scratch have no shell or curl: '
    "the binary probes its own /healthz)",
    user="`USER nonroot:nonroot` (distroless) or a numeric `USER 65532:65532`",
    toolchain_images=frozenset({"golang"}),
    unlocking_settings=(
        (
            re.compile(r"\bGOFLAGS=\S*-mod=mod\b"),
            "GOFLAGS=-mod=mod lets every go command rewrite go.mod and go.sum; keep the default -mod=readonly",
        ),
    ),
)

LANGUAGES: tuple[Language, ...] = (NODE, PYTHON, GO)
"""Every language the rules judge; a fix for a build in none of them is written for a plain binary (`GENERIC_*`)."""

GENERIC_COMMAND = 'CMD ["/app/<binary>"]'
GENERIC_HEALTHCHECK = 'HEALTHCHECK CMD ["/app/<binary>", "-healthcheck"] hitting the liveness path'
GENERIC_USER = "a numeric `USER <uid>:<gid>` such as `USER 10001:10001`"


SYSTEM_COMMANDS = frozenset(
    {
        *("apt-get", "apt", "apk", "dnf", "yum", "microdnf", "rpm", "dpkg", "update-ca-certificates"),
        *("useradd", "adduser", "groupadd", "addgroup", "usermod", "chpasswd"),
        *("set", "true", "false", "test", "[", "echo", "printf", "mkdir", "chmod", "chown", "ln", "rm", "cp", "mv"),
        *("touch", "find", "strip", "tar", "gzip", "unzip", "sha256sum", "curl", "wget", "cd", "ls", "cat", "sed"),
        *("export", "env", "id", "install", "xargs", "exit", "tee", "grep", "head", "tail", "sort", "wc", "du"),
    }
)
"""Commands that set up the operating system or files, not an app's dependencies: a RUN of only these is no build
(OS packages, downloads and users are judged by the language-independent rules)."""


def identify(context: Path, bases: Iterable[str], commands: Iterable[list[str]]) -> list[Language]:
    """The languages of a build: by the context's manifest files, the stages' base images, and the tools its RUN,
    CMD and ENTRYPOINT instructions run (`shell.instruction_commands`)."""
    repositories = {parse_image(base).repository.rsplit("/", 1)[-1] for base in bases}
    words = {step[0].rsplit("/", 1)[-1] for step in commands}
    found = []
    for language in LANGUAGES:
        in_context = any(sent(context, path) for pattern in language.manifests for path in context.glob(pattern))
        if in_context or language.base_images & repositories or language.tools & words:
            found.append(language)
    return found


def unidentified_steps(runs: list[list[str]]) -> list[str]:
    """RUN commands that are neither system setup nor any known language's tooling: the build of a language the
    dependency-lock rule cannot judge."""
    known = set(SYSTEM_COMMANDS).union(*(language.tools for language in LANGUAGES))
    return [" ".join(step) for step in runs if step[0].rsplit("/", 1)[-1] not in known]
