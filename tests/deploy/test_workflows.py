"""The CI/CD workflows: linted offline (actionlint + GitHub's workflow schema) and checked for the pipeline's shape."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import ImageSource
from deploy.exit_codes import Aftermath, ExitCode, shell_variables
from deploy.offline.preview import stack_settings
from harness.stack_config import stack_names

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent  # the pinned linters live in the same venv as pytest
# A `uses:` line pinned to a full commit SHA, with the release it is in a comment (Dependabot updates both).
PINNED_USES = re.compile(
    r"^\s*(?:- )?uses: (?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+\.\d+\.\d+)$"
)
# Steps that install code (dependencies, CLIs, toolchains): they must all run before any credential is on the runner.
INSTALLING_ACTION = re.compile(r"^(?:[\w.-]+/setup-[\w.-]+|pulumi/actions|helm/kind-action)@")
INSTALLING_COMMANDS = ("make setup", "pip install", "install-system-packages", "apt-get")


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
    # `stack list` reads file names only; `image check` runs the program and the pack offline
    offline = "--offline" in run or "-m deploy stack list" in run or "-m deploy image check" in run
    return uses_command or ("-m deploy" in run and not offline)


def runs_pulumi(step: dict[str, Any]) -> bool:
    """A step that talks to the Pulumi backend: the CLI itself (`pulumi config set`, ...) or the deploy tool."""
    cli = re.search(r"(^|[|;&]\s*)pulumi ", str(step.get("run", "")), re.MULTILINE)
    return pulumi_operation(step) or cli is not None


def installs(step: dict[str, Any]) -> bool:
    run = str(step.get("run", ""))
    return bool(INSTALLING_ACTION.match(str(step.get("uses", "")))) or any(cmd in run for cmd in INSTALLING_COMMANDS)


def uses_a_secret(step: dict[str, Any]) -> bool:
    return "secrets." in str(step.get("env", "")) + str(step.get("with", ""))


def checks_out(job: dict[str, Any]) -> bool:
    return any(str(step.get("uses", "")).startswith("actions/checkout@") for step in job["steps"])


def concurrency_groups(document: dict[str, Any]) -> list[str]:
    """Every concurrency group a run of this workflow can hold or wait for: the workflow's and its jobs'."""
    settings = [document.get("concurrency"), *(job.get("concurrency") for job in document["jobs"].values())]
    return [setting if isinstance(setting, str) else setting["group"] for setting in settings if setting]


def all_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, name, job) for path in WORKFLOWS for name, job in load(path.name)["jobs"].items()]


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


def test_pull_requests_run_every_check_for_every_stack():
    pr = load("pr.yml")
    assert "pull_request" in pr["on"]
    text = "\n".join(steps_text(job) for job in pr["jobs"].values())
    for command in ("make lint", "make typecheck", "make test", "make migration-lint"):
        assert command in text
    policy = pr["jobs"]["policy"]
    # Every stack, as `shipsafe stack list` discovers them: none is listed by hand.
    assert policy["needs"] == "stacks"
    assert policy["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.stacks) }}"
    listing = next(step for step in pr["jobs"]["stacks"]["steps"] if step.get("id") == "list")
    assert "-m deploy stack list --output json" in listing["run"]
    assert pr["jobs"]["stacks"]["outputs"]["stacks"] == "${{ steps.list.outputs.stacks }}"
    previews = [step for step in policy["steps"] if "-m deploy preview" in str(step.get("run", ""))]
    assert [step["run"] for step in previews] == [
        # What the pipeline will deploy (a prebuilt image of the PR's head, marked not yet built) ...
        '.venv/bin/python -m deploy preview "$STACK" --offline --as-pipeline --git-sha "$HEAD_SHA"',
        # ... and the committed stack file as `make preview` runs it.
        '.venv/bin/python -m deploy preview "$STACK" --offline',
    ]
    assert all(step["env"]["STACK"] == "${{ matrix.stack }}" for step in previews)
    assert previews[0]["env"]["HEAD_SHA"] == "${{ github.event.pull_request.head.sha }}"


def test_the_image_main_builds_and_promotes_is_judged_with_every_stacks_policy():
    """Build once, promote: the Dockerfile deploy.yml builds is judged in each PR with each stack's policy config
    (production's too, whose own preview builds nothing) and by `make policy-check`, with the same file, context
    and target."""
    build = next(s for s in load("deploy.yml")["jobs"]["build"]["steps"] if s.get("id") == "build")["with"]
    image = f"--dockerfile {build['file']} --context {build['context']} --target {build['target']}"
    checks = [s for s in load("pr.yml")["jobs"]["policy"]["steps"] if "-m deploy image check" in str(s.get("run"))]
    assert [s["run"] for s in checks] == [f'.venv/bin/python -m deploy image check -s "$STACK" {image}']
    assert checks[0]["env"]["STACK"] == "${{ matrix.stack }}"
    makefile = (REPO / "Makefile").read_text()
    assert f"IMAGE_BUILD := {image}\n" in makefile
    assert "-m deploy image check $(IMAGE_BUILD) ||" in makefile.split("policy-check:", 1)[1].split("\n\n", 1)[0]


def test_the_pipeline_builds_the_image_each_building_stack_builds():
    """The image check above judges what deploy.yml builds; a building stack's preview judges its own build
    settings. They are one image only while they agree (a building stack on another target would be judged, and
    another one promoted)."""
    build = next(s for s in load("deploy.yml")["jobs"]["build"]["steps"] if s.get("id") == "build")["with"]
    building = [
        (stack, settings.app)
        for stack in stack_names(REPO)
        if (settings := stack_settings(stack, {}, REPO)) is not None and settings.image_source is ImageSource.BUILD
    ]
    assert building, "a stack that builds"
    for stack, app in building:
        given = (app.build_context, app.dockerfile_path, app.build_target)
        assert given == (build["context"], build["file"], build["target"]), stack


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
    assert production["needs"] == ["build", "provenance", "staging"], "prod waits for the provenance check"
    assert production["environment"]["name"] == "production"  # protected: the manual approval
    promote = next(step for step in production["steps"] if step.get("id") == "promote")
    assert "promote --expect-image-ref" in promote["run"] and "--verify" in promote["run"]
    rollback = production["steps"][-1]
    assert "deploy rollback prod" in rollback["run"]
    assert "failure()" in rollback["if"]


def test_every_action_is_pinned_by_commit_sha_with_its_version():
    """A tag can be moved to other code; a commit SHA cannot. The comment names the release it is (for Dependabot
    and for readers), and one action has one pin across all workflows."""
    pins: dict[str, tuple[str, str]] = {}
    for path in WORKFLOWS:
        lines = [line for line in path.read_text().splitlines() if re.match(r"^\s*(- )?uses:", line)]
        steps = [step for job in load(path.name)["jobs"].values() for step in job["steps"] if "uses" in step]
        assert len(lines) == len(steps) > 0, path.name  # every `uses:` is on a line of its own, checked below
        for line in lines:
            match = PINNED_USES.match(line)
            assert match, f"{path.name}: not pinned to a 40-hex commit SHA with a '# vX.Y.Z' comment: {line.strip()}"
            pin = pins.setdefault(match["action"], (match["sha"], match["version"]))
            assert pin == (match["sha"], match["version"]), f"{path.name}: {match['action']} pinned two ways"


def test_the_pulumi_token_is_on_exactly_the_steps_that_run_pulumi():
    """Not job-wide: dependency installation (`make setup` runs setup code of whatever it installs), the Pulumi CLI
    download and every other step run without it."""
    stepped = set()
    for workflow, name, job in all_jobs():
        for step in job["steps"]:
            token = step.get("env", {}).get("PULUMI_ACCESS_TOKEN")
            if workflow in ("deploy.yml", "rollback.yml"):  # the ones that reach the real stacks' backend
                expected = "${{ secrets.PULUMI_ACCESS_TOKEN }}" if runs_pulumi(step) else None
                assert token == expected, f"{workflow}: job {name}, step {step.get('name', step.get('run'))}"
                if token:
                    stepped.add(f"{workflow}:{name}")
            else:
                assert "PULUMI_ACCESS_TOKEN" not in (REPO / ".github" / "workflows" / workflow).read_text(), workflow
    assert stepped == {"deploy.yml:staging", "deploy.yml:production", "rollback.yml:rollback"}


def test_no_secret_is_workflow_or_job_wide():
    for path in WORKFLOWS:
        document = load(path.name)
        assert "secrets." not in str(document.get("env", {})), path.name
        for name, job in document["jobs"].items():
            assert "secrets." not in str(job.get("env", {})), f"{path.name}: job {name} has secrets in its env"


@pytest.mark.parametrize(("workflow", "name", "job"), all_jobs(), ids=[f"{w}:{n}" for w, n, _ in all_jobs()])
def test_every_install_runs_before_the_first_credential_reaches_the_runner(workflow, name, job):
    steps = job["steps"]
    with_secrets = [i for i, step in enumerate(steps) if uses_a_secret(step)]
    installing = [i for i, step in enumerate(steps) if installs(step)]
    if not checks_out(job):  # runs no code of the repository: nothing to install, and nothing installed
        assert not installing and not [s for s in steps if "run" in s and "gh attestation verify" not in s["run"]]
        return
    assert installing, f"{workflow}: job {name} installs nothing? (the check below would be vacuous)"
    if with_secrets:
        assert max(installing) < min(with_secrets), f"{workflow}: job {name} installs code after a credential"


def test_the_kubeconfig_is_written_after_every_install_and_only_pulumi_steps_follow():
    """The file stays on disk for the rest of the job: every later step must be one that runs Pulumi."""
    writers = []
    for workflow, name, job in all_jobs():
        steps = job["steps"]
        for i, step in enumerate(steps):
            if "secrets.KUBECONFIG" not in str(step.get("env", "")):
                continue
            writers.append(f"{workflow}:{name}")
            assert "umask 077" in step["run"] and '"$RUNNER_TEMP/kubeconfig"' in step["run"]
            assert not [s for s in steps[:i] if uses_a_secret(s)], f"{workflow}: job {name}"
            later = [s.get("name", s.get("run")) for s in steps[i + 1 :] if not runs_pulumi(s)]
            assert not later, f"{workflow}: job {name}: steps after the kubeconfig that do not run Pulumi: {later}"
    assert sorted(writers) == ["deploy.yml:production", "deploy.yml:staging", "rollback.yml:rollback"]


def test_deploys_queue_and_are_never_cancelled_halfway():
    """One group for the whole run, approval wait included: a newer push must not replace staging while an older
    digest waits for promotion (`promote --expect-image-ref` would refuse it), nor cancel a running deploy."""
    deploy = load("deploy.yml")
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert concurrency_groups(deploy) == [deploy["concurrency"]["group"]]  # no job-level groups


def test_a_rollback_is_never_dropped_cancelled_or_parked_behind_a_deploy():
    """GitHub keeps one pending run per concurrency group and cancels the older pending one, whatever
    cancel-in-progress says; a job waiting at an environment's approval holds its group. So the rollback workflow
    is in no group at all (not even one of its own: a second rollback would drop a pending first); Pulumi's stack
    lock serialises the updates, and `deploy` exits CONCURRENT_UPDATE on a locked stack without changing it."""
    rollback = load("rollback.yml")
    assert concurrency_groups(rollback) == []
    for path in WORKFLOWS:  # nor can any other workflow's group be the rollback's
        assert "rollback" not in " ".join(concurrency_groups(load(path.name))), path.name
    assert run_promote_step(ExitCode.CONCURRENT_UPDATE).needs_rollback == "false", "a locked stack is left alone"


def test_the_release_image_gets_an_sbom_and_signed_provenance():
    deploy = load("deploy.yml")
    build_job = deploy["jobs"]["build"]
    build = next(step for step in build_job["steps"] if step.get("id") == "build")
    assert build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    attest = [step for step in build_job["steps"] if "attest-build-provenance@" in str(step.get("uses", ""))]
    assert [step["with"] for step in attest] == [
        {"subject-name": "${{ env.IMAGE }}", "subject-digest": "${{ steps.build.outputs.digest }}"}
    ]
    assert build_job["steps"].index(attest[0]) > build_job["steps"].index(build)
    # Sigstore signs with the job's OIDC token; the attestation API stores it. Only this job gets either; the
    # provenance check only reads attestations.
    own_permissions = {
        ("deploy.yml", "build"): {"contents": "read", "id-token": "write", "attestations": "write"},
        ("deploy.yml", "provenance"): {"contents": "read", "attestations": "read"},
    }
    for workflow, name, job in all_jobs():
        document = load(workflow)
        assert document["permissions"] == {"contents": "read"}, workflow
        assert job.get("permissions") == own_permissions.get((workflow, name)), f"{workflow}: job {name}"


def test_no_checkout_leaves_the_token_in_the_git_config():
    """actions/checkout stores the job's token in .git/config unless `persist-credentials: false` (its action.yml
    default is true). No job pushes, so every later step (a PR's Makefile, an installed package) could read it for
    nothing."""
    for workflow, name, job in all_jobs():
        permissions = job.get("permissions") or load(workflow).get("permissions") or {}
        assert permissions.get("contents") != "write", f"{workflow}: job {name} may push; decide per job"
        checkouts = [step for step in job["steps"] if str(step.get("uses", "")).startswith("actions/checkout@")]
        assert checkouts or name == "provenance", f"{workflow}: job {name}"  # provenance reads only the registry
        for step in checkouts:
            assert step.get("with", {}).get("persist-credentials") is False, f"{workflow}: job {name}"


# Set for a tool that reads them from its environment, so the workflow text never names them again.
READ_BY_TOOLS = frozenset({"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"})


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_variable_is_read(path):
    text = path.read_text()
    for key in (load(path.name).get("env") or {}).keys() - READ_BY_TOOLS:
        assert re.search(rf"env\.{key}\b|\${{?{key}\b", text), f"{path.name}: env {key} is set but never read"


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


@dataclass(frozen=True)
class PromoteStep:
    returncode: int
    needs_rollback: str
    stdout: str


def run_promote_step(status: int) -> PromoteStep:
    """Runs the real promote script under bash (as Actions does) with a stand-in `.venv/bin/python`: it prints the
    tool's table for `exit-codes --shell` (tests/deploy/test_installed_command.py checks the command prints exactly
    that) and exits `status` for the promotion."""
    production = load("deploy.yml")["jobs"]["production"]
    script = next(step for step in production["steps"] if step.get("id") == "promote")["run"]
    assert "exit-codes --shell" in script, "the step reads the tool's exit-code table"
    with tempfile.TemporaryDirectory() as temporary:
        workdir = Path(temporary)
        fake_python = workdir / ".venv" / "bin" / "python"
        fake_python.parent.mkdir(parents=True)
        fake_python.write_text(
            '#!/bin/sh\nif [ "$3 $4" = "exit-codes --shell" ]; then exec cat "$EXIT_TABLE"; fi\nexit "$FAKE_STATUS"\n'
        )
        (workdir / "exit-codes.sh").write_text(shell_variables())
        fake_python.chmod(0o755)
        (workdir / "step.sh").write_text(script)
        output = workdir / "github_output"
        env = {"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), "IMAGE_REF": "registry/notes:abc@sha256:1"}
        tool = {"EXIT_TABLE": str(workdir / "exit-codes.sh")}
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "step.sh"],
            cwd=workdir,
            env={**env, **tool, "FAKE_STATUS": str(status)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return PromoteStep(result.returncode, output.read_text().removeprefix("needs-rollback=").strip(), result.stdout)


KILLED = 137  # SIGKILL: a status outside the table


@pytest.mark.parametrize(
    ("status", "needs_rollback"),
    [
        (ExitCode.OK, "false"),
        (ExitCode.VERIFICATION_INCONCLUSIVE, "false"),  # nothing shows the release is bad: a human decides
        (ExitCode.ROLLED_BACK, "false"),  # the tool already did
        (ExitCode.REFUSED, "false"),
        (ExitCode.CONCURRENT_UPDATE, "false"),
        (ExitCode.PROMETHEUS_UNAVAILABLE, "false"),
        (ExitCode.PREREQUISITES_MISSING, "false"),  # checked before prod changed
        (ExitCode.CLUSTER_UNAVAILABLE, "false"),  # prerequisites could not be checked: nothing changed either
        (ExitCode.VERIFICATION_FAILED, "true"),
        (ExitCode.PULUMI_FAILED, "true"),
        (ExitCode.FAILED, "true"),
        (KILLED, "true"),
    ],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_promote_step_rolls_prod_back_only_when_prod_was_left_unverified(status, needs_rollback):
    step = run_promote_step(status)
    assert step.returncode == status
    assert step.needs_rollback == needs_rollback
    unverified = status in (ExitCode.VERIFICATION_INCONCLUSIVE, ExitCode.PROMETHEUS_UNAVAILABLE)
    assert ("::error title=prod verification inconclusive::" in step.stdout) is unverified
    if unverified:
        assert "python -m deploy verify prod" in step.stdout and "python -m deploy rollback prod" in step.stdout


def test_promote_step_follows_the_exit_code_table_for_every_code():
    """A code added to the table is handled by what it says about the stack, with no edit to the workflow."""
    for code in ExitCode:
        expected = "true" if code.aftermath is Aftermath.MAYBE_BAD else "false"
        assert run_promote_step(code).needs_rollback == expected, code.name
