"""The migration Job is replaced on any change: an in-place Update of a Job the TTL deleted fails `pulumi up`."""

from __future__ import annotations

import pytest

from harness.recording import Recording
from harness.replacement import plan_update
from tests.components.test_settings_validation import _with
from tests.conftest import record
from tests.support.stack_queries import JOB, only


def test_the_job_is_replaced_on_any_change_and_deleted_first(recording: Recording) -> None:
    job = only(recording, JOB)
    assert job.replace_on_changes == ("*",), job.urn
    assert job.delete_before_replace, job.urn


@pytest.mark.parametrize(("field", "value"), [("ttlSecondsAfterFinished", 3600), ("backoffLimit", 2)])
def test_a_settings_change_for_the_same_release_replaces_the_job(
    recordings: dict[str, Recording], field: str, value: int
) -> None:
    previous = recordings["prod"]
    changed = record("prod", **_with("prod", "shipsafe:migration", [field], value))
    job, old_job = only(changed, JOB), only(previous, JOB)
    assert job.inputs["metadata"]["name"] == old_job.inputs["metadata"]["name"], "same release"
    assert job.inputs["spec"][field] == value != old_job.inputs["spec"][field]
    steps = {step.urn: step for step in plan_update(previous, changed)}
    # Without replaceOnChanges this is an in-place update (diff.go forces replacement only for the Job's template,
    # selector, completions and parallelism), which 404s once the TTL deleted the Job.
    assert steps[job.urn].op == "replace", steps[job.urn]
    assert any("replaceOnChanges" in reason for reason in steps[job.urn].replace_reasons), steps[job.urn]
