"""Sharing one properties conversion across policies changes no verdict, only the time it takes."""

from __future__ import annotations

import importlib

import pulumi_policy.policy as sdk
import pulumi_policy.proxy as proxy
import pytest
from pulumi.runtime.proto import analyzer_pb2

from harness.analyzer import POLICY_DIR, analyze_request, stack_resource
from harness.phases import Phase, PhaseRecording
from harness.recording import Recording
from tests.policy.stack_edits import at, edit

SDK_CONVERSIONS = ("json_format", "deserialize_properties", "unknown_checking_proxy")
"""What `convert_requests_once` replaces inside `pulumi_policy.policy`."""


def _responses(recording: Recording) -> list[analyzer_pb2.AnalyzeResponse]:
    policies = importlib.import_module("shipsafe_policies").all_policies()
    servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
    by_urn = {r.urn: r for r in recording}
    responses = [servicer.Analyze(analyze_request(r, by_urn), None) for r in recording]
    stack = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording])
    return [*responses, servicer.AnalyzeStack(stack, None)]


def test_shared_conversions_give_identical_results(
    compliant: dict[str, Recording],
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(POLICY_DIR))
    for name in SDK_CONVERSIONS:  # restored after the test
        monkeypatch.setattr(sdk, name, getattr(sdk, name))
    faulty = edit("notes-web-deployment", at("container.securityContext.privileged", True))(compliant["staging"])
    with_unknowns = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    recordings = [compliant["staging"], compliant["prod"], faulty, with_unknowns]
    plain = [_responses(r) for r in recordings]

    originals = {name: getattr(sdk, name) for name in SDK_CONVERSIONS}
    importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()
    assert all(getattr(sdk, name) is not originals[name] for name in SDK_CONVERSIONS)
    shared = [_responses(r) for r in recordings]

    assert shared == plain
    assert any(d.policyName == "pss-baseline-no-privileged" for response in shared[2] for d in response.diagnostics)
    assert any("can't run policy" in d.message for response in shared[3] for d in response.diagnostics)


def test_each_resource_is_converted_once_per_request(
    compliant: dict[str, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(POLICY_DIR))
    for name in SDK_CONVERSIONS:
        monkeypatch.setattr(sdk, name, getattr(sdk, name))
    calls = []
    build_proxy = proxy._proxy_helper  # what `unknown_checking_proxy` runs; its top-level call has no path yet

    def counting(value: object, path: list[str]) -> object:
        calls.extend([1] if path == [] else [])
        return build_proxy(value, path)

    monkeypatch.setattr(proxy, "_proxy_helper", counting)
    importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()
    recording = compliant["prod"]
    _responses(recording)
    # One Analyze request per resource, and one AnalyzeStack request holding every resource: without the shared
    # conversion it would be once per policy and resource.
    assert len(calls) == 2 * len(recording.resources)
