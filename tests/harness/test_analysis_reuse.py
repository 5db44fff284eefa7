"""Reuse of identical analyses (`harness.analyzer.AnalysisReuse`): the pack's answer to a byte-identical request is
reused only while nothing else a policy reads has changed, and a pack that reads anything else breaks it loudly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import analyzer
from harness.analyzer import AnalysisReuse, PolicyPackError, PolicyPackProcess, ReuseMismatch
from harness.phases import model_phases
from harness.recording import DOCKER_IMAGE, RecordedResource, Recording
from harness.stack_config import policy_config_path
from tests.conftest import STACKS, pinned
from tests.policy.stack_edits import new_resource

# Policies that read something outside the request: a counter kept between requests, and a file nobody declared.
HOSTILE_PACK = """
import pathlib
from pulumi_policy import PolicyConfigSchema, PolicyPack, ResourceValidationPolicy

SEEN = {}

def counts(args, report):
    SEEN[args.urn] = SEEN.get(args.urn, 0) + 1
    if SEEN[args.urn] > 1:
        report(f"seen {SEEN[args.urn]} times")

def reads(args, report):
    report(pathlib.Path(args.get_config()["path"]).read_text())

def dockerfile(args, report):
    if args.resource_type == "docker:index/image:Image":
        project = pathlib.Path(args.get_config()["projectDir"])
        report((project / args.props["build"]["context"] / "Dockerfile").read_text())

POLICIES = {"counts": counts, "reads-undeclared-file": reads, "reads-dockerfile": dockerfile}
SCHEMAS = {
    "reads-undeclared-file": PolicyConfigSchema({"path": {"type": "string"}}),
    "reads-dockerfile": PolicyConfigSchema({"projectDir": {"type": "string"}}),
}
PolicyPack("hostile", [
    ResourceValidationPolicy(name, name, check, config_schema=SCHEMAS.get(name)) for name, check in POLICIES.items()
])
"""


def _image(context: str) -> RecordedResource:
    inputs = {
        "imageName": "registry.example/app:1",
        "build": {"context": context, "dockerfile": f"{context}/Dockerfile"},
    }
    return new_resource(Recording("shipsafe", "unit", []), DOCKER_IMAGE, "image", inputs)


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """The pack (enabled: one policy, named by the test) and a project directory with an undeclared file."""
    pack_dir = tmp_path / "pack"
    pack_dir.mkdir()
    (pack_dir / "__main__.py").write_text(HOSTILE_PACK)
    project = tmp_path / "project"
    (project / "app").mkdir(parents=True)
    (project / "app" / "Dockerfile").write_text("FROM scratch\n")
    (project / "undeclared.txt").write_text("first")
    return pack_dir, project


def _analyses(pack_dir: Path, project: Path, policy: str, mode: str) -> tuple[PolicyPackProcess, AnalysisReuse]:
    reuse = AnalysisReuse(mode)
    pack = PolicyPackProcess(pack_dir, python=Path(sys.executable), stack="unit", reuse=reuse)
    pack.__enter__()
    others = {name: "disabled" for name in ("counts", "reads-undeclared-file", "reads-dockerfile") if name != policy}
    pack.configure(
        {
            **{name: {"enforcementLevel": level} for name, level in others.items()},
            "reads-undeclared-file": {
                **({"enforcementLevel": "disabled"} if policy != "reads-undeclared-file" else {}),
                "path": str(project / "undeclared.txt"),
            },
            "reads-dockerfile": {
                **({"enforcementLevel": "disabled"} if policy != "reads-dockerfile" else {}),
                "projectDir": str(project),
            },
        }
    )
    return pack, reuse


def _messages(report: analyzer.AnalysisReport) -> list[str]:
    return [v.message for v in report.violations]


@pytest.mark.parametrize("policy", ["counts", "reads-undeclared-file"])
def test_a_policy_reading_outside_the_request_breaks_the_reuse_check_loudly(
    hostile: tuple[Path, Path], policy: str
) -> None:
    pack_dir, project = hostile
    recording = Recording("shipsafe", "unit", [_image("app")])
    pack, _ = _analyses(pack_dir, project, policy, "verify")
    try:
        pack.analyze(recording)
        (project / "undeclared.txt").write_text("second")
        with pytest.raises(ReuseMismatch, match="answered a byte-identical request differently"):
            pack.analyze(recording)
    finally:
        pack.close()


def test_reuse_would_hand_back_a_stale_answer_to_such_a_policy(hostile: tuple[Path, Path]) -> None:
    """Why the check exists: with reuse on, the undeclared file's change goes unseen."""
    pack_dir, project = hostile
    recording = Recording("shipsafe", "unit", [_image("app")])
    pack, reuse = _analyses(pack_dir, project, "reads-undeclared-file", "on")
    try:
        assert _messages(pack.analyze(recording)) == ["first"]
        (project / "undeclared.txt").write_text("second")
        assert _messages(pack.analyze(recording)) == ["first"]
        assert reuse.reused == 2  # Analyze and AnalyzeStack
    finally:
        pack.close()


def test_the_dockerfile_an_image_names_is_part_of_the_key(hostile: tuple[Path, Path]) -> None:
    pack_dir, project = hostile
    recording = Recording("shipsafe", "unit", [_image("app")])
    pack, reuse = _analyses(pack_dir, project, "reads-dockerfile", "verify")
    try:
        assert _messages(pack.analyze(recording)) == ["FROM scratch"]
        assert _messages(pack.analyze(recording)) == ["FROM scratch"]
        (project / "app" / "Dockerfile").write_text("FROM scratch AS changed\n")
        assert _messages(pack.analyze(recording)) == ["FROM scratch AS changed"]  # a new key: no mismatch raised
        assert reuse.verified == 2  # the second analysis: both requests answered as before
    finally:
        pack.close()


def test_the_real_pack_answers_every_repeated_request_as_before() -> None:
    """Every phase and API server version of both stacks, analyzed as the preview does, with every request sent to
    the pack and compared with the answer kept for the same key."""
    for stack in STACKS:
        config = analyzer.load_policy_config(policy_config_path(Path.cwd(), stack))
        reuse = AnalysisReuse("verify")
        phases = model_phases(stack, config_overrides=pinned(stack))
        for dry_run in (True, False):
            with PolicyPackProcess(stack=stack, dry_run=dry_run, reuse=reuse) as pack:
                pack.configure(config)
                for phase in phases:
                    if phase.recording.preview == dry_run:
                        pack.analyze(phase.recording)
        assert reuse.verified > len(phases[0].recording.resources), f"{stack}: few requests repeat; reuse untested"


def test_an_unknown_reuse_mode_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(analyzer.REUSE_VARIABLE, "sometimes")
    with pytest.raises(PolicyPackError, match="SHIPSAFE_ANALYSIS_REUSE='sometimes': must be one of on, off, verify"):
        analyzer.reuse_mode()
