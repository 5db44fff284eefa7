"""The Automation API adapter: error mapping and type conversion always; a real round trip with a `pulumi` CLI.

The round trip uses a tiny local project (outputs computed from config, no providers), a file backend in a
temp dir and a no-op policy pack, so it needs nothing but the CLI. This machine and CI have no CLI: those
tests are skipped with that reason and never faked.
"""

from __future__ import annotations

import functools
import shutil
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from click.testing import CliRunner
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from rich.console import Console

from deploy.automation import AutomationStack, _pulumi_errors, _record, open_stack
from deploy.backend import StateResource
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import ImageRef
from deploy.rollback import rollback_stack
from deploy.rollout import deploy_release
from tests.deploy.memory_stack import image, sha

needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None, reason="needs the Pulumi CLI on PATH (none on this machine or in CI)"
)


def command_result(stderr: str) -> CommandResult:
    return CommandResult(stdout="", stderr=stderr, code=255)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (auto.errors.StackNotFoundError(command_result("no stack named 'qa' found")), ExitCode.STACK_NOT_FOUND),
        (auto.errors.ConcurrentUpdateError(command_result("[409] Conflict")), ExitCode.CONCURRENT_UPDATE),
        (auto.errors.CommandError(command_result("error: policy violation")), ExitCode.PULUMI_FAILED),
    ],
)
def test_automation_errors_map_to_distinct_exit_codes(error, code):
    with pytest.raises(ShipsafeError) as raised, _pulumi_errors("qa"):
        raise error
    assert raised.value.exit_code is code


def test_command_errors_keep_the_engine_message():
    with pytest.raises(ShipsafeError, match="mandatory policy violation") as raised, _pulumi_errors("prod"):
        raise auto.errors.CommandError(command_result("error: mandatory policy violation: no-latest-tag"))
    assert raised.value.message.startswith("pulumi failed on prod:")


def test_update_summaries_become_records_with_their_config():
    summary = auto.UpdateSummary(
        kind="update",
        start_time=datetime(2026, 1, 1, 9, 30),
        message="deploy abc",
        environment={"git.author": "Dev"},
        config={
            "shipsafe:imageRef": {"value": image(1), "secret": False},
            "shipsafe:registryPassword": {"secret": True},
        },
        result="succeeded",
        version=7,
    )
    record = _record(summary)
    assert (record.version, record.result, record.message) == (7, "succeeded", "deploy abc")
    assert record.config == {"shipsafe:imageRef": image(1), "shipsafe:registryPassword": "[secret]"}
    assert record.environment == {"git.author": "Dev"}


def test_the_state_s_resources_come_from_the_stack_export():
    """`pulumi stack export` JSON (pulumi `apitype.ResourceV3`): the fields the existing-objects check reads."""
    namespace = "urn:pulumi:staging::shipsafe::shipsafe:components:AppNamespace$kubernetes:core/v1:Namespace::ns"
    exported = auto.Deployment(
        version=3,
        deployment={
            "resources": [
                {"urn": "urn:pulumi:staging::shipsafe::pulumi:pulumi:Stack::shipsafe-staging", "custom": False,
                 "type": "pulumi:pulumi:Stack"},
                {"urn": namespace, "custom": True, "id": "notes-staging", "type": "kubernetes:core/v1:Namespace",
                 "outputs": {"metadata": {"name": "notes-staging"}}},
                {"urn": "urn:x", "custom": True, "id": "notes-staging/old", "type": "kubernetes:batch/v1:Job",
                 "delete": True},
                {"urn": "urn:y", "custom": True, "id": "kube-system", "type": "kubernetes:core/v1:Namespace",
                 "external": True},
            ]
        },
    )  # fmt: skip
    stack = SimpleNamespace(name="staging", workspace=SimpleNamespace(work_dir="."), export_stack=lambda: exported)
    assert AutomationStack(cast(auto.Stack, stack)).resources() == [
        StateResource("urn:pulumi:staging::shipsafe::pulumi:pulumi:Stack::shipsafe-staging", "pulumi:pulumi:Stack", ""),
        StateResource(namespace, "kubernetes:core/v1:Namespace", "notes-staging"),
        StateResource("urn:x", "kubernetes:batch/v1:Job", "notes-staging/old", pending_delete=True),
        StateResource("urn:y", "kubernetes:core/v1:Namespace", "kube-system", external=True),
    ]


