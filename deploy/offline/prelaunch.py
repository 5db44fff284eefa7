"""Starting the offline preview's first policy pack before the preview imports the SDKs (`harness.pack_launch`).

Light on purpose: the command calls it first thing, so the pack boots on the other core while the command imports
the SDKs and runs the program. It starts exactly the process `deploy.offline.preview.offline_preview` will ask for
(the pack of the stack's first preview, in `<project>/policy`, with the stack file's config), which takes it over.
"""

from __future__ import annotations

from pathlib import Path

from harness.pack_launch import PolicyPackError, pack_launch, prelaunch
from harness.stack_config import StackFileError, engine_config, read_stack_config


def prelaunch_preview_pack(project_dir: Path, stack: str) -> None:
    """Start the pack the offline preview of `stack` analyzes its first view with; nothing when the stack file or
    the pack cannot be read or started (the preview itself then reports it, naming the file)."""
    project_dir = project_dir.resolve()
    try:
        project, values = read_stack_config(stack, project_dir)
        prelaunch(
            pack_launch(
                project_dir / "policy",
                project=project,
                stack=stack,
                dry_run=True,
                stack_config=engine_config(values)[0],
            )
        )
    except (StackFileError, PolicyPackError, OSError):
        return
