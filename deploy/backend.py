"""The small interface between the deploy tool's decisions and Pulumi.

`deploy.automation` implements it on the Automation API; tests implement it in memory. Everything that
decides something (which version to roll back to, whether a promotion is allowed, what config a rollback
sets) talks only to this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

OnOutput = Callable[[str], None]
"""Receives each line the engine prints, for the progress display."""


@dataclass(frozen=True)
class PolicyPack:
    """A local policy pack directory and the per-stack config file passed next to it."""

    path: Path
    config: Path


@dataclass(frozen=True)
class UpdateRecord:
    """One entry of a stack's history, as Pulumi records it (newest entries come first in `history()`)."""

    version: int
    kind: str  # "update", "refresh", "destroy", ...
    result: str  # "succeeded", "failed", "in-progress"
    start_time: datetime
    message: str
    config: Mapping[str, str] = field(default_factory=dict)
    """The stack config the update ran with (flat `shipsafe:*` values as strings; secrets are masked)."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """Pulumi's update metadata: `git.author`, `git.head`, `ci.system`, `exec.kind`, ..."""


@dataclass(frozen=True)
class StateResource:
    """One resource of the stack's state (`pulumi stack export`, pulumi `apitype.ResourceV3`)."""

    urn: str
    type: str
    """The type token, e.g. `kubernetes:core/v1:Namespace`."""
    id: str
    """The provider's ID; pulumi-kubernetes uses `<namespace>/<name>`, or `<name>` for a cluster-scoped object."""
    pending_delete: bool = False
    """`delete: true`: an old copy the engine still has to delete."""
    external: bool = False
    """`external: true`: read with `get`, not created by the program."""


@dataclass(frozen=True)
class PreviewSummary:
    change_summary: Mapping[str, int]


class StackBackend(Protocol):
    """One selected stack of the shipsafe project."""

    @property
    def name(self) -> str: ...

    def get_config(self) -> dict[str, str]:
        """All config of the stack, keys with namespace (`shipsafe:imageRef`); objects as JSON strings."""
        ...

    def set_config(self, values: Mapping[str, str]) -> None:
        """Sets plaintext config values (never secrets: a rollback restores only non-secret settings)."""
        ...

    def remove_config(self, keys: list[str]) -> None:
        """Removes config keys, so their defaults apply again (a rollback to an update that did not set them)."""
        ...

    def outputs(self) -> dict[str, object]: ...

    def resources(self) -> list[StateResource]:
        """The resources the stack's state holds (empty before the first update)."""
        ...

    def history(self) -> list[UpdateRecord]:
        """Past updates, newest first."""
        ...

    def preview(self, *, policy: PolicyPack, on_output: OnOutput, config_overlay: Mapping[str, str]) -> PreviewSummary:
        """A preview with `config_overlay` on top of the stack's config, from a temporary copy of the stack file:
        the committed `Pulumi.<stack>.yaml` is never written."""
        ...

    def up(self, *, message: str, policy: PolicyPack, on_output: OnOutput) -> UpdateRecord:
        """Runs the update; raises `ShipsafeError` when it fails (the failed update stays in history)."""
        ...


StackFactory = Callable[[str], StackBackend]
"""Selects a stack by name (`staging`, `prod`)."""
