"""A fake Prometheus on 127.0.0.1 for the answers a real one never gives: bad JSON, huge bodies, a byte-drip.

`answer(query)` picks a Reply for each `/api/v1/query`; the server records what it sent so tests can show the
client stopped reading early.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CHUNK = b"0" * 65536


@dataclass
class Sent:
    """What the fake wrote, across every connection."""

    body_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        with self.lock:
            self.body_bytes += count


class Reply:
    def send(self, handler: BaseHTTPRequestHandler, sent: Sent, stop: threading.Event) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Body(Reply):
    body: bytes
    status: int = 200

    def send(self, handler: BaseHTTPRequestHandler, sent: Sent, stop: threading.Event) -> None:
        handler.send_response(self.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        handler.wfile.write(self.body)
        sent.add(len(self.body))


def vector(*samples: tuple[dict[str, str], str]) -> Body:
    """A well-formed instant-vector answer; values are strings as Prometheus writes them ("NaN", "-Inf")."""
    result = [{"metric": labels, "value": [1700000000.0, value]} for labels, value in samples]
    return Body(json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode())


@dataclass(frozen=True)
class Endless(Reply):
    """`total_bytes` of a JSON-looking body in 64 KiB writes, optionally declaring its length up front."""

    total_bytes: int
    declare_length: bool = False

    def send(self, handler: BaseHTTPRequestHandler, sent: Sent, stop: threading.Event) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if self.declare_length:
            handler.send_header("Content-Length", str(self.total_bytes))
        else:
            handler.send_header("Connection", "close")  # body ends when the connection does
        handler.end_headers()
        handler.wfile.write(b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"')
        for _ in range(self.total_bytes // len(CHUNK)):
            if stop.is_set():
                return
            handler.wfile.write(CHUNK)
            sent.add(len(CHUNK))


@dataclass(frozen=True)
class Drip(Reply):
    """A valid answer, status line included, one byte every `every_seconds`."""

    every_seconds: float

    def send(self, handler: BaseHTTPRequestHandler, sent: Sent, stop: threading.Event) -> None:
        body = vector(({}, "1")).body
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for byte in raw:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            sent.add(1)
            if stop.wait(self.every_seconds):
                return


@dataclass(frozen=True)
class Late(Reply):
    """`reply`, after `seconds` (issue 17: every answer 9 s late)."""

    reply: Reply
    seconds: float

    def send(self, handler: BaseHTTPRequestHandler, sent: Sent, stop: threading.Event) -> None:
        if not stop.wait(self.seconds):
            self.reply.send(handler, sent, stop)


@dataclass
class FakePrometheus:
    url: str
    sent: Sent
    queries: list[str]


@contextmanager
def fake_prometheus(answer: Callable[[str], Reply]) -> Iterator[FakePrometheus]:
    sent, queries, stop = Sent(), [], threading.Event()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK wait between them

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query).get("query", [""])[0]
            queries.append(query)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: as it should
                answer(query).send(self, sent, stop)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield FakePrometheus(f"http://127.0.0.1:{server.server_port}", sent, queries)
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
