"""`shipsafe image check`: what an app's own CI runs on its Dockerfile before it hands the image to a stack."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.image_check import check_dockerfile_for_stacks
from deploy.options import pass_deploy
from harness.analyzer import format_report
from harness.stack_config import stack_names

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group("image")
def image_group() -> None:
    """The app's image, for an app whose code and CI live in another repository."""


@image_group.command("check")
@click.option("--dockerfile", required=True, type=EXISTING_FILE, help="The app's Dockerfile.")
@click.option("--context", type=EXISTING_DIR, help="The build context (default: the Dockerfile's directory).")
@click.option("--target", help="The Dockerfile stage the image is built from (default: the stack's app.buildTarget).")
@click.option(
    "-s", "--stack", "stacks", multiple=True, help="Judge with this stack's policy config (repeatable; default: all)."
)
@pass_deploy
def check_command(
    deploy: DeployContext, dockerfile: Path, context: Path | None, target: str | None, stacks: tuple[str, ...]
) -> None:
    """Check a Dockerfile against the policy pack's Dockerfile rules, offline, with each stack's policy config.

    Exits POLICY_VIOLATION (16) on a mandatory finding for any stack: run it in the app's CI before the image's
    digest is handed to a stack (shipsafe:imageSource prebuilt, imageRef).
    """
    names = list(stacks) or stack_names(deploy.project_dir)
    failed = []
    for report in check_dockerfile_for_stacks(deploy.project_dir, names, dockerfile, context, target):
        deploy.console.print(escape(format_report(report)), highlight=False, soft_wrap=True)
        if report.mandatory_violations:
            failed.append(report.stack)
    if failed:
        raise ShipsafeError(
            f"{escape(str(dockerfile))} breaks mandatory Dockerfile rules for {', '.join(failed)}",
            ExitCode.POLICY_VIOLATION,
        )
