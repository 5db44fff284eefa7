"""`shipsafe config validate`: the stack files as `pulumi up` would take them, offline."""

from __future__ import annotations

import click
from rich.markup import escape

from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline import config_problems
from deploy.options import pass_deploy, stacks_argument
from harness.stack_config import stack_names


@click.group("config")
def config_group() -> None:
    """Stack configuration."""


@config_group.command("validate")
@stacks_argument
@pass_deploy
def validate_command(deploy: DeployContext, stacks: list[str]) -> None:
    """Check STACKS' config (default: every Pulumi.<stack>.yaml) as the program and the stack's policy config will:
    every bad key with its value and what is allowed. Needs no Pulumi CLI."""
    names = stacks or stack_names(deploy.project_dir)
    invalid = []
    for stack in names:
        problems = config_problems(deploy.project_dir, stack)
        if not problems:
            deploy.console.print(f"[green]✓[/green] {escape(stack)}: valid", highlight=False)
            continue
        invalid.append(stack)
        deploy.console.print(f"[red]✗[/red] {escape(stack)}:", highlight=False)
        for problem in problems:
            deploy.console.print(f"    - {escape(problem)}", highlight=False, soft_wrap=True)
    if invalid:
        raise ShipsafeError(f"invalid config: {', '.join(invalid)}", ExitCode.CONFIG_ERROR)
