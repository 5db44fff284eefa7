"""The offline preview: strictly valid manifests (Kubernetes 1.30 and the newest known), the tree, exit codes.

Each preview runs as `shipsafe preview STACK --offline` does (the command, through click), with the typed call's
own options (output directory, phases, policy config) bound in."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from components.settings import ConfigError
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.exit_codes import ExitCode
from deploy.offline import preview
from deploy.offline.report import json_document
from deploy.terminal import TerminalConsole
from harness import phases as phases_module
from harness.analyzer import AnalysisReport, PolicyPackError
from harness.manifests import SECRET_PLACEHOLDER, render
from harness.phases import ALL_PHASES, Phase
from harness.recording import Recording
from harness.runtime import ProgramFailed
from harness.stack_config import REPO_ROOT
from tests.deploy.memory_stack import MemoryStacks

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
# Custom resources have no schema in kubernetes-validate; test_workloads.py checks the PodMonitors' content.
CUSTOM_API_GROUPS = ("monitoring.coreos.com/",)


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_pass_strict_validation(recording: Recording, version: str) -> None:
    documents = list(yaml.safe_load_all(render(recording)))
    built_in = [d for d in documents if not d["apiVersion"].startswith(CUSTOM_API_GROUPS)]
    assert len(built_in) >= 25 and len(documents) - len(built_in) == 2
    for document in built_in:
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_catches_a_misspelled_field(recording: Recording) -> None:
    deployment = next(d for d in yaml.safe_load_all(render(recording)) if d["kind"] == "Deployment")
    deployment["spec"]["minReadySecond"] = 10
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_secret_values_are_placeholders_in_manifests(recording: Recording) -> None:
    secrets = [d for d in yaml.safe_load_all(render(recording)) if d["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        # tests/deploy/test_render.py checks that each placeholder is valid for its Secret type.
        assert all(SECRET_PLACEHOLDER in value for value in secret["stringData"].values()), secret["metadata"]["name"]


@dataclass(frozen=True)
class Previewed:
    returncode: int
    stdout: str
    stderr: str
    """Both with white space collapsed: the report wraps its prose at the console's width."""


def _preview(
    stack: str,
    out: Path,
    *args: str,
    policy: bool = True,
    phases: Iterable[Phase] = ALL_PHASES,
    policy_config: Path | None = None,
) -> Previewed:
    typed = functools.partial(
        preview.offline_preview, out=out, policy=policy, phases=phases, policy_config=policy_config
    )
    context = DeployContext(
        open_stack=MemoryStacks(),
        project_dir=REPO_ROOT,
        offline_preview=typed,
        console=TerminalConsole(width=100, force_terminal=False),
    )
    result = CliRunner().invoke(cli, ["preview", stack, "--offline", *args], obj=context)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Previewed(result.exit_code, " ".join(result.stdout.split()), " ".join(result.stderr.split()))


@pytest.mark.slow
def test_offline_preview_prints_the_tree_and_writes_manifests(tmp_path: Path) -> None:
    result = _preview("staging", tmp_path, "--set", "gitSha=0123456789ab", policy=False)
    assert result.returncode == 0, result.stderr
    assert "pulumi:pulumi:Stack" in result.stdout
    assert "└─ kubernetes:core/v1:ServiceAccount notes-migrate-serviceaccount" in result.stdout
    assert "notes-migrate-0123456789ab" in (tmp_path / "staging" / "manifests.yaml").read_text()
    assert "shipsafe:registryPassword" in result.stdout, "the placeholder secret must be announced"


@pytest.mark.slow
def test_offline_preview_exits_with_config_error_naming_it(tmp_path: Path) -> None:
    result = _preview("prod", tmp_path, "--set", "imageSource=build", policy=False)
    assert result.returncode == ExitCode.CONFIG_ERROR
    assert "production never builds" in result.stderr
    assert not (tmp_path / "prod").exists()


@pytest.mark.slow
def test_set_takes_paths_as_pulumi_config_set_path_does(tmp_path: Path) -> None:
    pin = ("--set", "gitSha=0123456789ab")
    result = _preview(
        "staging",
        tmp_path,
        *pin,
        *("--set", "workloads.web.replicas=3", "--set", "rollout.maxSurge=2"),
        policy=False,
        phases=[Phase.AFTER_UP],
    )
    assert result.returncode == 0, result.stderr
    deployments = {
        d["metadata"]["name"]: d["spec"]
        for d in yaml.safe_load_all((tmp_path / "staging" / "manifests.yaml").read_text())
        if d["kind"] == "Deployment"
    }
    assert deployments["notes-web"]["replicas"] == 3, "the path set one field"
    assert deployments["notes-web"]["strategy"]["rollingUpdate"]["maxSurge"] == 2
    assert deployments["notes-worker"]["replicas"] == 1, "the rest of the object is the stack file's"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("rollout.maxSurge=0", "shipsafe:rollout.maxSurge = 0: Input should be greater than or equal to 1"),
        (
            "rollout.maxSurg=2",
            "shipsafe:rollout.maxSurg is not a known setting; did you mean shipsafe:rollout.maxSurge?",
        ),
        ("rollout..maxSurge=2", "error: invalid config key path 'rollout..maxSurge'"),
        ("rollout.maxSurge", "error: --set expects KEY=VALUE"),
    ],
)
def test_a_bad_set_exits_with_config_error_naming_the_key(tmp_path: Path, setting: str, message: str) -> None:
    result = _preview("staging", tmp_path, "--set", setting, policy=False)
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "staging").exists(), "nothing was previewed"


