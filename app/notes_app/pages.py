"""Paging of `GET /notes`: `?limit=` (1-100, default 50) and `?before=<id>` (keyset cursor, newest first).

The body stays a JSON array; the next page's URL is in a `Link: <...>; rel="next"` header (RFC 8288), relative,
so no Host header or scheme ever shapes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from .payloads import MAX_NOTE_ID, BadInput, bounded_int

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    limit: int
    before: int | None


def page_request(query: Mapping[str, str]) -> Page:
    limit = _parameter(query, "limit", 1, MAX_LIMIT)
    return Page(DEFAULT_LIMIT if limit is None else limit, _parameter(query, "before", 1, MAX_NOTE_ID))


def next_page_link(path: str, page: Page, ids: list[int]) -> str | None:
    """The Link header for the page after `ids` (newest first), or None when this page is the last."""
    if len(ids) < page.limit:
        return None
    return f'<{path}?{urlencode({"limit": page.limit, "before": ids[-1]})}>; rel="next"'


def _parameter(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    value = bounded_int(raw, low, high)
    if value is None:
        raise BadInput(400, f"{name} must be a whole number from {low} to {high}. Got {raw[:30]!r}")
    return value
