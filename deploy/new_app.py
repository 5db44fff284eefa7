"""`shipsafe new DIRECTORY`: an app repository that deploys with the installed shipsafe, as `pulumi new` makes one.

The files come from `deploy/app_template` (shipped in the wheel): a Pulumi project whose program is the installed
`components.program`, a first stack file holding the app's contract (port, probe paths, image), its policy config,
and a policy pack directory serving the installed pack. Everything is rendered and validated as `shipsafe config
validate` would before one file is written; an existing file is never overwritten.
"""

from __future__ import annotations

import json
import re
import string
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deploy.errors import ExitCode, ShipsafeError
from deploy.new_stack import STACK_NAME
from deploy.offline.commands import config_problems
from deploy.version import VERSION

TEMPLATE_SUFFIX = ".tmpl"
STACK_PLACEHOLDER = "STACK"
RENAMED = {"gitignore": ".gitignore", "dockerignore": ".dockerignore"}
"""Template files stored under another name: a `.gitignore` in the package would hide the template from git."""
DOCKERIGNORE = ".dockerignore"
"""Written only when the app builds from the repository's root (`--build-context .`): the Pulumi project's own files
(its requirements.txt above all, which would make any app look like a Python build) stay out of the image."""
# Kubernetes' DNS-1123 label (`apimachinery/pkg/util/validation/validation.go` `IsDNS1123Label`): the app's name
# prefixes every object name and is the Pulumi project's name.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class AppOptions:
    """What `shipsafe new` takes; each field is one option (`OPTION_OF_KEY` names it in refusals)."""

    name: str
    stack: str
    host: str
    registry: str
    """`<server>/<repository>`: where the app's image is pushed (the policy config trusts exactly this prefix)."""
    port: int = 8080
    liveness_path: str = "/healthz"
    readiness_path: str = "/readyz"
    metrics_path: str = "/metrics"
    public_paths: tuple[str, ...] = ()
    verification_url: str = "http://prometheus-operated.monitoring.svc:9090"
    image_source: str = "build"
    image_ref: str | None = None
    build_context: str = "."
    dockerfile: str | None = None
    build_target: str | None = None
    run_as_user: int = 10001
    environment: str = "staging"


OPTION_OF_KEY = {
    "shipsafe:app.name": "--name",
    "shipsafe:app.namespace": "--name",
    "shipsafe:app.host": "--host",
    "shipsafe:app.port": "--port",
    "shipsafe:app.livenessPath": "--liveness-path",
    "shipsafe:app.readinessPath": "--readiness-path",
    "shipsafe:app.metricsPath": "--metrics-path",
    "shipsafe:app.publicPaths": "--public-path",
    "shipsafe:app.buildContext": "--build-context",
    "shipsafe:app.dockerfile": "--dockerfile",
    "shipsafe:app.buildTarget": "--build-target",
    "shipsafe:app.runAsUser": "--run-as-user",
    "shipsafe:imageSource": "--image-source",
    "shipsafe:imageRef": "--image-ref",
    "shipsafe:environment": "--environment",
    "shipsafe:verification.prometheusUrl": "--prometheus-url",
    "shipsafe:registry.server": "--registry",
    "shipsafe:registry.repository": "--registry",
}
"""The stack file key each option becomes: a refusal of the key is a refusal of the option."""


def _quoted(value: str) -> str:
    """A YAML scalar that stays the string typed (JSON is YAML): `/` or `8080` never change type."""
    return json.dumps(value)


def _values(options: AppOptions) -> dict[str, str]:
    server, _, repository = options.registry.partition("/")
    image_lines = f"  shipsafe:imageRef: {_quoted(options.image_ref)}\n" if options.image_ref is not None else ""
    build = [f"    buildContext: {_quoted(options.build_context)}"]
    if options.dockerfile is not None:
        build.append(f"    dockerfile: {_quoted(options.dockerfile)}")
    # None: the Dockerfile's last stage (`AppSettings.build_target`), written out so the default stage name of the
    # notes app never applies to another app's Dockerfile.
    build.append(f"    buildTarget: {_quoted(options.build_target) if options.build_target else 'null'}")
    return {
        "name": options.name,
        "namespace": options.name,
        "stack": options.stack,
        "environment": options.environment,
        "host": _quoted(options.host),
        "port": str(options.port),
        "liveness_path": _quoted(options.liveness_path),
        "readiness_path": _quoted(options.readiness_path),
        "metrics_path": _quoted(options.metrics_path),
        "public_paths": ", ".join(_quoted(p) for p in options.public_paths),
        "run_as_user": str(options.run_as_user),
        "image_source": options.image_source,
        "image_lines": image_lines,
        "build_lines": "".join(f"{line}\n" for line in build),
        "registry_server": _quoted(server),
        "registry_repository": _quoted(repository),
        "registry_prefix": options.registry,
        "verification_url": _quoted(options.verification_url),
        "version": VERSION,
    }


