"""Kubernetes objects of a recording as YAML manifests (what `pulumi up` would send to the API server)."""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from harness.recording import RecordedResource, Recording

REDACTED = "[secret]"
_INDEX = re.compile(r"\[(\d+)\]")


def is_kubernetes(resource: RecordedResource) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:")


def _redacted(value: Any) -> Any:
    # Keep the shape (a secret map stays a map of strings) so the manifest still validates.
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return REDACTED


def _redact(document: dict[str, Any], path: str) -> None:
    parts = [p for p in _INDEX.sub(r".\1", path).split(".") if p]
    node: Any = document
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
        if node is None:
            return
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = _redacted(node[int(last)])
    elif isinstance(node, dict) and last in node:
        node[last] = _redacted(node[last])


def whole_numbers(value: Any) -> Any:
    # Protobuf Structs carry every number as a float; Kubernetes schemas want integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


def to_manifest(resource: RecordedResource) -> dict[str, Any]:
    document = copy.deepcopy(resource.inputs)
    for path in resource.secret_paths:
        _redact(document, path)
    ordered = {"apiVersion": document.pop("apiVersion"), "kind": document.pop("kind")}
    return whole_numbers({**ordered, **document})


def render(recording: Recording) -> str:
    documents = [to_manifest(r) for r in recording if is_kubernetes(r)]
    return yaml.safe_dump_all(documents, sort_keys=False)
