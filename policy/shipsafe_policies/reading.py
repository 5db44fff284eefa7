"""A resource's properties, each known value read once per request, without the proxy's check.

pulumi-policy 1.21 hands a policy the properties behind an unknown-checking proxy (`proxy.py`): every read of a
key or list element runs `_raise_if_unknown` in pure Python, and `key in props` or `props.get(key)` read the value
too (`Mapping.__contains__` and `Mapping.get` are `self[key]`). Our rules read the same fields over and over (each
policy of a request, each workload a stack rule relates to every NetworkPolicy or Service), so that check was most
of the pack's own time. `read_request` reads a request's proxied properties once (`_read_known`): a mapping or list
holding no unknown comes plain, as `sdk_speedup.py` hands over whole properties holding none, and one holding an
unknown as a view that keeps its known values and reads the rest through the proxy every time, so every read of
an unknown raises the SDK's UnknownValueError, with its path, exactly where the rule met it before. The views are
a `Mapping` and a `Sequence` as the proxies are (mappings compare by value, lists by identity, no dict or list
methods), and rules read plain values only through Mapping and Sequence operations, as they read views
(tests/policy/test_sdk_speedup.py holds the pack to that and compares every response with the SDK's own reading).

The SDK builds a request's properties for each policy; `sdk_speedup.py` makes every policy of one request get the
same proxy, so the same view (kept for the request being answered) serves them all, and what several policies
derive alike from one object (its pod spec, containers, labels, waivers) is derived once per request
(`derived`). Within one policy call, `Memo` keeps what a stack rule derives from each workload with the rule's
settings for every NetworkPolicy or Service that asks.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from pulumi_policy import proxy as sdk_proxy
from pulumi_policy.proxy import UnknownValueError

from .sdk_speedup import UNKNOWNS

Derived = TypeVar("Derived")

_UNREAD = object()
_ABSENT = object()


class MappingRead(Mapping[str, Any]):
    """A mapping of the proxy keeping its known values (read at once by `_read_known`, else at their first read
    through it); unknown ones are read through it at every read."""

    __slots__ = ("_proxy", "_read")

    def __init__(self, proxy: Mapping[str, Any]) -> None:
        self._proxy = proxy
        self._read: dict[str, Any] = {}

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
    """A list of the proxy keeping its known elements (as `MappingRead` its values); unknown ones are read through it
    at every read."""

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
    """The views of the request a server thread is answering (requests of one thread come one after another), and
    what its policies derived from them."""

    def __init__(self) -> None:
        # id(proxy) -> (proxy, view); holding the proxy keeps its id from being reused by another object.
        self.views: dict[int, tuple[Mapping[str, Any], Mapping[str, Any]]] = {}
        self.current: dict[int, Mapping[str, Any]] = {}
        """id(view) -> view, for the views of the request being answered."""
        self.derived: dict[tuple[Any, ...], tuple[Any, UnknownValueError | None]] = {}
        """(id(view), compute, args) -> (result, the unknown computing it met)."""


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
            entry = (props, props if _plain(props) else _read_known(props))
        fresh[id(props)] = entry
    _kept.views = fresh
    _kept.current = {id(view): view for _, view in fresh.values()}
    _kept.derived = {}
    return [fresh[id(props)][1] for props in proxies]


_DICT_PROXY, _LIST_PROXY = sdk_proxy._DictProxy, sdk_proxy._ListProxy


def _read_known(props: Mapping[str, Any]) -> Any:
    """The view of a request's proxied properties with every known value read at once: pulumi-policy 1.21's proxy
    (`proxy.py` `_proxy_helper`) holds each mapping and list as the proxies of its items (`proxy["__target"]`), and
    a read returns the item unless it is an unknown sentinel (`_raise_if_unknown`). So a known item is what the
    proxy's read returns; a mapping or list holding no unknown comes plain, as `sdk_speedup` hands over whole
    properties holding none, and one holding an unknown as a view that reads only its unknowns (and absent keys)
    through the proxy, which raises its own error with its path every time. One walk of the properties instead of
    a checked read of each value the rules ask for, and a plain read after it."""
    if type(props) is not _DICT_PROXY:
        return MappingRead(props)  # not the proxy this was checked against: read lazily through it
    return _known(props)


def _known(proxy: Any) -> Any:
    """The plain mapping or list when `proxy` holds no unknown, else its view with its known items read."""
    items = proxy["__target"]
    mapping = type(proxy) is _DICT_PROXY
    known: dict[Any, Any] = {}
    clean = True
    for key, value in items.items() if mapping else enumerate(items):
        kind = type(value)
        if kind is _DICT_PROXY or kind is _LIST_PROXY:
            value = _known(value)
            clean = clean and type(value) is not MappingRead and type(value) is not SequenceRead
        elif kind is str and value in UNKNOWNS:
            clean = False
            continue
        known[key] = value
    if mapping:
        if clean:
            return known
        view = MappingRead(proxy)
        view._read = known
        return view
    if clean:
        return list(known.values())
    elements = SequenceRead(proxy)
    for index, value in known.items():
        elements._read[index] = value
    return elements


def read_props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """`read_request([props])`, for the policies of an Analyze request after the first without making lists."""
    kept = _kept.views
    entry = kept.get(id(props))
    if entry is not None and entry[0] is props and len(kept) == 1:
        return entry[1]
    return read_request([props])[0]


def _plain(props: Mapping[str, Any]) -> bool:
    """Properties no proxy wraps (only tests hand those over), or already a view."""
    return type(props) is MappingRead or type(props).__module__ == "builtins"


def derived(props: Any, compute: Callable[..., Derived], *args: Hashable) -> Derived:
    """`compute(props, *args)` once per request, for what several policies of a request derive alike from one
    object (its waivers, pod spec, containers, labels) with `args` such as its resource type. `compute` must only
    read `props` and use `args`. An unknown value met while computing is raised again at every later call, as
    computing again would raise it (the same reads in the same order meet the same first unknown). Properties that
    are not a view of the request being answered (only tests hand those over) are computed at every call."""
    kept = _kept
    key = (id(props), compute, args)
    found = kept.derived.get(key)
    if found is None:
        if kept.current.get(id(props)) is not props:
            return compute(props, *args)
        try:
            found = (compute(props, *args), None)
        except UnknownValueError as unknown:
            found = (None, unknown)
        kept.derived[key] = found
    if found[1] is not None:
        raise found[1]
    return cast(Derived, found[0])


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


Validate = TypeVar("Validate", bound=Callable[..., None])


def untraced_unknowns(validate: Validate) -> Validate:
    """`validate` handing the SDK an unknown its check met without the frames it passed through (the SDK reads only
    its message): a check keeps the unknown it met (`Item`, `Memo`, `derived`) in objects those frames hold, so the
    traceback would make a cycle holding the policy's args (for a stack policy every resource) until the garbage
    collector ran, once per policy a preview skips."""

    @functools.wraps(validate)
    def run(*args: Any) -> None:
        try:
            validate(*args)
        except UnknownValueError as unknown:
            raise unknown.with_traceback(None) from None

    return cast(Validate, run)
