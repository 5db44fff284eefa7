"""A third stack, added with `shipsafe stack add`, is found by everything that checks stacks: the tests'
parametrisation, `make policy-check`, the generated policy reference and the offline commands, with no edit
elsewhere. Each test works on a temporary copy of the project: nothing is left in this checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from harness.stack_config import REPO_ROOT, policy_config_path, stack_names
from tests.deploy.memory_stack import MemoryStacks
from tests.support.project_copy import copy_project

pytestmark = pytest.mark.slow  # runs the offline preview or the CLI end to end

PYTHON = sys.executable
NEW = next(name for name in ("dev", "qa", "third", "extra-stack") if name not in stack_names(REPO_ROOT))
"""A stack the project does not have yet, so the tests also hold in a project that added one."""


def shipsafe(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [PYTHON, "-m", "deploy", *args]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy of the project, then a third stack added with the stack command and left uncommitted."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    added = shipsafe(root, "stack", "add", NEW, "--from", "staging")
    assert added.returncode == 0, added.stderr
    return root


def test_the_stack_command_writes_a_stack_file_and_its_policy_config(project: Path) -> None:
    assert stack_names(project) == sorted([*stack_names(REPO_ROOT), NEW])
    assert policy_config_path(project, NEW).read_text() == policy_config_path(project, "staging").read_text()
    staging, new = ((project / f"Pulumi.{stack}.yaml").read_text() for stack in ("staging", NEW))
    assert "namespace: notes-staging\n" in staging
    assert new == staging.replace("namespace: notes-staging\n", f"namespace: notes-{NEW}\n")
    listed = shipsafe(project, "stack", "list", "--output", "json")
    assert json.loads(listed.stdout)["stacks"] == stack_names(project)


def test_the_test_suite_parametrises_over_the_new_stack(project: Path) -> None:
    collected = subprocess.run(
        [PYTHON, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/policy/test_stacks.py"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert f"test_real_stack_passes_with_zero_mandatory_violations[{NEW}]" in collected.stdout


def test_make_policy_check_checks_the_new_stack(project: Path) -> None:
    # `-o setup`: the copy uses this checkout's virtualenv as it is, installing nothing.
    command = ["make", "-o", "setup", "policy-check", f"PY={PYTHON}"]
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for stack in stack_names(project):
        assert f"-m deploy preview {stack} --offline --quiet" in result.stdout


def test_the_stack_command_regenerates_the_policy_reference_with_a_column_for_the_new_stack(project: Path) -> None:
    check = [PYTHON, "-m", "deploy.docs", "--check", "docs/policies.md"]
    fresh = subprocess.run(check, cwd=project, capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr
    header = next(line for line in (project / "docs" / "policies.md").read_text().splitlines() if "| Policy |" in line)
    assert all(f"| {stack} |" in header for stack in stack_names(project)), header


def test_render_and_offline_preview_work_on_the_uncommitted_stack(project: Path) -> None:
    rendered = shipsafe(project, "render", NEW)
    assert rendered.returncode == 0, rendered.stderr
    assert f"namespace: notes-{NEW}\n" in rendered.stdout
    preview = shipsafe(project, "preview", NEW, "--offline")
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-3000:]


def test_diff_of_the_uncommitted_stack_says_in_one_line_what_is_missing(project: Path) -> None:
    result = shipsafe(project, "diff", NEW)
    assert result.returncode == ExitCode.FAILED, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"stack {NEW} has no Pulumi.{NEW}.yaml at" in result.stderr
    assert f"shipsafe render {NEW}" in result.stderr


# ── refusals, before anything is written ─────────────────────────────────────────────────────────────────────────


@pytest.fixture
def small_project(tmp_path: Path) -> Path:
    (tmp_path / "policy" / "config").mkdir(parents=True)
    for stack in ("staging", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(f"config:\n  shipsafe:app:\n    namespace: notes-{stack}\n")
        policy_config_path(tmp_path, stack).write_text("{}\n")
    return tmp_path


def _add(project: Path, *args: str) -> tuple[int, str]:
    context = DeployContext(open_stack=MemoryStacks(), project_dir=project)
    result = CliRunner().invoke(cli, ["stack", "add", *args], obj=context)
    return result.exit_code, result.output


def _files(project: Path) -> list[str]:
    return sorted(str(path.relative_to(project)) for path in project.rglob("*"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("prod", "--from", "staging"), "stack prod exists already (Pulumi.prod.yaml)"),
        (("qa", "--from", "nope"), "--from nope: no such stack (stacks: prod, staging)"),
        (("q/a", "--from", "staging"), "stack name 'q/a' is not allowed"),
    ],
)
def test_the_stack_command_refuses_with_a_clear_message(small_project: Path, args: tuple[str, ...], message: str):
    before = _files(small_project)
    code, output = _add(small_project, *args)
    assert code == ExitCode.USAGE, output
    assert message in output.replace("\n", " ")
    assert _files(small_project) == before


def test_a_policy_config_without_a_stack_file_is_an_existing_name(small_project: Path) -> None:
    policy_config_path(small_project, "qa").write_text("{}\n")
    code, output = _add(small_project, "qa", "--from", "staging")
    assert code == ExitCode.USAGE and "stack qa exists already (qa.json)" in output
    assert not (small_project / "Pulumi.qa.yaml").exists()


def test_secrets_and_the_source_encryption_are_left_out_and_named(small_project: Path) -> None:
    (small_project / "Pulumi.staging.yaml").write_text(
        "secretsprovider: passphrase\nencryptionsalt: v1:c2FsdA==:v1:aaaa:bbbb\nconfig:\n"
        "  shipsafe:registryPassword:\n    secure: v1:AAAA\n  shipsafe:app:\n    name: notes\n"
        "    namespace: notes-staging\n  shipsafe:rollback: false\n"
    )
    code, output = _add(small_project, "qa", "--from", "staging")
    assert code == 0, output
    assert (small_project / "Pulumi.qa.yaml").read_text() == (
        "secretsprovider: passphrase\nconfig:\n  shipsafe:app:\n    name: notes\n"
        "    namespace: notes-qa\n  shipsafe:rollback: false\n"
    )
    assert "pulumi config set --secret -s qa shipsafe:registryPassword" in output
