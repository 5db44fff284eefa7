"""The installed `shipsafe` command: entry point and aliases, version, completion, the one exit-code table, the
generated reference page, `--project-dir` with another project's modules, and a preview that changes no tracked
file. (tests/deploy/test_cli.py drives every subcommand in-process against in-memory stacks.)"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from deploy import errors
from deploy.cli import cli
from deploy.context import DeployContext
from deploy.docs.cli import PAGE, json_commands
from deploy.exit_codes import Aftermath, ExitCode, shell_variables
from deploy.version import VERSION
from tests.deploy.memory_stack import MemoryStacks

REPO = Path(__file__).resolve().parents[2]
SHIPSAFE = Path(sys.executable).parent / "shipsafe"  # what `make setup` installs next to the venv's python


def run(*command: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_make_setup_installs_the_command_after_the_locks_without_dependencies():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"shipsafe": "deploy.cli:main"}
    dry_run = run("make", "-n", "-B", "setup").stdout.splitlines()
    installs = [line for line in dry_run if "pip install" in line]
    project = [line for line in installs if "-r " not in line]
    assert len(project) == 1 and installs[-1] == project[0], "the project comes last, after every lock"
    assert {"--no-deps", "--no-build-isolation", "-e", "."} <= set(shlex.split(project[0]))


@pytest.mark.slow
def test_the_installed_command_and_the_module_alias_are_the_same_command():
    installed = run(str(SHIPSAFE), "--version", cwd=Path("/"))  # from anywhere, not only the checkout
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout == f"shipsafe {VERSION}\n"
    alias = run(sys.executable, "-m", "deploy", "exit-codes", "--shell")
    assert alias.returncode == 0, alias.stderr
    assert alias.stdout == run(str(SHIPSAFE), "exit-codes", "--shell").stdout == shell_variables()
    assert "Usage: python -m deploy [OPTIONS] COMMAND" in run(sys.executable, "-m", "deploy", "--help").stdout
    listed = run(str(SHIPSAFE), "--help").stdout
    for command in ("preview", "render", "diff", "up", "promote", "smoke", "verify", "history", "rollback", "init"):
        assert f"\n  {command} " in listed, command
    for command in ("status", "destroy", "config", "mirror", "exit-codes", "completion"):
        assert f"\n  {command} " in listed, command


@pytest.mark.slow
def test_the_shell_variables_drive_a_shell():
    script = f'eval "$({shlex.quote(str(SHIPSAFE))} exit-codes --shell)"; echo "$SHIPSAFE_EXIT_ROLLED_BACK"'
    script += '; echo "$SHIPSAFE_EXITS_MAYBE_BAD"'
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=True)
    maybe_bad = " ".join(str(code.value) for code in ExitCode if code.aftermath is Aftermath.MAYBE_BAD)
    assert result.stdout == f"{ExitCode.ROLLED_BACK.value}\n{maybe_bad}\n"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_name_the_command(shell):
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_SHIPSAFE_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("shipsafe pre", ["preview"]),
        ("shipsafe diff --ag", ["--against", "--against-render"]),
        ("shipsafe con", ["config"]),
    ],
)
def test_completion_completes_commands_and_options(words, expected):
    env = {"_SHIPSAFE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    result = CliRunner().invoke(cli, [], env=env, prog_name="shipsafe")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"plain,{word}" for word in expected]


def test_one_exit_code_table_for_the_harness_and_the_deploy_tool():
    assert errors.ExitCode is ExitCode
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values)), "each code means one thing"
    # That the engine model imports nothing of the tool is tests/harness/test_structure.py's.
    # Numbers pipelines already act on keep their meaning (docs/cli.md, the workflows' history).
    stable = {"USAGE": 2, "VERIFICATION_FAILED": 3, "VERIFICATION_INCONCLUSIVE": 4, "ROLLED_BACK": 5, "REFUSED": 7}
    assert {name: ExitCode[name].value for name in stable} == stable


def test_the_reference_page_is_generated_from_the_commands_and_the_table():
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in PAGE.read_text()


SCHEMA_DIR = REPO / "docs" / "schemas"


@pytest.mark.parametrize("name", json_commands().values())
def test_every_json_schema_is_valid_and_knows_every_exit_code_and_the_error_document(name):
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schemaVersion"] == {"const": 1}
    assert schema["properties"]["exitName"]["enum"] == [code.name for code in ExitCode]
    error = json.loads((SCHEMA_DIR / "error.schema.json").read_text())
    shared = {key: value for key, value in error.items() if key not in ("$schema", "title", "description")}
    assert schema["$defs"]["error"] == shared, "every schema's $defs/error is docs/schemas/error.schema.json"


def test_every_command_with_json_output_has_a_schema_and_every_schema_a_command():
    on_disk = {path.name.removesuffix(".schema.json") for path in SCHEMA_DIR.glob("*.schema.json")}
    assert on_disk == {*json_commands().values(), "error"}
    assert json_commands()["config validate"] == "config-validate"


@pytest.fixture(scope="module")
def other_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project whose `components` differ from this checkout's: the migration Job is named with 10
    characters of the release instead of 12."""
    root = tmp_path_factory.mktemp("other-project")
    for path in (REPO / "__main__.py", *REPO.glob("Pulumi*.yaml")):
        shutil.copy(path, root)
    for directory in ("components", "policy"):
        shutil.copytree(REPO / directory, root / directory, ignore=shutil.ignore_patterns("__pycache__"))
    release = root / "components" / "release.py"
    text = release.read_text()
    assert text.count('[:12] + ("-dirty"') == 1
    release.write_text(text.replace('[:12] + ("-dirty"', '[:10] + ("-dirty"'))
    return root


@pytest.mark.slow
def test_project_dir_runs_that_projects_own_modules(other_project: Path, tmp_path: Path):
    release = "--set=gitSha=0123456789abcdef"
    elsewhere = run(
        str(SHIPSAFE), "--project-dir", str(other_project), "render", "-s", "staging", release, cwd=tmp_path
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    here = run(str(SHIPSAFE), "render", "-s", "staging", release)
    assert "name: notes-migrate-0123456789\n" in elsewhere.stdout
    assert "name: notes-migrate-0123456789ab\n" in here.stdout


@pytest.mark.slow
def test_project_dir_config_validate_reads_that_projects_stack_files(other_project: Path, tmp_path: Path):
    stack_file = other_project / "Pulumi.prod.yaml"
    committed = stack_file.read_text()
    stack_file.write_text(committed.replace("shipsafe:environment: prod", "shipsafe:environment: production"))
    try:
        result = run(str(SHIPSAFE), "--project-dir", str(other_project), "config", "validate", cwd=tmp_path)
    finally:
        stack_file.write_text(committed)
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stdout + result.stderr
    assert "✓ staging: valid" in result.stdout and "✗ prod:" in result.stdout
    assert "shipsafe:environment" in result.stdout and "invalid config: prod" in result.stderr


def _tree_state() -> str:
    status = run("git", "status", "--porcelain", "--untracked-files=all").stdout
    return status + run("git", "diff").stdout


@pytest.mark.slow
def test_preview_changes_no_tracked_file():
    before = _tree_state()
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    result = CliRunner().invoke(cli, ["preview", "-s", "staging", "--offline"], obj=context)
    assert result.exit_code == 0, result.output
    assert _tree_state() == before
