"""An in-memory StackBackend: the stack contract (config in, outputs and history out) without Pulumi.

It behaves like the real program where the deploy tool can observe it: each update records the config
it ran with (secrets as the Automation API shows them without `show_secrets`: `[secret]`), outputs follow from
config, `shipsafe:rollback=true` skips the migration Job, and a failed update stays in history as `failed`.
Setting a secret key through `set_config` stores it in plain text, as `pulumi config set --plaintext` would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from deploy.backend import OnOutput, PolicyPack, PreviewSummary, StateResource, UpdateRecord
from deploy.errors import ExitCode, ShipsafeError

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "registry.example.com/shipsafe/notes"
VERIFICATION = (
    '{"prometheusUrl": "http://127.0.0.1:9090", "windowSeconds": 30, "intervalSeconds": 10,'
    ' "maxErrorRatio": 0.01, "maxP99LatencySeconds": 0.5, "minRequests": 50}'
)


def sha(n: int) -> str:
    """A distinct, valid 40-character git SHA per release number."""
    return hashlib.sha1(f"release-{n}".encode()).hexdigest()


def image(n: int) -> str:
    digest = hashlib.sha256(f"image-{n}".encode()).hexdigest()
    return f"{REGISTRY}:{sha(n)}@sha256:{digest}"


def committed_config(stack: str) -> dict[str, str]:
    """`Pulumi.<stack>.yaml` as a fresh checkout has it, in the string form `get_config` returns."""
    document = yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())
    return {key: _config_string(value) for key, value in document["config"].items()}


def cluster_shape(stack: str) -> dict[str, str]:
    """The committed settings that decide what the cluster must offer (what `deploy up` checks first)."""
    committed = committed_config(stack)
    return {key: committed[key] for key in CLUSTER_SHAPE_KEYS}


CLUSTER_SHAPE_KEYS = ("shipsafe:app", "shipsafe:registry", "shipsafe:postgres", "shipsafe:redis", "shipsafe:workloads")


def _config_string(value: object) -> str:
    """Like Pulumi: booleans lowercase, objects and lists as JSON, everything else as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass
