"""Indexes a stack policy builds once per stack, so matching selectors stays linear in the stack's size.

Matching every selector against every pod (or every pod against every budget) grows with the square of the stack.
These indexes file each entry under the labels it carries (or the label a selector requires) and hand back only the
entries that could match, in the order they were added; the caller still applies the exact matcher to them, so the
verdicts are those of a full scan. Values unknown in preview keep their meaning: an entry whose labels (or selector)
cannot be read is never filed under a label but offered with every query, so reading it raises exactly where a full
scan would have read it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterator, Mapping
from itertools import count
from typing import Any, Generic, TypeVar

from pulumi_policy.proxy import UnknownValueError

from . import k8s
from .k8s import Lookup, dig, selector_matches, service_selects

Value = TypeVar("Value")
Entry = tuple[int, Mapping[str, Any], Any]
"""(insertion number, labels or selector, value)."""


def _known_pairs(mapping: Mapping[str, Any]) -> list[tuple[str, Any]] | None:
    """The mapping's (key, value) pairs, or None when a value is unknown or cannot be filed (unhashable)."""
    try:
        pairs = [(key, mapping[key]) for key in mapping]
    except UnknownValueError:
        return None
    return pairs if all(isinstance(value, Hashable) for _, value in pairs) else None


class _Buckets:
    """Entries per scope, per (scope, key, value), and per scope those never filed (offered with every query)."""

    def __init__(self) -> None:
        self._order = count()
        self.scoped: dict[Any, list[Entry]] = {}
        self.filed: dict[tuple[Any, str, Any], list[Entry]] = {}
        self.unfiled: dict[Any, list[Entry]] = {}

    def entry(self, scope: Any, subject: Mapping[str, Any], value: Any) -> Entry:
        entry = (next(self._order), subject, value)
        self.scoped.setdefault(scope, []).append(entry)
        return entry

    def merged(self, scope: Any, *groups: list[Entry]) -> Iterator[tuple[Mapping[str, Any], Any]]:
        """The groups' entries once each, in insertion order, with the scope's unfiled ones."""
        seen: set[int] = set()
        for number, subject, value in heapq.merge(*groups, self.unfiled.get(scope, []), key=lambda e: e[0]):
            if number not in seen:
                seen.add(number)
                yield subject, value


class LabelIndex(Generic[Value]):
    """Values (pods, workloads) by the labels they carry; `candidates(scope, required)` gives every value whose
    labels may include all of `required` (a superset of the matches)."""

    def __init__(self) -> None:
        self._buckets = _Buckets()

    def add(self, scope: Any, labels: Mapping[str, Any], value: Value) -> None:
        entry = self._buckets.entry(scope, labels, value)
        pairs = _known_pairs(labels)
        if pairs is None:
            self._buckets.unfiled.setdefault(scope, []).append(entry)
            return
        for key, label in pairs:
            self._buckets.filed.setdefault((scope, key, label), []).append(entry)

    def candidates(self, scope: Any, required: Mapping[str, Any] | None) -> list[tuple[Mapping[str, Any], Value]]:
        everything = self._buckets.scoped.get(scope, [])
        if not everything:
            return []  # nothing to match: the selector is never read, as a scan over no entries never reads it
        pairs = _known_pairs(required or {}) if required is not None else []
        if not pairs:  # no label required (or one that cannot be filed): every entry is a candidate
            return [(labels, value) for _, labels, value in everything]
        groups = [self._buckets.filed.get((scope, key, label), []) for key, label in pairs]
        return list(self._buckets.merged(scope, min(groups, key=len)))

    def selected_by(self, scope: Any, selector: Mapping[str, Any] | None) -> Iterator[Value]:
        """Values whose labels a label selector (matchLabels, matchExpressions) matches, one at a time (`any` stops
        reading at the first)."""
        required = None if selector is None else dig(selector, "matchLabels")
        return (v for labels, v in self.candidates(scope, required) if selector_matches(selector, labels))

    def served_by(self, scope: Any, selector: Mapping[str, Any] | None) -> list[Value]:
        """Values whose labels a Service selector (a plain label map) selects."""
        return [v for labels, v in self.candidates(scope, selector) if service_selects(selector, labels)]


class SelectorIndex(Generic[Value]):
    """Values (budgets, policies) by one label their selector requires; `matching(scope, labels)` gives the values
    whose selector matches those pod labels, reading only the selectors that could."""

    def __init__(self) -> None:
        self._buckets = _Buckets()

    def add(self, scope: Any, read_selector: Callable[[], Mapping[str, Any] | None], value: Value) -> None:
        """`read_selector` reads the value's selector; one that cannot be read now is read again at each match."""
        try:
            selector = read_selector()
            pairs = _known_pairs(dig(selector, "matchLabels") or {})
        except UnknownValueError:
            selector, pairs = None, None
        entry = self._buckets.entry(scope, {}, (read_selector if pairs is None else (lambda: selector), value))
        if not pairs:  # requires no label (or one that cannot be read): it is tried for every pod
            self._buckets.unfiled.setdefault(scope, []).append(entry)
            return
        key, label = pairs[0]  # a match carries every required label, so filing under one of them is enough
        self._buckets.filed.setdefault((scope, key, label), []).append(entry)

    def matching(self, scope: Any, labels: Mapping[str, Any]) -> list[Value]:
        pairs = _known_pairs(labels)
        if pairs is None:  # labels that cannot be filed: try every selector of the scope
            groups = [self._buckets.scoped.get(scope, [])]
        else:
            groups = [self._buckets.filed.get((scope, key, label), []) for key, label in pairs]
        return [value for _, (read, value) in self._buckets.merged(scope, *groups) if selector_matches(read(), labels)]


def workloads_by_pod_labels(resources: list[Any]) -> tuple[Lookup, LabelIndex[Any]]:
    """Every workload of the stack filed by namespace and pod labels, and a lookup that is complete only if every
    workload's namespace and labels were known (so "selects nothing" is a verdict only then)."""
    pods, index = Lookup(), LabelIndex[Any]()
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        with pods.adding():
            namespace, labels = dig(workload.props, "metadata", "namespace"), k8s.pod_labels(workload)
            pods.entries[workload.urn] = workload
            index.add(namespace, labels, workload)
    return pods, index
