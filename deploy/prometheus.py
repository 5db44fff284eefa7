"""A Prometheus instant-query client (HTTP API `/api/v1/query`) that its server can neither hold nor flood.

Each query has one overall deadline (connect, headers and body together: a per-read timeout would let a server
dripping a byte every few seconds hold the caller indefinitely) and a cap on the answer's size, read as a stream.
Whatever goes wrong ends as one `ShipsafeError` line with the PROMETHEUS_UNAVAILABLE exit code.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from deploy.errors import ExitCode, ShipsafeError

DEADLINE_SECONDS = 10.0
MAX_ANSWER_BYTES = 1 << 20  # verification's answers are a few kB; anything near this is not an answer
_QUERY_SHOWN_CHARS = 160


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float
    """As Prometheus sent it: NaN, infinities and negative values included; the verifier judges them."""


# Everything after the scheme up to the last "@" before any query or fragment: a userinfo may hold "/" and "@"
# unencoded as users type them, and masking a path that holds "@" too is the safe mistake.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^?#]*@")


def without_credentials(url: str) -> str:
    """`url` with its userinfo (basic-auth user and password, the client's only way to authenticate) as `***`:
    the only form in which a Prometheus URL is printed, in text, JSON and errors alike."""
    return _USERINFO.sub(lambda match: f"{match.group('scheme') or ''}***@", url, count=1)


class MetricsSource(Protocol):
    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        """The instant vector `promql` evaluates to at Unix time `at`, answered within `timeout_seconds` (when given
        and shorter than the source's own deadline)."""
        ...


class AnswerError(ValueError):
    """The answer is not the query API's JSON for an instant vector."""


class PrometheusClient:
    def __init__(
        self,
        base_url: str,
        *,
        deadline_seconds: float = DEADLINE_SECONDS,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = without_credentials(self.base_url)
        self._deadline_seconds = deadline_seconds
        self._max_answer_bytes = max_answer_bytes
        self._tls = httpx.create_ssl_context()  # once: loading the CA bundle per query costs ~60 ms

    def query(self, promql: str, at: float, *, timeout_seconds: float | None = None) -> list[Sample]:
        deadline = self._deadline_seconds if timeout_seconds is None else min(self._deadline_seconds, timeout_seconds)
        try:
            status, body = asyncio.run(self._fetch(promql, at, max(deadline, 0.0)))
            return parse_vector(status, body)
        except TimeoutError:
            reason = f"no complete answer within {deadline:g}s"
        except (httpx.HTTPError, httpx.InvalidURL, OSError, AnswerError) as error:
            reason = f"{type(error).__name__}: {error}".replace(self.base_url, self.shown_url)
        shown = promql if len(promql) <= _QUERY_SHOWN_CHARS else promql[:_QUERY_SHOWN_CHARS] + "…"
        message = f"Prometheus at {self.shown_url} did not answer properly ({reason}) to {shown}"
        raise ShipsafeError(" ".join(message.split()), ExitCode.PROMETHEUS_UNAVAILABLE) from None

    async def _fetch(self, promql: str, at: float, deadline: float) -> tuple[int, bytes]:
        # Seconds as a plain number: the API reads a float first (prometheus `web/api/v1/api.go` `parseDuration`),
        # and its duration syntax would refuse a fraction such as "2.5s".
        params = {"query": promql, "time": f"{at:.3f}", "timeout": f"{deadline:.3f}"}
        # identity: a compressed answer could expand far beyond the cap in one decoded chunk.
        headers = {"Accept-Encoding": "identity"}
        url = f"{self.base_url}/api/v1/query"
        async with (
            asyncio.timeout(deadline),
            httpx.AsyncClient(timeout=deadline, verify=self._tls) as client,
            client.stream("GET", url, params=params, headers=headers) as response,
        ):
            encoding = response.headers.get("content-encoding", "identity")
            if encoding != "identity":
                raise AnswerError(f"answer is {encoding}-encoded although identity was asked for")
            return response.status_code, await self._capped_body(response)

    async def _capped_body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_answer_bytes:
            raise AnswerError(f"answer of {declared} bytes is over the {self._max_answer_bytes}-byte cap")
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) > self._max_answer_bytes:
                raise AnswerError(f"answer is over the {self._max_answer_bytes}-byte cap")
        return bytes(body)


def parse_vector(status: int, body: bytes) -> list[Sample]:
    """The samples of a query API answer (https://prometheus.io/docs/prometheus/latest/querying/api/)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # not JSON, not UTF-8, or nested beyond the parser's depth
        raise AnswerError(f"HTTP {status}: the answer is not JSON ({type(error).__name__}: {error})") from None
    if not isinstance(document, dict):
        raise AnswerError(f"HTTP {status}: the answer is not a JSON object")
    if document.get("status") != "success" or status != 200:
        raise AnswerError(f"HTTP {status}, {document.get('errorType')}: {document.get('error')}")
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise AnswerError("the answer is not an instant vector")
    return [_sample(item) for item in data["result"]]


def _sample(item: Any) -> Sample:
    labels = item.get("metric") if isinstance(item, dict) else None
    point = item.get("value") if isinstance(item, dict) else None
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise AnswerError(f"a sample has no string labels: {str(item)[:80]}")
    if not isinstance(point, list) or len(point) != 2 or not isinstance(point[1], str):
        raise AnswerError(f'a sample has no [time, "value"] pair: {str(item)[:80]}')
    try:
        value = float(point[1])  # Prometheus writes NaN, +Inf and -Inf as strings float() reads
    except ValueError:
        raise AnswerError(f"a sample value is not a number: {point[1][:40]!r}") from None
    return Sample(labels, value)
