"""Build once, promote the same image, migrations before code: the release rules of the chapter."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.release import working_tree_sha
from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.conftest import STACKS, STAGING_SHA, record
from tests.support.stack_queries import DEPLOYMENT, JOB, containers, only, pod_spec

PINNED = re.compile(r"^registry\.example\.com/shipsafe/notes:[0-9a-f]{7,40}@sha256:[0-9a-f]{64}$")
IMAGE = "docker:index/image:Image"


def test_every_deployment_depends_on_the_migration_job(recording: Recording) -> None:
    job = only(recording, JOB)
    for deployment in recording.of_type(DEPLOYMENT):
        assert job.urn in deployment.dependencies, f"{deployment.urn} does not wait for {job.urn}"


def test_job_and_deployments_run_the_identical_pinned_image(recording: Recording) -> None:
    images = {c["image"] for r in (*recording.of_type(DEPLOYMENT), only(recording, JOB)) for c in containers(r)}
    assert images == {recording.stack_outputs["imageRef"]}
    assert PINNED.match(recording.stack_outputs["imageRef"]), recording.stack_outputs["imageRef"]


def test_job_runs_with_the_apps_database_settings(recording: Recording) -> None:
    job_container = containers(only(recording, JOB))[0]
    for deployment in recording.of_type(DEPLOYMENT):
        app_container = containers(deployment)[0]
        assert job_container["env"] == app_container["env"], deployment.urn
        assert job_container["envFrom"] == app_container["envFrom"], deployment.urn


def test_migration_job_is_per_release_and_replaced_when_it_failed(recording: Recording) -> None:
    job = only(recording, JOB)
    sha = recording.stack_outputs["gitSha"]
    assert job.inputs["metadata"]["name"] == f"notes-migrate-{sha[:12]}"
    assert job.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert job.delete_before_replace
    spec = job.inputs["spec"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 0 <= spec["backoffLimit"] <= 3
    assert spec["activeDeadlineSeconds"] == 300
    assert containers(job)[0]["command"] == ["python", "-m", "notes_app", "migrate"]


def test_staging_builds_the_app_dockerfile_tagged_with_the_sha(recordings: dict[str, Recording]) -> None:
    staging = recordings["staging"]
    image = only(staging, IMAGE)
    assert image.inputs["build"]["context"] == "app"
    assert image.inputs["build"]["dockerfile"] == "app/Dockerfile"
    assert image.inputs["build"]["target"] == "production"
    assert image.inputs["build"]["platform"] == "linux/amd64"
    assert image.inputs["imageName"] == f"registry.example.com/shipsafe/notes:{STAGING_SHA}"
    assert {"registry", "registry.password"} & image.secret_paths, "the push password must stay a secret"
    digest = image.outputs["repoDigest"].split("@")[1]
    assert staging.stack_outputs["imageRef"] == f"{image.inputs['imageName']}@{digest}"


def test_prod_never_builds_and_runs_the_configured_reference(recordings: dict[str, Recording]) -> None:
    prod = recordings["prod"]
    assert prod.of_type(IMAGE) == []
    configured = yaml.safe_load((REPO_ROOT / "Pulumi.prod.yaml").read_text())["config"]["shipsafe:imageRef"]
    assert prod.stack_outputs["imageRef"] == configured
    assert prod.stack_outputs["dirty"] is False


def test_pods_carry_the_release_as_version_label(recording: Recording) -> None:
    sha = recording.stack_outputs["gitSha"]
    for owner in (*recording.of_type(DEPLOYMENT), only(recording, JOB)):
        assert owner.inputs["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == sha


def test_rollback_skips_the_migration_and_redeploys_code_only() -> None:
    rollback = record("prod", **{"shipsafe:rollback": True})
    assert rollback.of_type(JOB) == []
    assert rollback.stack_outputs["migrationJob"] is None
    for deployment in rollback.of_type(DEPLOYMENT):
        assert not any("Job" in urn for urn in deployment.dependencies)


def test_a_dirty_staging_build_is_labelled_dirty() -> None:
    staging = record("staging", **{"shipsafe:gitSha": "abc1234-dirty"})
    assert staging.stack_outputs["dirty"] is True
    assert only(staging, IMAGE).inputs["imageName"].endswith(":abc1234-dirty")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_working_tree_sha_marks_uncommitted_changes_dirty(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "file").write_text("one")
    _git(tmp_path, "add", "file")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert working_tree_sha(tmp_path) == head
    (tmp_path / "Pulumi.staging.yaml").write_text("config: {}\n")  # `pulumi config set` edits stack files
    assert working_tree_sha(tmp_path) == head, "stack settings are not part of the build"
    (tmp_path / "file").write_text("two")
    assert working_tree_sha(tmp_path) == f"{head}-dirty"


@pytest.mark.parametrize("stack", STACKS)
def test_without_rollback_the_next_deploy_runs_migrations_again(stack: str) -> None:
    assert only(record(stack, **{"shipsafe:rollback": False}), JOB)