def render(options: AppOptions) -> dict[Path, str]:
    """Each file of the app repository (a path relative to it) with its text."""
    values = _values(options)
    root = resources.files("deploy") / "app_template"
    files: dict[Path, str] = {}
    pending = [(root, Path())]
    while pending:
        directory, relative = pending.pop()
        for entry in directory.iterdir():
            if entry.is_dir():
                pending.append((entry, relative / entry.name))
            elif entry.name.endswith(TEMPLATE_SUFFIX):
                name = entry.name.removesuffix(TEMPLATE_SUFFIX).replace(STACK_PLACEHOLDER, options.stack)
                files[relative / RENAMED.get(name, name)] = string.Template(entry.read_text()).substitute(values)
    if options.build_context not in (".", "./"):
        del files[Path(DOCKERIGNORE)]
    return files


def _option_problems(options: AppOptions) -> list[str]:
    """What the stack file cannot even hold: refused by option before the settings are checked."""
    problems = []
    if not DNS_LABEL.fullmatch(options.name):
        problems.append(
            f"--name {options.name!r}: the app's name must be a DNS label (at most 63 lowercase letters, digits "
            "or '-', starting and ending with a letter or digit); it names the project and every object"
        )
    if not STACK_NAME.fullmatch(options.stack):
        problems.append(f"--stack {options.stack!r}: at most 100 letters, digits, '-', '_' or '.'")
    server, _, repository = options.registry.partition("/")
    if not server or not repository:
        problems.append(
            f"--registry {options.registry!r}: give SERVER/REPOSITORY, e.g. registry.example.com/team/{options.name}"
        )
    return problems


def _by_option(problem: str) -> str:
    """`shipsafe:app.port = 70000: ...` -> `--port: shipsafe:app.port = 70000: ...`: the options that set the keys
    a problem names, in the order it names them."""
    named = sorted((problem.find(key), option) for key, option in OPTION_OF_KEY.items() if key in problem)
    options = list(dict.fromkeys(option for _, option in named))
    return f"{', '.join(options)}: {problem}" if options else problem


def validate(options: AppOptions) -> dict[Path, str]:
    """The rendered files, once the stack they describe passes `shipsafe config validate`; ShipsafeError (usage)
    naming each refused option otherwise."""
    problems = _option_problems(options)
    if problems:
        raise ShipsafeError("shipsafe new refused:\n" + "\n".join(f"  - {p}" for p in problems), ExitCode.USAGE)
    files = render(options)
    with tempfile.TemporaryDirectory(prefix="shipsafe-new-") as scratch:
        write(Path(scratch), files)
        problems = [_by_option(p) for p in config_problems(Path(scratch), options.stack)]
    if problems:
        raise ShipsafeError("shipsafe new refused:\n" + "\n".join(f"  - {p}" for p in problems), ExitCode.USAGE)
    return files


def existing(directory: Path, files: Mapping[Path, str]) -> list[Path]:
    return sorted(path for path in files if (directory / path).exists())


def write(directory: Path, files: Mapping[Path, str]) -> None:
    for path, text in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text)


def new_app(directory: Path, options: AppOptions) -> list[Path]:
    """Writes the app repository's files into `directory` (made if missing) and returns them; refuses, writing
    nothing, when an option is refused or any of the files exists already."""
    files = validate(options)
    clashes = existing(directory, files)
    if clashes:
        names = ", ".join(str(directory / path) for path in clashes)
        raise ShipsafeError(f"shipsafe new overwrites nothing, and these exist: {names}", ExitCode.USAGE)
    write(directory, files)
    return sorted(files)
