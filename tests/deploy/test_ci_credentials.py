"""Where the pipeline's credentials live, and what vouches for the image prod runs: the workflows against the
repository settings docs/ci.md declares (GitHub's settings cannot be read offline), zizmor's offline audit, the
provenance check and Dependabot's cooldown."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.test_workflows import BIN, REPO, all_jobs, load

CI_DOC = REPO / "docs" / "ci.md"
SECRET = re.compile(r"secrets\.(\w+)")
SIGNER_WORKFLOW = "deploy.yml"


def declared_environments() -> dict[str, dict[str, Any]]:
    """docs/ci.md's "Environments" table: per environment its secrets and deployment branches."""
    section = CI_DOC.read_text().split("## Environments", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    environments = {}
    for row in rows:
        name, secrets, branches, reviewers, _ = (cell.strip() for cell in row.strip("|").split("|"))
        environments[name.strip("`")] = {
            "secrets": set(re.findall(r"`(\w+)`", secrets)),
            "branches": branches,
            "reviewers": reviewers,
        }
    return environments


def environments_of(job: dict[str, Any]) -> set[str]:
    """The environments a job may run in: its name, or every name its expression can yield (rollback.yml)."""
    environment = job.get("environment")
    name = environment.get("name") if isinstance(environment, dict) else environment
    if name is None:
        return set()
    # `cond && 'a' || 'b'`: the values are the literals after && and ||, not the ones compared.
    return set(re.findall(r"(?:&&|\|\|)\s*'([\w-]+)'", name)) if "${{" in name else {name}


def secrets_of(job: dict[str, Any]) -> set[str]:
    return set(SECRET.findall(json.dumps(job))) - {"GITHUB_TOKEN"}


def test_every_secret_is_read_only_by_jobs_in_a_declared_environment_restricted_to_main():
    declared = declared_environments()
    assert set(declared) == {"registry", "staging", "production"}
    for declared_name, spec in declared.items():
        assert spec["branches"] == "`main` only", declared_name
    assert declared["production"]["reviewers"] == "required", "the manual approval before prod"
    assert environments_of(load("rollback.yml")["jobs"]["rollback"]) == {"staging", "production"}
    read: dict[str, set[str]] = {name: set() for name in declared}
    for workflow, name, job in all_jobs():
        secrets, environments = secrets_of(job), environments_of(job)
        if not secrets:
            continue
        # A job without an environment could only read repository secrets, which every branch's workflows read.
        assert environments, f"{workflow}: job {name} reads {sorted(secrets)} outside an environment"
        for environment in environments:
            assert environment in declared, f"{workflow}: job {name}: environment {environment} is not in docs/ci.md"
            missing = secrets - declared[environment]["secrets"]
            assert not missing, f"{workflow}: job {name} reads {sorted(missing)}, not declared for {environment}"
            read[environment] |= secrets
    for declared_name, spec in declared.items():
        assert spec["secrets"] == read[declared_name], f"{declared_name}: declared secrets nobody reads"
    assert "**Repository and organisation secrets: none.**" in CI_DOC.read_text()


def test_no_workflow_puts_a_credential_in_a_variable():
    # Variables are readable by every branch's workflows and are not masked in logs; the Prometheus URL may carry
    # basic-auth credentials (issue 17: it came from a variable).
    for workflow, name, job in all_jobs():
        text = json.dumps(job)
        assert "vars.PROMETHEUS_URL" not in text, f"{workflow}: job {name}"
        for variable in re.findall(r"vars\.(\w+)", text):
            assert not re.search(r"PASSWORD|TOKEN|SECRET|KUBECONFIG|URL", variable), f"{workflow}: vars.{variable}"


def test_prod_waits_for_a_provenance_check_that_pins_the_signer_workflow_the_ref_and_the_commit():
    deploy = load(SIGNER_WORKFLOW)
    jobs = deploy["jobs"]
    attesting = [name for name, job in jobs.items() if "attest-build-provenance@" in json.dumps(job)]
    assert attesting == ["build"]
    assert deploy["on"] == {"push": {"branches": ["main"]}}, "the signer runs for main only"
    [check] = [s for s in jobs["provenance"]["steps"] if "gh attestation verify" in str(s.get("run", ""))]
    command = " ".join(check["run"].split())
    assert '"oci://$IMAGE_REF"' in command and check["env"]["IMAGE_REF"] == "${{ needs.build.outputs.image-ref }}"
    # `--repo` alone accepts an attestation made by any workflow of the repository on any branch.
    for pinned in (
        f'--signer-workflow "$GITHUB_REPOSITORY/.github/workflows/{SIGNER_WORKFLOW}"',
        "--source-ref refs/heads/main",
        '--source-digest "$GITHUB_SHA"',
        "--deny-self-hosted-runners",
    ):
        assert pinned in command, pinned
    assert "provenance" in jobs["production"]["needs"]
    documented = " ".join(CI_DOC.read_text().split())
    assert (
        "--signer-workflow <owner>/<repo>/.github/workflows/deploy.yml --source-ref refs/heads/main "
        "--source-digest <sha>" in documented
    )


def test_dependabot_waits_a_week_before_proposing_a_release():
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    for update in config["updates"]:
        assert update.get("cooldown", {}).get("default-days", 0) >= 7, update["package-ecosystem"]


@pytest.mark.skipif(not (BIN / "zizmor").exists(), reason="zizmor comes from requirements-dev.txt (make setup)")
def test_zizmors_offline_audit_finds_nothing_above_low():
    # The auditor persona is zizmor's most thorough one (docs.zizmor.sh "Using personas"): it is the one that
    # reports secrets outside an environment. The same command runs in `make lint`.
    makefile = (REPO / "Makefile").read_text()
    [command] = [line.strip() for line in makefile.splitlines() if "bin/zizmor" in line]
    assert "--offline" in command and "--persona=auditor" in command and "--min-severity=medium" in command
    result = subprocess.run(
        [BIN / "zizmor", "--offline", "--persona=auditor", "--min-severity=medium", "--format=json", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout)
    shown = [(f["ident"], f["locations"][0]["symbolic"]["key"]) for f in findings]
    assert findings == [], shown
    assert result.returncode == 0, result.stderr
