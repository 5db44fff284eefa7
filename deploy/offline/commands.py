"""What the commands do offline, over the engine model: preview, render, diff, validate config, list what `destroy`
protects.

Every function takes the project directory; a process runs one project's program modules (`components`), so a
command for another directory re-executes itself there first (`deploy.project_modules`), and the other side of a
diff at a git ref renders in such a process too (`deploy.offline.render.render_at_ref`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from rich.markup import escape

from components.settings import ConfigError, Settings, settings_from_config
from components.timeline import deploy_timeline
from deploy import app_contract, policy_link
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline.diff import ObjectChange, diff_renders, object_changes
from deploy.offline.preview import Refusal, Report, parse_overrides
from deploy.offline.render import RenderFailed, render_at_ref, resolve_commit
from deploy.offline.report import json_document, print_report, progress_display
from deploy.options import emit_json
from deploy.terminal import TerminalConsole
from harness.analyzer import PolicyPackError
from harness.local_files import LocalFileError, read_text
from harness.manifests import render, rendered_files
from harness.recording import RecordedResource, Recording
from harness.runtime import ProgramFailed, run_stack
from harness.stack_config import StackFileError, engine_config, policy_config_path, read_stack_config


def offline_preview(
    deploy: DeployContext,
    stack: str,
    settings: Sequence[str],
    output: str,
    *,
    quiet: bool = False,
    release: Mapping[str, str] | None = None,
    analysis_reuse: str | None = None,
) -> None:
    """The offline preview of every phase with the policy pack (`deploy.offline.preview`), `--set` pairs applied on
    top of `release` (flat config keys); its one report printed (`deploy.offline.report`), and with `--output json`
    its document; fails with its exit code."""
    try:
        overrides = parse_overrides(stack, settings, deploy.project_dir, base=release)
    except StackFileError as error:
        report = Report(stack, ExitCode.CONFIG_ERROR, Refusal(str(error), [str(error)]))
    else:
        # No cyclic collections over the SDKs' large object graph while the program runs (together with the
        # final sweep at exit, which freezing skips, about a quarter of the wall time); the command ends soon after.
        gc.disable()
        try:
            with progress_display(deploy.console, quiet=quiet) as progress:
                report = deploy.offline_preview(
                    stack, overrides, project_dir=deploy.project_dir, progress=progress, analysis_reuse=analysis_reuse
                )
        finally:
            gc.freeze()
            gc.enable()
    print_report(report, deploy.console, TerminalConsole(stderr=True), quiet=quiet)
    if output == "json":
        emit_json(json_document(report))
    if not report.passed:
        message = f"offline preview of {stack} failed: {report.exit_code.name} (see the report above)"
        raise ShipsafeError(message, report.exit_code)


def config_overrides(project_dir: Path, stack: str, settings: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs as the offline preview applies them (`deploy.offline.preview.parse_overrides`)."""
    try:
        return parse_overrides(stack, settings, project_dir)
    except StackFileError as error:
        raise ShipsafeError(str(error), ExitCode.CONFIG_ERROR, [str(error)]) from None


