"""`mirror`: copy the third-party images a stack runs into the project registry and pin their digests.

Postgres and Redis (when in-cluster) are copied to `<registry.server>/<prefix>/<name>:<tag>`, pushed, and the
stack file is pinned to `<that>@sha256:<digest>`, the digest of the manifest the push stored in the registry. An
in-cluster registry's own image is pinned where it is: the registry cannot serve the image it is started from.

The stack file is edited in place, one value at a time (its comments and layout stay as they are), and only when
the pinned reference differs, so a second run changes nothing. Copies go through the docker CLI with the
credentials of `docker login <registry.server>`; docker pushes the platform of the local copy only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click
import yaml
from pydantic import BaseModel, ValidationError
from rich.markup import escape

from components.settings import (
    CONFIG_NAMESPACE,
    IMAGE_REF,
    BackingService,
    RegistryMode,
    RegistrySettings,
    Settings,
)
from deploy.context import DeployContext
from deploy.errors import ShipsafeError
from deploy.stack_file import stack_document
from harness.stack_config import stack_names

MIRROR_FOLDER = "mirror"
"""Default mirror path next to the app's repository (`shipsafe/notes` -> `shipsafe/mirror`), so the registry
allow-list and pull credentials that cover the project's namespace cover the mirrors too."""
# `docker push` ends with "<tag>: digest: sha256:<hex> size: <bytes>": the digest of the manifest bytes the daemon
# PUT to the registry, which stores them under it (moby `distribution/push_v2.go` `pushV2Tag`; containerd image
# store: `daemon/containerd/image_push.go`). The image tests HEAD the registry to confirm it serves that digest.
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")
_DOCKER_TIMEOUT_SECONDS = 1800  # a first pull or push of a database image over a slow link
M = TypeVar("M", bound=BaseModel)


class Action(StrEnum):
    COPY = "copy"
    """Copy into the project registry and pin the copy's digest."""
    PIN = "pin in place"
    """Pin the digest at the image's own registry (the in-cluster registry's image)."""
    SKIP = "skip"
    """The stack does not run this image."""


@dataclass(frozen=True)
class MirrorStep:
    stack: str
    key: str
    """The config value it pins, e.g. `shipsafe:postgres.image`."""
    action: Action
    source: str
    """The stack file's value before the run."""
    destination: str | None = None
    """`<repository>:<tag>` the digest is pinned on; None when skipped."""
    pinned: str | None = None
    """The reference written (`<destination>@sha256:<digest>`); None when skipped or in a dry run."""
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.pinned is not None and self.pinned != self.source


class ImageCopier(Protocol):
    def copy(self, source: str, destination: str) -> str:
        """Push `source` as `destination` (`<repository>:<tag>`); returns the digest the registry stores."""
        ...

    def resolve(self, source: str) -> str:
        """The digest `source`'s own registry serves for it."""
        ...


@dataclass(frozen=True)
class _Ref:
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str, key: str) -> _Ref:
        match = IMAGE_REF.match(reference)
        if not match:
            raise ShipsafeError(
                f"{key} = {reference!r} is not an image reference <registry>/<repository>:<tag>[@sha256:<digest>]"
            )
        return cls(match.group("repository"), match.group("tag"), match.group("digest"))

    @property
    def exact(self) -> str:
        """What docker should fetch: by digest when pinned (the tag then only documents it)."""
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


