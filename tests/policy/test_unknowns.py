"""Values unknown during preview: policies neither crash nor pass on what they could not see.

The engine sends an unknown as the string `harness.recording.UNKNOWN` (Go `UnknownStringValue`; `to_struct`
passes it through), and pulumi-policy 1.21 raises UnknownValueError when a policy reads it (`proxy.py`
`_raise_if_unknown`); `policy.py` `Analyze`/`AnalyzeStack` report that policy as "can't run policy ... during
preview" (advisory), keeping the violations it reported before. So one unknown must skip only the checks that
read it, and a policy that skipped anything must be listed as skipped.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pulumi_policy.policy as sdk
import pytest
from pulumi.runtime.proto import analyzer_pb2

from harness.analyzer import AnalysisReport, analyze_request, stack_resource
from harness.phases import Phase, PhaseRecording
from harness.recording import UNKNOWN, RecordedResource, Recording, contains_unknown
from tests.conftest import STACKS
from tests.policy.conftest import Analyze
from tests.policy.stack_edits import Props, at, chain, edit, first_container, pod, replace_resource
from tests.policy.test_sdk_speedup import restore_sdk_after
from tests.policy.test_stacks import KNOWN_ADVISORIES

WEB, WORKER, JOB = "notes-web-deployment", "notes-worker-deployment", "notes-migrate-job"
CANT_RUN = "can't run policy"
"""How pulumi-policy `policy.py` starts the diagnostic of a policy abandoned at an unknown value."""
STACK = "(stack)"

# Through the analyzer protocol, as the engine drives the pack ------------------------------------------------------


def _unknown_image(props: Props) -> None:
    first_container(props)["image"] = UNKNOWN


def _found(report: AnalysisReport, policy: str) -> set[tuple[str, str]]:
    return {(v.resource, v.message) for v in report.violations if v.policy == policy}


def test_pull_policy_is_still_checked_when_the_image_is_unknown(
    recordings: dict[str, Recording], analyze: Analyze
) -> None:
    # `Never` is wrong whatever the image: reading the image first used to skip the whole check.
    report = analyze(edit(WEB, _unknown_image, at("container.imagePullPolicy", "Never"))(recordings["staging"]))
    assert {resource for resource, _ in _found(report, "image-pull-policy")} == {WEB}


def test_an_unknown_image_skips_only_its_own_container(recordings: dict[str, Recording], analyze: Analyze) -> None:
    def with_floating_sidecar(props: Props) -> None:
        sidecar = {**copy.deepcopy(first_container(props)), "name": "sidecar", "image": "docker.io/library/busybox"}
        pod(props)["containers"].append(sidecar)

    report = analyze(edit(WEB, _unknown_image, with_floating_sidecar)(recordings["staging"]))
    for policy in ("12f-build-immutable-image", "image-allowed-registries"):
        found = _found(report, policy)
        assert found and all(r == WEB and m.startswith("container sidecar:") for r, m in found), (policy, found)
        assert f"{policy} on {WEB}" in report.skipped, "the app container's image could not be checked"


def test_migration_dependency_is_checked_when_images_are_unknown(
    recordings: dict[str, Recording], analyze: Analyze
) -> None:
    # The first preview of a built image: Job and Deployments run the unknown digest.
    job = recordings["staging"].named(JOB).urn

    def without_job_dependency(resource: RecordedResource) -> RecordedResource:
        kept = tuple(d for d in resource.dependencies if d != job and "MigrationJob" not in d)
        return dataclasses.replace(resource, dependencies=kept)

    fault = chain(
        *(edit(name, _unknown_image) for name in (WEB, WORKER, JOB)), replace_resource(WEB, without_job_dependency)
    )
    report = analyze(fault(recordings["staging"]))
    found = _found(report, "12f-admin-migration-release-image")
    assert [r for r, m in found if "depends_on" in m] == [WEB], found
    assert not [m for _, m in found if "depends_on" not in m], "no finding about the unknown image"
    assert f"12f-admin-migration-release-image on {STACK}" in report.skipped


def test_secret_type_is_checked_when_its_data_is_unknown(recordings: dict[str, Recording], analyze: Analyze) -> None:
    # stringData built from a generated password is unknown in the first preview, as a whole.
    def untyped_with_unknown_data(props: Props) -> None:
        props["stringData"] = UNKNOWN
        del props["type"]

    report = analyze(edit("notes-postgres-url", untyped_with_unknown_data)(recordings["prod"]))
    assert {m for _, m in _found(report, "12f-config-secret-hygiene")} == {
        "set the Secret type (Opaque, kubernetes.io/dockerconfigjson, ...)"
    }
    assert "12f-config-secret-hygiene on notes-postgres-url" in report.skipped


def test_an_unknown_namespace_is_skipped_not_passed(recordings: dict[str, Recording], analyze: Analyze) -> None:
    report = analyze(edit("notes-config-configmap", at("metadata.namespace", UNKNOWN))(recordings["prod"]))
    assert not _found(report, "metadata-explicit-namespace")
    assert "metadata-explicit-namespace on notes-config-configmap" in report.skipped


@pytest.mark.parametrize(
    ("policy", "unknown", "fault", "expected"),
    [
        pytest.param(
            "identity-dedicated-service-account",
            edit("notes-web-serviceaccount", at("metadata.namespace", UNKNOWN)),
            edit(WORKER, at("pod.serviceAccountName", "default")),
            "set serviceAccountName to a ServiceAccount of its own",
            id="service-account-namespace",
        ),
        pytest.param(
            "identity-dedicated-service-account",
            edit(WEB, at("pod.serviceAccountName", UNKNOWN)),
            edit(WORKER, at("pod.serviceAccountName", "default")),
            "set serviceAccountName to a ServiceAccount of its own",
            id="service-account-name",
        ),
        pytest.param(
            "network-default-deny",
            edit("notes-network-default-deny", at("metadata.namespace", UNKNOWN)),
            None,
            None,
            id="default-deny-namespace",
        ),
        pytest.param(
            "rollout-selector-integrity",
            edit(WEB, at("metadata.namespace", UNKNOWN)),
            edit(WORKER, at("spec.selector.matchLabels", {"app.kubernetes.io/instance": "elsewhere"})),
            "spec.selector does not match its pod template labels",
            id="workload-namespace",
        ),
    ],
)
def test_another_resources_unknown_name_causes_no_violation_and_hides_none(
    policy: str,
    unknown: Callable[[Recording], Recording],
    fault: Callable[[Recording], Recording] | None,
    expected: str | None,
    recordings: dict[str, Recording],
    analyze: Analyze,
) -> None:
    # A name or namespace taken from another resource's output can be unknown in preview: what the stack lacks
    # cannot be concluded from it, but the rest of the policy still runs.
    report = analyze(chain(unknown, *([fault] if fault else []))(recordings["prod"]))
    found = _found(report, policy)
    assert all(expected is not None and expected in m for _, m in found), found
    if expected is not None:
        assert found, f"{policy} skipped the known fault"
    assert f"{policy} on {STACK}" in report.skipped


@pytest.mark.parametrize("stack", STACKS)
def test_first_preview_lists_every_policy_that_met_an_unknown(
    stack: str, phase_recordings: dict[tuple[str, Phase], PhaseRecording], analyze: Analyze
) -> None:
    recording = phase_recordings[stack, Phase.FIRST_PREVIEW].recording
    report = analyze(recording)
    assert {(v.policy, v.resource) for v in report.violations} <= KNOWN_ADVISORIES
    with_unknowns = {r.name for r in recording if contains_unknown(r.inputs) or contains_unknown(r.outputs)}
    skipped_on = {entry.rsplit(" on ", 1)[1] for entry in report.skipped}
    assert skipped_on <= with_unknowns | {STACK}, "only a resource holding an unknown can skip a policy"
    for resource in recording.of_type("kubernetes:apps/v1:Deployment"):
        if first_container(resource.inputs)["image"] == UNKNOWN:
            assert f"12f-build-immutable-image on {resource.name}" in report.skipped
    for resource in recording.of_type("kubernetes:core/v1:Secret"):
        if resource.inputs.get("stringData") == UNKNOWN:
            assert f"12f-config-secret-hygiene on {resource.name}" in report.skipped


# Every value unknown in turn, through the SDK's own servicer in-process ---------------------------------------------

Verdicts = tuple[dict[str, set[str]], set[str]]
"""(violating URNs per policy, policies reported as not run)."""


@dataclasses.dataclass(frozen=True)
class Pack:
    servicer: sdk._PolicyAnalyzerServicer
    names: set[str]


@pytest.fixture(scope="module")
def pack_in_process() -> Iterator[Pack]:
    with pytest.MonkeyPatch.context() as patch:
        restore_sdk_after(patch)  # convert_requests_once replaces parts of the SDK; restored after
        importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()  # as the pack does
        policies = importlib.import_module("shipsafe_policies").all_policies()
        servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
        yield Pack(servicer, {p.name for p in policies})


def _verdicts(response: analyzer_pb2.AnalyzeResponse, urn: str = "") -> Verdicts:
    violations: dict[str, set[str]] = {}
    skipped = set()
    for diagnostic in response.diagnostics:
        if diagnostic.message.startswith(CANT_RUN):
            skipped.add(diagnostic.policyName)
        else:
            violations.setdefault(diagnostic.policyName, set()).add(diagnostic.urn or urn)
    return violations, skipped


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if prefix:
        yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _value_at(props: Props, path: tuple[str | int, ...]) -> Any:
    value: Any = props
    for step in path:
        value = value[step]
    return value


def _replaced(props: Props, path: tuple[str | int, ...], value: Any) -> Props:
    result = copy.deepcopy(props)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def _another(value: Any) -> Any:
    """A different value of the same JSON type: what the unknown might turn out to be."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return 0 if value else 1
    if isinstance(value, str) or value is None:
        return "x" if value != "x" else "y"
    return type(value)()


