"""The recording monitor deserialises each request once and answers a resource whose state is its inputs with the
request's own properties. The SDK must read from that answer every output, and each output's secretness, exactly as
from the answer of its own `MockMonitor` (which deserialises the request and serialises the mocked state back)."""

from __future__ import annotations

from typing import Any, ClassVar
from unittest import mock

import pulumi
import pytest
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import mocks, rpc, settings

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


def _runs(stack: str, answer_with: str, monitor: type[runtime.RecordingMonitor] | None = None) -> list[Recording]:
    ComparingMonitor.answer_with = answer_with
    with mock.patch.object(runtime, "RecordingMonitor", monitor or ComparingMonitor):
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


def _shape(value: Any) -> Any:
    """The value with its types spelled out (1 and 1.0, a list and a tuple, `Unknown()` objects compared as such)."""
    if isinstance(value, Unknown):
        return ("unknown",)
    if isinstance(value, dict):
        return ("dict", [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_shape(v) for v in value])
    return (type(value).__name__, value)


class RequestKeepingMonitor(runtime.RecordingMonitor):
    requests: ClassVar[list[tuple[Any, bool]]] = []

    def RegisterResource(self, request: Any) -> Any:
        RequestKeepingMonitor.requests.append((request.object, settings.is_dry_run()))
        return super().RegisterResource(request)


def _same_as_the_sdk(struct: struct_pb2.Struct) -> bool:
    sdks = rpc.deserialize_properties(struct, keep_unknowns=True)
    ours, plain = runtime._deserialized_request(struct)
    secret_paths: set[str] = set()
    unwrapped = runtime._unwrap_secrets(sdks, "", secret_paths)
    # "plain" promises what unwrapping would give: the same values, no secret path
    return _shape(ours) == _shape(sdks) and (not plain or (_shape(unwrapped) == _shape(ours) and not secret_paths))


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitor_deserialises_every_request_as_the_sdk_does(stack: str) -> None:
    RequestKeepingMonitor.requests = []
    _runs(stack, "ours", RequestKeepingMonitor)
    requests = RequestKeepingMonitor.requests
    assert {dry_run for _, dry_run in requests} == {True, False}
    assert any(rpc._special_secret_sig.encode() in struct.SerializeToString() for struct, _ in requests)
    previous = settings.is_dry_run()
    try:
        for struct, dry_run in requests:
            settings.SETTINGS.dry_run = dry_run  # unknowns inside a secret depend on it
            assert _same_as_the_sdk(struct), struct
    finally:
        settings.SETTINGS.dry_run = previous


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _secret(value: Any) -> dict[str, Any]:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize(
    "value",
    [
        {"a": None, "b": [None, 1, True, "x"], "c": {"d": None}},  # None is dropped from objects, kept in lists
        {"s": _secret(None), "n": {"t": _secret(None)}},  # a secret None stays
        {"u": rpc.UNKNOWN, "l": [rpc.UNKNOWN], "s": _secret(rpc.UNKNOWN), "n": _secret({"u": rpc.UNKNOWN})},
        {"deep": {"list": [{"k": _secret("v")}, "w"]}, "other": {"k": "v"}},  # secretness lifted to the top key
        {"twice": _secret(_secret("v")), "within": _secret({"k": _secret("v")})},  # the SDK's own shape
        {"asset": {rpc._special_sig_key: rpc._special_asset_sig, "text": "x"}},  # an object the SDK builds
        {rpc._special_sig_key: rpc._special_secret_sig, "value": "top"},
        {"odd": {rpc._special_sig_key: 1.0, "value": "v"}, "bare": {rpc._special_sig_key: rpc._special_secret_sig}},
    ],
)
def test_the_monitor_deserialises_edge_cases_as_the_sdk_does(value: dict[str, Any], dry_run: bool) -> None:
    previous = settings.is_dry_run()
    settings.SETTINGS.dry_run = dry_run
    try:
        struct = _struct(value)
        try:
            expected = _shape(rpc.deserialize_properties(struct, keep_unknowns=True))
        except Exception as error:  # malformed: the same error either way
            with pytest.raises(type(error)):
                runtime._deserialized_request(struct)
            return
        ours, plain = runtime._deserialized_request(struct)
        if "asset" in value:
            assert isinstance(ours["asset"], pulumi.StringAsset)
            assert not plain
        else:
            assert _shape(ours) == expected
            assert _same_as_the_sdk(struct)
    finally:
        settings.SETTINGS.dry_run = previous
