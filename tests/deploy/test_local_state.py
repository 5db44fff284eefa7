"""What the deploy tool keeps or reads locally (verification records, history messages, rollback markers, render
directories) never crashes it, never turns into a misleading exit code and never costs more than its bound."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from deploy.exit_codes import Aftermath
from deploy.history import MESSAGE_CHARS
from deploy.rollback import RollbackScope, release_key
from harness.manifests import RENDER_LIST
from tests.deploy.memory_stack import REPO, MemoryStack, MemoryStacks, image, sha

CORRUPTED_RECORDS = {
    "not JSON": b"{truncated",
    "not an object": b"[1, 2]",
    "a field missing": b'{"version": "abc", "outcome": "passed"}',
    "a number for a string": b'{"version": 1, "outcome": "passed", "reason": "", "at": "now"}',
    "not UTF-8": b'{"version": "\xff"}',
    "5,000 deep": b"[" * 5000 + b"]" * 5000,
}


@pytest.mark.parametrize("content", CORRUPTED_RECORDS.values(), ids=CORRUPTED_RECORDS.keys())
def test_status_names_a_corrupted_verification_record_and_shows_the_rest(run_cli, deploy_ctx, content):
    assert run_cli("verify", "prod").exit_code == 0
    record = deploy_ctx.verification_dir / "staging.json"
    record.write_bytes(content)
    table = run_cli("status", "staging")
    assert table.exit_code == 0 and sha(2)[:12] in table.stdout
    [warning] = [line for line in table.output.splitlines() if str(record) in line]
    assert warning.startswith(f"! {record}")
    result = run_cli("status", "--output", "json", "staging", "prod")
    assert result.exit_code == 0, result.output
    staging, prod = json.loads(result.stdout)["stacks"]
    assert staging["release"] == sha(2) and staging["lastVerification"] is None
    assert staging["lastVerificationUnreadable"].startswith(f"{record}")
    assert prod["lastVerification"]["outcome"] == "passed" and prod["lastVerificationUnreadable"] is None
    assert "Traceback" not in result.output


def test_verify_that_cannot_record_its_pass_exits_local_write_failed_not_failed(run_cli, deploy_ctx):
    out = deploy_ctx.project_dir / "out"
    out.write_text("a file where the directory should be\n")  # mkdir raises FileExistsError
    result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.LOCAL_WRITE_FAILED, result.output
    assert ExitCode.LOCAL_WRITE_FAILED.aftermath is not Aftermath.MAYBE_BAD, "a pipeline must not roll back for it"
    assert f"was not recorded in {out / 'verifications' / 'staging.json'}" in result.stderr
    assert "Traceback" not in result.output
    document = json.loads(run_cli("verify", "staging", "--output", "json").stdout)
    assert (document["exitName"], document["result"]) == ("LOCAL_WRITE_FAILED", "failed"), "one document, its code"


def test_a_failed_verification_keeps_its_code_when_it_cannot_be_recorded(run_cli, deploy_ctx, metrics):
    (deploy_ctx.project_dir / "out").write_text("")
    metrics.error_ratio = 0.25
    result = run_cli("verify", "staging")
    assert result.exit_code == ExitCode.VERIFICATION_FAILED
    assert "the verification (failed) was not recorded" in result.output


def test_history_of_a_ten_megabyte_message_shows_a_bounded_part(run_cli, stacks):
    staging = stacks["staging"]
    huge = "[rolled back from " * 600_000  # 10.8 MB, and every position starts a marker
    staging.records[-1] = dataclasses.replace(staging.records[-1], message=huge)
    for output in ("text", "json"):
        result = run_cli("history", "staging", "--output", output)
        assert result.exit_code == 0, result.output
        assert len(result.stdout) < 20_000
    [newest, _] = json.loads(result.stdout)["updates"]
    assert newest["message"].endswith(f"… ({len(huge)} characters)")
    assert len(newest["message"]) < MESSAGE_CHARS + 40


def test_a_reason_holding_the_rollback_marker_is_refused(run_cli, stacks):
    staging = stacks["staging"]
    forged = f"[rolled back from {release_key(staging.records[0].config, RollbackScope.CONFIG)}]"
    result = run_cli("rollback", "staging", "--reason", f"oops {forged}")
    assert result.exit_code == ExitCode.USAGE
    assert "--reason must not contain '[rolled back from'" in result.stderr
    assert len(staging.records) == 2, "nothing was changed"


def test_only_the_marker_shipsafe_wrote_blocks_a_release(run_cli):
    """A marker inside a message's text (an older --reason, `pulumi up -m`) is the user's, not shipsafe's."""
    staging = MemoryStack.deployed("staging", [1, 2, 3])
    context = DeployContext(open_stack=MemoryStacks(staging=staging), project_dir=REPO)
    assert CliRunner().invoke(cli, ["rollback", "staging"], obj=context).exit_code == 0  # to 2, away from 3
    first = release_key(staging.records[0].config, RollbackScope.CONFIG)
    rollback = staging.records[-1]
    text, marker = rollback.message.rsplit(" [rolled back from ", 1)
    forged = f"{text} [rolled back from {first}] [rolled back from {marker}"
    staging.records[-1] = dataclasses.replace(rollback, message=forged)
    result = CliRunner().invoke(cli, ["rollback", "staging"], obj=context)
    assert result.exit_code == 0, result.output
    assert staging.outputs()["imageRef"] == image(1), "release 1 was never rolled back from"


