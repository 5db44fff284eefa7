"""`--offline` delegates to the foundation's offline preview (mock runtime + real policy pack, no CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from tests.conftest import STACKS
from tests.deploy.memory_stack import MemoryStacks

pytestmark = pytest.mark.slow  # runs the offline preview or the CLI end to end

REPO = Path(__file__).resolve().parents[2]


def run(*args: str):
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)  # no stack may be opened
    return CliRunner().invoke(cli, list(args), obj=context)


@pytest.mark.parametrize("stack", STACKS)
def test_offline_preview_of_the_real_stacks_passes_the_policy_pack(stack):
    result = run("preview", stack, "--offline")
    assert result.exit_code == 0, result.output
    assert f"Policy pack shipsafe on stack {stack}" in result.output
    assert "MANDATORY violations: 0" in result.output


def test_offline_preview_failure_fails_the_command_with_its_exit_code():
    result = run("up", "qa", "--offline")
    assert result.exit_code == ExitCode.CONFIG_ERROR  # no Pulumi.qa.yaml
    assert "offline preview of qa failed" in result.stderr
