"""Convert each resource of a request once, and cheaply, instead of once per policy.

pulumi-policy 1.21 (`policy.py` `_PolicyAnalyzerServicer.Analyze` and `AnalyzeStack`) rebuilds a resource's
properties for every policy it runs: `json_format.MessageToDict` of the protobuf Struct, then
`deserialize_properties`, then `unknown_checking_proxy`, then (`_get_resource_options`, `_get_provider_resource`)
its options and provider, each pure Python and each a pure function of its input. With ~75 policies that
conversion was nearly all of the pack's time, and it grows with every policy added. Here:

- each step remembers its last results by the identity of its input, so every policy of one request gets the same
  objects; the policies only read them (none writes into `props` or `opts`);
- a Struct is converted by `struct_to_python`, which returns what `json_format.MessageToDict` returns for a Struct
  (protobuf 5.29 `json_format.py` `_StructMessageToJsonObject` / `_ValueMessageToJsonObject`: null -> None, a
  number -> its float, NaN and infinities refused with the same ValueError) in one direct walk;
- properties holding no unknown value anywhere are handed over as the deserialized dict itself: the SDK's proxy
  (`proxy.py` `_raise_if_unknown`) raises only on reading one of the seven unknown sentinels, so over such
  properties every read gives what the proxy gives, without a wrapper per node. Properties holding one get the
  SDK's own proxy, so the unknown checks, and which policies a preview skips, are the SDK's own.

tests/policy/test_sdk_speedup.py compares every response with and without over whole stacks (preview views with
unknowns included) and every catalogue case. Installed only for the releases it was checked against and when the
SDK still converts through exactly these names (else a no-op, the SDK's own pace).
"""

from __future__ import annotations

import gc
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib import metadata
from typing import Any

import pulumi_policy.policy as sdk
import pulumi_policy.proxy as sdk_proxy
from google.protobuf import json_format, struct_pb2

_REMEMBERED = 4096
"""Inputs per step and server thread: more than the resources of one AnalyzeStack request of a large stack."""

UNKNOWNS = frozenset(
    (
        sdk_proxy.UNKNOWN_BOOLEAN_VALUE,
        sdk_proxy.UNKNOWN_NUMBER_VALUE,
        sdk_proxy.UNKNOWN_STRING_VALUE,
        sdk_proxy.UNKNOWN_ARRAY_VALUE,
        sdk_proxy.UNKNOWN_ASSET_VALUE,
        sdk_proxy.UNKNOWN_ARCHIVE_VALUE,
        sdk_proxy.UNKNOWN_OBJECT_VALUE,
    )
)
"""What `proxy._is_unknown` recognises."""


class _Remembered(threading.local):
    def __init__(self) -> None:
        # id -> (input, result); holding the input keeps its id from being reused by another object.
        self.by_id: OrderedDict[int, tuple[Any, Any]] = OrderedDict()


def _once_per_input(convert: Callable[..., Any], *, key_at: int = 0) -> Callable[..., Any]:
    """`convert` remembered by the identity of its argument at `key_at` (1 for a method: after `self`); a call
    with more arguments than that is the SDK's own behaviour."""
    remembered = _Remembered()

    def converted(*args: Any, **kwargs: Any) -> Any:
        if len(args) != key_at + 1 or kwargs:  # a call the pack's policies never make
            return convert(*args, **kwargs)
        value = args[key_at]
        by_id = remembered.by_id
        known = by_id.get(id(value))
        if known is not None and known[0] is value:
            by_id.move_to_end(id(value))  # kept while in use: a request larger than the memo still hits
            return known[1]
        result = convert(*args)
        by_id[id(value)] = (value, result)
        if len(by_id) > _REMEMBERED:
            by_id.popitem(last=False)
        return result

    return converted


def _value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return _fields_to_python(value.struct_value)
    if kind == "list_value":
        return [_value_to_python(item) for item in value.list_value.values]
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number):
            raise ValueError("Fail to serialize Infinity for Value.number_value, which would parse as string_value")
        if math.isnan(number):
            raise ValueError("Fail to serialize NaN for Value.number_value, which would parse as string_value")
        return number
    return None  # null_value, or no kind set


def _fields_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields
    return {key: _value_to_python(fields[key]) for key in fields}


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    """`json_format.MessageToDict(struct)` for a `google.protobuf.Struct`, in one walk."""
    return _fields_to_python(struct)


def _message_to_dict(message: Any) -> Any:
    if message.DESCRIPTOR is struct_pb2.Struct.DESCRIPTOR:
        return struct_to_python(message)
    return json_format.MessageToDict(message)


class _SharedJsonFormat:
    """Stands in for `json_format` inside `pulumi_policy.policy`; everything but MessageToDict passes through."""

    MessageToDict = staticmethod(_once_per_input(_message_to_dict))

    def __getattr__(self, name: str) -> Any:
        return getattr(json_format, name)


def holds_unknown(value: Any) -> bool:
    """Whether reading some value of `value` through the SDK's proxy could raise: an unknown sentinel anywhere in
    its lists and dicts (the only containers `proxy._proxy_helper` wraps)."""
    if isinstance(value, dict):
        return any(holds_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_unknown(item) for item in value)
    return isinstance(value, str) and value in UNKNOWNS


def _checking_proxy(proxy: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(deserialized: Any) -> Any:
        return proxy(deserialized) if holds_unknown(deserialized) else deserialized

    return checked


_SERVICER_STEPS = ("_get_resource_options", "_get_provider_resource")
"""The servicer's per-resource steps, each a pure function of the request's resource."""


VERIFIED_WITH = {"pulumi-policy": "1.21.", "protobuf": "5.29."}
"""The releases whose code this module was checked against (`policy/requirements.txt` pins them): another release
may convert, or call, differently, so it gets the SDK's own pace until it is checked again."""


def _sdk_converts_as_expected() -> bool:
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    return (
        all(metadata.version(package).startswith(release) for package, release in VERIFIED_WITH.items())
        and getattr(sdk, "json_format", None) is json_format
        and getattr(sdk, "deserialize_properties", None) is deserialize_properties
        and getattr(sdk, "unknown_checking_proxy", None) is unknown_checking_proxy
        and all(callable(getattr(sdk._PolicyAnalyzerServicer, step, None)) for step in _SERVICER_STEPS)
    )


def convert_requests_once() -> None:
    """Install the shared conversions (a no-op if the SDK no longer converts through these names)."""
    if not _sdk_converts_as_expected():
        return
    sdk.json_format = _SharedJsonFormat()
    sdk.deserialize_properties = _once_per_input(sdk.deserialize_properties)
    sdk.unknown_checking_proxy = _once_per_input(_checking_proxy(sdk.unknown_checking_proxy))
    for step in _SERVICER_STEPS:
        setattr(
            sdk._PolicyAnalyzerServicer, step, _once_per_input(getattr(sdk._PolicyAnalyzerServicer, step), key_at=1)
        )


YOUNG_COLLECTION_EVERY = 100_000
"""Allocations between two collections of young objects (CPython's default: 700)."""


def collect_request_garbage_only() -> None:
    """The cyclic collector for what a request leaves behind, not for the SDKs: the modules imported so far are
    frozen out of it (`gc.freeze`), and young objects are collected every `YOUNG_COLLECTION_EVERY` allocations. A
    large AnalyzeStack allocates millions of objects, none of them garbage before the request is answered; at the
    default every collection walked them again, about a third of the pack's time at 200 workloads and growing with
    the stack. Peak memory is unchanged (docs/development.md)."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 50, 100)