class DockerCopier:
    """Copies with the docker CLI: the local copy when present (e.g. a stand-in), else pulled, then pushed."""

    def __init__(self) -> None:
        if shutil.which("docker") is None:
            raise ShipsafeError("mirror needs the docker CLI on PATH (and a running Docker engine)")

    def copy(self, source: str, destination: str) -> str:
        exact = _Ref.parse(source, source).exact
        if self._run("image", "inspect", exact, check=False).returncode != 0:
            self._run("pull", exact)
        self._run("tag", exact, destination)
        pushed = self._run("push", destination).stdout
        digests = _PUSHED_DIGEST.findall(pushed)
        if not digests:
            raise ShipsafeError(f"docker push {destination} printed no manifest digest:\n{pushed[-2000:]}")
        return str(digests[-1])

    def resolve(self, source: str) -> str:
        ref = _Ref.parse(source, source)
        self._run("pull", ref.exact)  # the registry's digest, never the local copy's
        listed = self._run("image", "inspect", "--format", "{{json .RepoDigests}}", ref.exact).stdout
        for repo_digest in json.loads(listed) or []:
            repository, _, digest = str(repo_digest).partition("@")
            if _familiar(repository) == _familiar(ref.repository) and (ref.digest in (None, digest)):
                return digest
        raise ShipsafeError(f"docker reports no digest of {source} from its registry (RepoDigests: {listed.strip()})")

    @staticmethod
    def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=_DOCKER_TIMEOUT_SECONDS)
        if check and result.returncode != 0:
            command = " ".join(["docker", *args])
            raise ShipsafeError(f"{command} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return result


def _familiar(repository: str) -> str:
    """docker's short form: RepoDigests name Docker Hub's `docker.io/library/redis` as `redis`."""
    for hub_prefix in ("docker.io/library/", "docker.io/"):
        if repository.startswith(hub_prefix):
            return repository.removeprefix(hub_prefix)
    return repository


def mirror_images(
    project_dir: Path,
    stacks: Sequence[str] = (),
    *,
    prefix: str | None = None,
    dry_run: bool = False,
    copier: ImageCopier | None = None,
) -> list[MirrorStep]:
    """Mirror and pin the third-party images of `stacks` (default: every `Pulumi.<stack>.yaml`).

    `prefix` is the path under `registry.server` the copies go to (default: `<repository's parent>/mirror`).
    A dry run only plans: no docker call, no file written.
    """
    selected = list(stacks) or stack_names(project_dir)
    if not selected:
        raise ShipsafeError(f"no Pulumi.<stack>.yaml in {project_dir}")
    plans = {stack: _plan(project_dir, stack, prefix) for stack in selected}
    if dry_run:
        return [step for steps in plans.values() for step in steps]
    docker = copier or DockerCopier()
    done: dict[tuple[Action, str, str | None], str] = {}  # one copy per image, however many stacks share it
    results = []
    for stack, steps in plans.items():
        pinned = [_pin(step, docker, done) for step in steps]
        _write_pins(project_dir / f"Pulumi.{stack}.yaml", pinned)
        results += pinned
    return results


def _plan(project_dir: Path, stack: str, prefix: str | None) -> list[MirrorStep]:
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(project_dir)) or "none"
        raise ShipsafeError(f"no stack file {path.name} (stacks with a file: {known})")
    config = stack_document(path).get("config") or {}
    registry = _section(config, "registry", RegistrySettings, path)
    folder = prefix or _default_prefix(registry.repository)
    if not re.fullmatch(r"[a-z0-9._-]+(/[a-z0-9._-]+)*", folder):
        raise ShipsafeError(f"--prefix {folder!r} must be a registry path: lowercase letters, digits, . _ - and /")
    steps = []
    for role in ("postgres", "redis"):
        given = f"{CONFIG_NAMESPACE}:{role}" in config
        model = SERVICE_MODELS[role]
        service = _section(config, role, model, path) if given else model()
        key = f"{CONFIG_NAMESPACE}:{role}.image"
        if service.image is None:  # only an in-cluster server has an image (mode none or external: none to mirror)
            continue
        source = _Ref.parse(service.image, key)
        name = source.repository.rsplit("/", 1)[-1]
        destination = f"{registry.server}/{folder}/{name}:{source.tag}"
        steps.append(MirrorStep(stack, key, Action.COPY, service.image, destination))
    key = f"{CONFIG_NAMESPACE}:registry.image"
    if registry.mode is RegistryMode.EXTERNAL:
        steps.append(MirrorStep(stack, key, Action.SKIP, registry.image, note="registry.mode is external"))
    else:
        source = _Ref.parse(registry.image, key)
        if source.tag is None:
            raise ShipsafeError(f"{key} = {registry.image!r} needs a version tag to pin, e.g. registry:2.8.3")
        note = "the in-cluster registry cannot serve its own image"
        steps.append(MirrorStep(stack, key, Action.PIN, registry.image, f"{source.repository}:{source.tag}", note=note))
    return steps


def _default_prefix(repository: str) -> str:
    parent = repository.rpartition("/")[0]
    return f"{parent}/{MIRROR_FOLDER}" if parent else MIRROR_FOLDER


def _service_model(role: str) -> type[BackingService]:
    """The backing service's settings model, as the program validates it (Postgres's takes maxConnections)."""
    model = Settings.model_fields[role].annotation
    assert isinstance(model, type) and issubclass(model, BackingService), model
    return model


SERVICE_MODELS = {role: _service_model(role) for role in ("postgres", "redis")}


def _section(config: dict[str, Any], name: str, model: type[M], path: Path) -> M:
    key = f"{CONFIG_NAMESPACE}:{name}"
    if key not in config:
        raise ShipsafeError(f"{path.name}: {key} is missing")
    try:
        return model.model_validate(config[key])
    except ValidationError as error:
        raise ShipsafeError(f"{path.name}: {key} is invalid: {error}") from None


