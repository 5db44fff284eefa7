"""The StackBackend on the Pulumi Automation API (a local program in the project directory).

Deliberately thin: it converts types and maps Automation API errors to exit codes, nothing more.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
from pulumi import automation as auto

from components.config_keys import CONFIG_NAMESPACE
from deploy.backend import OnOutput, PolicyPack, PreviewSummary, StateResource, UpdateRecord
from deploy.errors import ExitCode, ShipsafeError
from deploy.restore import SECRET_SENTINEL
from deploy.stack_file import overlaid_stack_file

T = TypeVar("T")


def _last_lines(error: auto.errors.CommandError, count: int = 15) -> str:
    return "\n".join(str(error).strip().splitlines()[-count:])


@contextmanager
def _pulumi_errors(stack: str) -> Iterator[None]:
    try:
        yield
    except auto.errors.StackNotFoundError as error:
        message = f"stack {stack} does not exist (create it with `pulumi stack init {stack}`)"
        raise ShipsafeError(message, ExitCode.STACK_NOT_FOUND) from error
    except auto.errors.ConcurrentUpdateError as error:
        message = f"another update of {stack} is in progress; retry when it has finished"
        raise ShipsafeError(message, ExitCode.CONCURRENT_UPDATE) from error
    except auto.errors.CommandError as error:
        message = f"pulumi failed on {stack}:\n{_last_lines(error)}"
        raise ShipsafeError(message, ExitCode.PULUMI_FAILED) from error


def _record(summary: auto.UpdateSummary) -> UpdateRecord:
    return UpdateRecord(
        version=summary.version or 0,
        kind=summary.kind,
        result=summary.result,
        start_time=summary.start_time,
        message=summary.message,
        config={key: value.value for key, value in summary.config.items()},
        environment=dict(summary.environment),
    )


class AutomationStack:
    def __init__(self, stack: auto.Stack) -> None:
        self._stack = stack
        short_name = stack.name.rsplit("/", 1)[-1]
        self._stack_file = Path(stack.workspace.work_dir or ".") / f"Pulumi.{short_name}.yaml"

    @property
    def name(self) -> str:
        return self._stack.name

    def _run(self, call: Callable[[], T]) -> T:
        with _pulumi_errors(self.name):
            return call()

    def get_config(self) -> dict[str, str]:
        # `get_all_config` decrypts (`pulumi config --show-secrets`, automation `_local_workspace.py`). The tool never
        # needs a shipsafe: secret's value (the program reads those itself), so they come back as the sentinel the
        # history shows, and nothing can print or restore them; provider config (`kubernetes:kubeconfig`) stays.
        config = self._run(self._stack.get_all_config)
        return {
            key: SECRET_SENTINEL if value.secret and key.startswith(f"{CONFIG_NAMESPACE}:") else value.value
            for key, value in config.items()
        }

    def set_config(self, values: Mapping[str, str]) -> None:
        config = {key: auto.ConfigValue(value=value, secret=False) for key, value in values.items()}
        self._run(lambda: self._stack.set_all_config(config))

    def remove_config(self, keys: list[str]) -> None:
        self._run(lambda: self._stack.remove_all_config(keys))

    def outputs(self) -> dict[str, object]:
        return {key: output.value for key, output in self._run(self._stack.outputs).items()}

    def resources(self) -> list[StateResource]:
        # `pulumi stack export` (automation `export_stack`); the fields are pulumi `apitype.ResourceV3`'s JSON names.
        deployment = self._run(self._stack.export_stack).deployment or {}
        return [
            StateResource(
                urn=str(resource.get("urn", "")),
                type=str(resource.get("type", "")),
                id=str(resource.get("id", "")),
                pending_delete=bool(resource.get("delete")),
                external=bool(resource.get("external")),
            )
            for resource in deployment.get("resources") or []
        ]

    def history(self) -> list[UpdateRecord]:
        # show_secrets=False: history is for display and decisions; secret config stays masked.
        return [_record(summary) for summary in self._run(lambda: self._stack.history(show_secrets=False))]

    def preview(self, *, policy: PolicyPack, on_output: OnOutput, config_overlay: Mapping[str, str]) -> PreviewSummary:
        with overlaid_stack_file(self._stack_file, config_overlay) as config_file:
            result = self._run(
                lambda: self._stack.preview(
                    policy_packs=[str(policy.path)],
                    policy_pack_configs=[str(policy.config)],
                    on_output=on_output,
                    color="never",
                    # `pulumi preview --config-file` (automation `_stack.py` `preview`): the stack's config read
                    # from this file instead of the committed one.
                    config_file=config_file,
                )
            )
        changes = result.change_summary.items()
        return PreviewSummary({str(getattr(op, "value", op)): count for op, count in changes})

    def up(self, *, message: str, policy: PolicyPack, on_output: OnOutput) -> UpdateRecord:
        result = self._run(
            lambda: self._stack.up(
                message=message,
                policy_packs=[str(policy.path)],
                policy_pack_configs=[str(policy.config)],
                on_output=on_output,
                color="never",
                show_secrets=False,
            )
        )
        return _record(result.summary)


def _without_the_cli() -> str:
    """What the running command can do instead: its own --offline when it has one, else the offline commands."""
    command = click.get_current_context(silent=True)
    if command is not None and any("--offline" in getattr(p, "opts", ()) for p in command.command.params):
        return "or use --offline"
    return "or work offline: `shipsafe preview STACK --offline`, `shipsafe render STACK`, `shipsafe diff STACK`"


def _require_cli() -> None:
    if shutil.which("pulumi") is None:
        raise ShipsafeError(
            f"no pulumi CLI on PATH: install it (https://www.pulumi.com/docs/install/) {_without_the_cli()}",
            ExitCode.PULUMI_MISSING,
        )


def open_stack(name: str, *, project_dir: Path) -> AutomationStack:
    """Selects an existing stack of the project in `project_dir` (backend from `pulumi login`)."""
    _require_cli()
    with _pulumi_errors(name):
        return AutomationStack(auto.select_stack(stack_name=name, work_dir=str(project_dir)))


def create_stack(name: str, secrets_provider: str | None, *, project_dir: Path) -> bool:
    """`pulumi stack init NAME [--secrets-provider P]`, or nothing when the stack exists; True when it created it.

    `LocalWorkspace.create_stack` passes `secrets_provider` from the workspace options as `--secrets-provider`
    (pulumi 3.272 `automation/_local_workspace.py`); an existing stack keeps the provider it was created with.
    """
    _require_cli()
    options = auto.LocalWorkspaceOptions(work_dir=str(project_dir), secrets_provider=secrets_provider)
    with _pulumi_errors(name):
        try:
            auto.create_stack(stack_name=name, work_dir=str(project_dir), opts=options)
        except auto.errors.StackAlreadyExistsError:
            return False
    return True
