"""The smoke checks over real HTTP on 127.0.0.1 (the app itself is covered in test_verify_prometheus.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.smoke import smoke
from tests.support.services import free_port


class _HalfBrokenApp(BaseHTTPRequestHandler):
    """The paged list answers, but /notes answers HTML instead of the JSON API."""

    def do_GET(self) -> None:
        body, kind = (b"<html>oops</html>", "text/html") if self.path == "/notes" else (b"[]", "application/json")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def half_broken_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HalfBrokenApp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_real_path_that_is_not_the_api_fails(half_broken_url):
    report = smoke(half_broken_url)
    assert [(check.path, check.passed) for check in report.checks] == [("/notes", False), ("/notes?limit=1", True)]
    assert report.checks[0].detail == "body is not JSON"
    assert not report.passed


def test_nothing_listening_fails_every_check():
    report = smoke(f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    assert not report.passed
    assert all("ConnectError" in check.detail for check in report.checks)
