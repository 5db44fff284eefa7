"""`shipsafe preview`, `render` and `diff`: what a deploy would do, before it does it.

Each command imports the modules it runs when it runs (the SDKs among them), so `preview --offline` can start its
policy pack first (`DeployContext.prelaunch_pack`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.options import OUTPUT, SETTINGS, emit_json, pass_deploy, quiet_console_for_json, stack_argument
from harness.local_files import LocalFileError
from harness.manifests import RENDER_LIST, RenderDirectoryError, render_to_directory


def _head_sha(project_dir: Path) -> str:
    from deploy.offline.commands import commit_of

    try:
        return commit_of(project_dir, "HEAD")
    except ShipsafeError as error:
        raise ShipsafeError(f"{error.message}; pass --git-sha", ExitCode.FAILED) from None


def _as_pipeline(deploy: DeployContext, stack: str, git_sha: str | None) -> dict[str, str]:
    """What the deploy pipeline will set: this commit as a prebuilt image, which is not built yet."""
    from deploy.release import NOT_BUILT_DIGEST, not_yet_built, release_config, stack_file_registry

    sha = git_sha or _head_sha(deploy.project_dir)
    image = not_yet_built(stack_file_registry(deploy.project_dir, stack), sha)
    deploy.console.print(
        f"Previewing {stack} as the deploy pipeline will update it: prebuilt image {escape(image.reference)}. "
        f"NOT YET BUILT: the pipeline builds and pushes it after merge; the digest {NOT_BUILT_DIGEST[:15]}… is a "
        "placeholder.",
        highlight=False,
        soft_wrap=True,
    )
    return release_config(image, sha, rollback=False)


def pulumi_preview(deploy: DeployContext, stack: str, output: str) -> None:
    from deploy.reports import preview_document
    from deploy.rollout import deployed_release_config, preview_stack

    changes = None
    try:
        backend = deploy.open_stack(stack)
        # The re-pinned release is previewed from a temporary copy of the stack file, never written into it.
        pinned = deployed_release_config(deploy, backend)
        changes = preview_stack(deploy, backend, config_overlay=pinned).change_summary
    except ShipsafeError as error:
        if output == "json":
            emit_json(preview_document(stack, changes, error.exit_code, error))
        raise
    if output == "json":
        emit_json(preview_document(stack, changes, ExitCode.OK))


@click.command("preview")
@stack_argument
@click.option("--offline", is_flag=True, help="Run the offline preview (mock runtime + policy pack, no CLI).")
@click.option(
    "--as-pipeline",
    is_flag=True,
    help="With --offline: preview this commit as the deploy pipeline ships it, a prebuilt image marked not yet built.",
)
@click.option("--git-sha", help="With --as-pipeline: the commit the image will be built from (default: git HEAD).")
@click.option(
    "--quiet", is_flag=True, help="With --offline: no tree, outputs or progress; the findings and the verdict."
)
@click.option(
    "--no-analysis-reuse",
    is_flag=True,
    help="With --offline: send every request to the policy pack, even one it answered in an earlier view (as "
    "SHIPSAFE_ANALYSIS_REUSE=off), to compare reports byte for byte.",
)
@SETTINGS
@OUTPUT
@pass_deploy
def preview_command(
    deploy: DeployContext,
    stack: str,
    offline: bool,
    as_pipeline: bool,
    git_sha: str | None,
    quiet: bool,
    no_analysis_reuse: bool,
    settings: tuple[str, ...],
    output: str,
) -> None:
    """Preview STACK with the policy pack and the stack's policy config.

    Real (Pulumi CLI): a stack that deploys a prebuilt image is first re-pinned to the release it runs (from its
    state); the stack file is put back afterwards. --offline: every phase of the stack's life under the mock
    runtime, manifests written to out/<stack>/manifests.yaml. Tracked files are never changed.
    """
    if (as_pipeline or git_sha or settings or quiet or no_analysis_reuse) and not offline:
        raise ShipsafeError(
            "--as-pipeline, --git-sha, --quiet, --no-analysis-reuse and --set only apply to --offline", ExitCode.USAGE
        )
    if git_sha and not as_pipeline:
        raise ShipsafeError("--git-sha needs --as-pipeline", ExitCode.USAGE)
    quiet_console_for_json(deploy, output)
    if offline:
        if not settings and not as_pipeline:  # the stack file's own config: the pack the preview will start
            deploy.prelaunch_pack(deploy.project_dir, stack)  # boots while the SDKs are imported
        from deploy.offline.commands import offline_preview

        release = _as_pipeline(deploy, stack, git_sha) if as_pipeline else None
        reuse = "off" if no_analysis_reuse else None
        offline_preview(deploy, stack, settings, output, quiet=quiet, release=release, analysis_reuse=reuse)
        return
    pulumi_preview(deploy, stack, output)


@click.command("render")
@stack_argument
@SETTINGS
@click.option("--ref", help="Render the program and stack file at this git ref instead of the working tree.")
@click.option(
    "--output-dir",
    help="Write one file per object (NN-kind-name.yaml, apply order) here instead of one stream on stdout; only "
    f"the files an earlier render listed in {RENDER_LIST} are ever removed or overwritten.",
)
@pass_deploy
def render_command(
    deploy: DeployContext, stack: str, settings: tuple[str, ...], ref: str | None, output_dir: str | None
) -> None:
    """Render STACK's Kubernetes objects offline, like `helm template`: byte-identical for the same inputs, in the
    order a deploy applies them, Secret values as placeholders."""
    from deploy.offline.commands import config_overrides, render_ref, render_working_tree, run_program

    if output_dir is not None and not output_dir.strip():
        raise ShipsafeError("--output-dir is empty: name the directory to write into", ExitCode.USAGE)
    overrides = config_overrides(deploy.project_dir, stack, settings)
    if ref is not None:
        if output_dir is not None:
            raise ShipsafeError("--ref renders to stdout; --output-dir takes the working tree", ExitCode.USAGE)
        sys.stdout.write(render_ref(deploy.project_dir, stack, ref, overrides))
        return
    if output_dir is None:
        click.echo(render_working_tree(deploy.project_dir, stack, overrides), nl=False)
        return
    recording = run_program(deploy.project_dir, stack, overrides)
    try:
        written = render_to_directory(recording, Path(output_dir))
    except RenderDirectoryError as error:
        raise ShipsafeError(str(error), ExitCode.REFUSED) from None
    except LocalFileError as error:
        raise ShipsafeError(str(error), ExitCode.REFUSED) from None
    except OSError as error:
        where = error.filename or output_dir
        raise ShipsafeError(
            f"{where}: cannot write the render: {error.strerror}", ExitCode.LOCAL_WRITE_FAILED
        ) from None
    deploy.console.print(f"{len(written)} objects written to {escape(output_dir)}", highlight=False)


@click.command("diff")
@stack_argument
@SETTINGS
@click.option("--against", "ref", default="HEAD", show_default=True, help="The git ref to compare the tree with.")
@click.option(
    "--against-render",
    "previous",
    type=click.Path(exists=True, path_type=Path),
    help="Compare with a saved render instead (a manifests file, or a directory from render --output-dir).",
)
@click.option("--exit-code", is_flag=True, help="Exit CHANGES_FOUND (18) when the objects differ, like git diff.")
@OUTPUT
@pass_deploy
def diff_command(
    deploy: DeployContext,
    stack: str,
    settings: tuple[str, ...],
    ref: str,
    previous: Path | None,
    exit_code: bool,
    output: str,
) -> None:
    """What the working tree (plus --set values) changes in STACK's rendered objects, like helm-diff, offline:
    one unified diff per added, removed or changed object."""
    from deploy.offline.commands import config_overrides, diff_against_ref, diff_against_render
    from deploy.reports import diff_document

    overrides = config_overrides(deploy.project_dir, stack, settings)
    if previous is not None:
        diff = diff_against_render(deploy.project_dir, stack, previous, overrides)
    else:
        diff = diff_against_ref(deploy.project_dir, stack, ref, overrides)
    if output == "json":
        emit_json(diff_document(stack, diff.against, diff.changes))
    elif diff.changes:
        click.echo(diff.text, nl=False)
    else:
        click.echo(f"no change to the rendered objects of {stack}")
    if exit_code and diff.changes:
        raise ShipsafeError(f"{len(diff.changes)} objects of {stack} differ", ExitCode.CHANGES_FOUND)
