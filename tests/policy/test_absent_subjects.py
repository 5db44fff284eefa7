"""Rules about the migration Job and the backing services apply exactly when their subject exists: a stack without a
database, a cache or migrations passes them (as recorded and after `up`), and the same rules still fire on a
faulty Job or server added to that stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.recording import Recording
from tests.conftest import record
from tests.policy.conftest import IMAGE_BUILD, Analyze
from tests.policy.stack_edits import add_resource, at, edit, use_build_context
from tests.policy.test_bad_variants import JOB, PHASES, POSTGRES, WEB, in_phase

MIGRATION_RULES = ("12f-admin-migration-release-image", "12f-admin-migration-job-hygiene")
BACKING_RULES = (
    "12f-backing-attached",
    "12f-backing-stateful",
    "12f-parity-backing-versions",
    "network-least-access",
)


@pytest.fixture(scope="module")
def stateless(build_context: Path) -> Recording:
    """Staging without Postgres, Redis or migrations, its image built from the compliant Dockerfile."""
    recording = record(
        "staging",
        **{
            "shipsafe:postgres": json.dumps({"mode": "none"}),
            "shipsafe:redis": json.dumps({"mode": "none"}),
            "shipsafe:migration": json.dumps({}),
        },
    )
    return use_build_context(IMAGE_BUILD, build_context)(recording)


def test_the_stack_has_no_job_server_or_service_secret(stateless: Recording) -> None:
    kinds = {str(r.inputs.get("kind")) for r in stateless}
    assert not kinds & {"Job", "StatefulSet"}, kinds
    assert not any(r.name.endswith(("-postgres-egress", "-redis-egress", "-url")) for r in stateless)


@pytest.mark.parametrize("phase", PHASES)
def test_a_stack_without_database_cache_or_migrations_passes_the_pack(
    phase: str, stateless: Recording, analyze: Analyze
) -> None:
    report = analyze(in_phase(phase, stateless))
    assert report.mandatory_violations == [], report.mandatory_violations
    about_absent = [v for v in report.violations if v.policy in (*MIGRATION_RULES, *BACKING_RULES)]
    assert about_absent == [], about_absent
    assert not any(name in skipped for skipped in report.skipped for name in (*MIGRATION_RULES, *BACKING_RULES))


@pytest.mark.parametrize("phase", PHASES)
def test_a_migration_job_added_without_the_deployments_depending_on_it_is_caught(
    phase: str, stateless: Recording, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    job = edit(JOB, at("spec.backoffLimit", 10))(compliant["staging"]).named(JOB)
    report = analyze(in_phase(phase, add_resource(job)(stateless)))
    found = {(v.policy, v.resource, v.level) for v in report.violations if v.policy in MIGRATION_RULES}
    assert ("12f-admin-migration-release-image", WEB, "mandatory") in found, report.violations
    assert ("12f-admin-migration-job-hygiene", JOB, "mandatory") in found, report.violations


@pytest.mark.parametrize("phase", PHASES)
def test_a_database_server_added_without_its_headless_service_is_caught(
    phase: str, stateless: Recording, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    server = compliant["staging"].named(POSTGRES)
    report = analyze(in_phase(phase, add_resource(server)(stateless)))
    found = [v for v in report.violations if v.policy == "12f-backing-stateful" and v.resource == POSTGRES]
    assert any("headless Service" in v.message for v in found), report.violations
