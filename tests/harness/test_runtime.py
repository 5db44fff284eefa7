"""The offline harness itself: faithful URNs, secrets, repeatable runs."""

from __future__ import annotations

import asyncio

from harness.recording import Recording
from tests.conftest import record


def test_urns_have_the_engines_shape(recording: Recording) -> None:
    job = recording.named("notes-migrate-job")
    assert job.urn == (
        f"urn:pulumi:{recording.stack}::shipsafe::shipsafe:components:MigrationJob$kubernetes:batch/v1:Job::notes-migrate-job"
    )
    assert recording.by_urn(job.parent or "").type == "shipsafe:components:MigrationJob"


def test_numbers_arrive_as_floats_like_the_engine_sends_them(recording: Recording) -> None:
    replicas = recording.named("notes-worker-deployment").inputs["spec"]["replicas"]
    assert isinstance(replicas, float)


def test_runs_after_code_that_left_no_event_loop() -> None:
    asyncio.run(asyncio.sleep(0))  # leaves the main thread without a current loop
    assert record("staging").named("notes-migrate-job")


def test_repeated_runs_record_the_same_resources() -> None:
    first, second = record("prod"), record("prod")
    assert [r.urn for r in first] and sorted(r.urn for r in first) == sorted(r.urn for r in second)
