"""Reusing the pack's answer to an identical request changes nothing a person or a pipeline reads: the offline
preview's JSON report is byte-identical with reuse on, off by the flag, and off by the environment variable."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from harness import analyzer
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS
from tests.deploy.memory_stack import MemoryStacks

pytestmark = pytest.mark.slow  # offline previews of every stack, three times


@pytest.mark.parametrize("stack", STACKS)
def test_reports_are_byte_identical_with_reuse_on_and_off(stack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The structured report of every phase (`--output json`), with the flag and with the environment variable."""
    monkeypatch.delenv(analyzer.REUSE_VARIABLE, raising=False)
    arguments = ["preview", stack, "--offline", "--quiet", "--output", "json"]
    deploy = DeployContext(open_stack=MemoryStacks(), project_dir=REPO_ROOT)
    reports = []
    for extra, variable in (([], None), (["--no-analysis-reuse"], None), ([], "off")):
        if variable:
            monkeypatch.setenv(analyzer.REUSE_VARIABLE, variable)
        result = CliRunner().invoke(cli, [*arguments, *extra], obj=deploy)
        assert result.exit_code == 0, result.output
        reports.append(result.stdout)
    assert json.loads(reports[0])["phases"], "every phase was analyzed"
    assert reports[0] == reports[1] == reports[2]
