"""Outsiders cannot push the app over: malformed input is a 4xx (a 5xx would roll a healthy release back), bodies
are capped while they are read, labels stay bounded, hosts are checked, and nothing redirects on a Host header."""

from __future__ import annotations

import asyncio
import random
import select
import socket
import string
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from notes_app.payloads import BODY_READ_TIMEOUT_SECONDS
from notes_app.server import HEADER_READ_TIMEOUT_SECONDS
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import AppProcess, PostgresServer, RedisServer, app_env

pytestmark = pytest.mark.services

MIB = 1024 * 1024
BIG_BODY_BYTES = 100 * MIB
# What three 100 MB uploads may add to the process, at most: the app holds only its body cap per request.
RSS_GROWTH_LIMIT_BYTES = 30 * MIB
RANDOM_METHODS = 5000
STANDARD_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

MALFORMED_NOTES = {
    "NUL in a string": (b'{"title": "a\\u0000b", "body": "x"}', 422),
    "lone surrogate": (b'{"title": "\\ud800", "body": "x"}', 422),
    "invalid UTF-8": (b'{"title": "\xff\xfe", "body": "x"}', 400),
    "5000-digit number": (b'{"title": "t", "body": "x", "n": ' + b"7" * 5000 + b"}", 400),
    "NaN": (b'{"title": "t", "body": "x", "n": NaN}', 400),
    "nesting 30k deep (under the cap)": (b"[" * 30_000 + b"]" * 30_000, 400),
    "nesting 100k deep (over the cap)": (b"[" * 100_000 + b"]" * 100_000, 413),
    "not JSON": (b"title=x", 400),
    "a JSON array": (b'["x"]', 422),
}


@pytest.fixture
def app(postgres_server: PostgresServer, redis_server: RedisServer, migrated_database: str, start_app) -> AppProcess:
    return start_app(app_env(postgres_server, redis_server, migrated_database, ALLOWED_HOSTS="notes.example.com"))


@pytest.fixture
def client(app: AppProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.base_url, timeout=30) as client:
        yield client


def server_errors(client: httpx.Client) -> dict[str, float]:
    samples = _samples(client.get("/metrics").text, "http_requests_total")
    return {str(labels): value for labels, value in samples if labels["status"].startswith("5") and value}


@pytest.mark.parametrize("case", MALFORMED_NOTES)
def test_malformed_notes_are_client_errors(client: httpx.Client, case: str) -> None:
    body, expected = MALFORMED_NOTES[case]
    response = client.post("/notes", content=body, headers={"content-type": "application/json"})
    assert response.status_code == expected, f"{case}: {response.status_code} {response.text[:200]}"
    assert response.json()["error"], "the answer says what was wrong"
    assert not server_errors(client)


@pytest.mark.parametrize("note_id", ["7" * 4301, "9223372036854775808", "99999999999999999999", "12ab", "-1", "0"])
def test_ids_postgres_cannot_hold_are_not_found(client: httpx.Client, note_id: str) -> None:
    assert client.get(f"/notes/{note_id}").status_code == 404
    assert not server_errors(client)


