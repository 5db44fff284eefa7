"""`--offline` delegates to the foundation's offline preview (mock runtime + real policy pack, no CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from deploy.offline import preview
from harness import analyzer, pack_driver, pack_launch
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


@pytest.fixture
def packs_in_this_process(monkeypatch):
    """The packs driven from this process (`harness.pack_driver`): the test watches what the driver does with them."""
    monkeypatch.setattr(pack_driver, "AVAILABLE", False)


def test_offline_preview_failure_fails_the_command_with_its_exit_code():
    result = run("up", "qa", "--offline")
    assert result.exit_code == ExitCode.CONFIG_ERROR  # no Pulumi.qa.yaml
    assert "offline preview of qa failed" in result.stderr


def test_the_offline_preview_runs_on_the_pack_it_started_before_importing_the_sdks(monkeypatch, packs_in_this_process):
    taken = []
    take = analyzer.take_prelaunched

    def recording_take(launch: pack_launch.PackLaunch) -> object:
        taken.append((dict(launch.environment)["PULUMI_DRY_RUN"], take(launch)))
        return taken[-1][1]

    monkeypatch.setattr(analyzer, "take_prelaunched", recording_take)
    result = run("preview", "staging", "--offline", "--quiet")
    assert result.exit_code == 0, result.output
    # The first pack (the previews') is the prelaunched process; the update's is started when it is needed.
    assert [(dry_run, process is not None) for dry_run, process in taken] == [("true", True), ("false", False)]
    assert not pack_launch._PRELAUNCHED


def test_the_pack_is_told_the_config_the_program_runs_with(monkeypatch, packs_in_this_process):
    told = {}

    class Stop(Exception):
        pass

    def booted(policy_config, **given):
        told.update(given["stack_config"])
        raise Stop

    monkeypatch.setattr(analyzer, "booted_in_background", booted)
    with pytest.raises(Stop):
        preview.offline_preview("staging", {"shipsafe:environment": "production"}, project_dir=REPO)
    assert told["shipsafe:environment"] == "production"  # as `pulumi config set` before `pulumi preview`
