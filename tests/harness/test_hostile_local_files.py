"""Stack files and local state that would hang the tools, exhaust memory or end in a traceback are refused with one
line naming the file (`harness/local_files.py`), with the exit code of a config error, and a huge value is never
echoed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode, ShipsafeError
from deploy.kubeconfig import KUBECONFIG_KEY, cluster_access
from harness import local_files
from harness.local_files import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUE_CHARS, LocalFileError, load_json
from harness.pack_launch import PolicyPackError, pack_python
from harness.stack_config import REPO_ROOT, StackFileError, read_stack_config
from tests.deploy.memory_stack import MemoryStacks

STAGING = (REPO_ROOT / "Pulumi.staging.yaml").read_text()


def billion_laughs() -> str:
    """Ten levels of nine aliases each: 9^10 (3.5 billion) scalars once expanded, 600 bytes on disk."""
    lines = ["config:", "  shipsafe:laugh0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        lines.append(f"  shipsafe:laugh{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def deep_block(levels: int) -> str:
    """`levels` nested mappings, each indented one space more (about 500 KB for 1,000)."""
    return "config:\n  shipsafe:app:\n" + "".join(f"{' ' * (level + 3)}k{level}:\n" for level in range(levels))


HOSTILE = {
    "billion laughs": (billion_laughs(), "excessive aliasing"),
    "1,000-deep block nesting": (deep_block(1000), f"nested deeper than {MAX_DEPTH} levels"),
    "5,000-deep flow nesting": ("config:\n  shipsafe:app: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper"),
    "an alias inside its own anchor": ("config:\n  shipsafe:app: &loop [*loop]\n", "refers to a node that contains it"),
    "a value of 100,000 characters": (
        f"{STAGING}  shipsafe:gitSha: {'x' * 100_000}\n",
        f"a value of 100000 characters, more than the {MAX_VALUE_CHARS} allowed",
    ),
    "an integer of 5,000 digits": (f"{STAGING}  shipsafe:nested:\n    n: {'9' * 5000}\n", "integer string conversion"),
}


def _project(tmp_path: Path, stack_file: str | bytes) -> Path:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO_ROOT / name, tmp_path)
    shutil.copytree(REPO_ROOT / "policy" / "config", tmp_path / "policy" / "config")
    target = tmp_path / "Pulumi.staging.yaml"
    target.write_bytes(stack_file if isinstance(stack_file, bytes) else stack_file.encode())
    return tmp_path


def _validate(project_dir: Path, *extra: str):
    context = DeployContext(open_stack=MemoryStacks(), project_dir=project_dir)
    return CliRunner().invoke(cli, ["config", "validate", "staging", *extra], obj=context)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_stack_file_is_refused_in_one_line_naming_file_and_problem(tmp_path, name):
    text, problem = HOSTILE[name]
    project_dir = _project(tmp_path, text)
    with pytest.raises(StackFileError) as refused:
        read_stack_config("staging", project_dir)
    message = str(refused.value)
    assert "\n" not in message and problem in message, message
    assert message.startswith(str(project_dir / "Pulumi.staging.yaml")), message
    assert len(message) < 400, "never the value itself"


def test_the_billion_laughs_stops_the_command_as_a_config_error_without_expanding(tmp_path):
    result = _validate(_project(tmp_path, billion_laughs()))
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    [problem] = [line for line in result.stdout.splitlines() if "Pulumi.staging.yaml:" in line]
    assert "excessive aliasing" in problem


def test_a_ten_megabyte_value_is_refused_before_it_is_read_and_never_echoed(tmp_path):
    project_dir = _project(tmp_path, f"{STAGING}  shipsafe:gitSha: {'x' * 10_000_000}\n")
    result = _validate(project_dir)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert f"larger than {MAX_FILE_BYTES} bytes" in result.stdout
    assert len(result.stdout) + len(result.stderr) < 1000, "the value is not echoed"


def test_a_stack_file_that_is_not_utf8_is_one_line(tmp_path):
    project_dir = _project(tmp_path, STAGING.encode() + b"  shipsafe:gitSha: caf\xe9\n")
    with pytest.raises(StackFileError, match=r"Pulumi\.staging\.yaml: not UTF-8 text \(byte \d+ is 0xe9\)$"):
        read_stack_config("staging", project_dir)


def test_merges_and_a_few_aliases_stay_accepted(tmp_path):
    anchored = STAGING.replace("  shipsafe:app:\n", "  shipsafe:app: &app\n", 1)
    project_dir = _project(tmp_path, f"{anchored}  other:copy: *app\n  other:merged:\n    <<: *app\n    port: 1\n")
    _, config = read_stack_config("staging", project_dir)
    assert config["other:copy"] == config["shipsafe:app"]
    assert config["other:merged"]["port"] == 1 and config["other:merged"]["name"] == config["shipsafe:app"]["name"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested deeper than"),
        (b"[" * 100 + b"]" * 100, "nested deeper than"),
        (b'{"a": "\xff"}', "not UTF-8 text"),
        (b'{"a": ' + b"1" * 5000 + b"}", "integer string conversion"),
        (b'{"a": "' + b"x" * (MAX_VALUE_CHARS + 1) + b'"}', "characters, more than the"),
        (b" " * (MAX_FILE_BYTES + 1), "larger than"),
        (b"{nope", "not JSON"),
    ],
    ids=["5,000 deep", "100 deep", "not utf-8", "huge integer", "huge value", "huge file", "syntax"],
)
def test_a_hostile_json_file_is_one_line_naming_it(tmp_path, content, problem):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(LocalFileError) as refused:
        load_json(path)
    assert str(refused.value).startswith(str(path)) and problem in str(refused.value)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


def test_a_hostile_policy_config_is_one_line_in_config_validate(tmp_path):
    project_dir = _project(tmp_path, STAGING)
    (project_dir / "policy" / "config" / "staging.json").write_bytes(b"[" * 5000 + b"]" * 5000)
    result = _validate(project_dir)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    [problem] = [line.strip() for line in result.stdout.splitlines() if "staging.json" in line]
    assert problem == f"- {project_dir / 'policy' / 'config' / 'staging.json'}: nested deeper than {MAX_DEPTH} levels"
    assert "Traceback" not in result.output


def test_the_yaml_bounds_are_at_least_as_strict_as_yaml_v3():
    # go-yaml v3 decode.go: 99 % of up to 400,000 decodes may come from aliases; scanner depth 10,000.
    assert local_files._allowed_alias_ratio(1_000) == 0.99
    assert local_files._allowed_alias_ratio(4_000_000) == 0.10
    assert local_files.MAX_NODES <= 400_000 and MAX_DEPTH <= 10_000


@pytest.mark.parametrize("name", ["billion laughs", "5,000-deep flow nesting"])
def test_a_hostile_kubeconfig_or_pack_manifest_is_one_line_naming_it(tmp_path, name):
    content = HOSTILE[name][0]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(content)
    with pytest.raises(ShipsafeError) as refused:
        cluster_access({KUBECONFIG_KEY: str(kubeconfig)})
    assert str(kubeconfig) in refused.value.message and "\n" not in refused.value.message
    (tmp_path / "PulumiPolicy.yaml").write_text(content)
    with pytest.raises(PolicyPackError, match=r"PulumiPolicy\.yaml") as failed:
        pack_python(tmp_path)
    assert "\n" not in str(failed.value)
