"""`preview STACK --offline --as-pipeline`: what the deploy pipeline will do, with the not-yet-built image marked.

The pipeline builds once after merge and deploys `--image-ref` to staging, then promotes the digest to prod; a
PR's preview must show that (a prebuilt image and its migration Job), not an in-stack build it never runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from deploy.release import NOT_BUILT_DIGEST
from tests.conftest import STACKS
from tests.deploy.memory_stack import MemoryStacks, sha

REPO = Path(__file__).resolve().parents[2]
REPOSITORY = "registry.example.com/shipsafe/notes"  # shipsafe:registry of both committed stack files


@pytest.fixture
def with_stack_files(project_dir: Path) -> Path:
    for stack in STACKS:
        shutil.copy(REPO / f"Pulumi.{stack}.yaml", project_dir)
    return project_dir


@pytest.mark.parametrize("stack", STACKS)
def test_as_pipeline_previews_a_prebuilt_placeholder_of_this_commit(run_cli, with_stack_files, offline_calls, stack):
    result = run_cli("preview", stack, "--offline", "--as-pipeline", "--git-sha", sha(7))
    assert result.exit_code == 0, result.output
    placeholder = f"{REPOSITORY}:{sha(7)}@{NOT_BUILT_DIGEST}"
    assert offline_calls == [
        (
            stack,
            {
                "shipsafe:imageSource": "prebuilt",
                "shipsafe:imageRef": placeholder,
                "shipsafe:gitSha": sha(7),
                "shipsafe:rollback": "false",  # a normal deploy migrates
            },
            with_stack_files,
        )
    ]
    assert "NOT YET BUILT" in result.output and placeholder in result.output.replace("\n", "")


def test_a_set_value_goes_on_top_of_the_pipeline_release(run_cli, with_stack_files, offline_calls):
    args = ["--as-pipeline", "--git-sha", sha(7), "--set", "gitSha=0123456789ab", "--set", "workloads.web.replicas=3"]
    result = run_cli("preview", "staging", "--offline", *args)
    assert result.exit_code == 0, result.output
    [(_, overrides, _)] = offline_calls
    assert overrides["shipsafe:gitSha"] == "0123456789ab" and overrides["shipsafe:imageSource"] == "prebuilt"
    assert overrides["shipsafe:workloads"]["web"]["replicas"] == 3


def test_the_placeholder_is_all_zeros():
    assert NOT_BUILT_DIGEST == "sha256:" + "0" * 64


def test_as_pipeline_defaults_to_the_checked_out_commit(run_cli, with_stack_files, offline_calls):
    # project_dir is not a git checkout: the tool says so instead of inventing a SHA.
    result = run_cli("preview", "staging", "--offline", "--as-pipeline")
    assert result.exit_code == ExitCode.FAILED
    assert "pass --git-sha" in result.stderr
    assert offline_calls == []


def test_a_bad_sha_is_named(run_cli, with_stack_files):
    result = run_cli("preview", "staging", "--offline", "--as-pipeline", "--git-sha", "main")
    assert result.exit_code == ExitCode.FAILED
    assert "'main' is not a git SHA" in result.stderr


@pytest.mark.parametrize("args", [["--as-pipeline"], ["--git-sha", "abc1234"], ["--offline", "--git-sha", "abc1234"]])
def test_pipeline_options_only_apply_to_the_offline_preview(run_cli, args, stacks):
    result = run_cli("preview", "staging", *args)
    assert result.exit_code == ExitCode.USAGE
    assert stacks["staging"].policy_runs == []


@pytest.mark.slow
def test_the_real_offline_preview_of_staging_as_the_pipeline_builds_nothing():
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO)
    result = CliRunner().invoke(
        cli, ["preview", "staging", "--offline", "--as-pipeline", "--git-sha", sha(7)], obj=context
    )
    assert result.exit_code == 0, result.output
    assert "docker:index/image:Image" not in result.output  # the pipeline's image comes from the build job
    assert f'"{REPOSITORY}:{sha(7)}@{NOT_BUILT_DIGEST}"' in result.output.replace("\n", "")  # the imageRef output
    assert f"notes-migrate-{sha(7)[:12]}" in result.output  # the migration Job of this release
    assert "MANDATORY violations: 0" in result.output
