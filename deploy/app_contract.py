"""What the project can know about the app, checked against the stack before anything is created.

- The port: `shipsafe:app.port` against the Dockerfile's `EXPOSE` (when the stack builds, the Dockerfile is
  known; a prebuilt image's port is not in the project, so there only the image's own metadata could say it).
- The probe paths: `shipsafe:app.livenessPath` / `readinessPath` against the URL the Dockerfile's `HEALTHCHECK`
  requests, and against the app's contract file (`shipsafe-app.yaml` in the build context, docs/app-contract.md)
  when the app ships one.
- A migration present in one stack of an app and missing in another (every `Pulumi.<stack>.yaml` of the project,
  grouped by `shipsafe:app.name`): the stack without it would start new code on an old schema.

`shipsafe config validate`, the offline preview and `make policy-check` (which runs it) refuse each with the keys
named. The Dockerfile is read as the pack reads it (`shipsafe_policies/dockerfiles.py` `load_build`: build args'
defaults applied, the stage `buildTarget` names and the stages it is built FROM).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import SplitResult, urlsplit

from components.config_keys import CONFIG_NAMESPACE
from components.settings import ConfigError, ImageSource, Settings, settings_from_config
from deploy.policy_link import pack_registry
from harness.local_files import LocalFileError, load_yaml
from harness.stack_config import StackFileError, engine_config, read_stack_config, stack_names

CONTRACT_FILE = "shipsafe-app.yaml"
"""The app's own statement of its port and probe paths, at the top of its build context (optional)."""
CONTRACT_KEYS = {"port": "app.port", "livenessPath": "app.livenessPath", "readinessPath": "app.readinessPath"}
"""Each key the contract file may declare, and the stack setting it must equal."""
_URL = re.compile(r"https?://[^\s'\"`|;&)]+")
"""A URL in a HEALTHCHECK command: it ends where the shell word (or the string literal) does."""
_QUOTED_PATH = re.compile(r"['\"](/[^'\"\s]*)['\"]")
"""A string literal that is a path, as a URL built by concatenation ends with."""
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")
"""`${NAME}`, `${NAME:-default}` / `${NAME-default}` and `$NAME`, as the Dockerfile frontend expands them."""


def _key(path: str) -> str:
    return f"{CONFIG_NAMESPACE}:{path}"


def _docker() -> ModuleType:
    pack_registry()
    return importlib.import_module("shipsafe_policies.dockerfiles")


def _build(settings: Settings, project_dir: Path) -> Any:
    """The Dockerfile stages the stack builds, read as the pack reads the image resource's inputs
    (`components/image.py` passes context, dockerfile and target, no build args)."""
    app = settings.app
    build = {"context": app.build_context, "dockerfile": app.dockerfile_path, "target": app.build_target}
    image = SimpleNamespace(resource_type="docker:index/image:Image", props={"build": build})
    return _docker().load_build(image, {"projectDir": str(project_dir.resolve())})


