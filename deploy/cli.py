"""`shipsafe` (also `python -m deploy`): one command for previewing, rendering, deploying and rolling back stacks.

The commands live one group per module (`deploy/*_commands.py`) and only parse arguments: they delegate to
functions that get a `DeployContext`. Every failure is a `ShipsafeError` with a code of the project's one exit-code
table (`deploy.exit_codes`, `shipsafe exit-codes`), rendered here.
"""

from __future__ import annotations

import _thread
import functools
import importlib
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from deploy.backend import StackBackend
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.options import JSON_PRINTED, JSON_WANTED, emit_json, error_document
from deploy.project_modules import needs_own_process, run_in_project
from deploy.terminal import TerminalConsole
from deploy.version import VERSION

COMMANDS = {
    "preview": "deploy.preview_commands:preview_command",
    "render": "deploy.preview_commands:render_command",
    "diff": "deploy.preview_commands:diff_command",
    "up": "deploy.rollout_commands:up_command",
    "promote": "deploy.rollout_commands:promote_command",
    "smoke": "deploy.rollout_commands:smoke_command",
    "verify": "deploy.rollout_commands:verify_command",
    "history": "deploy.stack_commands:history_command",
    "rollback": "deploy.rollout_commands:rollback_command",
    "stack": "deploy.stack_commands:stack_group",
    "new": "deploy.stack_commands:new_command",
    "init": "deploy.stack_commands:init_command",
    "mirror": "deploy.mirror:mirror_command",
    "image": "deploy.image_commands:image_group",
    "status": "deploy.stack_commands:status_command",
    "destroy": "deploy.stack_commands:destroy_command",
    "config": "deploy.config_commands:config_group",
    "exit-codes": "deploy.tool_commands:exit_codes_command",
    "completion": "deploy.tool_commands:completion_command",
}
"""Each command and where it is defined, in the order of a stack's life. A command's module is imported only when
the command runs (or help lists it): `preview --offline` starts its policy pack before the SDKs are imported."""


def _json_context(ctx: click.Context, error: click.UsageError | None = None) -> click.Context | None:
    """The context of the command run with `--output json`, also when its options failed to parse."""
    wanted: click.Context | None = ctx.meta.get(JSON_WANTED)
    if wanted is None and error is not None and error.ctx is not None:
        argv = ctx.meta.get("shipsafe.argv", [])
        pairs = zip(argv, [*argv[1:], None], strict=True)
        if "--output=json" in argv or ("--output", "json") in pairs:
            return error.ctx
    return wanted


def _os_error_line(error: OSError) -> str:
    paths = " -> ".join(str(path) for path in (error.filename, error.filename2) if path is not None)
    return f"{paths}: {error.strerror or error}" if paths else str(error)


