"""`deploy init`: every stack with a Pulumi.<stack>.yaml, its own secrets provider, idempotent, passphrase checked."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from deploy.automation import create_stack
from deploy.errors import ExitCode
from tests.deploy.memory_stack import MemoryStacks


@pytest.fixture
def project(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """staging names a passphrase provider; prod names none (the backend's default); the backend is a file one."""
    (project_dir / "Pulumi.yaml").write_text("name: shipsafe\nruntime: python\n")
    (project_dir / "Pulumi.staging.yaml").write_text(
        "secretsprovider: passphrase\nconfig:\n  shipsafe:rollback: false\n"
    )
    (project_dir / "Pulumi.prod.yaml").write_text("config:\n  shipsafe:rollback: false\n")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{project_dir / 'state'}")
    for variable in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(variable, raising=False)
    return project_dir


@pytest.fixture
def empty() -> MemoryStacks:
    return MemoryStacks()


@pytest.fixture
def init(run_cli, deploy_ctx, empty):
    deploy_ctx.open_stack = empty
    deploy_ctx.create_stack = empty.create
    return lambda *stacks: run_cli("init", *stacks)


def test_init_creates_every_stack_with_the_provider_its_file_names(init, empty, project, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "")  # empty is a valid passphrase for pulumi
    result = init()
    assert result.exit_code == 0, result.output
    assert {name: stack.secrets_provider for name, stack in empty.items()} == {"prod": None, "staging": "passphrase"}
    assert "stack staging: created (secrets provider: passphrase)" in result.output
    assert "stack prod: created (secrets provider: the backend's default)" in result.output


def test_init_is_idempotent(init, empty, project, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "s3cret")
    assert init().exit_code == 0
    staging = empty["staging"]
    staging.set_config({"shipsafe:gitSha": "abc1234"})
    again = init()
    assert again.exit_code == 0, again.output
    assert "stack staging: exists, left as it is" in again.output
    assert empty["staging"] is staging and staging.config == {"shipsafe:gitSha": "abc1234"}


def test_a_passphrase_provider_needs_the_passphrase_before_anything_is_created(init, empty, project):
    result = init()
    assert result.exit_code == ExitCode.PREREQUISITES_MISSING
    message = result.stderr.replace("\n", " ")
    assert "stacks prod, staging encrypt secrets with a passphrase" in message
    assert "set PULUMI_CONFIG_PASSPHRASE" in message
    assert empty == {}


def test_the_passphrase_can_come_from_a_file(init, empty, project, monkeypatch):
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(project / "passphrase"))
    assert init().exit_code == 0
    assert set(empty) == {"staging", "prod"}


def test_pulumi_cloud_needs_no_passphrase_for_its_default_provider(init, empty, project, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    result = init("prod")
    assert result.exit_code == 0, result.output
    assert set(empty) == {"prod"}
    assert init("staging").exit_code == ExitCode.PREREQUISITES_MISSING  # it names passphrase itself


def test_an_unknown_stack_names_the_known_ones(init, project):
    result = init("qa")
    assert result.exit_code == ExitCode.FAILED
    assert "no stack file Pulumi.qa.yaml (stacks with a file: prod, staging)" in result.stderr


needs_cli = pytest.mark.skipif(
    shutil.which("pulumi") is None, reason="needs the Pulumi CLI on PATH (none on this machine or in CI)"
)


@needs_cli
def test_the_automation_adapter_creates_once(tmp_path, monkeypatch):
    runtime = f"runtime:\n  name: python\n  options:\n    virtualenv: {sys.prefix}\n"
    (tmp_path / "Pulumi.yaml").write_text(f"name: shipsafe\n{runtime}")
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path / 'state'}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "adapter-test-only")
    assert create_stack("e2e", "passphrase", project_dir=tmp_path) is True
    assert create_stack("e2e", "passphrase", project_dir=tmp_path) is False
    assert "encryptionsalt" in (tmp_path / "Pulumi.e2e.yaml").read_text()
