"""Bring your own app: a second, tiny app (tests/example_app) goes through the same components and every policy
phase with no violation; its port, probe and metrics paths, UID, build and URL variables are only settings. Its
`stateless` stack has no database, cache or migrations: none of their objects exist, and the pack passes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deploy import policy_link
from deploy.offline.preview import policy_conflicts
from harness import analyzer
from harness.phases import ALL_PHASES, Phase, PhaseRecording, model_phases
from harness.recording import Recording
from harness.stack_config import REPO_ROOT

pytestmark = pytest.mark.slow  # runs the offline preview or the CLI end to end

EXAMPLE = Path(__file__).parents[1] / "example_app"
STACK = "tiny"
STATELESS = "stateless"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding the real program and components, the tiny app as its build context, and its stack files."""
    root = tmp_path_factory.mktemp("byo")
    shutil.copy(REPO_ROOT / "__main__.py", root)
    shutil.copy(REPO_ROOT / "Pulumi.yaml", root)
    shutil.copytree(REPO_ROOT / "components", root / "components", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXAMPLE, root / "hello", ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__"))
    for stack_file in EXAMPLE.glob("Pulumi.*.yaml"):
        shutil.copy(stack_file, root)
    return root


@pytest.fixture(scope="module")
def policy_config(project: Path) -> Path:
    """The platform owner's config for the tiny app: staging's, with its registry trusted and the pack reading
    Dockerfiles from this project."""
    config = json.loads((REPO_ROOT / "policy" / "config" / "staging.json").read_text())
    own = ["registry.example.com/team"]
    config["image-allowed-registries"]["allowedRegistries"] = [
        *own,
        "docker.io/library/postgres",
        "docker.io/library/redis",
    ]
    config["12f-build-immutable-image"]["ownRegistries"] = own
    config["12f-build-third-party-digest"]["ownRegistries"] = own
    for name in policy_link.read_policy_config(REPO_ROOT / "policy" / "config" / "staging.json").settings:
        if name.startswith("docker-"):
            entry = config.get(name, {})
            config[name] = {
                **({"enforcementLevel": entry} if isinstance(entry, str) else entry),
                "projectDir": str(project),
            }
    path = project / "policy.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def phases(project: Path) -> list[PhaseRecording]:
    return model_phases(STACK, project_dir=project, phases=ALL_PHASES)


@pytest.fixture(scope="module")
def stateless_phases(project: Path) -> list[PhaseRecording]:
    return model_phases(STATELESS, project_dir=project, phases=ALL_PHASES)


def _inputs(recording: Recording, name: str) -> dict[str, object]:
    return next(r.inputs for r in recording if r.name == name)


def test_the_tiny_app_is_deployed_with_its_own_contract(phases: list[PhaseRecording]) -> None:
    recording = phases[-1].recording
    deployment = _inputs(recording, "hello-web-deployment")
    pod = deployment["spec"]["template"]["spec"]  # type: ignore[index]
    container = pod["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert "command" not in container, "no command: the image's own CMD runs"
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["securityContext"]["runAsUser"] == 20001
    assert {e["name"] for e in container["env"]} >= {"PG_URL", "CACHE_URL"}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/stats"  # type: ignore[index]
    assert _inputs(recording, "hello-config-configmap")["data"]["PORT"] == "8080"  # type: ignore[index]
    build = _inputs(recording, "hello-image-build")["build"]
    assert build == {
        "context": "hello",
        "dockerfile": "hello/Dockerfile",
        "target": "runtime",
        "platform": "linux/amd64",
    }
    assert not any(r.name.startswith("hello-migrate") for r in recording), "an app without migrations runs no Job"


def test_the_tiny_app_passes_every_policy_in_every_phase(phases: list[PhaseRecording], policy_config: Path) -> None:
    for phase in phases:
        report = analyzer.analyze(phase.recording, policy_config)
        assert report.mandatory_violations == [], f"{phase.phase}: {analyzer.format_report(report)}"
        # Only the advisory digests of the public Postgres/Redis images remain; the Dockerfile rules ran.
        assert {v.policy for v in report.violations} <= {"12f-build-third-party-digest", "docker-base-image-digest"}
    after_up = analyzer.analyze(next(p for p in phases if p.phase is Phase.AFTER_UP).recording, policy_config)
    assert not any("docker-user-matches-pods" in skipped for skipped in after_up.skipped)


def test_the_tiny_app_agrees_with_its_policy_config(project: Path, policy_config: Path) -> None:
    assert policy_conflicts(STACK, {}, policy_config, project) == []
    # Against the notes app's staging config its registry is not trusted: refused, naming both sides.
    staging = REPO_ROOT / "policy" / "config" / "staging.json"
    problems = policy_conflicts(STACK, {}, staging, project)
    assert any(
        p.startswith("shipsafe:registry.server = registry.example.com")
        and "image-allowed-registries.allowedRegistries" in p
        for p in problems
    ), problems


def test_an_app_without_database_cache_or_migrations_gets_none_of_their_objects(
    stateless_phases: list[PhaseRecording],
) -> None:
    for phase in stateless_phases:
        recording = phase.recording
        types = {r.type for r in recording}
        assert not types & {
            "kubernetes:apps/v1:StatefulSet",
            "kubernetes:batch/v1:Job",
            "shipsafe:components:BackingService",
            "shipsafe:components:MigrationJob",
            "random:index/randomPassword:RandomPassword",
        }, f"{phase.label}: {sorted(types)}"
        secrets = {r.inputs["metadata"]["name"] for r in recording if r.type == "kubernetes:core/v1:Secret"}
        assert secrets == {"hello-registry"}, f"{phase.label}: only the registry's pull Secret, not {secrets}"
        policies = {
            r.inputs["metadata"]["name"] for r in recording if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
        }
        assert policies == {"hello-default-deny", "hello-allow-dns", "hello-app-ingress", "hello-metrics-ingress"}, (
            f"{phase.label}: {sorted(policies)}"
        )
        deployment = _inputs(recording, "hello-web-deployment")
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
        assert [e["name"] for e in env] == ["APP_VERSION"], f"{phase.label}: no service URL variable, got {env}"


def test_an_app_without_database_passes_every_policy_in_every_phase(
    stateless_phases: list[PhaseRecording], policy_config: Path
) -> None:
    for phase in stateless_phases:
        report = analyzer.analyze(phase.recording, policy_config)
        assert report.mandatory_violations == [], f"{phase.label}: {analyzer.format_report(report)}"
        # No third-party server image is left to pin by digest: only the Dockerfile's base image remains.
        assert {v.policy for v in report.violations} <= {"docker-base-image-digest"}, analyzer.format_report(report)


def test_an_app_without_database_agrees_with_its_policy_config(project: Path, policy_config: Path) -> None:
    assert policy_conflicts(STATELESS, {}, policy_config, project) == []
