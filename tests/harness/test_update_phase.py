"""The after-`up` phase is analyzed by the pack of an update, as the engine starts one per deployment: pulumi/pulumi
`pkg/engine/update.go` passes the deployment's `DryRun` to `PolicyAnalyzerOptions`, which the analyzer plugin puts
in `PULUMI_DRY_RUN` (`pkg/resource/plugin/analyzer_plugin.go`) and in `AnalyzerStackConfigureRequest.dry_run`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import analyzer
from harness.phases import Phase, PhaseRecording
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS

DRY_RUN_PACK = """
import os
import pulumi
from pulumi_policy import PolicyPack, StackValidationPolicy

def dry_run(args, report):
    report(f"{os.environ['PULUMI_DRY_RUN']} {pulumi.runtime.is_dry_run()}")

PolicyPack("dry-run", [StackValidationPolicy("dry-run", "reports the pack's dry-run flag", dry_run)])
"""


@pytest.fixture
def dry_run_pack(tmp_path: Path) -> Path:
    (tmp_path / "__main__.py").write_text(DRY_RUN_PACK)
    (tmp_path / "PulumiPolicy.yaml").write_text(
        f"runtime:\n  name: python\n  options:\n    virtualenv: {REPO_ROOT}/.venv\n"
    )
    (tmp_path / "config.json").write_text(json.dumps({}))
    return tmp_path


@pytest.mark.parametrize("stack", STACKS)
def test_after_up_is_analyzed_as_an_update_and_the_previews_as_previews(
    stack: str, dry_run_pack: Path, phase_recordings: dict[tuple[str, Phase], PhaseRecording]
) -> None:
    expected = {Phase.FIRST_PREVIEW: "true True", Phase.AFTER_UP: "false False", Phase.LATER_PREVIEW: "true True"}
    with analyzer.booted_in_background(
        dry_run_pack / "config.json", project="shipsafe", stack=stack, pack_dir=dry_run_pack
    ) as analyze:
        seen = {
            phase: [v.message for v in analyze(phase_recordings[stack, phase].recording).violations] for phase in Phase
        }
    assert seen == {phase: [flag] for phase, flag in expected.items()}
