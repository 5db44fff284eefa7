"""The recording monitor deserialises each request once and answers a resource whose state is its inputs with the
request's own properties. The SDK must read from that answer every output, and each output's secretness, exactly as
from the answer of its own `MockMonitor` (which deserialises the request and serialises the mocked state back)."""

from __future__ import annotations

from typing import Any, ClassVar
from unittest import mock

import pytest
from pulumi.runtime import mocks, rpc

from harness import runtime
from harness.recording import Recording
from tests.conftest import STACKS, pinned


def _as_the_sdk_reads(answer: Any) -> tuple[Any, set[str]]:
    """What `resolve_outputs` takes from an answer: each output's value and whether it is secret."""
    secret_paths: set[str] = set()
    return runtime._unwrap_secrets(
        rpc.deserialize_properties(answer, keep_unknowns=True), "", secret_paths
    ), secret_paths


def _same_marking(recorded: frozenset[str], expected: set[str]) -> bool:
    """Every path the SDK marks secret is recorded secret, and every recorded one is, or lies within, such a path."""
    within = [p for p in recorded if any(p.startswith((e + ".", e + "[")) for e in expected)]
    return expected <= recorded and set(recorded) - set(within) <= expected


class ComparingMonitor(runtime.RecordingMonitor):
    """Records as the recording monitor does, and also asks the SDK's own mock monitor for its answer; `answer_with`
    says which of the two the program gets."""

    answer_with = "ours"
    compared: ClassVar[list[str]] = []
    differences: ClassVar[list[str]] = []

    def RegisterResource(self, request: Any) -> Any:
        ours = super().RegisterResource(request)
        sdks = mocks.MockMonitor.RegisterResource(self, request)
        if request.type != "pulumi:pulumi:Stack":
            ComparingMonitor.compared.append(ours.urn)
            recorded = next(r for r in reversed(self.registrations) if r.urn == ours.urn)  # calls run on threads
            sdk_outputs, sdk_secrets = _as_the_sdk_reads(sdks.object)
            if (
                (ours.urn, ours.id) != (sdks.urn, sdks.id)
                or _as_the_sdk_reads(ours.object) != (sdk_outputs, sdk_secrets)
                # The recording holds every output with the SDK's own secretness (an input's stays on its output).
                or {k: v for k, v in recorded.outputs.items() if v is not None} != sdk_outputs  # the wire drops None
                or not _same_marking(recorded.output_secret_paths, sdk_secrets | recorded.secret_paths)
            ):
                ComparingMonitor.differences.append(
                    f"{ours.urn}: secret {sorted(recorded.output_secret_paths)} vs the SDK's {sorted(sdk_secrets)}"
                )
        return ours if self.answer_with == "ours" else sdks


def _runs(stack: str, answer_with: str) -> list[Recording]:
    ComparingMonitor.answer_with = answer_with
    with mock.patch.object(runtime, "RecordingMonitor", ComparingMonitor):
        preview = runtime.run_stack(stack, config_overrides=pinned(stack), preview=True)
        up = runtime.run_stack(stack, config_overrides=pinned(stack), missing_secrets=preview.placeholder_secrets)
        later = runtime.run_stack(
            stack, config_overrides=pinned(stack), preview=True, prior=up, missing_secrets=up.placeholder_secrets
        )
    return [preview, up, later]


def _recorded(recording: Recording) -> list[tuple[Any, ...]]:
    return [
        (r.urn, r.inputs, sorted(r.secret_paths), r.outputs, sorted(r.output_secret_paths), r.dependencies)
        for r in recording
    ] + [
        ("stack", recording.stack_outputs),
        ("components", runtime._unwrap_secrets(recording.component_outputs, "", set())),
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_output_and_its_secretness_are_the_sdks(stack: str) -> None:
    ComparingMonitor.compared, ComparingMonitor.differences = [], []
    ours = _runs(stack, "ours")
    assert set(ComparingMonitor.compared) == {r.urn for run in ours for r in run}  # every resource of every run
    assert not ComparingMonitor.differences, "\n".join(ComparingMonitor.differences)
    assert any(r.output_secret_paths for run in ours for r in run), "secret outputs were compared"
    sdks = _runs(stack, "sdk")
    for run_ours, run_sdks in zip(ours, sdks, strict=True):
        assert _recorded(run_ours) == _recorded(run_sdks)
