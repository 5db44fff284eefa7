"""Which update a rollback goes back to: pure decisions over recorded history, by image (`--image-only`) or by
image and settings (the default)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.backend import UpdateRecord
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import ImageRef
from deploy.rollback import RollbackScope, choose_target, release_key, rollback_message
from tests.deploy.memory_stack import SECRET, image, sha

IMAGE = RollbackScope.IMAGE
CONFIG = RollbackScope.CONFIG


def record(
    version: int,
    release: int | None,
    result: str = "succeeded",
    message: str = "",
    kind: str = "update",
    replicas: int = 2,
):
    config = {"shipsafe:gitSha": sha(version if release is None else release)}
    if release is not None:
        config |= {"shipsafe:imageSource": "prebuilt", "shipsafe:imageRef": image(release)}
    else:
        config |= {"shipsafe:imageSource": "build"}
    config["shipsafe:workloads"] = f'{{"web": {{"replicas": {replicas}}}}}'
    return UpdateRecord(version, kind, result, datetime(2026, 1, 1, tzinfo=UTC), message, config)


def current(release: int) -> str:
    """What runs now, for `--image-only`: the image's identity."""
    return ImageRef.parse(image(release)).identity


def rolled_back(history: list[UpdateRecord], scope: RollbackScope, reason: str = "errors") -> str:
    """The message of a default rollback from the newest update of `history`."""
    now = release_key(history[-1].config, scope) if scope is CONFIG else current_of(history[-1])
    return rollback_message(choose_target(history, now, scope=scope), now, reason, scope)


def current_of(update: UpdateRecord) -> str:
    return release_key(update.config, IMAGE)


def test_default_skips_failed_updates_and_the_current_image():
    history = [record(1, 1), record(2, 2), record(3, 3, result="failed"), record(4, 4)]
    target = choose_target(history, current(4), scope=IMAGE)
    assert (target.record.version, target.image.reference) == (2, image(2))


def test_default_skips_updates_of_the_same_image_as_now():
    history = [record(1, 1), record(2, 2), record(3, 2)]  # 3 redeployed image 2
    assert choose_target(history, current(2), scope=IMAGE).record.version == 1


def test_default_ignores_refreshes_and_in_stack_builds():
    history = [record(1, 1), record(2, None), record(3, 3, kind="refresh"), record(4, 4)]
    assert choose_target(history, current(4), scope=IMAGE).record.version == 1


def test_an_image_already_rolled_back_from_is_never_brought_back():
    # 1 good, 2 bad -> rolled back to 1 (update 3), 4 deploys image 5, which is bad too.
    rolled = rolled_back([record(1, 1), record(2, 2)], IMAGE)
    history = [record(1, 1), record(2, 2), record(3, 1, message=rolled), record(4, 5)]
    target = choose_target(history, current(5), scope=IMAGE)
    assert target.record.version == 3
    assert target.image.reference == image(1)
    # ...and from image 1 the default does not go "back" to the abandoned image 2.
    with pytest.raises(ShipsafeError, match="nothing to roll back to"):
        choose_target(history[:3], current(1), scope=IMAGE)


def test_a_redeploy_after_the_rollback_makes_the_image_a_target_again():
    rolled = rolled_back([record(1, 1), record(2, 2)], IMAGE)
    history = [record(1, 1), record(2, 2), record(3, 1, message=rolled), record(4, 2), record(5, 6)]
    assert choose_target(history, current(6), scope=IMAGE).record.version == 4


def test_by_default_a_settings_change_of_the_same_image_is_a_release_to_roll_back_from():
    # 3 changed only the replicas of image 2 (and failed): the last good state is update 2, not image 1.
    history = [record(1, 1), record(2, 2), record(3, 2, result="failed", replicas=9)]
    assert choose_target(history, release_key(history[-1].config, CONFIG)).record.version == 2
    # --image-only looks at images alone, as before: image 2 runs, so it goes to image 1.
    assert choose_target(history, current(2), scope=IMAGE).record.version == 1