class _Cli(click.Group):
    """Renders every failure in one place: a ShipsafeError (or an OSError: a path, a permission) as one red line on
    stderr with its exit code, and with `--output json` the command's error document on stdout unless it printed
    its own."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["shipsafe.argv"] = list(args)  # to re-execute the same command for another project directory
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort):
            raise
        except ShipsafeError as error:
            self._fail(ctx, error.exit_code, error.message, error.problems)
        except click.UsageError as error:  # click prints it and exits USAGE
            self._json_failure(_json_context(ctx, error), ExitCode.USAGE, error.format_message(), [])
            raise
        except OSError as error:
            self._fail(ctx, ExitCode.FAILED, _os_error_line(error), [])
        except Exception as error:  # a crash: its traceback follows, the document still says it failed
            self._json_failure(_json_context(ctx), ExitCode.FAILED, f"unexpected {type(error).__name__}: {error}", [])
            raise

    def _fail(self, ctx: click.Context, code: ExitCode, message: str, problems: list[str]) -> None:
        self._json_failure(_json_context(ctx), code, message, problems)
        stderr = TerminalConsole(stderr=True)
        stderr.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True)
        ctx.exit(int(code))

    @staticmethod
    def _json_failure(ctx: click.Context | None, code: ExitCode, message: str, problems: list[str]) -> None:
        if ctx is not None and not ctx.meta.get(JSON_PRINTED):
            emit_json(error_document(ctx, code, message, problems))


def _open_stack(name: str, *, project_dir: Path) -> StackBackend:
    from deploy.automation import open_stack  # only the commands that use the Pulumi CLI import the Automation API

    return open_stack(name, project_dir=project_dir)


def _create_stack(name: str, secrets_provider: str | None, *, project_dir: Path) -> bool:
    from deploy.automation import create_stack

    return create_stack(name, secrets_provider, project_dir=project_dir)


def _default_context(project_dir: Path) -> DeployContext:
    stack_factory = functools.partial(_open_stack, project_dir=project_dir)
    creator = functools.partial(_create_stack, project_dir=project_dir)
    return DeployContext(open_stack=stack_factory, project_dir=project_dir, create_stack=creator)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120})
@click.version_option(VERSION, "--version", prog_name="shipsafe", message="%(prog)s %(version)s")
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    envvar="SHIPSAFE_PROJECT_DIR",
    show_default=True,
    help="Directory holding Pulumi.yaml, the stack files and policy/; its own program modules are used.",
)
@click.option(
    "--prometheus-url",
    envvar="SHIPSAFE_PROMETHEUS_URL",
    help="Query this Prometheus instead of shipsafe:verification.prometheusUrl (thresholds stay).",
)
@click.pass_context
def cli(ctx: click.Context, project_dir: Path, prometheus_url: str | None) -> None:
    """shipsafe: preview, render, diff, deploy, verify and roll back the stacks of a Pulumi project.

    Offline (no Pulumi CLI, no cluster): preview --offline, render, diff, config validate, destroy (the story),
    exit-codes. With the Pulumi CLI: preview, up, promote, smoke, verify, history, status, rollback, init.
    Give the stack as STACK or -s/--stack. Exit codes: `shipsafe exit-codes` (docs/cli.md).
    """
    if ctx.obj is None:
        if needs_own_process(project_dir):
            ctx.exit(run_in_project(project_dir, ctx.meta["shipsafe.argv"]))
        ctx.obj = _default_context(project_dir.resolve())
    if prometheus_url:
        ctx.obj.prometheus_url = prometheus_url


TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals whose default action ends the process at once (a CI runner's timeout, a closed terminal)."""


INSIST_SECONDS = 1.0
"""How long an exit a signal raised may go unseen before the signal is delivered again."""


class _ExitOnSignal:
    """The handler of the terminating signals for one run of the command.

    The exit unwinds the command, so `finally` blocks and atexit handlers close what it started: the policy pack
    processes of a preview (`harness.analyzer`, `harness.pack_launch`) would otherwise outlive it, each serving gRPC
    for ever. The status is the shell's for a process the signal ended (128 + its number): FAILED.

    The Pulumi SDK swallows BaseException where a signal often lands (pulumi `runtime/resource.py`
    `_get_source_position_for_frame`, run for every frame of every registration: `except BaseException: return
    None`), and the program would run on to its end. So a watcher delivers the signal again after each second in
    which the main thread was never seen handling the exit (in a `finally` or an `__exit__` on its way out), until
    the command is over. A wait the main thread is blocked in (an analysis it waits for) is not cut short: the exit
    comes when the wait ends (`_thread.interrupt_main` sends no signal of the system's)."""

    def __init__(self) -> None:
        self.main = threading.get_ident()
        self.over = threading.Event()
        self.raised: SystemExit | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        first = self.raised is None
        self.raised = SystemExit(128 + signum)
        if first:
            threading.Thread(target=self._insist, args=(signal.Signals(signum),), daemon=True).start()
        raise self.raised

    def _insist(self, signum: signal.Signals) -> None:
        while not self.over.is_set():
            deadline, seen = time.monotonic() + INSIST_SECONDS, False
            while time.monotonic() < deadline and not self.over.is_set():
                handled = sys._current_exceptions().get(self.main)  # 3.11: an exc_info tuple (3.12: the exception)
                seen = seen or self.raised in (handled, handled[1] if isinstance(handled, tuple) else None)
                time.sleep(0.01)
            if not seen and not self.over.is_set():
                _thread.interrupt_main(signum)


def main(argv: Sequence[str] | None = None) -> None:
    """The `shipsafe` entry point; `python -m deploy` runs it too, under that name."""
    as_module = argv is None and sys.argv[0].endswith("__main__.py")
    handled = TERMINATING_SIGNALS if threading.current_thread() is threading.main_thread() else ()
    exit_on_signal = _ExitOnSignal()
    previous = {signum: signal.signal(signum, exit_on_signal) for signum in handled}
    try:
        cli.main(args=None if argv is None else list(argv), prog_name="python -m deploy" if as_module else "shipsafe")
    finally:
        exit_on_signal.over.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
