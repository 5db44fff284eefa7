"""`deploy init`: creates the project's stacks (idempotently) with the secrets provider each stack file names.

`secretsprovider:` in `Pulumi.<stack>.yaml` is Pulumi's own key for it. Without one, `pulumi stack init` uses
the backend's default: Pulumi Cloud encrypts with its own per-stack key; a self-managed backend (file://, s3://,
gs://, azblob://) falls back to a passphrase, which `pulumi` reads from PULUMI_CONFIG_PASSPHRASE or
PULUMI_CONFIG_PASSPHRASE_FILE and otherwise fails non-interactively (pulumi/pulumi
`pkg/secrets/passphrase/manager.go`: "passphrase must be set with PULUMI_CONFIG_PASSPHRASE or
PULUMI_CONFIG_PASSPHRASE_FILE environment variables"; an empty passphrase is valid). Checking that here turns
the CLI's late error into one message before any stack is created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.errors import ExitCode, ShipsafeError
from deploy.stack_file import stack_document
from harness.stack_config import stack_names

PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
SERVICE_BACKEND_SCHEME = "https://"  # Pulumi Cloud (or a self-hosted Pulumi Cloud); everything else is self-managed

StackCreator = Callable[[str, str | None], bool]
"""Creates stack `name` with a secrets provider (None: the backend's default), or leaves an existing one as it
is; returns whether it created the stack."""


@dataclass(frozen=True)
class StackInit:
    name: str
    secrets_provider: str | None
    created: bool


def secrets_provider_of(project_dir: Path, stack: str) -> str | None:
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(project_dir)) or "none"
        raise ShipsafeError(f"no stack file {path.name} (stacks with a file: {known})", ExitCode.FAILED)
    document = stack_document(path)
    provider = document.get("secretsprovider")
    return str(provider) if provider else None


def stack_of_environment(project_dir: Path, environment: str, option: str) -> str:
    """The one stack whose file sets `<project>:environment` to `environment` (promote's default source and target);
    refused, naming `option`, when no stack or several do, since guessing would deploy the wrong one."""
    project = stack_document(project_dir / "Pulumi.yaml").get("name")
    key = f"{project}:environment"
    matches = [name for name in stack_names(project_dir) if _config_of(project_dir, name).get(key) == environment]
    if len(matches) == 1:
        return matches[0]
    found = f"stacks {', '.join(matches)} all set" if matches else "no stack sets"
    raise ShipsafeError(f"{found} {key}: {environment}; name the stack with {option}", ExitCode.USAGE)


def _config_of(project_dir: Path, stack: str) -> dict[str, object]:
    config = stack_document(project_dir / f"Pulumi.{stack}.yaml").get("config")
    return config if isinstance(config, dict) else {}


def backend_url(project_dir: Path, environ: Mapping[str, str]) -> str | None:
    """The backend `pulumi` will use when it is pinned (env or Pulumi.yaml); None when it comes from `pulumi login`."""
    if environ.get("PULUMI_BACKEND_URL"):
        return environ["PULUMI_BACKEND_URL"]
    project = stack_document(project_dir / "Pulumi.yaml")
    url = (project.get("backend") or {}).get("url")
    return str(url) if url else None


def needs_passphrase(provider: str | None, backend: str | None) -> bool:
    if provider == "passphrase":
        return True
    backend_default = provider in (None, "default")
    return backend_default and backend is not None and not backend.startswith(SERVICE_BACKEND_SCHEME)


def init_stacks(
    project_dir: Path, names: list[str], create: StackCreator, environ: Mapping[str, str]
) -> list[StackInit]:
    """Checks every stack first (so nothing is half-initialised), then creates the missing ones."""
    names = names or stack_names(project_dir)
    if not names:
        raise ShipsafeError(f"no Pulumi.<stack>.yaml in {project_dir}: nothing to initialise", ExitCode.FAILED)
    providers = {name: secrets_provider_of(project_dir, name) for name in names}
    backend = backend_url(project_dir, environ)
    without = [
        name
        for name, provider in providers.items()
        if needs_passphrase(provider, backend) and not any(v in environ for v in PASSPHRASE_VARIABLES)
    ]
    if without:
        raise ShipsafeError(
            f"stacks {', '.join(without)} encrypt secrets with a passphrase (secretsprovider "
            f"{providers[without[0]] or 'default'} on backend {backend or 'of pulumi login'}): set "
            "PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) first, and keep it: every later "
            "command needs the same one",
            ExitCode.PREREQUISITES_MISSING,
        )
    return [StackInit(name, provider, create(name, provider)) for name, provider in providers.items()]
