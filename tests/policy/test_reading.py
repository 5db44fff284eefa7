"""The pack reads each value of a request through pulumi-policy's unknown check once, and reads it as the SDK's
proxy would: the same values, the same KeyError, IndexError and equality, and an unknown raising the SDK's own
error at every read."""

from __future__ import annotations

import gc
import importlib
from collections import Counter
from typing import Any

import pulumi_policy.policy as sdk
import pulumi_policy.proxy as proxy
import pytest
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy
from shipsafe_policies import k8s
from shipsafe_policies.reading import MappingRead, Memo, SequenceRead, derived, read_request

from harness.analyzer import analyze_request, stack_resource
from harness.phases import Phase, PhaseRecording
from tests.policy.test_sdk_speedup import restore_sdk_after

PROPS: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app": "notes"}, "annotations": {"checksum": UNKNOWN_STRING_VALUE}},
    "spec": {"ports": [{"name": "http", "port": 80.0}, UNKNOWN_STRING_VALUE], "selector": {"app": "notes"}},
}


def _outcome(read: Any) -> tuple[str, Any]:
    try:
        return "value", read()
    except UnknownValueError as unknown:
        return "unknown", unknown.message
    except (KeyError, IndexError) as error:
        return type(error).__name__, error.args


READS = {
    "name": lambda p: p["metadata"]["name"],
    "absent key": lambda p: p["metadata"]["uid"],
    "get absent": lambda p: p["metadata"].get("uid", "default"),
    "unknown value": lambda p: p["metadata"]["annotations"]["checksum"],
    "get unknown": lambda p: p["metadata"]["annotations"].get("checksum"),
    "in with unknown": lambda p: "checksum" in p["metadata"]["annotations"],
    "in absent": lambda p: "other" in p["metadata"]["annotations"],
    "keys": lambda p: list(p["spec"]),
    "len": lambda p: (len(p), len(p["spec"]["ports"])),
    "element": lambda p: p["spec"]["ports"][0]["port"],
    "unknown element": lambda p: p["spec"]["ports"][1],
    "negative unknown element": lambda p: p["spec"]["ports"][-1],
    "past the end": lambda p: p["spec"]["ports"][2],
    "items of a list with an unknown": lambda p: k8s.items(p["spec"]["ports"]),
    "mapping equality": lambda p: p["spec"]["selector"] == {"app": "notes"},
    "mapping equality with an unknown": lambda p: p["metadata"]["annotations"] == {"checksum": "x"},
    "list equality is identity": lambda p: (p["spec"]["ports"] == p["spec"]["ports"], p["spec"]["ports"] == []),
    "dig": lambda p: k8s.dig(p, "spec", "ports", 0, "name"),
    "dig unknown": lambda p: k8s.dig(p, "metadata", "annotations", "checksum"),
}


@pytest.mark.parametrize("name", READS)
def test_a_view_reads_as_the_proxy_every_time(name: str) -> None:
    read = READS[name]
    through_proxy = _outcome(lambda: read(unknown_checking_proxy(PROPS)))
    view = _view(unknown_checking_proxy(PROPS))
    assert [_outcome(lambda: read(view)) for _ in range(3)] == [through_proxy] * 3


def test_a_view_reads_known_values_once_and_each_unknown_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _counting_reads(monkeypatch)
    view = _view(unknown_checking_proxy(PROPS))
    for _ in range(3):
        assert k8s.dig(view, "metadata", "labels", "app") == "notes"
        with pytest.raises(UnknownValueError):
            view["metadata"]["annotations"]["checksum"]
    checked = {key: count for (_, key), count in reads.items()}
    assert checked == {"checksum": 3}  # known values were read once, when the view was made


def test_what_holds_no_unknown_comes_plain_and_the_rest_as_views() -> None:
    view = _view(unknown_checking_proxy(PROPS))
    assert type(view["metadata"]["labels"]) is dict  # no unknown below: as `sdk_speedup` hands whole properties
    assert type(view["spec"]["selector"]) is dict
    assert type(view["spec"]["ports"][0]) is dict
    assert type(view["metadata"]["annotations"]) is MappingRead  # holds the unknown checksum
    assert type(view["spec"]["ports"]) is SequenceRead


def _view(props: Any) -> Any:
    return read_request([props])[0]


