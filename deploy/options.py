"""Options several command groups share: the stack (`STACK` or `-s/--stack`), `--output`, `--set`, the context."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from deploy.context import DeployContext
from deploy.errors import ExitCode

F = TypeVar("F", bound=Callable[..., Any])

pass_deploy = click.make_pass_decorator(DeployContext)

SKIP_PREREQUISITES = click.option(
    "--skip-prerequisites",
    is_flag=True,
    help="Do not check the cluster's prerequisites first (e.g. a kubeconfig with an exec plugin); see the docs.",
)
JSON_WANTED = "shipsafe.json"
"""`ctx.meta` key: the context of a command run with `--output json` (set as soon as the option is parsed)."""
JSON_PRINTED = "shipsafe.json-printed"


def _remember_json(ctx: click.Context, _: click.Parameter, value: str) -> str:
    if value == "json":
        ctx.meta[JSON_WANTED] = ctx
    return value


OUTPUT = click.option(
    "--output",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    is_eager=True,
    callback=_remember_json,
    help="json: one document on stdout in the schema docs/schemas/<command>.schema.json names (an `error` object "
    "when it fails before it has a result); progress on stderr.",
)
SETTINGS = click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A config value for this run only, as `pulumi config set --path` sets it (e.g. workloads.web.replicas=3).",
)


def _one_stack(positional: str | None, option: str | None) -> str:
    if positional and option and positional != option:
        raise click.UsageError(f"two stacks given: {positional} and -s {option}")
    stack = positional or option
    if not stack:
        raise click.UsageError("the stack is required: give STACK or -s/--stack STACK")
    return stack


def stack_argument(command: F) -> F:
    """`STACK` as an argument, or `-s/--stack STACK` as Pulumi users type it; the command receives `stack`."""

    @functools.wraps(command)
    def with_stack(*args: Any, stack: str | None, stack_option: str | None, **kwargs: Any) -> Any:
        return command(*args, stack=_one_stack(stack, stack_option), **kwargs)

    with_option = click.option("-s", "--stack", "stack_option", metavar="STACK", help="The stack (or give STACK).")
    return click.argument("stack", required=False)(with_option(with_stack))  # type: ignore[return-value]


def stacks_argument(command: F) -> F:
    """Any number of stacks, as arguments or repeated `-s/--stack`; the command receives `stacks` (maybe empty)."""

    @functools.wraps(command)
    def with_stacks(*args: Any, stacks: tuple[str, ...], stack_option: tuple[str, ...], **kwargs: Any) -> Any:
        return command(*args, stacks=list(dict.fromkeys([*stacks, *stack_option])), **kwargs)

    with_option = click.option("-s", "--stack", "stack_option", multiple=True, metavar="STACK", help="A stack.")
    return click.argument("stacks", nargs=-1)(with_option(with_stacks))  # type: ignore[return-value]


def quiet_console_for_json(deploy: DeployContext, output: str) -> None:
    """With `--output json` stdout holds the document alone: the human lines go to stderr."""
    if output == "json":
        deploy.console.stderr = True


def emit_json(document: dict[str, Any]) -> None:
    """Prints the command's one JSON document; the CLI adds an error document only when none was printed."""
    click.get_current_context().meta[JSON_PRINTED] = True
    click.echo(json.dumps(document, indent=2))


def json_printed_elsewhere() -> None:
    """The command's document was printed by what it ran (the offline preview prints its own report)."""
    click.get_current_context().meta[JSON_PRINTED] = True


def command_name(ctx: click.Context) -> str:
    """The command as its document names it: `history`, `config validate` (the root left out)."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def error_document(ctx: click.Context, code: ExitCode, message: str, problems: Sequence[str]) -> dict[str, Any]:
    """The document of a command that failed before it had a result (`$defs/error` of every schema)."""
    stack = ctx.params.get("stack") or ctx.params.get("stack_option")
    return {
        "schemaVersion": 1,
        "command": command_name(ctx),
        **({"stack": stack} if isinstance(stack, str) else {}),
        "result": "failed",
        "exitCode": code.value,
        "exitName": code.name,
        "error": {"message": message, "problems": list(problems)},
    }