# ── render --output-dir ─────────────────────────────────────────────────────────────────────────────────────────


def _render(*args: str, project_dir: Path = REPO):
    context = DeployContext(open_stack=MemoryStacks(), project_dir=project_dir)
    return CliRunner().invoke(cli, ["render", "staging", *args], obj=context)


def test_render_never_removes_or_overwrites_a_file_it_did_not_write(tmp_path):
    assert _render("--output-dir", str(tmp_path)).exit_code == 0
    written = sorted(path.name for path in tmp_path.iterdir())
    mine = {"99-deployment-gone.yaml": "mine\n", "notes.yaml": "mine too\n"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    assert _render("--output-dir", str(tmp_path)).exit_code == 0
    assert {name: (tmp_path / name).read_text() for name in mine} == mine
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*written, *mine])
    taken = tmp_path / "other"
    taken.mkdir()
    (taken / "00-namespace-notes-staging.yaml").write_text("mine\n")
    result = _render("--output-dir", str(taken))
    assert result.exit_code == ExitCode.REFUSED
    assert "00-namespace-notes-staging.yaml, which no render wrote" in result.stderr
    assert [path.name for path in taken.iterdir()] == ["00-namespace-notes-staging.yaml"]
    assert (taken / "00-namespace-notes-staging.yaml").read_text() == "mine\n"


def test_render_removes_the_files_of_its_own_earlier_render(tmp_path):
    assert _render("--output-dir", str(tmp_path)).exit_code == 0
    listed = (tmp_path / RENDER_LIST).read_text().split()
    (tmp_path / RENDER_LIST).write_text("\n".join([*listed, "99-deployment-gone.yaml"]) + "\n")
    (tmp_path / "99-deployment-gone.yaml").write_text("an object the last render had\n")
    assert _render("--output-dir", str(tmp_path)).exit_code == 0
    assert not (tmp_path / "99-deployment-gone.yaml").exists()
    assert (tmp_path / RENDER_LIST).read_text().split() == listed


def test_an_empty_output_dir_is_refused_and_the_current_directory_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "00-namespace-mine.yaml").write_text("mine\n")
    result = _render("--output-dir", "")
    assert result.exit_code == ExitCode.USAGE
    assert "--output-dir is empty" in result.stderr
    assert [path.name for path in tmp_path.iterdir()] == ["00-namespace-mine.yaml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory; the not-a-directory case runs")
def test_render_into_a_read_only_directory_is_one_line(tmp_path):
    tmp_path.chmod(0o500)
    try:
        result = _render("--output-dir", str(tmp_path / "render"))
    finally:
        tmp_path.chmod(0o700)
    assert result.exit_code == ExitCode.LOCAL_WRITE_FAILED
    assert "Permission denied" in result.stderr


def test_render_under_a_file_is_one_line_naming_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    result = _render("--output-dir", str(tmp_path / "file" / "render"))
    assert result.exit_code == ExitCode.LOCAL_WRITE_FAILED
    assert result.stderr.strip() == f"error: {tmp_path / 'file' / 'render'}: cannot write the render: Not a directory"


def test_a_project_dir_without_pulumi_yaml_is_one_line(tmp_path):
    shutil.copytree(REPO / "policy" / "config", tmp_path / "policy" / "config")
    result = _render(project_dir=tmp_path)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert result.stderr.strip() == f"error: {tmp_path}: no Pulumi.yaml, so not a Pulumi project directory"
