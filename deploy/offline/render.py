"""A stack's Kubernetes objects rendered offline (like `helm template`), from the working tree or from a git commit.

`python -m deploy.offline.render STACK [--project-dir DIR] [--config JSON]` prints the render of the program in DIR.
`render_at_ref` runs that in a child process over an export of the commit: a process imports the program's modules
(`components`) once, so a second program run in the same process would silently reuse the first one's.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.manifests import render
from harness.runtime import REPO_ROOT, ProgramFailed, read_stack_config, run_stack
from harness.stack_config import StackFileError

EXIT_RENDER_FAILED = 2


class RenderFailed(Exception):
    """A ref that names no commit, or a program that failed to run at it; the message says which and why."""


def render_stack(
    stack: str, *, project_dir: Path = REPO_ROOT, config_overrides: Mapping[str, Any] | None = None
) -> str:
    """The objects `pulumi up` of this stack would apply (every value known), rendered."""
    return render(run_stack(stack, config_overrides=config_overrides, project_dir=project_dir))


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
        command = [
            *(sys.executable, "-m", "deploy.offline.render", stack),
            *("--project-dir", str(project_dir), "--config", json.dumps(overrides)),
        ]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        raise RenderFailed(f"rendering {stack} at {ref} ({commit[:12]}) failed: {why[0]}")
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.offline.render", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--project-dir", type=Path, default=REPO_ROOT, help="the Pulumi project (default: this one)")
    parser.add_argument("--config", default="{}", help='config overrides as JSON, e.g. {"shipsafe:gitSha": "abc"}')
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.config)
        if not isinstance(overrides, dict):
            raise ValueError(f"--config must be a JSON object of config keys, got {args.config!r}")
        sys.stdout.write(render_stack(args.stack, project_dir=args.project_dir, config_overrides=overrides))
    except (StackFileError, ProgramFailed, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_RENDER_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
