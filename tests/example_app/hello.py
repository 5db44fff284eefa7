"""A tiny app with its own contract: PORT, /live, /ready, /stats, and its backing services at PG_URL and CACHE_URL."""

import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROUTES = {"/live": b"ok", "/ready": b"ok", "/stats": b"hello_requests_total 0\n", "/greet": b"hello"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = ROUTES.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"")


if __name__ == "__main__":
    ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