def _pin(step: MirrorStep, docker: ImageCopier, done: dict[tuple[Action, str, str | None], str]) -> MirrorStep:
    if step.action is Action.SKIP or step.destination is None:
        return step
    source = _Ref.parse(step.source, step.key).exact
    job = (step.action, source, step.destination)
    if job not in done:
        if step.action is Action.COPY:
            done[job] = docker.copy(step.source, step.destination)
        else:
            done[job] = docker.resolve(step.source)
    pinned = f"{step.destination}@{done[job]}"
    return MirrorStep(step.stack, step.key, step.action, step.source, step.destination, pinned, step.note)


def _write_pins(path: Path, steps: Sequence[MirrorStep]) -> None:
    text = original = path.read_text()
    for step in steps:
        if step.changed and step.pinned is not None:
            section, field = step.key.removeprefix(f"{CONFIG_NAMESPACE}:").split(".")
            text = set_config_value(text, f"{CONFIG_NAMESPACE}:{section}", field, step.pinned)
    if text != original:
        _check_still_valid(path.name, text, steps)
        path.write_text(text)


def _check_still_valid(name: str, text: str, steps: Sequence[MirrorStep]) -> None:
    """The stack program must accept what is written (the settings model is the contract, not this module)."""
    config = (yaml.safe_load(text) or {}).get("config") or {}
    for step in steps:
        section = step.key.removeprefix(f"{CONFIG_NAMESPACE}:").split(".")[0]
        model: type[BaseModel] = SERVICE_MODELS.get(section, RegistrySettings)
        try:
            model.model_validate(config[f"{CONFIG_NAMESPACE}:{section}"])
        except ValidationError as error:
            raise ShipsafeError(f"{name}: refusing to write {step.key} = {step.pinned!r}: {error}") from None


def set_config_value(text: str, section: str, field: str, value: str) -> str:
    """`text` with `<section>.<field>` under `config:` set to the plain scalar `value`, everything else untouched.

    Replaces the old value's characters only (keeping a quoted value quoted), or adds `field` as the first key of
    a block mapping `section`; comments, order, flow lists and blank lines stay byte for byte.
    """
    mapping = _mapping_node(_mapping_node(yaml.compose(text), "config"), section)
    for key_node, value_node in mapping.value:
        if key_node.value == field:
            if not isinstance(value_node, yaml.ScalarNode):
                raise ShipsafeError(f"config {section}.{field} must be a string, not a {value_node.id}")
            start, end = value_node.start_mark.index, value_node.end_mark.index
            quote = value_node.style if value_node.style in ("'", '"') else ""
            return text[:start] + quote + value + quote + text[end:]
    if mapping.flow_style or not mapping.value:
        raise ShipsafeError(f"config {section} must be a block mapping to add {field} to it")
    first_key = mapping.value[0][0].start_mark
    line_start = first_key.index - first_key.column
    return text[:line_start] + " " * first_key.column + f"{field}: {value}\n" + text[line_start:]


def _mapping_node(node: yaml.Node | None, key: str) -> yaml.MappingNode:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key and isinstance(value_node, yaml.MappingNode):
                return value_node
    raise ShipsafeError(f"the stack file has no mapping {key!r} to pin an image in")


# ── the command ──────────────────────────────────────────────────────────────────────────────────────────────────

pass_deploy = click.make_pass_decorator(DeployContext)


@click.command("mirror")
@click.option("--stack", "stacks", multiple=True, help="Stack to mirror (repeatable; default: every stack file).")
@click.option("--prefix", help="Path under registry.server for the copies (default: <repository's parent>/mirror).")
@click.option("--dry-run", is_flag=True, help="Show what would be copied and pinned; run no docker, write nothing.")
@pass_deploy
def mirror_command(deploy: DeployContext, stacks: tuple[str, ...], prefix: str | None, dry_run: bool) -> None:
    """Copy the third-party images (Postgres, Redis) into the project registry and pin their digests.

    Needs `docker login <registry.server>` first. An in-cluster registry's own image is pinned where it is.
    """
    for step in mirror_images(deploy.project_dir, stacks, prefix=prefix, dry_run=dry_run):
        deploy.console.print(_describe(step, dry_run), highlight=False, soft_wrap=True)
    if dry_run:
        deploy.console.print("dry run: nothing copied, no stack file changed")


def _describe(step: MirrorStep, dry_run: bool) -> str:
    where = f"{step.stack} {step.key}"
    if step.action is Action.SKIP:
        return f"{where}: skipped ({step.note})"
    if dry_run:
        verb = "would copy" if step.action is Action.COPY else "would pin in place"
        return f"{where}: {verb} {escape(step.source)} -> {escape(str(step.destination))}@sha256:<digest>"
    state = "updated" if step.changed else "unchanged"
    return f"{where}: {state} {escape(str(step.pinned))}"