@pytest.mark.slow
def test_offline_preview_runs_the_policy_pack_and_fails_on_a_mandatory_violation(tmp_path: Path) -> None:
    passing = _preview("prod", tmp_path)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    # Every phase of the offline engine is named, modelled and checked, against every modelled API server: one
    # report for all of them, its verdict once.
    for phase in ("first-preview", "after-up", "later-preview"):
        assert f"{phase} (Kubernetes 1.30, 1.35): " in passing.stdout, f"{phase} not modelled"
    views = "6 views checked: first-preview, after-up, later-preview (Kubernetes 1.30, 1.35)"
    assert views in passing.stdout
    assert passing.stdout.count("Policy check passed: 0 mandatory") == 1
    assert "0 waived in 6 views." in passing.stdout
    assert "Deploy timeline (worst case, one `up`): backingServices" in passing.stdout
    assert (
        "Next release (modelled second up): 3 changes (replace 1, update 2): replace notes-migrate-job"
        in passing.stdout
    )
    # Config the program accepts but the pack forbids: the prebuilt image without its digest.
    failing = _preview("prod", tmp_path, "--set", "imageRef=registry.example.com/shipsafe/notes:3f9c2a1b7d4e")
    assert failing.returncode == ExitCode.POLICY_VIOLATION, failing.stdout + failing.stderr
    # The first preview and the state after `up`; the modelled next release is promoted with its digest.
    assert failing.stdout.count("Policy check FAILED") == 1, failing.stdout
    assert "(only in first-preview (Kubernetes 1.30), first-preview (Kubernetes 1.35), after-up" in failing.stdout
    assert "lacks @sha256:<digest>" in failing.stdout and "(set by shipsafe:imageRef" in failing.stdout
    # A setting outside the platform's bounds is refused before the program runs, naming both sides.
    refused = _preview("prod", tmp_path, "--set", 'workloads={"worker": {"replicas": 1, "expose": false}}')
    assert refused.returncode == ExitCode.CONFIG_ERROR, refused.stdout + refused.stderr
    assert "shipsafe:workloads.worker.replicas = 1" in refused.stderr
    assert "policy/config/prod.json: 12f-concurrency-replica-range.minReplicas" in refused.stderr


@pytest.mark.slow
def test_offline_preview_models_only_the_phases_asked_for(tmp_path: Path) -> None:
    result = _preview("prod", tmp_path, phases=[Phase.AFTER_UP])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 views checked: after-up (Kubernetes 1.30, 1.35)" in result.stdout
    assert "first-preview" not in result.stdout and "later-preview" not in result.stdout


@pytest.mark.slow
def test_offline_preview_exits_pack_failed_when_the_policy_pack_rejects_its_config(tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"no-such-policy": "mandatory"}')
    result = _preview("staging", tmp_path, policy_config=bad_config)
    assert result.returncode == ExitCode.POLICY_PACK_FAILED, result.stdout + result.stderr
    assert "no-such-policy" in result.stderr


def _fake_pack(monkeypatch: pytest.MonkeyPatch, fail_on: int | None) -> None:
    """The pack replaced by one that reports nothing, or fails on its `fail_on`-th analysis."""
    given: list[str] = []

    @contextmanager
    def booted(*_args: object, **_kwargs: object) -> Iterator[Callable[[Recording], AnalysisReport]]:
        def analyze(recording: Recording) -> AnalysisReport:
            given.append(recording.stack)
            if len(given) == fail_on:
                raise PolicyPackError("a policy crashed")
            return AnalysisReport("fake", recording.stack, [], {}, resources=len(recording.resources))

        yield analyze

    monkeypatch.setattr(preview.analyzer, "booted_in_background", booted)


def _json_run(tmp_path: Path) -> tuple[int, list[str]]:
    document = json_document(preview.offline_preview("staging", {}, out=tmp_path))
    return document["exitCode"], [phase["phase"] for phase in document["phases"]]


@pytest.mark.slow
def test_a_failed_analysis_reports_only_the_phases_before_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Phases go to the pack while the program runs for the next; a report must never land on another phase.
    _fake_pack(monkeypatch, fail_on=2)
    status, phases = _json_run(tmp_path)
    assert (status, phases) == (ExitCode.POLICY_PACK_FAILED, ["first-preview"])


@pytest.mark.slow
def test_a_program_failure_in_a_later_phase_reports_no_phase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pack(monkeypatch, fail_on=None)
    real_run_stack, runs = phases_module.run_stack, []

    def run_stack(*args: Any, **kwargs: Any) -> Recording:
        runs.append(1)
        if len(runs) == 3:
            raise ProgramFailed(ConfigError(["shipsafe:gitSha: invalid"]), Recording("shipsafe", "staging", []))
        return real_run_stack(*args, **kwargs)

    monkeypatch.setattr(phases_module, "run_stack", run_stack)
    status, phases = _json_run(tmp_path)
    assert (status, phases) == (ExitCode.CONFIG_ERROR, []), "analyses of a preview that failed are not its result"
