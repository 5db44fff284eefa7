"""Reuse of identical analyses (`harness.analyzer.AnalysisReuse`): the pack's answer to a byte-identical request is
reused only while nothing else a policy reads has changed, and a pack that reads anything else breaks it loudly."""

from __future__ import annotations

import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

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


class _Call:
    """A finished gRPC call: its answer, or the error it failed with."""

    def __init__(self, answer: bytes = b"", error: BaseException | None = None) -> None:
        self.answer, self.error = answer, error

    def result(self) -> bytes:
        if self.error is not None:
            raise self.error
        return self.answer


def test_a_request_being_asked_is_answered_once_for_everyone_who_makes_it() -> None:
    """A view whose request is being asked already (a prefetch, another view) waits for that answer instead of
    asking the pack again; an answer without diagnostics (no bytes) is an answer too."""
    reuse = AnalysisReuse("on")
    first, asking = reuse.claim(b"key")
    again, asking_again = reuse.claim(b"key")
    assert asking is first and asking_again is None and again is first and not asking.done()
    reuse.settle(b"key", asking, _Call(b""), "Analyze one")
    assert asking.result() == b""
    assert reuse.claim(b"key") == (b"", None)
    assert (reuse.asked, reuse.reused) == (1, 2)


def test_a_failed_request_fails_everyone_waiting_for_it_and_is_asked_again() -> None:
    reuse = AnalysisReuse("on")
    _, asking = reuse.claim(b"key")
    waiting, _ = reuse.claim(b"key")
    assert asking is not None and isinstance(waiting, Future)
    crashed = RuntimeError("the pack went away")
    reuse.settle(b"key", asking, _Call(error=crashed), "Analyze one")
    assert waiting.exception() is crashed
    assert reuse.claim(b"key")[1] is not None, "nothing kept: the next one asks"


def test_verify_asks_every_time_and_fails_the_asker_that_got_a_different_answer() -> None:
    reuse = AnalysisReuse("verify")
    _, first = reuse.claim(b"key")
    _, second = reuse.claim(b"key")
    assert first is not None and second is not None and first is not second
    reuse.settle(b"key", first, _Call(_diagnosed("first")), "Analyze one")
    reuse.settle(b"key", second, _Call(_diagnosed("second")), "Analyze one")
    assert first.result() == _diagnosed("first")
    assert isinstance(second.exception(), ReuseMismatch)


def _diagnosed(message: str) -> bytes:
    diagnostic = analyzer.analyzer_pb2.AnalyzeDiagnostic(policyName="counts", message=message)
    return analyzer.analyzer_pb2.AnalyzeResponse(diagnostics=[diagnostic]).SerializeToString()


def test_a_request_that_could_not_be_sent_leaves_nobody_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking fails before any call exists (a closed channel): the claim fails with it, and the next identical
    request asks again instead of waiting for an answer that never comes."""
    closed = ValueError("Cannot invoke RPC on closed channel!")

    class Channel:
        def unary_unary(self, _method: str) -> object:
            def future(*_args: object, **_kwargs: object) -> object:
                raise closed

            return SimpleNamespace(future=future)

    reuse = AnalysisReuse("on")
    pack = PolicyPackProcess(stack="unit", reuse=reuse)
    monkeypatch.setattr(pack, "_channel", Channel())
    request = analyzer.analyze_request(_image("app"), {})
    with pytest.raises(ValueError, match="closed channel"):
        pack._send("Analyze", request, b"context", [], "Analyze image")
    key = reuse.key(b"context", request.SerializeToString(deterministic=True), [])
    assert reuse.claim(key)[1] is not None, "not left waiting on the failed one"
    monkeypatch.setattr(pack, "_channel", None)
    pack.close()
