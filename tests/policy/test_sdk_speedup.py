"""Sharing one cheap properties conversion across policies changes no verdict, only the time it takes."""

from __future__ import annotations

import ast
import gc
import importlib
import math
import random
import re
from collections.abc import Callable
from typing import Any

import pulumi_policy.policy as sdk
import pulumi_policy.proxy as proxy
import pytest
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2

from harness.analyzer import POLICY_DIR, analyze_request, stack_resource
from harness.phases import Phase, PhaseRecording
from harness.recording import Recording
from tests.policy.stack_edits import at, edit
from tests.policy.test_bad_variants import CASES, COMPLIANT

SDK_CONVERSIONS = ("json_format", "deserialize_properties", "unknown_checking_proxy")
"""What `convert_requests_once` replaces inside `pulumi_policy.policy`."""
SERVICER_STEPS = ("_get_resource_options", "_get_provider_resource")
"""What it replaces on `pulumi_policy.policy._PolicyAnalyzerServicer`."""


def restore_sdk_after(patch: pytest.MonkeyPatch) -> None:
    """Everything `convert_requests_once` replaces goes back when `patch` is undone."""
    patch.syspath_prepend(str(POLICY_DIR))
    for name in SDK_CONVERSIONS:
        patch.setattr(sdk, name, getattr(sdk, name))
    for step in SERVICER_STEPS:
        patch.setattr(sdk._PolicyAnalyzerServicer, step, getattr(sdk._PolicyAnalyzerServicer, step))


def _speedup() -> Any:
    return importlib.import_module("shipsafe_policies.sdk_speedup")


Request = tuple[str, bytes]
"""A method of the analyzer (`Analyze`, `AnalyzeStack`) and its request as sent on the wire."""


def _requests(recordings: list[Recording]) -> list[Request]:
    """Every distinct request the engine would send the pack for these recordings."""
    requests: dict[Request, None] = {}
    for recording in recordings:
        by_urn = {r.urn: r for r in recording}
        requests.update(dict.fromkeys(("Analyze", analyze_request(r, by_urn).SerializeToString()) for r in recording))
        stack = analyzer_pb2.AnalyzeStackRequest(resources=[stack_resource(r, by_urn) for r in recording])
        requests[("AnalyzeStack", stack.SerializeToString())] = None
    return list(requests)


def _servicer_responses(requests: list[Request]) -> list[analyzer_pb2.AnalyzeResponse]:
    """The pack's response to each request, parsed from its wire form as the server does."""
    policies = importlib.import_module("shipsafe_policies").all_policies()
    servicer = sdk._PolicyAnalyzerServicer("shipsafe", "1.0.0", policies, sdk.EnforcementLevel.MANDATORY)
    parse = {
        "Analyze": analyzer_pb2.AnalyzeRequest.FromString,
        "AnalyzeStack": analyzer_pb2.AnalyzeStackRequest.FromString,
    }
    return [getattr(servicer, method)(parse[method](wire), None) for method, wire in requests]


def _plain(requests: list[Request]) -> list[analyzer_pb2.AnalyzeResponse]:
    """The responses computed the SDK's way: its own conversions, and each rule reading the SDK's proxy itself
    (no read views, no memo): what the pack answered before either existed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(POLICY_DIR))
        assert sdk.json_format is json_format, "the SDK is patched: the baseline would compare the speedup with itself"
        assert all("converted" not in getattr(sdk._PolicyAnalyzerServicer, step).__name__ for step in SERVICER_STEPS)
        reading = importlib.import_module("shipsafe_policies.reading")
        patch.setattr(importlib.import_module("shipsafe_policies.framework"), "read_request", list)
        patch.setattr(reading.Memo, "__call__", lambda memo, subject: memo._compute(subject))
        return _servicer_responses(requests)


def _shared(requests: list[Request]) -> list[analyzer_pb2.AnalyzeResponse]:
    """The responses computed with `convert_requests_once` installed, as the pack's `__main__` installs it."""
    with pytest.MonkeyPatch.context() as patch:
        restore_sdk_after(patch)
        originals = {name: getattr(sdk, name) for name in SDK_CONVERSIONS}
        steps = {step: getattr(sdk._PolicyAnalyzerServicer, step) for step in SERVICER_STEPS}
        _speedup().convert_requests_once()
        assert all(getattr(sdk, name) is not originals[name] for name in SDK_CONVERSIONS)
        assert all(getattr(sdk._PolicyAnalyzerServicer, step) is not steps[step] for step in SERVICER_STEPS)
        return _servicer_responses(requests)