def test_bodies_over_the_cap_are_refused_while_read_chunked_or_not(app: AppProcess, client: httpx.Client) -> None:
    before = _rss_bytes(app)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(BIG_BODY_BYTES // MIB):
            yield b"[" * MIB

    async def three_at_once() -> list[int]:
        async with httpx.AsyncClient(base_url=app.base_url, timeout=120) as upload:
            sized = [upload.post("/notes", content=b"[" * BIG_BODY_BYTES) for _ in range(2)]
            responses = await asyncio.gather(*sized, upload.post("/notes", content=chunked()))
            return [response.status_code for response in responses]

    loop = asyncio.new_event_loop()  # not asyncio.run(): it leaves no event loop behind for later tests
    try:
        statuses = loop.run_until_complete(three_at_once())
    finally:
        loop.close()
    growth = _rss_bytes(app) - before
    print(f"\n3 x 100 MB uploads at once: {statuses}; app RSS {before / MIB:.0f} MiB, +{growth / MIB:.1f} MiB after")
    assert statuses == [413, 413, 413]
    assert growth < RSS_GROWTH_LIMIT_BYTES
    assert client.post("/notes", json={"title": "still", "body": "serving"}).status_code == 201


def test_random_methods_do_not_grow_the_metrics(app: AppProcess, client: httpx.Client) -> None:
    _send_raw_requests(app.port, ["BREW"] * 4)  # the bounded OTHER series of each path, created before measuring
    before = client.get("/metrics").text
    rss_before = _rss_bytes(app)
    statuses = _send_raw_requests(app.port, [_random_method() for _ in range(RANDOM_METHODS)])
    after = client.get("/metrics").text
    series = [len(list(_all_samples(text))) for text in (before, after)]
    print(
        f"\n{RANDOM_METHODS} random methods: statuses {sorted(set(statuses))}; series {series[0]} -> {series[1]};"
        f" /metrics {len(before)} -> {len(after)} bytes; RSS +{(_rss_bytes(app) - rss_before) / MIB:.1f} MiB"
    )
    assert len(statuses) == RANDOM_METHODS and not [status for status in statuses if status >= 500]
    assert series[0] == series[1], "random methods created new series"
    methods = {labels["method"] for labels, _ in _samples(after, "http_requests_total")}
    assert methods - STANDARD_METHODS == {"OTHER"}, methods


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("notes.example.com", 200),
        ("NOTES.example.com:443", 200),
        ("127.0.0.1:3002", 200),  # the kubelet's probes and Prometheus's scrapes: the pod IP
        ("10.244.1.17", 200),
        ("[fd00::17]:3002", 200),
        ("localhost:3002", 400),  # the default, replaced by ALLOWED_HOSTS
        ("evil.example", 400),
        ("notes.example.com.evil.example", 400),
        ("", 400),
    ],
)
def test_only_trusted_hosts_are_served(client: httpx.Client, host: str, expected: int) -> None:
    assert client.get("/healthz", headers={"host": host}).status_code == expected


def test_a_host_header_never_drives_a_redirect(client: httpx.Client) -> None:
    for host in ("notes.example.com", "evil.example"):
        response = client.get("/notes/", headers={"host": host}, follow_redirects=False)
        assert response.status_code in (400, 404), f"{host}: {response.status_code}"
        assert "location" not in response.headers


def _random_method() -> str:
    """A random token that is not a standard method (a random `GET` or `PUT` would rightly get its own series)."""
    while (method := "".join(random.choices(string.ascii_uppercase, k=random.randint(3, 12)))) in STANDARD_METHODS:
        pass
    return method


def _send_raw_requests(port: int, methods: list[str]) -> list[int]:
    """One keep-alive connection per 500 methods, requests pipelined: fast, and any token reaches the app."""

    async def send(batch: list[str]) -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        paths = ("/notes", "/notes/1", "/healthz", "/nowhere")
        requests = [f"{method} {paths[i % 4]} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" for i, method in enumerate(batch)]
        writer.write("".join(requests).encode())
        await writer.drain()
        statuses = []
        for _ in batch:
            status_line = await reader.readline()
            statuses.append(int(status_line.split()[1]))
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()
        return statuses

    async def everything() -> list[int]:
        batches = [methods[start : start + 500] for start in range(0, len(methods), 500)]
        results = await asyncio.gather(*(send(batch) for batch in batches))
        return [status for result in results for status in result]

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(everything())
    finally:
        loop.close()


