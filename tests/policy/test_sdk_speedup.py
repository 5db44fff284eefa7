"""Sharing one properties conversion across policies changes no verdict, only the time it takes."""

from __future__ import annotations

import importlib

import pulumi_policy.policy as sdk
import pytest
from google.protobuf import json_format
from pulumi.runtime.proto import analyzer_pb2

from harness.analyzer import POLICY_DIR, analyze_request, stack_resource
from harness.recording import Recording
from tests.policy.stack_edits import at, edit


def _responses(recording: Recording) -> list[analyzer_pb2.AnalyzeResponse]:
    policies = importlib.import_module("shipsafe_policies").all_policies()
    servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
    by_urn = {r.urn: r for r in recording}
    responses = [servicer.Analyze(analyze_request(r, by_urn), None) for r in recording]
    stack = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording])
    return [*responses, servicer.AnalyzeStack(stack, None)]


def test_shared_conversions_give_identical_results(
    compliant: dict[str, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(POLICY_DIR))
    monkeypatch.setattr(sdk, "json_format", json_format)  # restored after the test
    faulty = edit("notes-web-deployment", at("container.securityContext.privileged", True))(compliant["staging"])
    recordings = [compliant["staging"], compliant["prod"], faulty]
    plain = [_responses(r) for r in recordings]

    importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()
    assert sdk.json_format is not json_format
    shared = [_responses(r) for r in recordings]

    assert shared == plain
    assert any(d.policyName == "k8s-no-privileged" for response in shared[2] for d in response.diagnostics)
