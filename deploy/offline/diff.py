"""What a change does to the rendered objects, like helm-diff: one unified diff per object, keyed by kind,
namespace and name. Secret values are placeholders in a render, so a changed secret value does not show."""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import Any

import yaml

from harness.local_files import BoundedLoader
from harness.manifests import apply_order_key

CONTEXT_LINES = 3


class Change(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class ObjectKey:
    kind: str
    namespace: str
    """Empty for cluster-scoped objects."""
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class ObjectChange:
    key: ObjectKey
    change: Change
    diff: str
    """Unified diff of the object's YAML, old to new (every line added or removed for a whole object)."""


def _objects(render: str, label: str) -> dict[ObjectKey, dict[str, Any]]:
    objects: dict[ObjectKey, dict[str, Any]] = {}
    try:
        documents = list(yaml.load_all(render, Loader=BoundedLoader))
    except yaml.YAMLError as error:
        raise ValueError(f"the {label} render is not YAML: {' '.join(str(error).split())}") from None
    for document in documents:
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document or "metadata" not in document:
            raise ValueError(f"the {label} render holds a document that is not a Kubernetes object: {document!r:.80}")
        metadata = document["metadata"]
        key = ObjectKey(document["kind"], metadata.get("namespace", ""), metadata["name"])
        if key in objects:
            raise ValueError(f"the {label} render holds {key} twice")
        objects[key] = document
    return objects


def _lines(document: dict[str, Any] | None) -> list[str]:
    return [] if document is None else yaml.safe_dump(document, sort_keys=False, width=120).splitlines(keepends=True)


def object_changes(old: str, new: str) -> list[ObjectChange]:
    """Every object added, removed or changed from render `old` to render `new`, in apply order."""
    before, after = _objects(old, "old"), _objects(new, "new")
    keys = sorted(before.keys() | after.keys(), key=lambda k: apply_order_key(after.get(k) or before[k]))
    changes = []
    for key in keys:
        old_object, new_object = before.get(key), after.get(key)
        if old_object == new_object:
            continue
        change = Change.ADDED if old_object is None else Change.REMOVED if new_object is None else Change.CHANGED
        lines = difflib.unified_diff(_lines(old_object), _lines(new_object), f"a/{key}", f"b/{key}", n=CONTEXT_LINES)
        changes.append(ObjectChange(key, change, "".join(lines)))
    return changes


def diff_renders(old: str, new: str) -> str:
    """helm-diff's shape: a heading per object that changed, then its unified diff; empty when nothing changed."""
    return "".join(f"{change.key} {change.change}:\n{change.diff}" for change in object_changes(old, new))
