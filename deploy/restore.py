"""The stack config a rollback restores: an update's recorded non-secret `shipsafe:` settings.

Pulumi records the config each update ran with (`pulumi stack history --json`, pulumi/pulumi
`pkg/cmd/pulumi/stack/stack_history.go` `buildUpdatesJSON`): every key, objects as their JSON text, and a secret
(or an object holding one) with `secret: true` and no value unless `--show-secrets`. The Automation API turns that
missing value into the sentinel `[secret]` (pulumi 3.272 `automation/_stack.py` `UpdateSummary.__init__`), and
the deploy tool reads history with `show_secrets=False` (`deploy/automation.py`). So secrets are never restored:
they keep whatever the stack holds now. Only the program's own namespace is restored; other namespaces (e.g.
`kubernetes:context`) say where and how to deploy, not what runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.config_keys import CONFIG_NAMESPACE, SECRET_KEYS
from components.settings import settings_from_config
from components.timeline import DeployTimeline, deploy_timeline
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import ROLLBACK

SECRET_SENTINEL = "[secret]"
_PREFIX = f"{CONFIG_NAMESPACE}:"


def is_secret_key(key: str) -> bool:
    """The program reads these with `require_secret` and refuses them in plain text (`components/config_keys.py`)."""
    return key.removeprefix(_PREFIX) in SECRET_KEYS


def _restorable(key: str, value: str) -> bool:
    return key.startswith(_PREFIX) and not is_secret_key(key) and value != SECRET_SENTINEL


def _settings(config: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in config.items() if _restorable(key, value)}


def canonical(value: str) -> object:
    """A config value as data: objects and lists compare by content, not by how their JSON text was spaced."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, dict | list) else value


def fingerprint(config: Mapping[str, str]) -> str:
    """Identifies a config's non-secret settings (the rollback flag aside): 12 hex characters."""
    settings = {key: canonical(value) for key, value in _settings(config).items() if key != ROLLBACK}
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ConfigChange:
    path: str
    """`shipsafe:workloads.web.replicas`: the changed leaf, not the whole object."""
    before: object
    after: object

    def describe(self) -> str:
        return f"{self.path}: {_shown(self.before)} -> {_shown(self.after)}"


_UNSET = object()


def _shown(value: object) -> str:
    return "(unset)" if value is _UNSET else json.dumps(value) if not isinstance(value, str) else value


def _leaves(value: object, path: str) -> dict[str, object]:
    if isinstance(value, dict) and value:
        leaves: dict[str, object] = {}
        for key, child in value.items():
            leaves.update(_leaves(child, f"{path}.{key}"))
        return leaves
    return {path: value}


def config_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[ConfigChange]:
    """What differs between two configs' non-secret settings, leaf by leaf (a secret on either side is skipped)."""
    hidden = {key for config in (before, after) for key, value in config.items() if not _restorable(key, value)}
    old: dict[str, object] = {}
    new: dict[str, object] = {}
    for key in set(before) | set(after):
        if key.startswith(_PREFIX) and key not in hidden:
            if key in before:
                old.update(_leaves(canonical(before[key]), key))
            if key in after:
                new.update(_leaves(canonical(after[key]), key))
    return [
        ConfigChange(path, old.get(path, _UNSET), new.get(path, _UNSET))
        for path in sorted(set(old) | set(new))
        if old.get(path, _UNSET) != new.get(path, _UNSET)
    ]


@dataclass(frozen=True)
class RestoredConfig:
    set_values: dict[str, str]
    removed: list[str]
    config: dict[str, str]
    """The whole stack config once restored: today's secrets and other namespaces kept."""


def restore_settings(current: Mapping[str, str], recorded: Mapping[str, str]) -> RestoredConfig:
    """Today's config with the recorded update's non-secret settings, and `rollback=true` (no migration Job).

    A setting the update did not have is removed (its default applies again); a secret stays as the stack holds it.
    """
    wanted = {**_settings(recorded), ROLLBACK: "true"}
    set_values = {key: value for key, value in wanted.items() if current.get(key) != value}
    removed = sorted(key for key, value in current.items() if _restorable(key, value) and key not in recorded)
    config = {key: value for key, value in current.items() if key not in removed} | set_values
    return RestoredConfig(set_values, removed, config)


def with_release(current: Mapping[str, str], release: Mapping[str, str]) -> RestoredConfig:
    """`--image-only`: today's config with only the release keys changed."""
    set_values = {key: value for key, value in release.items() if current.get(key) != value}
    return RestoredConfig(set_values, [], {**current, **release})


def check_settings(config: Mapping[str, str]) -> DeployTimeline:
    """Validates a config as the program will on `up` (its settings model, then its await timeline, which
    `__main__.py` derives before registering anything); raises ConfigError naming each refused key."""
    return deploy_timeline(settings_from_config(config, is_secret_key))


def rendered_diff(project_dir: Path, stack: str, before: Mapping[str, str], after: Mapping[str, str]) -> str:
    """The diff of the Kubernetes objects both configs render to (per object, helm-diff's shape), offline (the
    program under the harness's mock runtime, secrets as placeholders), with the stack file's other values."""
    from deploy.offline.diff import diff_renders  # the offline harness is only needed for a dry run
    from harness.manifests import render
    from harness.runtime import ProgramFailed, run_stack
    from harness.stack_config import StackFileError

    hidden = {key for config in (before, after) for key, value in config.items() if not _restorable(key, value)}
    keys = {key for config in (before, after) for key in config if key.startswith(_PREFIX)} - hidden

    def rendered(config: Mapping[str, str], label: str) -> str:
        overrides = {key: canonical(config[key]) if key in config else None for key in sorted(keys)}
        try:
            return render(run_stack(stack, config_overrides=overrides, project_dir=project_dir))
        except (ProgramFailed, StackFileError) as error:
            raise ShipsafeError(f"cannot render {label} offline: {error}", ExitCode.FAILED) from None

    old, new = rendered(before, "the config now"), rendered(after, "the restored config")
    return diff_renders(old, new)
