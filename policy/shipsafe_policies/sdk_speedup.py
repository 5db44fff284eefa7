"""Convert each resource of a request once instead of once per policy.

pulumi-policy 1.21 (`policy.py` `_PolicyAnalyzerServicer.Analyze` and `AnalyzeStack`) rebuilds a resource's
properties for every policy it runs: `json_format.MessageToDict` of the protobuf Struct, then
`deserialize_properties`, then `unknown_checking_proxy`, each pure Python and each a pure function of its input.
With ~55 policies that conversion is nearly all of the pack's time (at 200 workloads, 10 ms of 11 ms per resource
and phase), and it grows with every policy added. Here each of the three steps remembers its last results by the
identity of its input, so every policy of one request gets the same proxy; the policies only read it (none writes
into `props`), and the unknown checks still happen on each read, so verdicts and skips are the SDK's own
(tests/policy/test_sdk_speedup.py compares every response with and without).

Installed only when the SDK still converts through exactly these three names (else a no-op, the SDK's own pace).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pulumi_policy.policy as sdk
from google.protobuf import json_format

_REMEMBERED = 4096
"""Inputs per step and server thread: more than the resources of one AnalyzeStack request of a large stack."""


class _Remembered(threading.local):
    def __init__(self) -> None:
        # id -> (input, result); holding the input keeps its id from being reused by another object.
        self.by_id: OrderedDict[int, tuple[Any, Any]] = OrderedDict()


def _once_per_input(convert: Callable[[Any], Any]) -> Callable[..., Any]:
    remembered = _Remembered()

    def converted(value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:  # a call the pack's policies never make: the SDK's own behaviour
            return convert(value, *args, **kwargs)
        by_id = remembered.by_id
        known = by_id.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        result = convert(value)
        by_id[id(value)] = (value, result)
        if len(by_id) > _REMEMBERED:
            by_id.popitem(last=False)
        return result

    return converted


class _SharedJsonFormat:
    """Stands in for `json_format` inside `pulumi_policy.policy`; everything but MessageToDict passes through."""

    MessageToDict = staticmethod(_once_per_input(json_format.MessageToDict))

    def __getattr__(self, name: str) -> Any:
        return getattr(json_format, name)


def _sdk_converts_as_expected() -> bool:
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    return (
        getattr(sdk, "json_format", None) is json_format
        and getattr(sdk, "deserialize_properties", None) is deserialize_properties
        and getattr(sdk, "unknown_checking_proxy", None) is unknown_checking_proxy
    )


def convert_requests_once() -> None:
    """Install the shared conversions (a no-op if the SDK no longer converts through these names)."""
    if not _sdk_converts_as_expected():
        return
    sdk.json_format = _SharedJsonFormat()
    sdk.deserialize_properties = _once_per_input(sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _once_per_input(sdk.unknown_checking_proxy)
