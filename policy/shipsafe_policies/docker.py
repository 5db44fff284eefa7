"""Dockerfile family: the image resource names its Dockerfile; these policies read and parse it.

Parsing uses the `dockerfile` package (BuildKit's own Go parser), so continuation lines, heredocs and exec
form are understood exactly as `docker build` understands them. Paths in the image resource are relative to
the Pulumi project directory, which is `projectDir` relative to this pack (the pack lives in `<project>/policy`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
from pulumi_policy import PolicyResource

from . import k8s
from .floor import NON_ROOT
from .framework import ADVISORY, Config, Finding, HasProps, Item, Section, Setting, item_by_item
from .images import IMAGE_BUILDS, parse_image
from .k8s import dig, items, number
from .patterns import looks_secret, names_a_secret

SECTION = Section(__name__, "docker", topic="Sec")
PACK_DIR = Path(__file__).resolve().parent.parent

PROJECT_DIR = Setting("string", "..", "The Pulumi project directory, relative to the policy pack directory.")
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::?[-+]([^}]*))?\}|(\w+))")


@dataclass(frozen=True)
class Stage:
    base: str
    """FROM argument with build args substituted."""
    alias: str | None
    commands: tuple[Any, ...]
    parent: Stage | None
    """The earlier stage this one is built FROM, if any."""

    def chain(self) -> Iterator[Stage]:
        stage: Stage | None = self
        while stage is not None:
            yield stage
            stage = stage.parent

    def last(self, instruction: str) -> Any | None:
        """The effective instruction (USER, CMD, HEALTHCHECK...) including what the parent stage set."""
        for stage in self.chain():
            found = [c for c in stage.commands if c.cmd == instruction]
            if found:
                return found[-1]
        return None


@dataclass(frozen=True)
class Build:
    path: Path
    context: Path
    stages: tuple[Stage, ...]
    final: Stage
    global_args: tuple[Any, ...]
    target_known: bool = True
    """False for a build read from its outputs, which carry no target or build args: `final` is then the last
    stage, though the build may have stopped at another."""


class DockerfileError(Exception):
    pass


def _substitute(text: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return values.get(name, match.group(2) or "")

    return _VARIABLE.sub(replace, text)


@functools.lru_cache(maxsize=16)
def _parse(path: Path, mtime: float) -> tuple[Any, ...]:
    return tuple(dockerfile.parse_file(str(path)))


def load_build(res: HasProps, config: Config) -> Build:
    """The build an image resource describes: Dockerfile stages with build args applied, and the target."""
    props = res.props
    project = (PACK_DIR / str(config["projectDir"])).resolve()
    target_known = True
    if res.resource_type == "docker-build:index:Image":
        context_dir = dig(props, "context", "location") or "."
        file_name = dig(props, "dockerfile", "location")
        build_args, target = dig(props, "buildArgs") or {}, dig(props, "target")
    elif "build" in props or "context" not in props:
        # The inputs (Analyze: the provider's Check output), and a preview's outputs where pulumi-docker cannot
        # build (provider.go `Create`/`Update` without `canPreview` return the request's properties).
        context_dir = dig(props, "build", "context") or "."
        file_name = dig(props, "build", "dockerfile")
        build_args, target = dig(props, "build", "args") or {}, dig(props, "build", "target")
    else:
        # The outputs of a build (pulumi-docker `image.go` `dockerBuild`): `context` as given and `dockerfile`
        # relative to it (docker's `GetContextFromLocalDir`); no build args or target, so the Dockerfile is read
        # as `docker build` without them reads it (the preview, which gates `up`, saw them).
        context_dir = props.get("context") or "."
        file_name = str(Path(str(context_dir)) / str(props.get("dockerfile") or "Dockerfile"))
        build_args, target, target_known = {}, None, False
    context = project / str(context_dir)
    path = project / str(file_name) if file_name else context / "Dockerfile"
    try:
        commands = _parse(path, path.stat().st_mtime)
    except (OSError, dockerfile.GoParseError) as error:
        raise DockerfileError(f"cannot read the Dockerfile {path}: {error}") from error
    values: dict[str, str] = {}
    global_args: list[Any] = []
    stages: list[Stage] = []
    current: tuple[str, str | None, Stage | None] | None = None
    body: list[Any] = []
    for command in commands:
        if command.cmd == "FROM":
            if current is not None:
                stages.append(Stage(current[0], current[1], tuple(body), current[2]))
            words = list(command.value)
            base = _substitute(words[0], values)
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            parent = next((s for s in stages if s.alias == base), None)
            current, body = (base, alias, parent), []
        elif current is None:
            if command.cmd == "ARG":
                global_args.append(command)
                name, _, default = command.value[0].partition("=")
                values[name] = str(build_args.get(name, default))
        else:
            body.append(command)
    if current is None:
        raise DockerfileError(f"{path} has no FROM instruction")
    stages.append(Stage(current[0], current[1], tuple(body), current[2]))
    final = next((s for s in stages if s.alias == target), stages[-1]) if target else stages[-1]
    return Build(path, context, tuple(stages), final, tuple(global_args), target_known)


def _with_build(check: Any) -> Any:
    """Report an unreadable Dockerfile as the violation instead of crashing the policy."""

    @functools.wraps(check)
    def run(res: HasProps, config: Config) -> Iterator[str]:
        try:
            build = load_build(res, config)
        except DockerfileError as error:
            yield str(error)
            return
        yield from check(build, config)

    return run


_NUMERIC_USER = re.compile(r"^(\d+)(:(\d+))?$")


def _final_user(build: Build) -> str:
    user = build.final.last("USER")
    return str(user.value[0]) if user else "root (default)"


@SECTION.resource(
    "docker-non-root-user",
    "The image's final USER is a numeric non-root UID:GID.",
    "End the final stage with a numeric `USER <uid>:<gid>` such as `USER 10001:10001`.",
    types=IMAGE_BUILDS,
    projectDir=PROJECT_DIR,
    floor=NON_ROOT,
)
@_with_build
def check_non_root_user(build: Build, config: Config) -> Iterator[str]:
    # The rule, not a copy of the app's UID: the pods run as the image's USER (docker-user-matches-pods).
    value = _final_user(build)
    match = _NUMERIC_USER.match(value)
    if not match:
        yield f"final stage USER is {value}; use a numeric `USER <uid>:<gid>` (kubelet checks runAsNonRoot on UIDs)"
    elif match.group(1) == "0" or match.group(3) == "0":
        yield f"final stage USER {value} is root; use a numeric non-root `USER <uid>:<gid>`"


def _built_image_name(res: HasProps) -> str:
    """`registry/repository` the build pushes (docker `imageName`, docker-build's first tag)."""
    name = res.props.get("imageName") or next(iter(items(res.props.get("tags"))), "")
    return parse_image(str(name)).name


@SECTION.stack(
    "docker-user-matches-pods",
    "Pods that run a built image run as its numeric USER (UID and GID).",
    "Set shipsafe:app.runAsUser to the Dockerfile's final USER, or change the Dockerfile.",
    projectDir=PROJECT_DIR,
)
@item_by_item
def check_image_matches_pods(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[Finding, str | None]]:
    """The pods that run a built image run as its USER: the Dockerfile and the pod spec (`shipsafe:app.runAsUser`)
    state the UID once each, and here they must agree (neither is a constant of the pack). EXPOSE is not compared:
    Kubernetes ignores it, and the app binds the PORT the ConfigMap gives it (12f-port-binding)."""
    for image in k8s.of_type(resources, *IMAGE_BUILDS):
        try:
            build = load_build(image, config)
        except DockerfileError:
            continue  # docker-non-root-user reports the unreadable Dockerfile
        user = _NUMERIC_USER.match(_final_user(build))
        if user is None:
            continue  # docker-non-root-user reports a USER that is not numeric
        # Without the target, the build may have stopped at any stage: pods running as one of the stages' USER
        # agree with some build of this Dockerfile (the preview, which saw the target, judged the exact one).
        others = [] if build.target_known else _stage_users(build)
        name = _built_image_name(image)
        for workload in k8s.of_type(resources, *k8s.WORKLOADS):
            spec = k8s.pod_spec(workload)
            for label, container in k8s.workload_containers(workload):
                with item():  # the app image is unknown in preview until it is built
                    if parse_image(str(container.get("image") or "")).name != name:
                        continue
                    where = f"{k8s.display(workload)} {label}"
                    findings = list(_agreement(where, container, spec, user, workload.urn))
                    if not any(not list(_agreement(where, container, spec, o, workload.urn)) for o in others):
                        yield from findings


def _stage_users(build: Build) -> list[re.Match[str]]:
    """The numeric USER each stage of the Dockerfile ends with."""
    users = [_NUMERIC_USER.match(_final_user(dataclasses.replace(build, final=stage))) for stage in build.stages]
    return [u for u in users if u is not None]


def _agreement(where: str, container: Any, spec: Any, user: re.Match[str], urn: str) -> Iterator[tuple[Finding, str]]:
    context = dig(container, "securityContext") or {}
    for field, group in (("runAsUser", 1), ("runAsGroup", 3)):
        wanted = user.group(group)
        value = number(context[field] if field in context else dig(spec, "securityContext", field))
        if wanted is not None and value != float(wanted):
            shown = "unset" if value is None else f"{value:.0f}"
            yield (
                Finding(
                    f"{where}: {field} is {shown}, but the image's USER is {user.group(0)}", ("pod.securityContext",)
                ),
                urn,
            )


def _external_bases(build: Build) -> Iterator[Stage]:
    for stage in build.stages:
        if stage.parent is None and stage.base != "scratch":
            yield stage


@SECTION.resource(
    "docker-pinned-base-images",
    "Every external FROM pins a full version tag (never latest/untagged); stage names are unique.",
    "Use e.g. python:3.11.14-slim-bookworm (plus @sha256 digest where it can be resolved).",
    types=IMAGE_BUILDS,
    topic="II Dependencies; V Build/release/run; X Dev/prod parity",
    projectDir=PROJECT_DIR,
)
@_with_build
def check_pinned_base_images(build: Build, config: Config) -> Iterator[str]:
    aliases = [s.alias for s in build.stages if s.alias]
    for alias in sorted({a for a in aliases if aliases.count(a) > 1}):
        yield f"stage alias {alias} is used twice; make stage names unique"
    for stage in _external_bases(build):
        image = parse_image(stage.base)
        if image.tag_is_mutable and not image.has_valid_digest:
            yield f"FROM {stage.base}: pin an explicit version tag (never latest or untagged)"
        elif image.tag is not None and not image.tag_is_full_version and not image.has_valid_digest:
            yield f"FROM {stage.base}: the tag floats; pin a full version such as python:3.11.14-slim-bookworm"


@SECTION.resource(
    "docker-base-image-digest",
    "Every external FROM also carries an @sha256 digest.",
    "Pass BASE_IMAGE=<image>:<tag>@sha256:<digest> as a build arg from a mirror you control.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; Sec (supply chain)",
    level=ADVISORY,
    projectDir=PROJECT_DIR,
)
@_with_build
def check_base_image_digest(build: Build, config: Config) -> Iterator[str]:
    for stage in _external_bases(build):
        if not parse_image(stage.base).has_valid_digest:
            yield f"FROM {stage.base}: add @sha256:<digest> (pass it through the BASE_IMAGE build arg)"


_RUN_RULES = (
    (re.compile(r"\bnpm\s+(install|i)\b"), "use `npm ci` (lockfile) instead of npm install"),
    (re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z)?sh\b"), "do not pipe downloads into a shell"),
    (
        re.compile(r"--trusted-host|--no-check-certificate|--allow-unauthenticated|\bcurl\b[^;&|]*\s-k\b|--insecure"),
        "do not disable TLS or signature checks",
    ),
    (re.compile(r"\bsudo\b|\bchpasswd\b"), "no sudo or chpasswd in images"),
)
_PIP_INSTALL = re.compile(r"\bpip3?\s+install\b[^;&|]*")
_LOCKED_PIP = re.compile(r"--require-hashes|--no-index")
_TOOLCHAIN = re.compile(r"\b(build-essential|gcc|g\+\+|make|libpq-dev|python3-dev)\b")


def _run_text(command: Any) -> str:
    return " ".join(command.value)


@SECTION.resource(
    "docker-reproducible-deps",
    "Multi-stage build with locked installs (pip --require-hashes / npm ci), no unverified downloads.",
    "Install from the lockfile with hashes in the builder stage; copy the result to the final stage.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; Sec",
    projectDir=PROJECT_DIR,
)
@_with_build
def check_reproducible_deps(build: Build, config: Config) -> Iterator[str]:
    if len(build.stages) < 2:
        yield "use a multi-stage build: install with the toolchain in `builder`, copy only the result to the final one"
    for stage in build.stages:
        for command in stage.commands:
            if command.cmd == "ADD" and any(re.match(r"^[a-z]+://", v) for v in command.value[:-1]):
                yield f"line {command.start_line}: ADD <url> is unverified; download with a checksum in RUN"
            if command.cmd != "RUN":
                continue
            text = _run_text(command)
            for pattern, message in _RUN_RULES:
                if pattern.search(text):
                    yield f"line {command.start_line}: {message}"
            for install in _PIP_INSTALL.finditer(text):
                if not _LOCKED_PIP.search(install.group(0)):
                    yield f"line {command.start_line}: pip install without --require-hashes is not locked"
            if re.search(r"apt-get\s+update", text) and not re.search(r"apt-get\s+(-\S+\s+)*install", text):
                yield f"line {command.start_line}: apt-get update alone caches stale lists; update and install together"
    for command in build.final.commands:
        text = _run_text(command) if command.cmd == "RUN" else ""
        if re.search(r"\b(apt-get|apk)\b", text) and _TOOLCHAIN.search(text):
            yield f"line {command.start_line}: the final stage installs a toolchain; build in the builder stage"


def _dockerignore_covers(context: Path) -> list[str]:
    """What .dockerignore fails to exclude among .git and .env files."""
    path = context / ".dockerignore"
    if not path.is_file():
        return [".git", ".env*"]
    patterns = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if patterns and patterns[0] in ("*", "**"):
        return []  # allow-list style: everything is excluded unless re-included
    missing = []
    if not any(p.strip("/").removeprefix("**/") in (".git", ".git/") for p in patterns):
        missing.append(".git")
    if not any(p.strip("/").removeprefix("**/") in (".env", ".env*", ".env.*") for p in patterns):
        missing.append(".env*")
    return missing


@SECTION.resource(
    "docker-runtime-contract",
    "Exec-form CMD, no secret ENV/ARG, .dockerignore excludes .git/.env.",
    'Use CMD ["python", "-m", ...], secrets at runtime only.',
    types=IMAGE_BUILDS,
    topic="IX Disposability; III Config; Sec",
    projectDir=PROJECT_DIR,
)
@_with_build
def check_runtime_contract(build: Build, config: Config) -> Iterator[str]:
    for instruction in ("CMD", "ENTRYPOINT"):
        command = build.final.last(instruction)
        if command is not None and not command.json:
            yield f"line {command.start_line}: {instruction} in shell form; use exec form so PID 1 gets SIGTERM"
    if build.final.last("CMD") is None and build.final.last("ENTRYPOINT") is None:
        yield "the final stage has no CMD or ENTRYPOINT"
    for stage_commands in [build.global_args, *(s.commands for s in build.stages)]:
        for command in stage_commands:
            if command.cmd not in ("ENV", "ARG"):
                continue
            pairs = (
                list(zip(command.value[::2], command.value[1::2], strict=False))
                if command.cmd == "ENV"
                else [(v.partition("=")[0], v.partition("=")[2]) for v in command.value]
            )
            for name, value in pairs:
                if (names_a_secret(name) and (value or command.cmd == "ARG")) or looks_secret(value):
                    yield (
                        f"line {command.start_line}: {command.cmd} {name} bakes a secret into the image history; "
                        "use RUN --mount=type=secret or runtime env"
                    )
    for missing in _dockerignore_covers(build.context):
        yield f".dockerignore in {build.context} must exclude {missing}"


@SECTION.resource(
    "docker-healthcheck",
    "The image declares a HEALTHCHECK (for docker run/compose; Kubernetes uses probes).",
    'Add HEALTHCHECK CMD ["python", "-c", "...GET /healthz..."].',
    types=IMAGE_BUILDS,
    topic="IX Disposability",
    level=ADVISORY,
    projectDir=PROJECT_DIR,
)
@_with_build
def check_healthcheck(build: Build, config: Config) -> Iterator[str]:
    command = build.final.last("HEALTHCHECK")
    if command is None or (command.value and command.value[0].upper() == "NONE"):
        yield "add HEALTHCHECK CMD [...] hitting the liveness path (used by `docker run` and compose; not Kubernetes)"