def test_shared_conversions_give_identical_results_over_whole_stacks(
    compliant: dict[str, Recording],
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    faulty = edit("notes-web-deployment", at("container.securityContext.privileged", True))(compliant["staging"])
    recordings = [
        compliant["staging"],
        compliant["prod"],
        faulty,
        *(p.recording for p in phase_recordings.values()),  # every view: unknowns in previews, live objects after up
    ]
    requests = _requests(recordings)
    got = _shared(requests)

    assert got == _plain(requests)
    assert any(d.policyName == "pss-baseline-no-privileged" for response in got for d in response.diagnostics)
    assert any("can't run policy" in d.message for response in got for d in response.diagnostics)


@pytest.mark.slow
def test_shared_conversions_give_identical_results_on_every_catalogue_variant(
    compliant: dict[str, Recording],
) -> None:
    """Every bad and compliant variant of the catalogue built from the stacks alone: each policy meets the objects
    it is written for, faulty and not, through the shared conversions."""
    variants = [c.fault(compliant[c.stack]) for c in CASES if c.dockerfile is None]
    requests = _requests([*variants, *(c.change(compliant[c.stack]) for c in COMPLIANT)])
    assert _shared(requests) == _plain(requests)


def test_each_resource_is_converted_once_per_request(
    compliant: dict[str, Recording], monkeypatch: pytest.MonkeyPatch
) -> None:
    restore_sdk_after(monkeypatch)
    speedup = _speedup()
    calls = []
    convert = speedup.struct_to_python

    def counting(struct: struct_pb2.Struct) -> dict[str, Any]:
        calls.append(struct)
        return convert(struct)

    monkeypatch.setattr(speedup, "struct_to_python", counting)
    speedup.convert_requests_once()
    recording = compliant["prod"]
    _servicer_responses(_requests([recording]))
    # One Analyze request per resource, and one AnalyzeStack request holding every resource: without the shared
    # conversion it would be once per policy and resource.
    assert len(calls) == 2 * len(recording.resources)


def test_known_properties_are_handed_over_unwrapped_and_unknown_ones_through_the_sdks_proxy() -> None:
    speedup = _speedup()
    known = {"spec": {"replicas": 2.0, "template": {"containers": [{"image": "app@sha256:ab"}]}}}
    unknown = {"spec": {"template": {"containers": [{"image": proxy.UNKNOWN_STRING_VALUE}]}}}
    checked = speedup._checking_proxy(proxy.unknown_checking_proxy)
    assert checked(known) is known
    wrapped = checked(unknown)
    with pytest.raises(proxy.UnknownValueError) as raised:
        _ = wrapped["spec"]["template"]["containers"][0]["image"]
    assert raised.value.message == "string value at .spec.template.containers.0.image can't be known during preview"


def _random_value(rng: random.Random, depth: int) -> struct_pb2.Value:
    value = struct_pb2.Value()
    kind = rng.choice(["null", "number", "string", "bool", "struct", "list"] if depth < 4 else ["string", "number"])
    if kind == "null":
        value.null_value = struct_pb2.NULL_VALUE
    elif kind == "number":
        value.number_value = rng.choice([0.0, -0.0, 1.0, 2.5, -7.0, 1e300, 2.0**53 + 1, rng.uniform(-1e6, 1e6)])
    elif kind == "string":
        value.string_value = rng.choice(["", "a", "ü∂", proxy.UNKNOWN_STRING_VALUE, "x" * rng.randrange(40)])
    elif kind == "bool":
        value.bool_value = rng.random() < 0.5
    elif kind == "struct":
        value.struct_value.CopyFrom(_random_struct(rng, depth + 1))
    else:
        value.list_value.values.extend(_random_value(rng, depth + 1) for _ in range(rng.randrange(4)))
    return value


def _random_struct(rng: random.Random, depth: int = 0) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for index in range(rng.randrange(5)):
        struct.fields[f"k{index}{'é' * (index % 2)}"].CopyFrom(_random_value(rng, depth))
    return struct


def _outcome(convert: Callable[[struct_pb2.Struct], Any], struct: struct_pb2.Struct) -> Any:
    try:
        return ("value", convert(struct))
    except ValueError as error:
        return ("refused", str(error))


def _same(left: Any, right: Any) -> bool:
    """Equal, with the same types all the way down and -0.0 told from 0.0."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, float):
        return left == right and math.copysign(1, left) == math.copysign(1, right)
    return bool(left == right)


def test_the_struct_conversion_is_json_formats_own_on_any_struct() -> None:
    rng = random.Random(21)
    structs = [_random_struct(rng) for _ in range(400)]
    for special in (math.inf, -math.inf, math.nan):  # refused by both, with the same message
        struct = _random_struct(rng)
        struct.fields["odd"].list_value.values.add().number_value = special
        structs.append(struct)
    for struct in structs:
        assert _same(_outcome(_speedup().struct_to_python, struct), _outcome(json_format.MessageToDict, struct))


def test_the_pack_collects_only_what_requests_leave_behind() -> None:
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        _speedup().collect_request_garbage_only()
        assert gc.get_threshold()[0] == _speedup().YOUNG_COLLECTION_EVERY
        assert gc.get_freeze_count() > frozen  # what is imported by now is out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_unknown_sentinels_are_the_sdks() -> None:
    """Properties holding none of them are handed over plainly: a sentinel the SDK added would pass as a value."""
    sentinels = {
        value for name, value in vars(proxy).items() if name.startswith("UNKNOWN_") and name.endswith("_VALUE")
    }
    assert sentinels == _speedup().UNKNOWNS
    assert all(proxy._is_unknown(value) for value in sentinels)


TELLS_PLAIN_FROM_PROXY = {
    "sdk_speedup.py": "decides which properties come plain",
    "k8s.py": "dig and items read plain dicts and lists without the ABC checks, as they read views",
    "languages.py": "package.json, pyproject.toml and tsconfig parsed from disk, never properties",
    "floor.py": "the pack's own config and PULUMI_CONFIG, never properties",
    "dockerfiles.py": "Dockerfile instructions read from disk, never properties",
}
"""The pack's modules that may test for `dict`/`list` or handle them as such, and why."""


def _treats_as_dict_or_list(node: ast.AST) -> bool:
    """`isinstance(x, dict|list)`, `type(x) is dict|list`, `json.dumps(...)` or `x.copy()`: what reads a plain dict
    differently from the SDK's proxy (a Mapping with neither dict methods nor JSON encoding)."""
    if isinstance(node, ast.Call):
        name = ast.unparse(node.func)
        if name == "isinstance" and len(node.args) == 2:
            return any(n in {"dict", "list"} for n in re.findall(r"\w+", ast.unparse(node.args[1])))
        return name == "json.dumps" or name.endswith(".copy")
    if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call) and ast.unparse(node.left.func) == "type":
        return any(ast.unparse(c) in {"dict", "list"} for c in node.comparators)
    return False


def test_rules_read_properties_the_same_plain_or_behind_the_proxy() -> None:
    """Properties holding no unknown reach the rules as a plain dict (`sdk_speedup`), those holding one behind the
    SDK's proxy; a rule must read both alike, so only Mapping and Sequence operations (`k8s.dig`, `k8s.items`)."""
    found = [
        f"{path.relative_to(POLICY_DIR)}:{node.lineno}: {ast.unparse(node)}"
        for path in sorted((POLICY_DIR / "shipsafe_policies").rglob("*.py"))
        if path.name not in TELLS_PLAIN_FROM_PROXY
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.expr) and _treats_as_dict_or_list(node)
    ]
    assert not found, "a rule would read plain properties unlike the proxy:\n" + "\n".join(found)


def test_another_release_of_the_sdk_keeps_its_own_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    restore_sdk_after(monkeypatch)
    speedup = _speedup()
    monkeypatch.setattr(
        speedup.metadata, "version", lambda package: "1.22.0" if package == "pulumi-policy" else "5.29.6"
    )
    originals = {name: getattr(sdk, name) for name in SDK_CONVERSIONS}
    speedup.convert_requests_once()
    assert {name: getattr(sdk, name) for name in SDK_CONVERSIONS} == originals
