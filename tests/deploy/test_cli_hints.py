"""Every hint names an option that exists: each `--option` a command's help or error text mentions is an option of
the command it points at (`shipsafe <command> ... --option`), or of the command that printed it.

An invariant over every click command and every string in the tool's source, not a list of known messages: a
hint added tomorrow is held to it too."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deploy import automation
from deploy import cli as cli_commands
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from deploy.exit_codes import exit_code_of
from deploy.terminal import TerminalConsole
from tests.deploy.memory_stack import MemoryStacks

TOOL = Path(__file__).resolve().parents[2] / "deploy"
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")
# A mention after another tool's name is that tool's option (`pulumi config set --secret`, `git diff --exit-code`).
OTHER_TOOL = re.compile(r"\b(pulumi|git|docker|kubectl|helm|checkov|pip|make|python|zizmor|squawk|alembic)\b [^.;:`]*$")
SHIPSAFE = re.compile(r"\bshipsafe ((?:[a-z][a-z-]* ?)+)[^.;:`]*$")
BARE_COMMAND = re.compile(r"\b([a-z][a-z-]*) (?:[A-Z]+ )?$")
"""`render --output-dir`, `preview STACK --offline`: a command's own name right before the option."""
ARGV_ELEMENT = re.compile(r"--[a-z][a-z-]*(=\S*)?( \S+)?")
"""`--format=tar`, `--namespace X`: an argument handed to another program, not a sentence for a person."""


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):  # the top level loads its commands when asked (`deploy.cli.COMMANDS`)
        command = group.get_command(context, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = dict(_commands())
GLOBAL_OPTIONS = {opt for param in cli.params for opt in getattr(param, "opts", ())} | {"--help", "--version"}


def _options(command: click.Command) -> set[str]:
    """The command's options; a group's help may also name its subcommands' options."""
    own = {opt for param in command.params for opt in getattr(param, "opts", ())}
    if isinstance(command, click.Group):
        own |= {opt for sub in command.commands.values() for opt in _options(sub)}
    return GLOBAL_OPTIONS | own


def _named_command(words: str) -> tuple[str, ...] | None:
    """The longest command path that `shipsafe <words>` starts with (`image build`, `preview`)."""
    parts = tuple(words.split())
    return next((parts[:n] for n in range(len(parts), 0, -1) if parts[:n] in COMMANDS), None)


def missing_options(text: str, printed_by: tuple[str, ...] | None) -> list[str]:
    """Each `--option` in `text` that the command it points at lacks: the `shipsafe <command>` before it in the same
    sentence, else `printed_by` (with no printer, any command of the tool)."""
    missing = []
    for match in OPTION.finditer(text):
        before = re.split(r"[.;]\s|\n\n", text[: match.start()])[-1]
        if OTHER_TOOL.search(before):
            continue
        named = SHIPSAFE.search(before)
        bare = BARE_COMMAND.search(before)
        if named:
            target = _named_command(named.group(1))
        elif bare and (bare.group(1),) in COMMANDS:
            target = (bare.group(1),)
        else:
            target = printed_by
        option = match.group()
        if target is None:
            if not any(option in _options(command) for command in COMMANDS.values()):
                missing.append(f"{option} (no command has it)")
        elif option not in _options(COMMANDS[target]):
            missing.append(f"{option} (not an option of `shipsafe {' '.join(target)}`)")
    return missing


def test_the_check_catches_an_option_the_command_lacks() -> None:
    assert missing_options("no pulumi CLI on PATH: install it or use --offline", ("history",)) == [
        "--offline (not an option of `shipsafe history`)"
    ]
    assert missing_options("see `shipsafe preview STACK --offline`", ("history",)) == []
    assert missing_options("set it with `pulumi config set --secret KEY`", ("history",)) == []
    assert missing_options("pass --no-such-option", None) == ["--no-such-option (no command has it)"]


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_help_text_names_options_of_its_command(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert missing_options(" ".join(result.output.split()), path) == []


def _docstrings(tree: ast.AST) -> set[int]:
    """The docstrings (for developers; they cite other tools' options freely), by node id."""
    owners = [node for node in ast.walk(tree) if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)]
    return {
        id(owner.body[0].value)
        for owner in owners
        if owner.body and isinstance(owner.body[0], ast.Expr) and isinstance(owner.body[0].value, ast.Constant)
    }


def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string literal a person may read: not a docstring, not an argument for another program."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
        elif isinstance(node, ast.JoinedStr):  # an f-string: its literal parts, with each value as a blank
            text = "".join(str(part.value) if isinstance(part, ast.Constant) else "X" for part in node.values)
        else:
            continue
        if not ARGV_ELEMENT.fullmatch(text.strip()):
            yield text


def test_every_message_in_the_tool_names_options_that_exist() -> None:
    found = {}
    for module in sorted(TOOL.rglob("*.py")):
        for text in _strings(ast.parse(module.read_text())):
            if problems := missing_options(" ".join(text.split()), None):
                found[f"{module.relative_to(TOOL)}: {text[:80]!r}"] = problems
    assert found == {}


def test_every_command_without_the_pulumi_cli_points_at_what_exists(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No `pulumi` on PATH: each command that opens a stack says what to do instead, naming only real options.
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    context = DeployContext(
        open_stack=functools.partial(automation.open_stack, project_dir=project_dir),
        project_dir=project_dir,
        create_stack=functools.partial(automation.create_stack, project_dir=project_dir),
        console=TerminalConsole(width=200, force_terminal=False),
    )
    hinted = []
    for path, command in COMMANDS.items():
        if not any(isinstance(param, click.Argument) for param in command.params) or isinstance(command, click.Group):
            continue
        result = CliRunner().invoke(cli, [*path, "staging"], obj=context)
        text = " ".join(result.stderr.split())
        if "no pulumi CLI on PATH" in text:
            hinted.append(path)
            assert missing_options(text, path) == [], f"shipsafe {' '.join(path)}: {text}"
    assert {("history",), ("status",), ("rollback",)} <= set(hinted), hinted


def test_the_readme_quickstart_says_destroy_exits_refused_by_design() -> None:
    context = DeployContext(open_stack=MemoryStacks(), project_dir=TOOL.parent)
    result = CliRunner().invoke(cli, ["destroy", "staging"], obj=context)
    code = exit_code_of(result.exit_code)
    assert code is ExitCode.REFUSED, result.output
    readme = (TOOL.parent / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("shipsafe destroy "))
    assert f"exits {code.name} ({code.value}) by design" in line


def test_each_command_is_registered_under_its_own_name() -> None:
    assert [path[-1] for path, command in COMMANDS.items() if len(path) == 1] == list(cli_commands.COMMANDS)
    assert all(command.name == path[-1] for path, command in COMMANDS.items())
