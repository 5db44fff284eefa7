"""A stack's Kubernetes objects rendered offline (like `helm template`) from a git commit.

`render_at_ref` runs `shipsafe render` over an export of the commit in a process of its own, by the one mechanism
that runs another project's program modules (`deploy.project_modules`): a process imports the program's modules
(`components`) once, so a second program run in the same process would silently reuse the first one's.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from deploy.project_modules import command_in_project
from harness.stack_config import REPO_ROOT, StackFileError, load_yaml, read_stack_config


class RenderFailed(Exception):
    """A ref that names no commit, or a program that failed to run at it; the message says which and why."""


def resolve_commit(ref: str, repo: Path = REPO_ROOT) -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RenderFailed(f"git ref {ref!r} does not name a commit in {repo}")
    return result.stdout.strip()


def _export(commit: str, repo: Path, target: Path) -> None:
    # `git archive` reads the commit without touching the repository's state (no worktree entry to clean up).
    archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=repo, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")


def _set_config(stack_file: Path, overrides: Mapping[str, Any]) -> None:
    """`overrides` written into the export's stack file, as `pulumi config set` would (the export is a copy)."""
    document, _ = load_yaml(stack_file)
    document = document if isinstance(document, dict) else {}
    document["config"] = {**(document.get("config") or {}), **overrides}
    stack_file.write_text(yaml.safe_dump(document, sort_keys=False))


def render_at_ref(
    stack: str, ref: str, *, repo: Path = REPO_ROOT, config_overrides: Mapping[str, Any] | None = None
) -> str:
    """The render of `stack` as the program and stack file at git `ref` define it, offline. Without a release SHA in
    the stack file or the overrides, the release is the commit itself, as a deploy from a clean checkout of it
    (`components/release.py` reads `git rev-parse HEAD`, which an export has no repository for)."""
    commit = resolve_commit(ref, repo)
    with tempfile.TemporaryDirectory(prefix="shipsafe-render-") as temporary:
        project_dir = Path(temporary)
        _export(commit, repo, project_dir)
        if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
            raise RenderFailed(
                f"stack {stack} has no Pulumi.{stack}.yaml at {ref} ({commit[:12]}): a stack added since has nothing "
                f"there to compare with; commit its stack file first, or see all of its objects with "
                f"`shipsafe render {stack}`"
            )
        overrides = dict(config_overrides or {})
        try:
            project, config = read_stack_config(stack, project_dir, overrides)
        except StackFileError as error:
            raise RenderFailed(f"Pulumi.{stack}.yaml at {ref} ({commit[:12]}): {error}") from None
        overrides.setdefault(f"{project}:gitSha", config.get(f"{project}:gitSha", commit))
        try:
            _set_config(project_dir / f"Pulumi.{stack}.yaml", overrides)
        except StackFileError as error:
            raise RenderFailed(f"Pulumi.{stack}.yaml at {ref} ({commit[:12]}): {error}") from None
        command, environment = command_in_project(project_dir, ["--project-dir", str(project_dir), "render", stack])
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        # The child's one error line, unwrapped (its console wraps at the terminal's width).
        why = " ".join(result.stderr.split()).removeprefix("error: ") or f"exit code {result.returncode}"
        raise RenderFailed(f"rendering {stack} at {ref} ({commit[:12]}) failed: {why}")
    return result.stdout
