"""A resource's properties, each value read through pulumi-policy's unknown check once per request.

pulumi-policy 1.21 hands a policy the properties behind an unknown-checking proxy (`proxy.py`): every read of a
key or list element runs `_raise_if_unknown` in pure Python, and `key in props` or `props.get(key)` read the value
too (`Mapping.__contains__` and `Mapping.get` are `self[key]`). Our rules read the same fields over and over (each
policy of a request, each workload a stack rule relates to every NetworkPolicy or Service), so that check was most
of the pack's own time. `read_request` wraps each proxy in a view that reads each value through the proxy the first
time it is asked for and keeps it if it was known: the first read of every value is the proxy's own, and an
unknown value is never kept, so every read of it raises the SDK's UnknownValueError, with its path, exactly where
the rule met it before. The views are a `Mapping` and a `Sequence` as the proxies are (mappings compare by value,
lists by identity, no dict or list methods), so a rule reads the same through either. Properties that hold no
unknown come as the plain dict instead (`sdk_speedup.py`) and are not wrapped: rules read them only through
Mapping and Sequence operations, as they read views (tests/policy/test_sdk_speedup.py holds the pack to that).

The SDK builds a request's properties for each policy; `sdk_speedup.py` makes every policy of one request get the
same proxy, so the same view (kept for the request being answered) serves them all. Within one policy call, `Memo`
keeps what a stack rule derives from each workload (its labels, ports...) for every NetworkPolicy or Service that
asks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from pulumi_policy.proxy import UnknownValueError

Derived = TypeVar("Derived")

_UNREAD = object()
_ABSENT = object()


class MappingRead(Mapping[str, Any]):
    """A mapping of the proxy, each value read through it once (unknown ones at every read)."""

    __slots__ = ("_derived", "_proxy", "_read")

    def __init__(self, proxy: Mapping[str, Any]) -> None:
        self._proxy = proxy
        self._read: dict[str, Any] = {}
        self._derived: dict[Callable[[Any], Any], Any] | None = None  # only a resource's own view needs one

    def __getitem__(self, key: str) -> Any:
        value = self._read.get(key, _UNREAD)
        if value is _UNREAD:
            value = self._first_read(key)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """`Mapping.get` (`self[key]`, the default on KeyError) without raising KeyError for each absent key."""
        value = self._read.get(key, _UNREAD)
        if value is _UNREAD:
            value = self._first_read(key)
        return default if value is _ABSENT else value

    def _first_read(self, key: str) -> Any:
        try:
            value = _view(self._proxy[key])  # an unknown raises here, the proxy's own error, and is not kept
        except KeyError:
            value = _ABSENT
        self._read[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._proxy)

    def __len__(self) -> int:
        return len(self._proxy)


class SequenceRead(Sequence[Any]):
    """A list of the proxy, each element read through it once (unknown ones at every read)."""

    __slots__ = ("_all", "_proxy", "_read")

    def __init__(self, proxy: Sequence[Any]) -> None:
        self._proxy = proxy
        self._read: list[Any] = [_UNREAD] * len(proxy)
        self._all = False

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self._proxy[index]  # the proxy hands a slice out unchecked; so does this
        value = self._read[index]  # IndexError as the proxy's list
        if value is _UNREAD:
            value = self._read[index] = _view(self._proxy[index])
        return value

    def __len__(self) -> int:
        return len(self._read)

    def elements(self) -> list[Any]:
        """Every element as a list, read in order (the first unknown raises, as reading each in turn would)."""
        if not self._all:
            for index in range(len(self._read)):
                self[index]
            self._all = True
        return list(self._read)


def _view(value: Any) -> Any:
    """The proxy's mappings and lists as views; plain values (and the plain dicts and lists no proxy holds, which
    only tests hand over) as they are."""
    if type(value).__module__ == "builtins":
        return value
    if isinstance(value, Mapping):
        return MappingRead(value)
    if isinstance(value, Sequence):
        return SequenceRead(value)
    return value


class _Kept(threading.local):
    """The views of the request a server thread is answering (requests of one thread come one after another)."""

    def __init__(self) -> None:
        # id(proxy) -> (proxy, view); holding the proxy keeps its id from being reused by another object.
        self.views: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}


_kept = _Kept()


def read_request(proxies: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The views of one request's properties (a resource's for Analyze, every resource's for AnalyzeStack): the
    same views for every policy handed the same proxies. Only that request's views are kept, so an answered
    request's are freed at once (kept longer, they would only feed the garbage collector)."""
    kept = _kept.views
    views = []
    for props in proxies:
        entry = kept.get(id(props))
        if entry is None or entry[0] is not props:
            break
        views.append(entry[1])
    else:
        if len(kept) == len(views):
            return views
    fresh = {}
    for props in proxies:
        entry = kept.get(id(props))
        if entry is None or entry[0] is not props:
            entry = (props, props if _plain(props) else MappingRead(props))
        fresh[id(props)] = entry
    _kept.views = fresh
    return [fresh[id(props)][1] for props in proxies]


def _plain(props: Mapping[str, Any]) -> bool:
    """Properties no proxy wraps (only tests hand those over), or already a view."""
    return type(props) is MappingRead or type(props).__module__ == "builtins"


def derived(props: Any, compute: Callable[[Any], Derived]) -> Derived:
    """`compute(props)` once per view, for what every policy of a request derives alike from the whole object (its
    waivers). `compute` must only read `props`; one that raised is computed again at the next call, and raises
    again as it did."""
    if type(props) is not MappingRead:
        return compute(props)
    if props._derived is None:
        props._derived = {}
    if compute not in props._derived:
        props._derived[compute] = compute(props)
    return cast(Derived, props._derived[compute])


Subject = TypeVar("Subject")
Result = TypeVar("Result")


class Memo(Generic[Subject, Result]):
    """`compute(subject)` once per subject, for one policy call: a stack rule that asks the same of a workload for
    every NetworkPolicy or Service reads the workload's fields once. An unknown value met while computing is
    raised again at every later call, as computing again would raise it (same reads in the same order, the same
    first unknown), so items are skipped exactly as without the memo."""

    def __init__(self, compute: Callable[[Subject], Result]) -> None:
        self._compute = compute
        # id -> (subject, result, unknown); holding the subject keeps its id from being reused by another object.
        self._done: dict[int, tuple[Subject, Result | None, UnknownValueError | None]] = {}

    def __call__(self, subject: Subject) -> Result:
        done = self._done.get(id(subject))
        if done is None:
            try:
                done = (subject, self._compute(subject), None)
            except UnknownValueError as unknown:
                done = (subject, None, unknown)
            self._done[id(subject)] = done
        if done[2] is not None:
            raise done[2]
        return cast(Result, done[1])
