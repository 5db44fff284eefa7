"""`shipsafe image check`: what an app's own CI runs on its Dockerfile before it hands the image to a stack."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.image_check import check_dockerfile, check_image
from deploy.options import pass_deploy
from harness.analyzer import format_report
from harness.stack_config import stack_names

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
EXISTING_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group("image")
def image_group() -> None:
    """The app's image, for an app whose code and CI live in another repository."""


@image_group.command("check")
@click.option("--dockerfile", type=EXISTING_FILE, help="The app's Dockerfile.")
@click.option("--context", type=EXISTING_DIR, help="The build context (default: the Dockerfile's directory).")
@click.option("--target", help="The Dockerfile stage the image is built from (default: the stack's app.buildTarget).")
@click.option("--image", help="The pushed image, <registry>/<repository>:<sha>@sha256:<digest>, as imageRef takes it.")
@click.option("--git-sha", help="With --image: the commit it was built from (default: the image's tag).")
@click.option(
    "-s", "--stack", "stacks", multiple=True, help="Judge with this stack's policy config (repeatable; default: all)."
)
@pass_deploy
def check_command(
    deploy: DeployContext,
    dockerfile: Path | None,
    context: Path | None,
    target: str | None,
    image: str | None,
    git_sha: str | None,
    stacks: tuple[str, ...],
) -> None:
    """Check an app's Dockerfile (--dockerfile) and its pushed image (--image) against the policy pack's image
    rules, offline, with each stack's policy config.

    Exits POLICY_VIOLATION (16) on a mandatory finding for any stack: run it in the app's CI before the image's
    digest is handed to a stack (shipsafe:imageSource prebuilt, imageRef, gitSha).
    """
    if dockerfile is None and image is None:
        raise ShipsafeError("give --dockerfile, --image or both", ExitCode.USAGE)
    if git_sha and not image:
        raise ShipsafeError("--git-sha needs --image", ExitCode.USAGE)
    reports, contradicted = [], {}
    for stack in stacks or stack_names(deploy.project_dir):
        if dockerfile is not None:
            checked = check_dockerfile(deploy.project_dir, stack, dockerfile, context or dockerfile.parent, target)
            reports.append(checked.report)
            if checked.contradicted:
                contradicted[stack] = checked.contradicted
        if image is not None:
            reports.append(check_image(deploy.project_dir, stack, image, git_sha or _tag_of(image)))
    for report in reports:
        deploy.console.print(escape(format_report(report)), highlight=False, soft_wrap=True)
    for stack, problems in contradicted.items():
        deploy.console.print(f"{escape(stack)}: the stack's settings contradict the app's Dockerfile:", highlight=False)
        for problem in problems:
            deploy.console.print(f"  - {escape(problem)}", highlight=False, soft_wrap=True)
    failed = sorted({report.stack for report in reports if report.mandatory_violations})
    if contradicted:
        raise ShipsafeError(
            f"the Dockerfile contradicts the settings of {', '.join(contradicted)}",
            ExitCode.CONFIG_ERROR,
            [problem for problems in contradicted.values() for problem in problems],
        )
    if failed:
        raise ShipsafeError(
            f"the image breaks mandatory image rules for {', '.join(failed)}", ExitCode.POLICY_VIOLATION
        )


def _tag_of(image: str) -> str:
    """`<repository>:<tag>@sha256:...` -> `<tag>`: the app's CI tags the image with its git SHA."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    if not tag:
        raise ShipsafeError(f"--image {image} has no tag to take the git SHA from: give --git-sha", ExitCode.USAGE)
    return tag