def _expand(word: str, values: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        return values.get(name) or match.group(2) or ""

    return _VARIABLE.sub(value, word)


def _exposed_ports(build: Any) -> list[int]:
    """The ports the final stage (with the stages it is built FROM) EXPOSEs; `8080/tcp` counts as 8080, and
    `${PORT}` is the default of the stage's `ARG PORT` (a global ARG's default only once redeclared in the stage,
    as docker scopes it) or an `ENV PORT` of the stage or one it is built FROM. A port left to a build arg without
    a default is not known here and not compared."""
    global_defaults = dict(arg.value[0].partition("=")[::2] for arg in build.global_args)
    env: dict[str, str] = {}
    ports: set[int] = set()
    for stage in reversed(list(build.final.chain())):
        args: dict[str, str] = {}
        for command in stage.commands:
            if command.cmd == "ARG":
                name, given, default = command.value[0].partition("=")
                args[name] = default if given else global_defaults.get(name, "")
            elif command.cmd == "ENV":
                env.update(zip(command.value[::2], command.value[1::2], strict=False))
            elif command.cmd == "EXPOSE":
                # `8080/udp` is not the HTTP port the probes reach; `8080` and `8080/tcp` are.
                expanded = (_expand(word, {**env, **args}).partition("/") for word in command.value)
                ports.update(int(port) for port, _, protocol in expanded if port.isdigit() and protocol in ("", "tcp"))
    return sorted(ports)


def _dockerfile_problems(settings: Settings, project_dir: Path) -> Iterator[str]:
    docker = _docker()
    try:
        build = _build(settings, project_dir)
    except docker.DockerfileError:
        return  # the pack's docker-* rules report an unreadable Dockerfile
    app, shown = settings.app, settings.app.dockerfile_path
    ports = _exposed_ports(build)
    if ports and app.port not in ports:
        exposed = ", ".join(map(str, ports))
        yield (
            f"{_key('app.port')} = {app.port}, but {shown} EXPOSEs {exposed}: set {_key('app.port')} to the port "
            f"the app listens on, or EXPOSE {app.port} in the Dockerfile"
        )
    check = build.final.last("HEALTHCHECK")
    text = " ".join(map(str, check.value)) if check is not None else ""
    for match in _URL.finditer(text):
        url = urlsplit(match.group())
        if not url.path:  # built by concatenation (`'http://127.0.0.1:' + port + '/healthz'`): its path comes later
            quoted_path = _QUOTED_PATH.search(text, match.end())
            url = url._replace(netloc=url.netloc.rstrip(":"), path=quoted_path.group(1) if quoted_path else "")
        yield from _healthcheck_problems(shown, url, app)


def _healthcheck_problems(shown: str, url: SplitResult, app: Any) -> Iterator[str]:
    """The URL the image's HEALTHCHECK requests against the probes. Its path is what the app declares it serves for
    health: a probe path equal to it or below it (Spring Boot's `/actuator/health` and `/actuator/health/liveness`)
    agrees; `/` claims nothing."""
    path = url.path.rstrip("/")
    probes = (app.liveness_path, app.readiness_path)
    if path and not any(probe == path or probe.startswith(f"{path}/") for probe in probes):
        yield (
            f"{shown} HEALTHCHECK requests {url.path}, but {_key('app.livenessPath')} = {app.liveness_path} "
            f"and {_key('app.readinessPath')} = {app.readiness_path}: the probes would ask for a path the app may "
            "not serve; set the probe path the app serves"
        )
    try:
        port = url.port
    except ValueError:  # not a number (`${PORT}` left unexpanded): nothing known to compare
        return
    if port is not None and port != app.port:
        yield f"{shown} HEALTHCHECK requests port {port}, but {_key('app.port')} = {app.port}"


def _contract_problems(settings: Settings, project_dir: Path, context: str | None = None) -> Iterator[str]:
    """The settings against the contract file in `context` (default: the stack's own build context)."""
    context = settings.app.build_context if context is None else context
    path = project_dir / context / CONTRACT_FILE
    if not path.is_file():
        return
    shown = f"{context}/{CONTRACT_FILE}"
    try:
        declared = load_yaml(path)
    except LocalFileError as error:
        yield str(error)
        return
    if not isinstance(declared, dict):
        yield f"{shown}: must be a mapping of {', '.join(CONTRACT_KEYS)}"
        return
    stack = settings.app.model_dump(by_alias=True)
    for name, value in declared.items():
        if name not in CONTRACT_KEYS:
            yield f"{shown}: unknown key {name!r}; the contract declares {', '.join(CONTRACT_KEYS)}"
        elif value != stack[CONTRACT_KEYS[name].removeprefix("app.")]:
            setting = CONTRACT_KEYS[name]
            given = stack[setting.removeprefix("app.")]
            yield f"{_key(setting)} = {given}, but {shown} declares {name}: {value} (what the app serves)"


def _migrations(project_dir: Path) -> dict[str, dict[str, bool]]:
    """App name -> stack -> whether that stack runs a migration (`shipsafe:migration.command` set)."""
    apps: dict[str, dict[str, bool]] = {}
    for stack in stack_names(project_dir):
        try:
            _, values = read_stack_config(stack, project_dir)
        except StackFileError:
            continue  # that stack's own check names it
        app = values.get(_key("app"))
        migration = values.get(_key("migration"))
        name = app.get("name") if isinstance(app, Mapping) else None
        command = migration.get("command") if isinstance(migration, Mapping) else None
        apps.setdefault(str(name), {})[stack] = bool(command)
    return apps


def migration_problems(project_dir: Path, stack: str, settings: Settings) -> Iterator[str]:
    """A stack of this app whose migration presence differs from this stack's (named from this stack's side)."""
    others = _migrations(project_dir).get(settings.app.name, {})
    migrates = settings.migration.command is not None
    for other, other_migrates in sorted(others.items()):
        if other == stack or other_migrates == migrates:
            continue
        with_it, without = (stack, other) if migrates else (other, stack)
        yield (
            f"{_key('migration.command')} is set in Pulumi.{with_it}.yaml but not in Pulumi.{without}.yaml "
            f"(both deploy the app {settings.app.name}): {without} would run new code on an old schema; set it "
            f"in both or in neither"
        )


def problems(project_dir: Path, stack: str, settings: Settings) -> list[str]:
    """Everything the project knows that this stack's settings contradict."""
    found = list(migration_problems(project_dir, stack, settings))
    if settings.image_source is ImageSource.BUILD:
        found += image_problems(settings, project_dir)
    elif (context := _building_context(project_dir, settings.app.name)) is not None:
        # Build once, promote: this stack runs the image another stack of the app builds from that context.
        found += _contract_problems(settings, project_dir, context)
    # Otherwise the image is built with the app elsewhere: its code, Dockerfile and contract file live there, and
    # `shipsafe image check --dockerfile --context` holds the stack to them.
    return found


def _building_context(project_dir: Path, app: str) -> str | None:
    """The build context of a stack of this project that builds `app`'s image (`shipsafe:imageSource: build`)."""
    for stack in stack_names(project_dir):
        try:
            _, values = read_stack_config(stack, project_dir)
            config, secret_keys = engine_config(values)
            settings = settings_from_config(config, lambda key: key in secret_keys)  # noqa: B023
        except (StackFileError, ConfigError):
            continue  # that stack's own check names it
        if settings.app.name == app and settings.image_source is ImageSource.BUILD:
            return settings.app.build_context
    return None


def image_problems(settings: Settings, project_dir: Path) -> list[str]:
    """The settings against the app's build context (its contract file) and Dockerfile (`EXPOSE`, `HEALTHCHECK`):
    for a stack that builds, and for `shipsafe image check`, which checks a prebuilt app's Dockerfile this way."""
    return [*_contract_problems(settings, project_dir), *_dockerfile_problems(settings, project_dir)]
