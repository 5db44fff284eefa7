"""A CI checkout of `Pulumi.<stack>.yaml` is thrown away after promote/rollback: redeploys re-pin from state."""

from __future__ import annotations

import pytest

from tests.deploy.memory_stack import MemoryStack, committed_config, image, sha

COMMITTED_PROD = committed_config("prod")
PLACEHOLDER = COMMITTED_PROD["shipsafe:imageRef"]


def fresh_checkout(stack: MemoryStack) -> None:
    stack.discard_local_config(COMMITTED_PROD)
    assert stack.get_config()["shipsafe:imageRef"] == PLACEHOLDER != stack.outputs()["imageRef"]


def test_the_committed_prod_file_is_a_prebuilt_placeholder_with_migrations_on():
    assert COMMITTED_PROD["shipsafe:imageSource"] == "prebuilt"
    assert COMMITTED_PROD["shipsafe:rollback"] == "false"
    assert PLACEHOLDER not in {image(n) for n in range(1, 4)}


def test_up_after_a_promotion_redeploys_the_promoted_image_not_the_placeholder(run_cli, stacks):
    prod = stacks["prod"]
    assert run_cli("promote").exit_code == 0
    fresh_checkout(prod)
    result = run_cli("up", "prod", "-m", "raise replicas")
    assert result.exit_code == 0, result.output
    deployed = prod.history()[0].config
    assert (deployed["shipsafe:imageRef"], deployed["shipsafe:gitSha"]) == (image(2), sha(2))
    assert deployed["shipsafe:rollback"] == "false"
    assert prod.outputs()["imageRef"] == image(2)
    assert f"Pinned prod to the release it runs (stack outputs, rollback flag from update 2): {image(2)}" in (
        result.output
    )
    assert f"replaced stale local config: shipsafe:imageRef={PLACEHOLDER}" in result.output


def test_up_after_a_rollback_keeps_rollback_true_and_runs_no_migration(run_cli, stacks):
    prod = stacks["prod"]
    assert run_cli("promote").exit_code == 0
    assert run_cli("rollback", "prod", "--reason", "bad release").exit_code == 0
    migrations = list(prod.migrations)
    fresh_checkout(prod)
    result = run_cli("up", "prod")
    assert result.exit_code == 0, result.output
    deployed = prod.history()[0].config
    assert (deployed["shipsafe:imageRef"], deployed["shipsafe:rollback"]) == (image(1), "true")
    assert prod.outputs()["migrationJob"] is None
    assert prod.migrations == migrations
    assert "rollback=true" in result.output


def test_the_rollback_flag_comes_from_the_last_successful_update(run_cli, stacks):
    prod = stacks["prod"]
    assert run_cli("promote").exit_code == 0
    assert run_cli("rollback", "prod").exit_code == 0
    prod.fail_next_up = True
    assert run_cli("up", "prod", "--image-ref", image(3)).exit_code != 0  # recorded with rollback=false
    fresh_checkout(prod)
    assert run_cli("up", "prod").exit_code == 0
    deployed = prod.history()[0].config
    assert (deployed["shipsafe:imageRef"], deployed["shipsafe:rollback"]) == (image(1), "true")


def test_preview_pins_the_deployed_release_before_previewing(run_cli, stacks):
    prod = stacks["prod"]
    assert run_cli("promote").exit_code == 0
    fresh_checkout(prod)
    runs = len(prod.policy_runs)
    checkout = prod.get_config()
    result = run_cli("preview", "prod")
    assert result.exit_code == 0, result.output
    # The preview reads the deployed release on top of the checkout's config; the stack config stays as checked out.
    assert prod.previewed_overlays[-1]["shipsafe:imageRef"] == image(2)
    assert prod.previewed_overlays[-1]["shipsafe:gitSha"] == sha(2)
    assert prod.get_config() == checkout
    assert [kind for kind, _ in prod.policy_runs[runs:]] == ["preview"]
    assert result.output.index("Pinned prod") < result.output.index("Planned changes")


@pytest.mark.parametrize("command", ["up", "preview"])
def test_a_first_deploy_keeps_the_files_values_and_says_so(run_cli, stacks, command):
    stacks["prod"] = prod = MemoryStack("prod", config=dict(COMMITTED_PROD))
    result = run_cli(command, "prod")
    assert result.exit_code == 0, result.output
    assert "prod has no outputs yet (first deploy): keeping imageRef" in result.output
    assert prod.get_config() == COMMITTED_PROD
    if command == "up":
        assert prod.outputs()["imageRef"] == PLACEHOLDER


def test_a_stack_that_builds_its_image_is_not_re_pinned(run_cli, stacks):
    staging = stacks["staging"]
    staging.discard_local_config(committed_config("staging"))
    result = run_cli("up", "staging", "--git-sha", sha(3))
    assert result.exit_code == 0, result.output
    assert "Pinned" not in result.output
    assert staging.history()[0].config["shipsafe:imageSource"] == "build"
    assert staging.outputs()["gitSha"] == sha(3)