class MemoryStack:
    name: str
    config: dict[str, str] = field(default_factory=dict)
    app_url: str = "http://127.0.0.1:1"
    fail_next_up: bool = False
    on_up: Callable[[Mapping[str, str]], None] | None = None
    """Called with the config of each successful update, e.g. to restart a real app process."""
    records: list[UpdateRecord] = field(default_factory=list)
    policy_runs: list[tuple[str, PolicyPack]] = field(default_factory=list)
    previewed_overlays: list[dict[str, str]] = field(default_factory=list)
    """The config each preview read on top of the stack's own (from a temporary copy of the stack file)."""
    migrations: list[str] = field(default_factory=list)
    secrets_provider: str | None = None
    """What `deploy init` created the stack with (None: the backend's default)."""
    secret_keys: set[str] = field(default_factory=set)
    """Keys held as `secure:` values; `get_config` shows them decrypted, like `get_all_config`."""
    state: list[StateResource] = field(default_factory=list)
    """What `resources()` reports the state holds; set by the tests that are about it."""
    _outputs: dict[str, object] = field(default_factory=dict)

    def get_config(self) -> dict[str, str]:
        return dict(self.config)

    def set_config(self, values: Mapping[str, str]) -> None:
        self.config.update(values)
        self.secret_keys -= set(values)

    def set_secret(self, key: str, value: str) -> None:
        self.config[key] = value
        self.secret_keys.add(key)

    def remove_config(self, keys: list[str]) -> None:
        for key in keys:
            self.config.pop(key, None)
            self.secret_keys.discard(key)

    def outputs(self) -> dict[str, object]:
        return dict(self._outputs)

    def resources(self) -> list[StateResource]:
        return list(self.state)

    def discard_local_config(self, committed: Mapping[str, str]) -> None:
        """A fresh CI checkout: local config is the committed file again; outputs and history stay deployed."""
        self.config = dict(committed)

    def history(self) -> list[UpdateRecord]:
        return sorted(self.records, key=lambda r: r.version, reverse=True)

    def preview(self, *, policy: PolicyPack, on_output: OnOutput, config_overlay: Mapping[str, str]) -> PreviewSummary:
        self.policy_runs.append(("preview", policy))
        self.previewed_overlays.append(dict(config_overlay))
        on_output(f"Previewing update ({self.name})")
        return PreviewSummary({"same": 20, "update": 2})

    def up(self, *, message: str, policy: PolicyPack, on_output: OnOutput) -> UpdateRecord:
        self.policy_runs.append(("up", policy))
        on_output(f"Updating ({self.name})")
        failed = self.fail_next_up
        self.fail_next_up = False
        record = UpdateRecord(
            version=len(self.records) + 1,
            kind="update",
            result="failed" if failed else "succeeded",
            start_time=datetime(2026, 11, 26, 9, 0, tzinfo=UTC) + timedelta(minutes=len(self.records)),
            message=message,
            config={key: SECRET if key in self.secret_keys else value for key, value in self.config.items()},
            environment={"git.author": "Dev Eloper", "exec.kind": "auto.local"},
        )
        self.records.append(record)
        if failed:
            raise ShipsafeError(
                f"pulumi failed on {self.name}: a Deployment did not become ready", ExitCode.PULUMI_FAILED
            )
        self._apply(self.config)
        return record

    def _apply(self, config: Mapping[str, str]) -> None:
        git_sha = config.get("shipsafe:gitSha", "")
        if config.get("shipsafe:imageSource") == "prebuilt":
            reference = config["shipsafe:imageRef"]
        else:  # stands in for pulumi-docker building and pushing the image
            reference = f"{REGISTRY}:{git_sha}@sha256:{hashlib.sha256(git_sha.encode()).hexdigest()}"
        rollback = config.get("shipsafe:rollback") == "true"
        job = None if rollback else f"notes-migrate-{git_sha[:12]}"
        if job:
            self.migrations.append(git_sha)
        self._outputs = {
            "namespace": f"notes-{self.name}",
            "imageRef": reference,
            "gitSha": git_sha,
            "appVersion": git_sha,
            "dirty": git_sha.endswith("-dirty"),
            "migrationJob": job,
            "workloads": ["notes-web", "notes-worker"],
            "appUrl": self.app_url,
        }
        if self.on_up:
            self.on_up(config)

    @classmethod
    def deployed(
        cls,
        name: str,
        releases: list[int],
        *,
        app_url: str = "http://127.0.0.1:1",
        on_up: Callable[[Mapping[str, str]], None] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> MemoryStack:
        """A stack that already went through `up` once per release number (all prebuilt, all succeeded), from the
        committed stack file with a local Prometheus to verify against, and `settings` on top. Every update
        records them: a whole-config rollback restores them too."""
        config = {**committed_config(name), "shipsafe:verification": VERIFICATION, **(settings or {})}
        stack = cls(name, config=config, app_url=app_url, on_up=on_up)
        for n in releases:
            stack.set_config(
                {
                    "shipsafe:imageSource": "prebuilt",
                    "shipsafe:imageRef": image(n),
                    "shipsafe:gitSha": sha(n),
                    "shipsafe:rollback": "false",
                }
            )
            stack.up(message=f"deploy {sha(n)[:12]}", policy=NO_POLICY, on_output=lambda _: None)
        stack.policy_runs.clear()
        return stack


# pulumi 3.272 `automation/_stack.py` `UpdateSummary`: a secret's value in history without `show_secrets`.
SECRET = "[secret]"
NO_POLICY = PolicyPack(Path("policy"), Path("policy/config/none.json"))


class MemoryStacks(dict[str, MemoryStack]):
    """The stack factory: selects a stack by name like `pulumi stack select`."""

    def __call__(self, name: str) -> MemoryStack:
        if name not in self:
            raise ShipsafeError(f"stack {name} does not exist", ExitCode.STACK_NOT_FOUND)
        return self[name]

    def create(self, name: str, secrets_provider: str | None) -> bool:
        """`pulumi stack init` (a StackCreator): an existing stack is left as it is, like the real adapter."""
        if name in self:
            return False
        self[name] = MemoryStack(name, secrets_provider=secrets_provider)
        return True
