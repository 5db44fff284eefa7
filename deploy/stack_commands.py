"""`shipsafe stack`, `new`, `init`, `history`, `status` and `destroy`: the stacks themselves."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from deploy.context import DeployContext
from deploy.docs.policies import update_page
from deploy.errors import ExitCode, ShipsafeError
from deploy.history import history_rows
from deploy.new_app import AppOptions, new_app
from deploy.new_stack import add_stack
from deploy.offline.commands import protected_resources
from deploy.options import OUTPUT, emit_json, pass_deploy, quiet_console_for_json, stack_argument, stacks_argument
from deploy.reports import history_document, stack_list_document
from deploy.stacks import init_stacks
from deploy.status import status_document
from harness.analyzer import PolicyPackError
from harness.stack_config import stack_names

RESULT_COLOURS = {"succeeded": "green", "failed": "red"}


@click.group("stack")
def stack_group() -> None:
    """The project's stacks: one per Pulumi.<stack>.yaml, each with its policy/config/<stack>.json."""


@stack_group.command("list")
@OUTPUT
@pass_deploy
def list_command(deploy: DeployContext, output: str) -> None:
    """Every stack of the project, one per line (json: the document's `stacks`), as the tests, `make policy-check`
    and CI find them."""
    names = stack_names(deploy.project_dir)
    if output == "json":
        emit_json(stack_list_document(names))
        return
    for name in names:
        click.echo(name)


@stack_group.command("add")
@click.argument("name")
@click.option("--from", "source", required=True, help="The stack to copy: its stack file and its policy config.")
@pass_deploy
def add_command(deploy: DeployContext, name: str, source: str) -> None:
    """Create stack NAME from a copy of stack SOURCE: Pulumi.NAME.yaml (with its own namespace) and
    policy/config/NAME.json. Writes files only; `shipsafe init NAME` creates the stack in the backend."""
    created = add_stack(deploy.project_dir, name, source)
    deploy.console.print(
        f"stack {escape(name)}: wrote {created.stack_file.name} (namespace {escape(created.namespace)}) and "
        f"{created.policy_config.relative_to(deploy.project_dir)}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        page = update_page(deploy.project_dir)
    except PolicyPackError as error:
        raise ShipsafeError(
            f"stack {name} written, but the policy reference could not be regenerated: {error}; run "
            "`python -m deploy.docs docs/policies.md`",
            ExitCode.POLICY_PACK_FAILED,
        ) from None
    if page is not None:
        deploy.console.print(f"  updated {page.relative_to(deploy.project_dir)} (a column for {escape(name)})")
    for key in created.secrets_to_set:
        deploy.console.print(f"  secret left out: pulumi config set --secret -s {escape(name)} {escape(key)}")
    for line in created.mentions_of_source:
        deploy.console.print(f"  still names {escape(source)}, review: {escape(line)}", highlight=False, soft_wrap=True)
    deploy.console.print(f"next: shipsafe config validate {escape(name)}; shipsafe preview {escape(name)} --offline")


@click.command("new")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--name", help="The app's name (a DNS label): the project, namespace and object names.  [default: DIRECTORY's name]"
)
@click.option("--host", required=True, help="The public host name the app is served at.")
@click.option(
    "--registry", required=True, help="SERVER/REPOSITORY the app's image is pushed to; the policy config trusts it."
)
@click.option("--stack", default="staging", show_default=True, help="The first stack: Pulumi.<stack>.yaml.")
@click.option(
    "--environment",
    type=click.Choice(["staging", "production"]),
    default="staging",
    show_default=True,
    help="The stack's shipsafe:environment (production deploys a prebuilt image only).",
)
@click.option("--port", type=int, default=8080, show_default=True, help="The container port the app listens on.")
@click.option("--liveness-path", default="/healthz", show_default=True, help="Path the liveness probe GETs.")
@click.option("--readiness-path", default="/readyz", show_default=True, help="Path the readiness probe GETs.")
@click.option("--metrics-path", default="/metrics", show_default=True, help="Path Prometheus scrapes.")
@click.option(
    "--public-path",
    "public_paths",
    multiple=True,
    required=True,
    help="Path prefix the Ingress routes to the app, e.g. /api (repeatable; never the metrics path).",
)
@click.option(
    "--prometheus-url",
    "verification_url",
    default="http://prometheus-operated.monitoring.svc:9090",
    show_default=True,
    help="The Prometheus `shipsafe verify` judges a new release by.",
)
@click.option(
    "--image-source",
    type=click.Choice(["build", "prebuilt"]),
    default="build",
    show_default=True,
    help="build: from this repository's Dockerfile; prebuilt: --image-ref, pushed by the app's CI.",
)
@click.option("--image-ref", help="With --image-source prebuilt: SERVER/REPOSITORY:SHA@sha256:DIGEST.")
@click.option("--build-context", default=".", show_default=True, help="Directory the image is built from.")
@click.option("--dockerfile", help="The Dockerfile, relative to the repository.  [default: BUILD_CONTEXT/Dockerfile]")
@click.option("--build-target", help="The Dockerfile stage to build.  [default: its last stage]")
@click.option("--run-as-user", type=int, default=10001, show_default=True, help="The UID the image's USER runs as.")
@click.pass_context
def new_command(
    ctx: click.Context, directory: Path, name: str | None, public_paths: tuple[str, ...], **options: Any
) -> None:
    """Create an app repository in DIRECTORY that deploys with this shipsafe, as `pulumi new` would.

    Writes Pulumi.yaml, a few-line __main__.py (the installed components' program), Pulumi.<stack>.yaml with the
    app's port, probe paths and image, policy/ (the installed pack) with policy/config/<stack>.json,
    requirements.txt, .gitignore and README.md. The stack is checked as `config validate` checks it first; an
    existing file is never overwritten.
    """
    app = AppOptions(name=name or directory.resolve().name, public_paths=public_paths, **options)
    for path in new_app(directory, app):
        click.echo(f"created {directory / path}")
    click.echo(
        f"next: in {directory}, install shipsafe into venv/ (its README.md), then shipsafe config validate; "
        f"shipsafe preview {app.stack} --offline"
    )