def _all_samples(text: str) -> Iterator[tuple[dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.labels, sample.value


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _rss_bytes(app: AppProcess) -> int:
    for line in Path(f"/proc/{app.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


ABORTED_UPLOADS = 200
HEADLESS_CONNECTIONS = 300
SLOW_BODIES = 50


def _post_counts(client: httpx.Client) -> Counter[str]:
    """POST /notes requests by status, as the metrics count them."""
    counts: Counter[str] = Counter()
    for labels, value in _samples(client.get("/metrics").text, "http_requests_total"):
        if labels["method"] == "POST" and labels["route"] == "/notes":
            counts[labels["status"]] += int(value)
    return counts


def test_uploads_the_client_aborts_are_client_aborts_never_server_errors(app: AppProcess, client: httpx.Client) -> None:
    # Issue 17: 200 aborted uploads took the 500 series from 50 to 250, enough to roll a healthy release back.
    before = _post_counts(client)
    head = b"POST /notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    for _ in range(ABORTED_UPLOADS):
        with socket.create_connection(("127.0.0.1", app.port), timeout=5) as connection:
            connection.sendall(head + b'{"title": "cut off mid-bo')
    deadline = time.monotonic() + 10
    while _post_counts(client)["499"] - before["499"] < ABORTED_UPLOADS and time.monotonic() < deadline:
        time.sleep(0.1)
    after = _post_counts(client)
    print(f"\n{ABORTED_UPLOADS} aborted uploads: POST /notes {dict(before)} -> {dict(after)}")
    assert after["499"] - before["499"] == ABORTED_UPLOADS
    assert not server_errors(client)
    logged = [line for line in app.log_lines() if line.get("level") in ("error", "critical")]
    assert not logged, logged[:3]


def test_slow_heads_and_slow_bodies_are_closed_at_their_deadlines(app: AppProcess, client: httpx.Client) -> None:
    # Issue 17: 300 connections that never finished their heads stayed open 40 s, 50 slow bodies 30 s.
    def connect(first_bytes: bytes) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", app.port), timeout=5)
        connection.sendall(first_bytes)
        return connection

    head = b"POST /notes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
    heads = [connect(b"") for _ in range(HEADLESS_CONNECTIONS // 2)]  # not a byte
    heads += [connect(b"GET /notes HTTP/1.1\r\nHost: 127.0") for _ in range(HEADLESS_CONNECTIONS // 2)]  # never ends
    bodies = [connect(head + b'{"title": "') for _ in range(SLOW_BODIES)]
    opened = time.monotonic()
    closed_after: dict[socket.socket, float] = {}
    answers: dict[socket.socket, bytes] = {connection: b"" for connection in bodies}
    bound = opened + HEADER_READ_TIMEOUT_SECONDS + BODY_READ_TIMEOUT_SECONDS + 10
    while len(closed_after) < len(heads) + len(bodies) and time.monotonic() < bound:
        for connection in [c for c in heads + bodies if c not in closed_after]:
            try:
                if connection in answers:
                    connection.sendall(b"x")  # a byte every 0.2 s: a per-read timeout would never fire
                if select.select([connection], [], [], 0)[0]:
                    data = connection.recv(65536)
                    if data:
                        answers[connection] += data
                        continue
                    closed_after[connection] = time.monotonic() - opened
            except (BrokenPipeError, ConnectionResetError):
                closed_after[connection] = time.monotonic() - opened
        time.sleep(0.2)
    for connection in heads + bodies:
        connection.close()
    head_times = [closed_after.get(c, float("inf")) for c in heads]
    body_times = [closed_after.get(c, float("inf")) for c in bodies]
    print(
        f"\n{len(heads)} unfinished heads closed after {min(head_times):.1f}-{max(head_times):.1f} s;"
        f" {len(bodies)} slow bodies answered 408 and closed after {min(body_times):.1f}-{max(body_times):.1f} s"
    )
    assert max(head_times) <= HEADER_READ_TIMEOUT_SECONDS + 2
    assert all(BODY_READ_TIMEOUT_SECONDS <= t <= BODY_READ_TIMEOUT_SECONDS + 2 for t in body_times), body_times
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers.values()), list(answers.values())[:2]
    assert _post_counts(client)["408"] == SLOW_BODIES and not server_errors(client)
    assert client.get("/healthz").status_code == 200