def _assert_sound(policies: set[str], base: Verdicts, unknown: Verdicts, other: Verdicts, where: str) -> None:
    """An unknown stands for any value: what a policy reports must hold for every value, and a policy not
    listed as skipped must have decided without it."""
    for policy in policies:
        found = unknown[0].get(policy, set())
        assert found <= base[0].get(policy, set()) and found <= other[0].get(policy, set()), f"{policy}: {where}"
        if policy not in unknown[1]:
            assert base[0].get(policy, set()) == found == other[0].get(policy, set()), f"{policy} passed {where}"


def _one_of_each_type(recording: Recording) -> list[RecordedResource]:
    first: dict[str, RecordedResource] = {}
    for resource in recording:
        first.setdefault(resource.type, resource)
    return list(first.values())


def test_any_single_unknown_input_is_skipped_or_decided_never_guessed(
    pack_in_process: Pack, recordings: dict[str, Recording]
) -> None:
    recording = recordings["staging"]
    by_urn = {r.urn: r for r in recording}

    def verdicts(resource: RecordedResource, inputs: Props) -> Verdicts:
        changed = dataclasses.replace(resource, inputs=inputs)
        return _verdicts(pack_in_process.servicer.Analyze(analyze_request(changed, by_urn), None))

    for resource in _one_of_each_type(recording):
        base = verdicts(resource, resource.inputs)
        for path in _paths(resource.inputs):
            unknown = verdicts(resource, _replaced(resource.inputs, path, UNKNOWN))
            other = verdicts(resource, _replaced(resource.inputs, path, _another(_value_at(resource.inputs, path))))
            where = f"with {resource.name} {'.'.join(map(str, path))} unknown"
            _assert_sound(pack_in_process.names, base, unknown, other, where)


