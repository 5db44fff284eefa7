"""A copy of this checkout's project in a temporary directory: what a test may add stacks to or edit freely."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.stack_config import REPO_ROOT


def copy_project(target: Path, *, commit: bool = True) -> Path:
    """The working tree as git sees it (tracked and untracked files, nothing ignored), copied to `target`; with
    `commit`, as one commit of a new repository there, so commands that read git history have one. Its `.venv` is
    this checkout's."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if commit:
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy of the project"]):
            subprocess.run(
                ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *command],
                cwd=target,
                check=True,
            )
    # The policy pack runs in the project's virtualenv (policy/PulumiPolicy.yaml: `virtualenv: ../.venv`); ignored
    # by git, as in this checkout.
    (target / ".venv").symlink_to(REPO_ROOT / ".venv", target_is_directory=True)
    return target
