"""Runs shipsafe for another project directory with that project's program modules.

A process imports the program's packages (`components`) once: shipsafe imports them itself, and the harness runs
the program in-process, so a run for `--project-dir OTHER` in this process would silently use this checkout's
modules. `shipsafe --project-dir OTHER ...` therefore re-executes itself as
`python -P -m deploy.project_modules OTHER ...`: the tool's own packages from this checkout, every other module
from OTHER first, as `pulumi up` in OTHER would import them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TOOL_ROOT = Path(__file__).resolve().parent.parent
MARKER = "SHIPSAFE_PROJECT_MODULES"
"""Set in the child to the directory whose modules it runs: the child never re-executes again."""


def needs_own_process(project_dir: Path) -> bool:
    """Another project with its own program modules, and this process is not already running its modules."""
    resolved = project_dir.resolve()
    elsewhere = resolved != TOOL_ROOT and (resolved / "components").is_dir()
    return elsewhere and os.environ.get(MARKER) != str(resolved)


def command_in_project(project_dir: Path, argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `shipsafe --project-dir PROJECT_DIR ARGV` with that project's modules."""
    resolved = project_dir.resolve()
    python_path = os.pathsep.join(filter(None, [str(TOOL_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, MARKER: str(resolved), "PYTHONPATH": python_path}
    command = [sys.executable, "-P", "-m", "deploy.project_modules", str(resolved), *argv]
    return command, env


def run_in_project(project_dir: Path, argv: Sequence[str]) -> int:
    command, env = command_in_project(project_dir, argv)
    return subprocess.run(command, env=env, check=False).returncode


def main() -> None:
    # -P kept the working directory off sys.path; the tool's packages bind to this checkout before the project's
    # directory goes first for everything else.
    import deploy
    import harness

    del deploy, harness
    project_dir, *argv = sys.argv[1:]
    sys.path.insert(0, project_dir)
    from deploy.cli import main as shipsafe

    shipsafe(argv)


if __name__ == "__main__":
    main()
