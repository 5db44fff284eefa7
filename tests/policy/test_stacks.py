"""Both real stacks pass the pack; their only findings are the documented advisories; unknowns are skipped."""

from __future__ import annotations

import dataclasses

import pytest

from harness.analyzer import AnalysisReport, PolicyPackProcess, analyze, format_report
from harness.phases import Phase, PhaseRecording
from harness.recording import Recording
from tests.conftest import STACKS
from tests.policy.conftest import CONFIG_DIR, Analyze
from tests.policy.stack_edits import Edit, Props, add_resource, at, chain, edit, first_container, new_resource

BACKING = ("notes-postgres-statefulset", "notes-redis-statefulset")
KNOWN_ADVISORIES = {("12f-build-third-party-digest", r) for r in BACKING}
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""Pulumi's wire sentinel for a string unknown during preview."""


@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_passes_with_zero_mandatory_violations(stack: str, recordings: dict[str, Recording]) -> None:
    # The public API deploy.offline.preview uses: one pack process, the stack's own config file, app/Dockerfile as is.
    report = analyze(recordings[stack], CONFIG_DIR / f"{stack}.json")
    assert not report.mandatory_violations, format_report(report)
    assert report.resources == len(recordings[stack].resources)
    assert "Policy check passed: 0 mandatory" in format_report(report)


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("stack", STACKS)
def test_real_stack_passes_every_phase_of_the_offline_engine(
    stack: str, phase: Phase, phase_recordings: dict[tuple[str, Phase], PhaseRecording], analyze: Analyze
) -> None:
    # Stack policies see the API server's objects after up (defaults, mirrors, status): the pack must still pass.
    report = analyze(phase_recordings[stack, phase].recording)
    assert not report.mandatory_violations, format_report(report)
    assert {(v.policy, v.resource) for v in report.violations} <= KNOWN_ADVISORIES, format_report(report)


def _digest_pinned(props: Props) -> None:
    container = first_container(props)
    container["image"] = container["image"].split(":")[0] + ":1.2.3@sha256:" + "c" * 64
    container["imagePullPolicy"] = "IfNotPresent"


def _narrow_role(recording: Recording) -> Recording:
    role = new_resource(
        recording,
        "kubernetes:rbac.authorization.k8s.io/v1:Role",
        "notes-reader",
        {
            "metadata": {"name": "notes-reader", "namespace": "notes-prod"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
    )
    return add_resource(role)(recording)


DIGEST_PINNED_BACKING = chain(*(edit(name, _digest_pinned) for name in BACKING))
COMPLIANT_VARIANTS: dict[str, Edit] = {
    # The real stacks break this advisory (no public digests offline) or have nothing for the next to check.
    "12f-build-third-party-digest": DIGEST_PINNED_BACKING,
    "identity-rbac-least-privilege": _narrow_role,
}


@pytest.mark.parametrize("stack", STACKS)
def test_compliant_stacks_show_only_the_documented_advisories(
    stack: str, compliant_reports: dict[str, AnalysisReport]
) -> None:
    report = compliant_reports[stack]
    assert {(v.policy, v.resource) for v in report.violations} == KNOWN_ADVISORIES
    assert not report.skipped


def test_every_policy_has_a_compliant_case(
    pack: PolicyPackProcess,
    compliant: dict[str, Recording],
    compliant_reports: dict[str, AnalysisReport],
    analyze: Analyze,
) -> None:
    for policy in pack.policies:
        if policy.name in COMPLIANT_VARIANTS:
            reports = [analyze(COMPLIANT_VARIANTS[policy.name](compliant["prod"]))]
        else:
            reports = list(compliant_reports.values())
        for report in reports:
            assert not [v for v in report.violations if v.policy == policy.name], f"{policy.name} on {report.stack}"


def test_values_unknown_at_preview_are_skipped_not_failed(compliant: dict[str, Recording], analyze: Analyze) -> None:
    def unknown_image_but_privileged(props: Props) -> None:
        first_container(props)["image"] = UNKNOWN
        first_container(props)["securityContext"]["privileged"] = True

    report = analyze(edit("notes-web-deployment", unknown_image_but_privileged)(compliant["staging"]))
    policies = {v.policy for v in report.violations if v.resource == "notes-web-deployment"}
    assert "pss-baseline-no-privileged" in policies, "the known part of the resource is still checked"
    assert not policies & {"12f-build-immutable-image", "image-allowed-registries", "image-pull-policy"}


def test_a_policy_that_meets_an_unknown_is_reported_as_skipped(
    compliant: dict[str, Recording], analyze: Analyze
) -> None:
    unknown_number = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"
    recording = edit("notes-web-deployment", at("pod.terminationGracePeriodSeconds", unknown_number))
    report = analyze(recording(compliant["prod"]))
    assert "12f-disposability-graceful-shutdown on notes-web-deployment" in report.skipped
    assert not [v for v in report.violations if v.policy == "12f-disposability-graceful-shutdown"]
    assert "Skipped (values unknown until `pulumi up`): 12f-disposability-graceful-shutdown" in format_report(report)


def test_secret_inputs_travel_as_secrets_and_are_checked(compliant: dict[str, Recording], analyze: Analyze) -> None:
    secret = compliant["prod"].named("notes-postgres-url")
    assert secret.secret_paths, "the stack marks the connection URL secret"
    leaked = dataclasses.replace(
        secret,
        inputs={**secret.inputs, "stringData": {"url": ""}},
        outputs={**secret.outputs, "stringData": {"url": ""}},
    )
    recording = compliant["prod"]
    report = analyze(dataclasses.replace(recording, resources=[leaked if r is secret else r for r in recording]))
    assert [v.resource for v in report.violations if v.policy == "12f-config-secret-hygiene"] == ["notes-postgres-url"]