def test_every_policy_of_a_request_gets_the_same_views() -> None:
    first, second = unknown_checking_proxy(PROPS), unknown_checking_proxy(PROPS)
    views = read_request([first, second])
    assert [id(v) for v in read_request([first, second])] == [id(v) for v in views]
    assert _view(first) is views[0]  # the next request
    assert _view(second) is not views[1]  # dropped with the request before
    plain: dict[str, Any] = {"metadata": {}}
    assert _view(plain) is plain  # what tests hand over stays as it is


def test_derived_is_computed_once_per_view() -> None:
    calls = []

    def names(props: Any) -> list[str]:
        calls.append(1)
        return list(props["metadata"])

    view = _view(unknown_checking_proxy(PROPS))
    assert derived(view, names) == derived(view, names) == ["name", "labels", "annotations"]
    assert len(calls) == 1


def test_a_memo_raises_a_remembered_unknown_again() -> None:
    calls = []

    def checksum(props: Any) -> Any:
        calls.append(1)
        return props["metadata"]["annotations"]["checksum"]

    memo: Memo[Any, Any] = Memo(checksum)
    props = unknown_checking_proxy(PROPS)
    messages = []
    for _ in range(2):
        with pytest.raises(UnknownValueError) as raised:
            memo(props)
        messages.append(raised.value.message)
    assert messages == [_outcome(lambda: checksum(props))[1]] * 2
    assert len(calls) == 2  # once by the memo, once here


def _counting_reads(monkeypatch: pytest.MonkeyPatch, *, known_only: bool = False) -> Counter[tuple[int, Any]]:
    """Every read through the SDK's unknown check, by (the mapping or list read, key); `known_only`: of known
    values only (a read of an unknown raises, and is made again by every rule that meets it)."""
    reads: Counter[tuple[int, Any]] = Counter()
    check = proxy._raise_if_unknown

    def counting(key: Any, value: Any, path: list[str]) -> Any:
        if not (known_only and proxy._is_unknown(value)):
            reads[id(path), key] += 1  # each proxied mapping and list holds its own path list
        return check(key, value, path)

    monkeypatch.setattr(proxy, "_raise_if_unknown", counting)
    return reads


def test_the_pack_reads_no_known_value_through_the_check(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many policies read a field, and however many workloads a stack policy relates to each other, no
    known value of a request goes through the SDK's unknown check: each was read once when the request's views were
    made (the pack as it runs, with `sdk_speedup`; in a preview, where properties holding an unknown come behind the
    SDK's proxy), and only unknown values are read through the proxy, which raises."""
    restore_sdk_after(monkeypatch)
    importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()
    policies = importlib.import_module("shipsafe_policies").all_policies()
    servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
    reads = _counting_reads(monkeypatch, known_only=True)
    recording = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    by_urn = {r.urn: r for r in recording}
    for resource in recording:
        reads.clear()
        servicer.Analyze(analyze_request(resource, by_urn), None)
        assert not reads, resource.urn
    skipped = servicer.AnalyzeStack(
        analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording]), None
    )
    assert not reads
    assert any("can't run policy" in d.message for d in skipped.diagnostics)  # unknowns were met, and raised


def test_the_policies_a_preview_skips_leave_no_garbage_behind(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy that meets an unknown is reported as skipped; the unknown it kept (`Item`, `Memo`, `derived`) must
    not hold the frames it passed through, or every skip leaves a cycle holding the request's resources for the
    garbage collector (about 266,000 objects over the six views of 200 workloads, each one walked by collections)."""
    restore_sdk_after(monkeypatch)
    importlib.import_module("shipsafe_policies.sdk_speedup").convert_requests_once()
    policies = importlib.import_module("shipsafe_policies").all_policies()
    servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
    recording = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    by_urn = {r.urn: r for r in recording}
    analyses = [analyze_request(r, by_urn) for r in recording]
    stack = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording])
    gc.collect()
    gc.disable()
    try:
        responses = [servicer.Analyze(request, None) for request in analyses]
        responses.append(servicer.AnalyzeStack(stack, None))
        left_behind = gc.collect()
    finally:
        gc.enable()
    skipped = [d for response in responses for d in response.diagnostics if "can't run policy" in d.message]
    assert len(skipped) > 1
    assert left_behind == 0