def test_two_whole_config_rollbacks_in_a_row_never_return_to_the_abandoned_release():
    history = [record(1, 1), record(2, 2), record(3, 2, replicas=9)]
    first = choose_target(history, release_key(history[-1].config, CONFIG))
    assert first.record.version == 2
    history.append(record(4, 2, message=rolled_back(history, CONFIG)))
    second = choose_target(history, release_key(history[-1].config, CONFIG))
    assert second.record.version == 1  # the update before the first target, never update 3's settings
    history.append(record(5, 1, message=rolled_back(history, CONFIG)))
    with pytest.raises(ShipsafeError, match="nothing to roll back to"):
        choose_target(history, release_key(history[-1].config, CONFIG))


def test_an_image_only_rollback_abandons_the_image_for_whole_config_rollbacks_too():
    history = [record(1, 1), record(2, 2)]
    history.append(record(3, 1, message=rolled_back(history, IMAGE)))  # image 2 abandoned
    history.append(record(4, 1))  # a redeploy of what runs
    with pytest.raises(ShipsafeError, match="nothing to roll back to"):
        choose_target(history, release_key(history[-1].config, CONFIG))
    # Without the marker, update 2 would be the target.
    assert (
        choose_target(
            [*history[:2], record(3, 1), record(4, 1)], release_key(history[-1].config, CONFIG)
        ).record.version
        == 2
    )


def test_the_release_key_ignores_the_rollback_flag_secrets_and_json_spacing():
    config = {**record(1, 1).config, "shipsafe:rollback": "false", "shipsafe:registryPassword": "hunter2"}
    same = {
        **config,
        "shipsafe:rollback": "true",
        "shipsafe:registryPassword": SECRET,
        "shipsafe:workloads": '{"web":{"replicas":2}}',
    }
    assert release_key(config, CONFIG) == release_key(same, CONFIG)
    changed = {**config, "shipsafe:workloads": '{"web": {"replicas": 3}}'}
    assert release_key(config, CONFIG) != release_key(changed, CONFIG)
    assert release_key(config, IMAGE) == release_key(changed, IMAGE)


def test_an_explicit_target_with_the_settings_that_run_now_is_refused():
    history = [record(1, 1), record(2, 2), record(3, 2, replicas=5), record(4, 2)]
    with pytest.raises(ShipsafeError, match=r"update 2 deployed .* with the same settings, which is what the stack"):
        choose_target(history, release_key(history[-1].config, CONFIG), to_version=2)
    assert choose_target(history, release_key(history[-1].config, CONFIG), to_version=3).record.version == 3


def test_explicit_build_update_is_refused_because_it_would_need_a_rebuild():
    history = [record(1, None), record(2, 2)]
    with pytest.raises(ShipsafeError, match="never rebuilds") as error:
        choose_target(history, current(2), scope=IMAGE, to_version=1)
    assert error.value.exit_code is ExitCode.REFUSED


def test_to_sha_matches_a_digest_prefix_and_prefers_a_successful_update():
    history = [record(1, 1), record(2, 2, result="failed"), record(3, 2), record(4, 4)]
    digest = ImageRef.parse(image(2)).digest
    assert digest is not None
    assert choose_target(history, current(4), scope=IMAGE, to_sha=digest[:20]).record.version == 3


def test_to_sha_whose_updates_all_failed_is_refused():
    history = [record(1, 1), record(2, 2, result="failed")]
    with pytest.raises(ShipsafeError, match="did not succeed"):
        choose_target(history, current(1), scope=IMAGE, to_sha=sha(2))


def test_both_selectors_is_a_usage_error():
    with pytest.raises(ShipsafeError) as error:
        choose_target([record(1, 1)], None, to_version=1, to_sha="abc")
    assert error.value.exit_code is ExitCode.USAGE


def test_without_a_known_current_image_the_newest_success_is_chosen():
    assert choose_target([record(1, 1), record(2, 2)], None).record.version == 2
