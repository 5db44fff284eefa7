"""Untrusted request input: bodies read in capped chunks, JSON parsed strictly, text checked before Postgres sees it.

Every way a client can get this wrong ends as a 4xx carrying a message, never as a 5xx: a 5xx means the server is
broken, and deploy verification rolls a release back on 5xx.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

# The largest valid note (a 200-character title and a 10,000-character body, UTF-8, up to 4 bytes per character)
# with room for JSON syntax and escapes; anything bigger is refused before it is buffered.
MAX_BODY_BYTES = 64 * 1024
# The whole body must arrive within this, however it is dripped (a per-read timeout would let a client send one byte
# just before each read times out): 64 KiB in 10 s is 6.5 KB/s. Then 408 and the connection is closed. The server
# bounds the request head the same way (server.py HEADER_READ_TIMEOUT_SECONDS).
BODY_READ_TIMEOUT_SECONDS = 10.0
# Python refuses to convert longer integers (sys.int_info.default_max_str_digits = 4300) with a ValueError; a note has
# no numbers at all, so refuse long ones before the conversion is even attempted.
MAX_NUMBER_DIGITS = 20
MAX_NOTE_ID = 2**63 - 1  # note ids are Postgres bigint identities


class BadInput(Exception):
    """A client error: the status to answer and a message naming what was wrong and what is allowed."""

    def __init__(self, status: int, message: str, *, close_connection: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close_connection = close_connection
        """The rest of the request may still be on its way: answer with `Connection: close` rather than read it."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, at most `limit` bytes, read chunk by chunk: a larger body (declared or chunked) is a 413 as soon
    as it exceeds the limit, so memory stays bounded whatever the client sends; a body still arriving after
    `BODY_READ_TIMEOUT_SECONDS` is a 408, so a slow client cannot hold the request open."""
    too_large = BadInput(413, f"body must be at most {limit} bytes")
    declared = request.headers.get("content-length", "")  # digits only: the HTTP parser (h11) checked it
    if len(declared) > len(str(limit)) or (declared.isdigit() and int(declared) > limit):
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        message = f"the body must arrive within {BODY_READ_TIMEOUT_SECONDS:g} s"
        raise BadInput(408, message, close_connection=True) from None
    return bytes(body)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from strict UTF-8; invalid encodings, numbers and nesting are client errors."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(400, "body must be UTF-8 encoded JSON") from None
    try:
        payload = json.loads(text, parse_int=_short_int, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; deep nesting exhausts the C stack guard
        raise BadInput(400, "body must be a JSON object (no numbers over 20 digits, NaN or Infinity)") from None
    if not isinstance(payload, dict):
        raise BadInput(422, "body must be a JSON object")
    return payload


def checked_text(payload: dict[str, Any], key: str, *, min_length: int, max_length: int) -> str:
    """payload[key] as text Postgres can store: a string of min-max characters without NUL or lone surrogates."""
    value = payload.get(key)
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        raise BadInput(422, f"{key} must be a string of {min_length}-{max_length} characters")
    if "\x00" in value:
        raise BadInput(422, f"{key} must not contain NUL characters (Postgres text cannot store them)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(422, f"{key} must be valid Unicode (no unpaired surrogates such as \\ud800)") from None
    return value


def bounded_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an int when it is plain ASCII digits within low-high, else None (never a conversion error)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= len(str(high)) and low <= int(raw) <= high:
        return int(raw)
    return None


def note_id_or_none(raw: str) -> int | None:
    return bounded_int(raw, 1, MAX_NOTE_ID)


def _short_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ValueError("number too long")
    return int(literal)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
