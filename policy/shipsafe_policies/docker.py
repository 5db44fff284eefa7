"""Dockerfile family: the image resource names its Dockerfile; these policies read it (`dockerfiles.load_build`) and
judge the chapter's image rules in the build's own language (`languages`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyResource

from . import k8s
from .dockerfiles import (
    Build,
    DockerfileError,
    build_languages,
    build_steps,
    copies_from_a_stage,
    copies_the_context,
    copy_destination,
    dockerignore_misses,
    env_and_args,
    exec_form,
    external_bases,
    external_toolchains,
    final_compiles,
    fix_for,
    load_build,
    numeric_user,
    pairs,
    run_text,
    with_build,
)
from .floor import IMAGE_NON_ROOT, IMAGE_SECRETS
from .framework import ADVISORY, Config, Finding, HasProps, Item, Section, Setting, item_by_item
from .images import IMAGE_BUILDS, parse_image
from .k8s import dig, items, number
from .languages import GENERIC_COMMAND, GENERIC_HEALTHCHECK, GENERIC_USER, LANGUAGES, unidentified_steps
from .patterns import looks_secret, names_a_secret
from .secret_files import auth_config, credential_files, fetching_step, holds_credentials, locked_install

SECTION = Section(__name__, "docker", topic="Sec")
PROJECT_DIR = Setting("string", "..", "The Pulumi project directory, relative to the policy pack directory.")

_NUMERIC_USER = re.compile(r"^(\d+)(:(\d+))?$")


def _final_user(build: Build) -> str:
    """The final USER, with the IDs the Dockerfile gives the names it creates."""
    user = build.final.last("USER")
    return numeric_user(build, str(user.value[0])) if user else "root (default)"


@SECTION.resource(
    "docker-non-root-user",
    "The image's final stage sets a non-root USER (a name other than root, or a non-zero UID and GID).",
    "End the final stage with a non-root USER in the language's way: `USER node` (node images), "
    "`USER nonroot:nonroot` (distroless), or a created `USER 10001:10001`.",
    types=IMAGE_BUILDS,
    projectDir=PROJECT_DIR,
    floor=IMAGE_NON_ROOT,
)
@with_build
def check_non_root_user(build: Build, config: Config) -> Iterator[str]:
    # A named USER (the node images' `node`, distroless `nonroot`) is accepted as hadolint DL3002 and checkov
    # CKV_DOCKER_8 accept it: the pods always set a numeric runAsUser (pss-run-as-non-root), which the kubelet
    # verifies instead of the image's USER (kubernetes `pkg/kubelet/kuberuntime/security_context_others.go`
    # `verifyRunAsNonRoot`: the effective runAsUser is checked first; only without one does a non-numeric image
    # user fail with "cannot verify user is non-root").
    user = build.final.last("USER")
    way = fix_for(build, "user", GENERIC_USER)
    if user is None:
        # As checkov CKV_DOCKER_3: the user is stated where the image is reviewed, not inherited unseen from a base
        # (most bases, node and python among them, run as root).
        yield f"the final stage sets no USER, so it runs as its base image's user (root for most); end it with {way}"
        return
    name, _, group = _final_user(build).partition(":")
    if name in ("0", "root") or group in ("0", "root"):
        yield f"line {user.start_line}: final stage USER {user.value[0]} is root; end it with {way}"


def _built_image_name(res: HasProps) -> str:
    """`registry/repository` the build pushes (docker `imageName`, docker-build's first tag)."""
    name = res.props.get("imageName") or next(iter(items(res.props.get("tags"))), "")
    return parse_image(str(name)).name


@SECTION.stack(
    "docker-user-matches-pods",
    "Pods that run a built image run as its USER (UID and GID, a created user's by its useradd/adduser IDs).",
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
            # A name the Dockerfile does not create (the base image's `node`, distroless `nonroot`) has a UID only
            # the base image knows; the pods' numeric runAsUser is what the kubelet runs and verifies.
            continue
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


@SECTION.resource(
    "docker-pinned-base-images",
    "Every external FROM pins a full version tag (never latest/untagged), or a digest where the image has no version "
    "tags (distroless, Chainguard); stage names are unique.",
    "Pin a full version tag such as node:20.18.1-alpine3.20, python:3.11.14-slim-bookworm or golang:1.23.4-bookworm "
    "(plus an @sha256 digest where it can be resolved); a base without version tags (distroless, Chainguard's "
    ":latest/:latest-dev) by its digest alone: gcr.io/distroless/static-debian12:nonroot@sha256:<digest>.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; V Build/release/run; X Dev/prod parity",
    projectDir=PROJECT_DIR,
)
@with_build
def check_pinned_base_images(build: Build, config: Config) -> Iterator[str]:
    aliases = [s.alias for s in build.stages if s.alias]
    for alias in sorted({a for a in aliases if aliases.count(a) > 1}):
        yield f"stage alias {alias} is used twice; make stage names unique"
    for stage in external_bases(build):
        image = parse_image(stage.base)
        if not image.has_version_tags and not image.has_valid_digest:
            pinned = f"{image.name}:{image.tag or 'latest'}@sha256:<digest>"
            inspect = f"`docker buildx imagetools inspect {stage.base}` prints it"
            yield f"FROM {stage.base}: {image.name} has no version tags, so only a digest pins it: {pinned} ({inspect})"
        elif image.tag_is_mutable and not image.has_valid_digest:
            yield f"FROM {stage.base}: pin an explicit version tag (never latest or untagged)"
        elif image.tag is not None and not image.tag_is_full_version and not image.has_valid_digest:
            variant = image.tag.partition("-")[2]
            pinned = f"{image.repository.rsplit('/', 1)[-1]}:<x.y.z>{'-' + variant if variant else ''}"
            yield f"FROM {stage.base}: the tag {image.tag} floats with upstream; pin a full version such as {pinned}"


@SECTION.resource(
    "docker-base-image-digest",
    "Every external FROM also carries an @sha256 digest.",
    "Pass BASE_IMAGE=<image>:<tag>@sha256:<digest> as a build arg from a mirror you control.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; Sec (supply chain)",
    level=ADVISORY,
    projectDir=PROJECT_DIR,
)
@with_build
def check_base_image_digest(build: Build, config: Config) -> Iterator[str]:
    for stage in external_bases(build):
        if not parse_image(stage.base).has_valid_digest:
            yield f"FROM {stage.base}: add @sha256:<digest> (pass it through the BASE_IMAGE build arg)"


_RUN_RULES = (
    (re.compile(r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z)?sh\b"), "do not pipe downloads into a shell"),
    (re.compile(r"\bsudo\b|\bchpasswd\b"), "no sudo or chpasswd in images"),
)
_VERIFICATION_OFF = re.compile(
    r"--trusted-host|--no-check-certificate|--allow-unauthenticated|--allow-untrusted|--nogpgcheck|--nosignature"
    r"|\bcurl\b[^;&|]*\s-k\b|--insecure|strict-ssl\s+false|sslVerify\s+false"
    r"|\b(NODE_TLS_REJECT_UNAUTHORIZED|PYTHONHTTPSVERIFY)=0\b|\bGIT_SSL_NO_VERIFY=|\bGOSUMDB=off\b"
    r"|\bGO(NOSUMDB|NOSUMCHECK|INSECURE)=|\bGOFLAGS=\S*-insecure|\bPIP_TRUSTED_HOST="
)
"""Switching off TLS, signature or checksum verification, in a RUN or an ENV/ARG (the family checkov's CKV2_DOCKER
checks list one tool at a time: curl -k, wget, pip, apt, apk, yum, rpm, npm, git, Node, Python, Go's sum database)."""
_TOOLCHAIN = re.compile(r"\b(build-essential|gcc|g\+\+|make|libpq-dev|python3-dev)\b")


@SECTION.resource(
    "docker-reproducible-deps",
    "Where the app is built, a multi-stage build installs from the committed lockfile (npm ci, yarn/pnpm "
    "--frozen-lockfile, pip --require-hashes, uv sync --locked, go.sum with go mod download) with verification on; "
    "no compile step of any language (cargo, mvn, gradle, dotnet, make, go build, tsc) runs in the final stage; "
    "tools are locked alike in every ecosystem (a version pin such as pip install tool==x or npm i -g tool@x is not "
    "a lock; go install module@vX is).",
    "Install from the committed lockfile in a builder stage (`npm ci`, `pip install --require-hashes -r "
    "requirements.txt`, `go mod download` with go.sum) and copy only the result into the final stage.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; Sec",
    projectDir=PROJECT_DIR,
)
@with_build
def check_reproducible_deps(build: Build, config: Config) -> Iterator[str]:
    steps = build_steps(build)
    languages = build_languages(build)
    # A dependency-free app (a static binary copied in, one script with no manifest) has nothing to build.
    built = [lang for lang in languages if lang.builds(build.context) or any(lang.build_step(w) for _, w in steps)]
    single_stage = bool(built) and not copies_from_a_stage(build)
    if single_stage:
        yield (
            f"the {built[0].name} build runs in the final stage (it copies nothing from a builder stage), so its "
            f"toolchain and dev dependencies ship; use a multi-stage build: {built[0].builder(build.context)}"
        )
    toolchain_bases = list(external_toolchains(build, languages))
    for stage in toolchain_bases:
        yield f"the final stage runs on {stage.base}, a build toolchain; {fix_for(build, 'builder', '')}"
    for command, words, toolchain in [] if single_stage or toolchain_bases else final_compiles(build):
        yield f"line {command.start_line}: {toolchain.ships(words)}"
    for language in languages:
        yield from language.missing_lock(build.context)
        host_installs = {name: (name,) for name in language.host_installs}
        for name in dockerignore_misses(build.context, host_installs) if copies_the_context(build) else []:
            yield (
                f"the build copies the whole context, and {build.context / '.dockerignore'} lets the host's {name} "
                f"through over the locked install; add a `{name}` line to .dockerignore"
            )
    for stage in build.stages:
        for command in stage.commands:
            if command.cmd == "ADD" and any(re.match(r"^[a-z]+://", v) for v in command.value[:-1]):
                yield f"line {command.start_line}: ADD <url> is unverified; download with a checksum in RUN"
            if command.cmd != "RUN":
                continue
            text = run_text(command)
            for pattern, message in _RUN_RULES:
                if pattern.search(text):
                    yield f"line {command.start_line}: {message}"
            if _VERIFICATION_OFF.search(text):
                yield f"line {command.start_line}: do not disable TLS, signature or checksum verification"
            if re.search(r"apt-get\s+update", text) and not re.search(r"apt-get\s+(-\S+\s+)*install", text):
                yield f"line {command.start_line}: apt-get update alone caches stale lists; update and install together"
    for command, words in steps:
        for language in LANGUAGES:
            for message in language.unlocked(words):
                yield f"line {command.start_line}: {message}"
    for command in env_and_args(build):
        for name, value in pairs(command):
            if _VERIFICATION_OFF.search(f"{name}={value}"):
                yield f"line {command.start_line}: {command.cmd} {name}={value} disables verification; remove it"
    settings = [(c, " ".join(f"{n}={v}" for n, v in pairs(c))) for c in env_and_args(build)]
    settings += [(c, run_text(c)) for stage in build.stages for c in stage.commands if c.cmd == "RUN"]
    for command, text in settings:
        for pattern, message in (setting for lang in LANGUAGES for setting in lang.unlocking_settings):
            if pattern.search(text):
                yield f"line {command.start_line}: {message}"
    for command in build.final.commands:
        text = run_text(command) if command.cmd == "RUN" else ""
        if re.search(r"\b(apt-get|apk)\b", text) and _TOOLCHAIN.search(text):
            yield f"line {command.start_line}: the final stage installs a toolchain; build in the builder stage"


@SECTION.resource(
    "docker-package-manager-known",
    "Every dependency install or build step in the Dockerfile uses a package manager the lock rule can judge.",
    "Install with a locked tool the pack judges (npm ci, yarn/pnpm --frozen-lockfile, pip --require-hashes, uv sync "
    "--locked, go mod download with go.sum), or review that your tool installs only from its committed lockfile.",
    types=IMAGE_BUILDS,
    topic="II Dependencies; Sec",
    level=ADVISORY,
    projectDir=PROJECT_DIR,
)
@with_build
def check_package_manager_known(build: Build, config: Config) -> Iterator[str]:
    # Neither a silent pass nor a false failure of docker-reproducible-deps: the steps it cannot judge are named.
    for command, words in build_steps(build):
        for step in unidentified_steps([words]):
            yield (
                f"line {command.start_line}: docker-reproducible-deps could not identify a package manager in "
                f"`{step}` (it judges {', '.join(lang.name for lang in LANGUAGES)}: npm/yarn/pnpm, pip/uv/poetry/"
                "pipenv, go modules); make sure it installs only from a committed lockfile"
            )


@SECTION.resource(
    "docker-runtime-contract",
    "The final stage starts the app with an exec-form CMD or ENTRYPOINT, so the app is PID 1 and gets SIGTERM.",
    'Start the app in exec form in its language: CMD ["node", "dist/main.js"], CMD ["python", "-m", "<package>"], '
    'CMD ["/app/server"].',
    types=IMAGE_BUILDS,
    topic="IX Disposability",
    projectDir=PROJECT_DIR,
)
@with_build
def check_runtime_contract(build: Build, config: Config) -> Iterator[str]:
    for instruction in ("CMD", "ENTRYPOINT"):
        command = build.final.last(instruction)
        if command is not None and not command.json:
            way = exec_form(instruction, run_text(command)) or fix_for(build, "command", GENERIC_COMMAND)
            yield f"line {command.start_line}: {instruction} in shell form; use exec form so PID 1 gets SIGTERM: {way}"
    if build.final.last("CMD") is None and build.final.last("ENTRYPOINT") is None:
        way = fix_for(build, "command", GENERIC_COMMAND)
        yield f"the final stage has no CMD or ENTRYPOINT; add one in exec form: {way}"


@SECTION.resource(
    "docker-no-baked-secrets",
    "No secret reaches an image layer or its history: no secret-named or secret-looking ENV/ARG, no COPY/ADD of "
    "credential files (.env, keys, cloud credentials by name; .npmrc, .yarnrc.yml, .pypirc, pip.conf, .netrc when "
    "the context's file holds a credential).",
    "Give a build secret to the one RUN that needs it, mounted where the COPY put it (`RUN --mount=type=secret,"
    "id=npmrc,target=/app/.npmrc pnpm install --frozen-lockfile`) and the app's secrets at runtime (a Kubernetes "
    "Secret); never ENV, ARG or COPY them.",
    types=IMAGE_BUILDS,
    topic="III Config; Sec",
    projectDir=PROJECT_DIR,
    floor=IMAGE_SECRETS,
)
@with_build
def check_no_baked_secrets(build: Build, config: Config) -> Iterator[str]:
    install = fix_for(build, "install", "<install command>")
    for command in env_and_args(build):
        for name, value in pairs(command):
            if (names_a_secret(name) and (value or command.cmd == "ARG")) or looks_secret(value):
                yield (
                    f"line {command.start_line}: {command.cmd} {name} bakes a secret into the image history; mount "
                    f"it into the one step that needs it (`RUN --mount=type=secret,id={name.lower()},env={name} "
                    f"{install}`) or give it at runtime"
                )
    for stage in build.stages:
        for index, command in enumerate(stage.commands):
            if command.cmd not in ("COPY", "ADD"):
                continue
            from_stage = any(f.startswith("--from=") for f in command.flags)
            for source in command.value[:-1]:
                if holds_credentials(build.context, source, from_stage):
                    name = source.rstrip("/").rsplit("/", 1)[-1]
                    target = copy_destination(build, stage, index, source)
                    auth = auth_config(source)
                    target = auth.target(target) if auth else target
                    later = stage.commands[index + 1 :]
                    needs = fetching_step(later, source) or locked_install(build.context, source, install)
                    yield (
                        f"line {command.start_line}: {command.cmd} {source} copies credentials into a layer; mount "
                        f"it where the build reads it, into the one step that needs it (`RUN --mount=type=secret,"
                        f"id={name.lstrip('.')},target={target} {needs}`), or give it at runtime"
                    )


@SECTION.resource(
    "docker-context-excludes-secrets",
    "The build context's .dockerignore excludes .git and .env files, and any credential file in the context root "
    "(an .npmrc or pip.conf holding a token, a key) when the build copies the whole context, so `COPY . .` cannot "
    "bake them in.",
    "List `.git`, `.env*` and the credential files in the .dockerignore beside the build context (or start it with "
    "`*` and re-include only what the build needs); give registry credentials to the install as a build secret.",
    types=IMAGE_BUILDS,
    topic="III Config; Sec",
    projectDir=PROJECT_DIR,
    floor=IMAGE_SECRETS,
)
@with_build
def check_context_excludes_secrets(build: Build, config: Config) -> Iterator[str]:
    missing = dockerignore_misses(build.context, {".git": (".git",), ".env*": (".env", ".env*", ".env.*")})
    if missing:
        yield f"{build.context / '.dockerignore'} does not exclude {' or '.join(missing)}; add a line for each"
    credentials = {name: (name,) for name in credential_files(build.context)}
    for name in dockerignore_misses(build.context, credentials) if copies_the_context(build) else []:
        yield (
            f"{build.context / name} holds credentials and the build copies the whole context; add `{name}` to "
            f"{build.context / '.dockerignore'} and give it to the install as a build secret "
            f"(`RUN --mount=type=secret,id={name.lstrip('.')},target=...`)"
        )


@SECTION.resource(
    "docker-healthcheck",
    "The image declares a HEALTHCHECK it can run (exec form where there is no shell); docker run/compose use it, "
    "Kubernetes uses probes.",
    'Add an exec-form HEALTHCHECK in the app\'s language, e.g. HEALTHCHECK CMD ["node", "-e", "fetch(...)"], '
    'HEALTHCHECK CMD ["python", "-c", "...urlopen(...)"], HEALTHCHECK CMD ["/app/server", "-healthcheck"].',
    types=IMAGE_BUILDS,
    topic="IX Disposability",
    level=ADVISORY,
    projectDir=PROJECT_DIR,
)
@with_build
def check_healthcheck(build: Build, config: Config) -> Iterator[str]:
    command = build.final.last("HEALTHCHECK")
    way = fix_for(build, "healthcheck", GENERIC_HEALTHCHECK)
    if command is None or (command.value and command.value[0].upper() == "NONE"):
        yield (
            "the image has no HEALTHCHECK (used by `docker run` and compose; not Kubernetes); hit the liveness path: "
            f"{way}"
        )
        return
    base = list(build.final.chain())[-1].base
    # Docker runs a shell-form HEALTHCHECK as `/bin/sh -c`: an image without a shell is never healthy.
    if not command.json and (base == "scratch" or "distroless" in parse_image(base).repository):
        yield f"line {command.start_line}: HEALTHCHECK in shell form needs /bin/sh, which {base} lacks; use {way}"
