"""Which update a rollback goes back to: pure decisions over recorded history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from deploy.backend import UpdateRecord
from deploy.errors import ExitCode, ShipsafeError
from deploy.release import ImageRef
from deploy.rollback import choose_target, rollback_message
from tests.deploy.memory_stack import image, sha


def record(version: int, release: int | None, result: str = "succeeded", message: str = "", kind: str = "update"):
    config = {"shipsafe:gitSha": sha(version if release is None else release)}
    if release is not None:
        config |= {"shipsafe:imageSource": "prebuilt", "shipsafe:imageRef": image(release)}
    else:
        config |= {"shipsafe:imageSource": "build"}
    return UpdateRecord(version, kind, result, datetime(2026, 1, 1, tzinfo=UTC), message, config)


def current(release: int) -> ImageRef:
    return ImageRef.parse(image(release))


def test_default_skips_failed_updates_and_the_current_image():
    history = [record(1, 1), record(2, 2), record(3, 3, result="failed"), record(4, 4)]
    target = choose_target(history, current(4))
    assert (target.record.version, target.image.reference) == (2, image(2))


def test_default_skips_updates_of_the_same_image_as_now():
    history = [record(1, 1), record(2, 2), record(3, 2)]  # 3 redeployed image 2
    assert choose_target(history, current(2)).record.version == 1


def test_default_ignores_refreshes_and_in_stack_builds():
    history = [record(1, 1), record(2, None), record(3, 3, kind="refresh"), record(4, 4)]
    assert choose_target(history, current(4)).record.version == 1


def test_an_image_already_rolled_back_from_is_never_brought_back():
    # 1 good, 2 bad -> rolled back to 1 (update 3), 4 deploys image 5, which is bad too.
    rolled = rollback_message(choose_target([record(1, 1), record(2, 2)], current(2)), current(2), "errors")
    history = [record(1, 1), record(2, 2), record(3, 1, message=rolled), record(4, 5)]
    target = choose_target(history, current(5))
    assert target.record.version == 3
    assert target.image.reference == image(1)
    # ...and from image 1 the default does not go "back" to the abandoned image 2.
    with pytest.raises(ShipsafeError, match="nothing to roll back to"):
        choose_target(history[:3], current(1))


def test_a_redeploy_after_the_rollback_makes_the_image_a_target_again():
    rolled = rollback_message(choose_target([record(1, 1), record(2, 2)], current(2)), current(2), "errors")
    history = [record(1, 1), record(2, 2), record(3, 1, message=rolled), record(4, 2), record(5, 6)]
    assert choose_target(history, current(6)).record.version == 4


def test_explicit_build_update_is_refused_because_it_would_need_a_rebuild():
    history = [record(1, None), record(2, 2)]
    with pytest.raises(ShipsafeError, match="never rebuilds") as error:
        choose_target(history, current(2), to_version=1)
    assert error.value.exit_code is ExitCode.REFUSED


def test_to_sha_matches_a_digest_prefix_and_prefers_a_successful_update():
    history = [record(1, 1), record(2, 2, result="failed"), record(3, 2), record(4, 4)]
    digest = ImageRef.parse(image(2)).digest
    assert digest is not None
    assert choose_target(history, current(4), to_sha=digest[:20]).record.version == 3


def test_to_sha_whose_updates_all_failed_is_refused():
    history = [record(1, 1), record(2, 2, result="failed")]
    with pytest.raises(ShipsafeError, match="did not succeed"):
        choose_target(history, current(1), to_sha=sha(2))


def test_both_selectors_is_a_usage_error():
    with pytest.raises(ShipsafeError) as error:
        choose_target([record(1, 1)], None, to_version=1, to_sha="abc")
    assert error.value.exit_code is ExitCode.USAGE


def test_without_a_known_current_image_the_newest_success_is_chosen():
    assert choose_target([record(1, 1), record(2, 2)], None).record.version == 2
