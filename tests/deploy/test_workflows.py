"""The CI/CD workflows: linted offline (actionlint + GitHub's workflow schema) and checked for the pipeline's shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # the pinned linters live in the same venv as pytest


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    document["on"] = document.pop(True, document.get("on"))  # YAML 1.1 reads the key `on` as True
    return document


def steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job["steps"])


def pulumi_operation(step: dict[str, Any]) -> bool:
    """A step that runs the stack program (preview/up/rollback/history), as opposed to installing the CLI."""
    run = str(step.get("run", ""))
    uses_command = str(step.get("uses", "")).startswith("pulumi/actions@") and "command" in step.get("with", {})
    return uses_command or ("-m deploy" in run and "--offline" not in run)


def test_there_are_workflows():
    assert {path.name for path in WORKFLOWS} >= {"pr.yml", "deploy.yml", "rollback.yml", "e2e.yml"}


def test_actionlint_has_zero_findings():
    # actionlint also runs shellcheck on every `run:` script when shellcheck is installed (it is in CI).
    result = subprocess.run(
        [str(BIN / "actionlint"), "-no-color", *map(str, WORKFLOWS)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_workflows_match_githubs_vendored_schema():
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_every_check_for_both_stacks():
    pr = load("pr.yml")
    assert "pull_request" in pr["on"]
    text = "\n".join(steps_text(job) for job in pr["jobs"].values())
    for command in ("make lint", "make typecheck", "make test", "make migration-lint"):
        assert command in text
    policy = pr["jobs"]["policy"]
    assert policy["strategy"]["matrix"]["stack"] == ["staging", "prod"]
    previews = [step for step in policy["steps"] if "-m deploy preview" in str(step.get("run", ""))]
    assert [step["run"] for step in previews] == [
        # What the pipeline will deploy (a prebuilt image of the PR's head, marked not yet built) ...
        '.venv/bin/python -m deploy preview "$STACK" --offline --as-pipeline --git-sha "$HEAD_SHA"',
        # ... and the committed stack file as `make preview` runs it.
        '.venv/bin/python -m deploy preview "$STACK" --offline',
    ]
    assert all(step["env"]["STACK"] == "${{ matrix.stack }}" for step in previews)
    assert previews[0]["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"


def test_no_pull_request_job_gets_a_credential_or_a_real_preview():
    """Every PR job runs the PR's own code: a secret there is the PR author's. So none, not even read-only ones."""
    pr_text = (REPO / ".github" / "workflows" / "pr.yml").read_text()
    assert "secrets." not in pr_text and "secrets[" not in pr_text
    for path in WORKFLOWS:
        assert "pull_request_target" not in load(path.name)["on"], path.name
    pr = load("pr.yml")
    assert pr["permissions"] == {"contents": "read"}
    for name, job in pr["jobs"].items():
        assert "environment" not in job, name
        assert not [step for step in job["steps"] if pulumi_operation(step)], f"pr.yml: job {name} runs Pulumi"
        assert "pulumi/actions@" not in steps_text(job), f"pr.yml: job {name} installs the Pulumi CLI"


def test_real_previews_and_ups_run_only_in_gated_jobs_of_main_or_by_hand():
    """`deploy up` / `promote` preview before `up` (tests/deploy/test_cli.py); here: where they may run at all."""
    gated = {}
    for path in WORKFLOWS:
        document = load(path.name)
        for name, job in document["jobs"].items():
            if any(pulumi_operation(step) for step in job["steps"]) and path.name != "e2e.yml":
                gated[f"{path.name}:{name}"] = job["environment"]["name"]
                assert set(document["on"]) <= {"push", "workflow_dispatch"}, path.name
    assert gated == {
        "deploy.yml:staging": "staging",
        "deploy.yml:production": "production",
        "rollback.yml:rollback": "${{ inputs.stack == 'prod' && 'production' || 'staging' }}",
    }
    jobs = load("deploy.yml")["jobs"]
    assert "deploy up staging --image-ref" in steps_text(jobs["staging"])
    assert "deploy promote --expect-image-ref" in steps_text(jobs["production"])


def test_main_builds_once_and_promotes_the_same_digest_after_approval():
    deploy = load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    builds = [name for name, job in jobs.items() if "docker/build-push-action" in steps_text(job)]
    assert builds == ["build"]
    build = next(step for step in jobs["build"]["steps"] if step.get("id") == "build")
    assert build["with"]["tags"].endswith(":${{ github.sha }}")
    assert build["with"]["push"] is True
    staging, production = jobs["staging"], jobs["production"]
    assert staging["needs"] == "build"
    assert "deploy up staging --image-ref" in steps_text(staging)
    assert "deploy smoke staging" in steps_text(staging)
    assert production["needs"] == ["build", "staging"]
    assert production["environment"]["name"] == "production"  # protected: the manual approval
    promote = next(step for step in production["steps"] if step.get("id") == "promote")
    assert "promote --expect-image-ref" in promote["run"] and "--verify" in promote["run"]
    rollback = production["steps"][-1]
    assert "deploy rollback prod" in rollback["run"]
    assert "failure()" in rollback["if"]


def test_login_is_secret_backed_and_actions_are_pinned():
    for path in WORKFLOWS:
        text = path.read_text()
        if path.name in ("deploy.yml", "rollback.yml"):  # the ones that reach the real stacks' backend
            assert "PULUMI_ACCESS_TOKEN: ${{ secrets.PULUMI_ACCESS_TOKEN }}" in text, path.name
        else:
            assert "PULUMI_ACCESS_TOKEN" not in text, path.name
        for line in text.splitlines():
            if "uses:" in line:
                assert "@v" in line and not line.rstrip().endswith(("@main", "@master")), line


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout(path):
    for name, job in yaml.safe_load(path.read_text())["jobs"].items():
        assert "timeout-minutes" in job, f"{path.name}: job {name}"


def test_every_job_that_runs_pulumi_first_sets_the_registry_password_from_a_secret():
    jobs_running_pulumi = set()
    for path in WORKFLOWS:
        if path.name == "e2e.yml":  # a throwaway cluster and registry: no secrets at all (checked below)
            continue
        for name, job in load(path.name)["jobs"].items():
            steps = job["steps"]
            first = next((i for i, step in enumerate(steps) if pulumi_operation(step)), None)
            if first is None:
                continue
            jobs_running_pulumi.add(f"{path.name}:{name}")
            setting = [i for i, step in enumerate(steps) if "shipsafe:registryPassword" in str(step.get("run", ""))]
            assert setting and setting[0] < first, f"{path.name}: job {name} runs Pulumi before the password is set"
            step = steps[setting[0]]
            run = step["run"]
            # On stdin, so the password never shows in the runner's process list.
            assert run.startswith(
                'printf "%s" "$REGISTRY_PASSWORD" | pulumi config set --secret shipsafe:registryPassword --stack '
            )
            assert "${{" not in run  # the value comes in through env, never expanded into the script
            assert step["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
            installs = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@")]
            assert installs and installs[0] < setting[0], f"{path.name}: job {name} has no Pulumi CLI yet"
    assert jobs_running_pulumi == {"deploy.yml:staging", "deploy.yml:production", "rollback.yml:rollback"}


@pytest.mark.parametrize(
    ("status", "needs_rollback"),
    [
        (0, "false"),
        (4, "false"),
        (5, "false"),
        (7, "false"),
        (3, "true"),
        (10, "true"),
        (12, "false"),
        (13, "false"),  # prerequisites missing: checked before prod changed
        (14, "false"),  # prerequisites could not be checked: nothing changed either
    ],
)
def test_promote_step_rolls_prod_back_only_when_prod_was_left_unverified(tmp_path, status, needs_rollback):
    """Runs the real promote script under bash (as Actions does) with a stand-in `.venv/bin/python`."""
    production = load("deploy.yml")["jobs"]["production"]
    script = next(step for step in production["steps"] if step.get("id") == "promote")["run"]
    fake_python = tmp_path / ".venv" / "bin" / "python"
    fake_python.parent.mkdir(parents=True)
    fake_python.write_text('#!/bin/sh\nexit "$FAKE_STATUS"\n')
    fake_python.chmod(0o755)
    (tmp_path / "step.sh").write_text(script)
    output = tmp_path / "github_output"
    env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "IMAGE_REF": "registry/notes:abc@sha256:1"}
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "step.sh"],
        cwd=tmp_path,
        env={**env, "FAKE_STATUS": str(status)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == status
    assert output.read_text() == f"needs-rollback={needs_rollback}\n"
    inconclusive_note = "::error title=prod verification inconclusive::"
    assert (inconclusive_note in result.stdout) is (status in (4, 12))
    if status == 4:
        assert "python -m deploy verify prod" in result.stdout and "python -m deploy rollback prod" in result.stdout