# Values this program takes from other resources' outputs (unknown in a first preview), and what decides with them.
_STACK_PROBES = {"serviceAccountName", "image", "serviceName", "secretName", "stringData", "targetPort"}
_STACK_PROBES |= {"selector", "podSelector", "scaleTargetRef"}


def _probed(path: tuple[str | int, ...]) -> bool:
    return len(path) == 1 or path[-1] in _STACK_PROBES or path in (("metadata", "name"), ("metadata", "namespace"))


def test_any_single_unknown_output_is_skipped_or_decided_in_stack_policies(
    pack_in_process: Pack, recordings: dict[str, Recording]
) -> None:
    recording = recordings["staging"]
    by_urn = {r.urn: r for r in recording}

    as_sent = [stack_resource(r, by_urn) for r in recording]

    def verdicts(changed: RecordedResource | None = None) -> Verdicts:
        resources = [stack_resource(changed, by_urn) if changed and r.urn == changed.urn else r for r in as_sent]
        request = analyzer_pb2.AnalyzeStackRequest(resources=resources)
        return _verdicts(pack_in_process.servicer.AnalyzeStack(request, None))

    base = verdicts()
    for resource in _one_of_each_type(recording):
        if not resource.type.startswith("kubernetes:"):
            continue  # stack policies judge Kubernetes objects only
        for path in _paths(resource.outputs):
            if not _probed(path):
                continue
            other_value = _another(_value_at(resource.outputs, path))
            unknown = verdicts(dataclasses.replace(resource, outputs=_replaced(resource.outputs, path, UNKNOWN)))
            other = verdicts(dataclasses.replace(resource, outputs=_replaced(resource.outputs, path, other_value)))
            _assert_sound(pack_in_process.names, base, unknown, other, f"with {resource.name} {path} unknown")