@contextmanager
def _live(what: str) -> Iterator[None]:
    """A step of `render` or `diff` (seconds: the program runs), shown live on a terminal only: their stdout is
    the render or the diff, and their stderr in a log holds only what went wrong."""
    console = TerminalConsole(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(f"{escape(what)}…"):
        yield


def run_program(project_dir: Path, stack: str, overrides: Mapping[str, Any]) -> Recording:
    """The program as `pulumi up` would run it (every value known), under the harness's mock runtime."""
    try:
        with _live(f"running program ({stack}, up)"):
            return run_stack(stack, config_overrides=overrides, project_dir=project_dir)
    except StackFileError as error:
        raise ShipsafeError(str(error), ExitCode.CONFIG_ERROR, [str(error)]) from None
    except ProgramFailed as failure:
        refused = isinstance(failure.error, (ConfigError, pulumi.RunError))
        code = ExitCode.CONFIG_ERROR if refused else ExitCode.FAILED
        problems = failure.error.problems if isinstance(failure.error, ConfigError) else [str(failure.error)]
        raise ShipsafeError(f"the program failed for {stack}: {failure.error}", code, problems) from None


def render_working_tree(project_dir: Path, stack: str, overrides: Mapping[str, Any]) -> str:
    return render(run_program(project_dir, stack, overrides))


def commit_of(project_dir: Path, ref: str) -> str:
    try:
        return resolve_commit(ref, project_dir)
    except RenderFailed as error:
        raise ShipsafeError(str(error), ExitCode.USAGE) from None


def render_ref(project_dir: Path, stack: str, ref: str, overrides: Mapping[str, Any]) -> str:
    try:
        with _live(f"rendering {stack} at {ref}"):
            return render_at_ref(stack, ref, repo=project_dir, config_overrides=overrides)
    except RenderFailed as error:
        raise ShipsafeError(str(error), ExitCode.FAILED) from None


RENDER_BYTES = 64 * 1024 * 1024
"""A saved render may hold thousands of objects; its size is still bounded (`harness.local_files`)."""


def read_render(path: Path) -> str:
    """A render saved earlier: one manifests file, or a directory `shipsafe render --output-dir` wrote (the files its
    list names; any *.yaml in a directory without one)."""
    try:
        if path.is_dir():
            files = rendered_files(path)
            files = sorted(path.glob("*.yaml")) if files is None else files
            return "---\n".join(read_text(file, RENDER_BYTES) for file in files)
        return read_text(path, RENDER_BYTES)
    except LocalFileError as error:
        raise ShipsafeError(str(error), ExitCode.USAGE) from None


@dataclass(frozen=True)
class Diff:
    against: dict[str, Any]
    """What the working tree was compared with (the `against` object of `docs/schemas/diff.schema.json`)."""
    old: str
    new: str
    changes: list[ObjectChange]

    @property
    def text(self) -> str:
        return diff_renders(self.old, self.new)


def _diff(against: dict[str, Any], old: str, new: str) -> Diff:
    try:
        return Diff(against, old, new, object_changes(old, new))
    except ValueError as error:  # a file that is not a render
        raise ShipsafeError(str(error), ExitCode.USAGE) from None


def diff_against_ref(project_dir: Path, stack: str, ref: str, overrides: Mapping[str, Any]) -> Diff:
    """The working tree (with `overrides`) against the program and stack file at `ref`. Both sides render as the
    same release, the ref's commit unless the stack file pins one, so the diff shows what the change does rather
    than a new SHA in every label."""
    commit = commit_of(project_dir, ref)
    project, config = read_stack_config(stack, project_dir, overrides)
    release = f"{project}:gitSha"
    pinned = {release: config.get(release, commit)}
    old = render_ref(project_dir, stack, commit, {})
    new = render_working_tree(project_dir, stack, {**pinned, **overrides})
    return _diff({"kind": "ref", "ref": ref, "commit": commit, "path": None}, old, new)


def diff_against_render(project_dir: Path, stack: str, previous: Path, overrides: Mapping[str, Any]) -> Diff:
    old = read_render(previous)
    new = render_working_tree(project_dir, stack, overrides)
    return _diff({"kind": "render", "ref": None, "commit": None, "path": str(previous)}, old, new)


def config_problems(project_dir: Path, stack: str) -> list[str]:
    """What `pulumi up` of this stack would refuse before registering anything: the stack file, the settings (and
    the deploy timeline the program derives from them), what the project knows about the app that the settings
    contradict (`deploy.app_contract`), and settings the stack's policy config forbids."""
    try:
        _, values = read_stack_config(stack, project_dir)
    except StackFileError as error:
        return [str(error)]
    config, secret_keys = engine_config(values)
    try:
        settings = settings_from_config(config, lambda key: key in secret_keys)
        deploy_timeline(settings)
    except ConfigError as error:
        return error.problems
    return app_contract.problems(project_dir, stack, settings) + _policy_config_problems(
        project_dir, stack, config, settings
    )


def _policy_config_problems(project_dir: Path, stack: str, config: dict[str, str], settings: Settings) -> list[str]:
    policy_config = policy_config_path(project_dir, stack)
    if not policy_config.is_file():
        return [f"{policy_config} is missing: every stack needs its policy config"]
    try:
        production = policy_link.is_production_stack(stack, config)
        return policy_link.conflicts(settings, policy_link.read_policy_config(policy_config, production=production))
    except (PolicyPackError, ValueError) as error:
        problems = str(error).splitlines()  # one line per problem (e.g. each floor rule lowered)
        named = all(policy_config.name in line.split(": ", 1)[0] for line in problems)  # the reader names the file
        return problems if named else [f"{policy_config}: {line}" for line in problems]


def protected_resources(project_dir: Path, stack: str) -> list[RecordedResource]:
    """What the program protects (`protect=True`): `pulumi destroy` refuses while any of them is in the state."""
    return [resource for resource in run_program(project_dir, stack, {}) if resource.protect]
