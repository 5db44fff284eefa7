"""`shipsafe exit-codes` and `shipsafe completion`: about the tool itself."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from deploy.exit_codes import ExitCode, markdown_table, shell_variables

COMPLETION_VARIABLE = "_SHIPSAFE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


@click.command("exit-codes")
@click.option("--shell", "form", flag_value="shell", help='Variables to eval: eval "$(shipsafe exit-codes --shell)".')
@click.option("--markdown", "form", flag_value="markdown", help="The table in Markdown (docs/cli.md).")
def exit_codes_command(form: str | None) -> None:
    """Every exit code of every shipsafe command, what it means and the state it leaves the stack in.

    --shell prints SHIPSAFE_EXIT_<NAME>=<code> per code and SHIPSAFE_EXITS_<STATE>="<codes>" per state (DONE,
    UNCHANGED, ROLLED_BACK, UNVERIFIED, MAYBE_BAD), so a pipeline decides by meaning, never by a number it keeps.
    """
    if form == "shell":
        click.echo(shell_variables(), nl=False)
    elif form == "markdown":
        click.echo(markdown_table(), nl=False)
    else:
        for code in ExitCode:
            click.echo(f"{code.value:>3}  {code.name:<26} {code.description} [{code.aftermath}]")


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL: e.g. `eval "$(shipsafe completion bash)"` in ~/.bashrc."""
    root = ctx.find_root()
    completion = get_completion_class(shell)
    if completion is None:  # click ships all three; a click without one is a broken install
        raise click.UsageError(f"click has no {shell} completion")
    click.echo(completion(root.command, {}, "shipsafe", COMPLETION_VARIABLE).source())
