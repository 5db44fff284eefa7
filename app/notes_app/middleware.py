"""ASGI middleware at the edge of the app: which hosts it answers to, and connection reuse during shutdown."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TrustedHostMiddleware:
    """Answers only requests for an allowed host name or an IP literal, else 400.

    IP literals: the kubelet's probes and Prometheus's scrapes send the pod IP as Host, and an IP cannot be
    rebound by DNS (the attack a host allowlist stops). Unlike Starlette's own, this one never redirects.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...]) -> None:
        self.app = app
        self._names = frozenset(host for host in allowed_hosts if not host.startswith("*."))
        self._suffixes = tuple(host[1:] for host in allowed_hosts if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(Headers(scope=scope).get("host", "")):
            await JSONResponse({"error": "unknown host"}, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, header: str) -> bool:
        host = _host_part(header.strip().lower())
        if host in self._names or (self._suffixes and host.endswith(self._suffixes)):
            return True
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True


def _host_part(header: str) -> str:
    """The host of a Host header without its port; IPv6 literals come in brackets ([::1]:3002)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class CloseConnectionsWhenDrainingMiddleware:
    """Once shutdown has begun, every response carries `Connection: close`.

    A client (or ingress controller) keeping a keep-alive connection open would otherwise reuse it until the
    server closes it at the end of the drain; a request it sends at that moment is lost. With this header the
    client closes the connection after each response instead, and a load balancer that saw /readyz fail opens
    no new one.
    """

    def __init__(self, app: ASGIApp, draining: Callable[[], bool]) -> None:
        self.app = app
        self._draining = draining

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_close(message: Message) -> None:
            if message["type"] == "http.response.start" and self._draining():
                headers = [(name, value) for name, value in message.get("headers", []) if name != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_with_close)