@click.command("init")
@stacks_argument
@pass_deploy
def init_command(deploy: DeployContext, stacks: list[str]) -> None:
    """Create STACKS (default: every Pulumi.<stack>.yaml) with the secrets provider each file names.

    Idempotent: an existing stack is left as it is. With a passphrase provider (the default of a file:// or
    cloud-bucket backend), PULUMI_CONFIG_PASSPHRASE must be set first.
    """
    if deploy.create_stack is None:
        raise ShipsafeError("this context cannot create stacks", ExitCode.FAILED)
    for result in init_stacks(deploy.project_dir, stacks, deploy.create_stack, os.environ):
        state = "created" if result.created else "exists, left as it is"
        provider = result.secrets_provider or "the backend's default"
        deploy.console.print(f"stack {result.name}: {state} (secrets provider: {provider})")


@click.command("history")
@stack_argument
@OUTPUT
@pass_deploy
def history_command(deploy: DeployContext, stack: str, output: str) -> None:
    """Table of STACK's past updates: version, time, result, image SHA, who and message."""
    records = deploy.open_stack(stack).history()
    if output == "json":
        emit_json(history_document(stack, records))
        return
    table = Table(title=f"history of {stack}")
    for column in ("version", "time", "kind", "result", "image", "by", "message"):
        table.add_column(column, overflow="fold")
    for row in history_rows(records):
        colour = RESULT_COLOURS.get(row.result, "yellow")
        table.add_row(
            str(row.version),
            row.time,
            row.kind,
            f"[{colour}]{row.result}[/{colour}]",
            escape(row.image),
            escape(row.by),
            escape(row.message),
        )
    deploy.console.print(table)


@click.command("status")
@stacks_argument
@OUTPUT
@pass_deploy
def status_command(deploy: DeployContext, stacks: list[str], output: str) -> None:
    """What runs where: per stack (default: every Pulumi.<stack>.yaml) the release, image, last update and the last
    verification run from this checkout."""
    quiet_console_for_json(deploy, output)
    document = status_document(deploy, stacks or stack_names(deploy.project_dir))
    if output == "json":
        emit_json(document)
        return
    table = Table(title="status")
    for column in ("stack", "release", "image", "last update", "last verification"):
        table.add_column(column, overflow="fold")
    for entry in document["stacks"]:
        if not entry["exists"]:
            table.add_row(escape(entry["stack"]), "[yellow]not created[/yellow] (shipsafe init)", "", "", "")
            continue
        update, verification = entry["lastUpdate"], entry["lastVerification"]
        colour = RESULT_COLOURS.get(update["result"], "yellow") if update else "yellow"
        table.add_row(
            escape(entry["stack"]),
            escape((entry["release"] or "-")[:12]),
            escape(entry["imageRef"] or "-"),
            f"{update['version']} [{colour}]{update['result']}[/{colour}] {update['time']}" if update else "-",
            escape(f"{verification['outcome']} for {verification['version'][:12]} at {verification['at']}")
            if verification
            else "-",
        )
    deploy.console.print(table)


@click.command("destroy")
@stack_argument
@pass_deploy
def destroy_command(deploy: DeployContext, stack: str) -> None:
    """Explain how to destroy STACK; shipsafe never destroys one itself (exit REFUSED).

    The program protects the data-bearing resources (the databases' StatefulSets, their passwords and auth
    Secrets), so `pulumi destroy` refuses until each is unprotected: an explicit step, after a backup.
    """
    protected = protected_resources(deploy.project_dir, stack.rsplit("/", 1)[-1])
    deploy.console.print(
        f"Destroying {escape(stack)} deletes its namespace and, with its {len(protected)} protected resources, "
        "its data. Back the data up first, then run:",
        highlight=False,
    )
    # pulumi/pulumi pkg/cmd/pulumi/state/state_unprotect.go (`newStateUnprotectCommand`): any number of URNs, and a
    # confirmation prompt unless --yes, which is left off on purpose.
    urns = " ".join(f"'{resource.urn}'" for resource in protected)
    for line in (f"pulumi state unprotect -s {stack} {urns}", f"pulumi destroy -s {stack}"):
        deploy.console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    raise ShipsafeError(f"shipsafe does not destroy stacks; nothing was changed in {stack}", ExitCode.REFUSED)
