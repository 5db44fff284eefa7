"""A rollback restores the target update's whole non-secret config, through the CLI, on the in-memory backend."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.errors import ExitCode
from deploy.release import ImageRef, release_config
from tests.deploy.memory_stack import NO_POLICY, REPO, SECRET, MemoryStack, image, sha

WORKLOADS = "shipsafe:workloads"
ROLLOUT = "shipsafe:rollout"
PASSWORD = "shipsafe:registryPassword"


def replicas(config: dict[str, str]) -> int:
    return json.loads(config[WORKLOADS])["web"]["replicas"]


def with_replicas(stack: MemoryStack, count: int) -> None:
    workloads = json.loads(stack.get_config()[WORKLOADS])
    workloads["web"]["replicas"] = count
    stack.set_config({WORKLOADS: json.dumps(workloads)})


def settings(config: dict[str, str]) -> dict[str, str]:
    """What a whole-config rollback restores: the non-secret settings, the rollback flag aside."""
    return {k: v for k, v in config.items() if k not in {"shipsafe:rollback", PASSWORD}}


@pytest.fixture
def staging(stacks) -> MemoryStack:
    """Releases 1 and 2 with 2 web replicas, then release 3 with 5 (a bad change of image and settings)."""
    stack = stacks["staging"]
    stack.set_secret(PASSWORD, "first-password")
    with_replicas(stack, 5)
    stack.set_config({"shipsafe:imageRef": image(3), "shipsafe:gitSha": sha(3)})
    stack.up(message="deploy 3", policy=NO_POLICY, on_output=lambda _: None)
    return stack


def test_rollback_restores_the_whole_config_of_the_target(run_cli, staging):
    result = run_cli("rollback", "staging", "--reason", "too many pods")
    assert result.exit_code == 0, result.output
    restored = staging.history()[0].config
    assert settings(restored) == settings(staging.records[1].config)  # update 2: image 2 and 2 replicas
    assert (restored["shipsafe:imageRef"], replicas(restored), restored["shipsafe:rollback"]) == (image(2), 2, "true")
    assert staging.outputs()["migrationJob"] is None
    assert "shipsafe:workloads.web.replicas: 5 -> 2" in result.output
    assert f"shipsafe:imageRef: {image(3)} -> {image(2)}" in result.output


def test_image_only_keeps_todays_settings(run_cli, staging):
    result = run_cli("rollback", "staging", "--image-only")
    assert result.exit_code == 0, result.output
    assert staging.outputs()["imageRef"] == image(2)
    assert replicas(staging.get_config()) == 5
    assert "[image only]" in staging.history()[0].message
    assert "workloads" not in result.output.split("Config changes")[1]


def test_a_setting_the_target_did_not_have_is_removed(run_cli, stacks):
    stack = stacks["prod"]
    stack.remove_config([ROLLOUT])  # update 2 runs with the rollout defaults
    assert run_cli("up", "prod", "--image-ref", image(2)).exit_code == 0
    stack.set_config({ROLLOUT: '{"maxSurge": 2, "maxUnavailable": 0}'})
    assert run_cli("up", "prod", "--image-ref", image(3)).exit_code == 0
    result = run_cli("rollback", "prod")
    assert result.exit_code == 0, result.output
    assert ROLLOUT not in stack.get_config()
    assert ROLLOUT not in stack.history()[0].config
    assert "shipsafe:rollout.maxSurge: 2 -> (unset)" in result.output


def test_secrets_are_never_restored_nor_printed(run_cli, staging):
    staging.set_secret(PASSWORD, "second-password")
    assert staging.records[-1].config[PASSWORD] == SECRET
    result = run_cli("rollback", "staging")
    assert result.exit_code == 0, result.output
    assert staging.get_config()[PASSWORD] == "second-password"
    assert PASSWORD in staging.secret_keys  # never rewritten, so never turned into plain text
    assert "first-password" not in result.output
    assert "second-password" not in result.output


def test_two_rollbacks_in_a_row_go_further_back_never_to_the_abandoned_release(run_cli, staging):
    assert run_cli("rollback", "staging").exit_code == 0
    assert staging.outputs()["imageRef"] == image(2)
    result = run_cli("rollback", "staging")
    assert result.exit_code == 0, result.output
    assert staging.history()[0].message.startswith(f"rollback to update 1 ({sha(1)[:12]})")
    assert staging.outputs()["imageRef"] == image(1)
    assert replicas(staging.get_config()) == 2
    refused = run_cli("rollback", "staging")
    assert refused.exit_code == ExitCode.REFUSED
    assert "nothing to roll back to" in refused.stderr


def test_rollback_after_a_failed_config_change_goes_to_the_last_good_state(run_cli, stacks):
    stack = stacks["staging"]
    with_replicas(stack, 7)
    stack.fail_next_up = True
    assert run_cli("up", "staging", "-m", "raise replicas").exit_code == ExitCode.PULUMI_FAILED
    result = run_cli("rollback", "staging")
    assert result.exit_code == 0, result.output
    assert stack.history()[0].message.startswith(f"rollback to update 2 ({sha(2)[:12]})")
    assert (stack.outputs()["imageRef"], replicas(stack.get_config())) == (image(2), 2)
    assert "shipsafe:workloads.web.replicas: 7 -> 2" in result.output


def test_a_config_todays_schema_refuses_is_reported_and_changes_nothing(run_cli, stacks):
    stack = stacks["staging"]
    # Update 2 ran with a setting an older program knew and today's schema does not (today's `up`, which renders the
    # program first, would refuse it).
    stack.set_config(
        {"shipsafe:legacyTimeout": "30", **release_config(ImageRef.parse(image(2)), sha(2), rollback=False)}
    )
    stack.up(message=f"deploy {sha(2)[:12]}", policy=NO_POLICY, on_output=lambda _: None)
    stack.remove_config(["shipsafe:legacyTimeout"])
    assert run_cli("up", "staging", "--image-ref", image(3)).exit_code == 0
    before, updates = stack.get_config(), len(stack.records)

    result = run_cli("rollback", "staging")
    assert result.exit_code == ExitCode.REFUSED
    assert "the config of update 3 is refused by today's settings schema" in result.stderr
    assert "shipsafe:legacyTimeout is not a known setting" in result.stderr
    assert "--image-only" in result.stderr
    assert (stack.get_config(), len(stack.records)) == (before, updates)

    fallback = run_cli("rollback", "staging", "--fallback-image-only")
    assert fallback.exit_code == 0, fallback.output
    assert "rolling back the image only" in fallback.output
    assert stack.outputs()["imageRef"] == image(2)
    assert "shipsafe:legacyTimeout" not in stack.get_config()


def test_the_next_deploy_from_git_reapplies_the_committed_values_and_says_so(run_cli, staging):
    committed = {k: v for k, v in staging.get_config().items() if k != PASSWORD}  # git holds 5 replicas
    assert run_cli("rollback", "staging").exit_code == 0
    staging.discard_local_config(committed)
    result = run_cli("up", "staging", "-m", "config from git")
    assert result.exit_code == 0, result.output
    assert "Update 4 rolled staging back to the settings of update 2" in result.output
    assert "shipsafe:workloads.web.replicas: 2 -> 5" in result.output
    assert result.output.index("re-applies") < result.output.index("Planned changes")
    deployed = staging.history()[0].config
    assert (replicas(deployed), deployed["shipsafe:imageRef"], deployed["shipsafe:rollback"]) == (5, image(2), "true")
    again = run_cli("up", "staging", "-m", "nothing reverted any more")
    assert "re-applies" not in again.output


def test_dry_run_shows_the_config_and_rendered_diff_and_changes_nothing(staging, deploy_ctx):
    deploy_ctx.project_dir = REPO  # the offline render runs the real program with the repository's stack file
    before, updates = staging.get_config(), len(staging.records)
    result = CliRunner().invoke(cli, ["rollback", "staging", "--dry-run"], obj=deploy_ctx)
    assert result.exit_code == 0, result.output
    assert "shipsafe:workloads.web.replicas: 5 -> 2" in result.output
    assert "Rendered objects (per changed object):" in result.output
    assert "-  replicas: 5\n+  replicas: 2" in result.output
    assert f"+        image: {image(2)}" in result.output
    assert "-  name: notes-migrate-" in result.output  # a rollback runs no migration Job
    assert "Dry run: nothing was changed." in result.output
    assert (staging.get_config(), len(staging.records)) == (before, updates)
    assert "first-password" not in result.output


def test_image_only_and_its_fallback_exclude_each_other(run_cli):
    result = run_cli("rollback", "staging", "--image-only", "--fallback-image-only")
    assert result.exit_code == ExitCode.USAGE