def test_without_a_cli_the_tool_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ShipsafeError, match="no pulumi CLI on PATH") as raised:
        open_stack("staging", project_dir=tmp_path)
    assert raised.value.exit_code is ExitCode.PULUMI_MISSING


def test_cli_without_pulumi_exits_with_its_own_code(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = CliRunner().invoke(cli, ["--project-dir", str(tmp_path), "history", "staging"])
    assert result.exit_code == ExitCode.PULUMI_MISSING
    assert "no pulumi CLI on PATH" in result.stderr


# ── with a real CLI ───────────────────────────────────────────────────────────────────────────────────

PROGRAM = """
import pulumi

config = pulumi.Config("shipsafe")
sha = config.require("gitSha")
pulumi.export("imageRef", config.get("imageRef"))
pulumi.export("gitSha", sha)
pulumi.export("appVersion", sha)
pulumi.export("dirty", sha.endswith("-dirty"))
pulumi.export("migrationJob", None if config.get_bool("rollback") else f"notes-migrate-{sha[:12]}")
"""

POLICY = """
from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

PolicyPack(
    name="adapter-test",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[StackValidationPolicy(name="accept-all", description="accepts", validate=lambda args, report: None)],
)
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime = f"  name: python\n  options:\n    virtualenv: {sys.prefix}\n"
    (tmp_path / "Pulumi.yaml").write_text(f"name: shipsafe\nruntime:\n{runtime}")
    (tmp_path / "__main__.py").write_text(textwrap.dedent(PROGRAM))
    policy = tmp_path / "policy"
    (policy / "config").mkdir(parents=True)
    (policy / "PulumiPolicy.yaml").write_text(f"runtime:\n{runtime}")
    (policy / "__main__.py").write_text(textwrap.dedent(POLICY))
    (policy / "config" / "staging.json").write_text("{}\n")
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'state'}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "adapter-test-only")
    auto.create_stack("staging", work_dir=str(tmp_path))
    return tmp_path


@needs_cli
def test_round_trip_deploy_history_and_rollback(project):
    ctx = DeployContext(
        open_stack=functools.partial(open_stack, project_dir=project), project_dir=project, console=Console()
    )
    backend = ctx.open_stack("staging")
    assert isinstance(backend, AutomationStack)
    for n in (1, 2):
        record = deploy_release(ctx, backend, image=ImageRef.parse(image(n)), git_sha=None, message=f"deploy {n}")
        assert record.result == "succeeded"
    assert backend.outputs()["imageRef"] == image(2)
    history = backend.history()
    assert [r.version for r in history[:2]] == [2, 1]
    assert history[1].config["shipsafe:imageRef"] == image(1)

    target = rollback_stack(ctx, backend, reason="adapter test")
    assert target.record.version == 1
    outputs = backend.outputs()
    assert (outputs["imageRef"], outputs["gitSha"], outputs["migrationJob"]) == (image(1), sha(1), None)
    assert backend.get_config()["shipsafe:rollback"] == "true"
    assert backend.history()[0].message.startswith("rollback to update 1")


@needs_cli
def test_real_cli_history_and_unknown_stack(project):
    history = CliRunner().invoke(cli, ["--project-dir", str(project), "history", "staging"])
    assert history.exit_code == 0, history.output
    missing = CliRunner().invoke(cli, ["--project-dir", str(project), "history", "qa"])
    assert missing.exit_code == ExitCode.STACK_NOT_FOUND


class _StackWithSecrets:
    """What `auto.Stack.get_all_config` returns: every value decrypted, with its secret flag."""

    name = "prod"

    class workspace:  # mirrors the attribute the adapter reads
        work_dir = "."

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return {
            "shipsafe:registryPassword": auto.ConfigValue("hunter2", secret=True),
            "shipsafe:app": auto.ConfigValue('{"host": "https://user:pw@x"}', secret=True),
            "shipsafe:gitSha": auto.ConfigValue("0123abc"),
            "kubernetes:kubeconfig": auto.ConfigValue("apiVersion: v1", secret=True),
        }


def test_secret_config_never_leaves_the_adapter_in_plain_text():
    config = AutomationStack(_StackWithSecrets()).get_config()  # type: ignore[arg-type]
    # A shipsafe: secret comes back as the history's sentinel: no rollback can print or restore it.
    assert config["shipsafe:registryPassword"] == config["shipsafe:app"] == "[secret]"
    assert config["shipsafe:gitSha"] == "0123abc"
    assert config["kubernetes:kubeconfig"] == "apiVersion: v1", "provider config stays usable (prerequisites)"
