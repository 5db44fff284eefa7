"""`shipsafe config validate`: the stack files as `pulumi up` would take them, offline."""

from __future__ import annotations

import click
from rich.markup import escape

from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline.commands import config_problems
from deploy.options import OUTPUT, emit_json, pass_deploy, quiet_console_for_json, stacks_argument
from deploy.reports import config_validate_document
from harness.stack_config import stack_names


@click.group("config")
def config_group() -> None:
    """Stack configuration."""


@config_group.command("validate")
@stacks_argument
@OUTPUT
@pass_deploy
def validate_command(deploy: DeployContext, stacks: list[str], output: str) -> None:
    """Check STACKS' config (default: every Pulumi.<stack>.yaml) as the program and the stack's policy config will:
    every bad key with its value and what is allowed. Needs no Pulumi CLI."""
    quiet_console_for_json(deploy, output)
    names = stacks or stack_names(deploy.project_dir)
    if not names:
        raise ShipsafeError(f"{deploy.project_dir}: no Pulumi.<stack>.yaml to validate", ExitCode.CONFIG_ERROR)
    problems = {stack: config_problems(deploy.project_dir, stack) for stack in names}
    invalid = [stack for stack in names if problems[stack]]
    code = ExitCode.CONFIG_ERROR if invalid else ExitCode.OK
    for stack in names:
        if not problems[stack]:
            deploy.console.print(f"[green]✓[/green] {escape(stack)}: valid", highlight=False)
            continue
        deploy.console.print(f"[red]✗[/red] {escape(stack)}:", highlight=False)
        for problem in problems[stack]:
            deploy.console.print(f"    - {escape(problem)}", highlight=False, soft_wrap=True)
    if output == "json":
        emit_json(config_validate_document(problems, code))
    if invalid:
        raise ShipsafeError(f"invalid config: {', '.join(invalid)}", code)
