"""A fake Kubernetes API server: the read-only endpoints the prerequisite check uses, over real HTTP(S).

`ClusterState.answer` is the one description of what the cluster returns; `FakeApiServer` serves it on 127.0.0.1
(stdlib `http.server` in a daemon thread, bounded by a socket timeout) and records every request, and
`InProcessCluster` answers the same without a socket for tests that are not about the HTTP client.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

PODMONITOR_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/podmonitors.monitoring.coreos.com"
STORAGE_CLASSES_PATH = "/apis/storage.k8s.io/v1/storageclasses"
INGRESS_CLASSES_PATH = "/apis/networking.k8s.io/v1/ingressclasses"
CLUSTER_ISSUERS_PATH = "/apis/cert-manager.io/v1/clusterissuers"
GATEWAY_GROUP = "gateway.networking.k8s.io"


def gateway(name: str, listeners: dict[str, str]) -> dict[str, Any]:
    """A Gateway with `listeners` (name -> protocol)."""
    items = [{"name": n, "protocol": p, "port": 443 if p == "HTTPS" else 80} for n, p in listeners.items()]
    return {"kind": "Gateway", "metadata": {"name": name}, "spec": {"gatewayClassName": "eg", "listeners": items}}


def storage_class(name: str, *, default: bool) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "provisioner": "rancher.io/local-path"}


@dataclass
class ClusterState:
    git_version: str = "v1.31.2"
    crds: set[str] = field(default_factory=lambda: {"podmonitors.monitoring.coreos.com"})
    storage_classes: list[dict[str, Any]] = field(default_factory=lambda: [storage_class("standard", default=True)])
    ingress_classes: set[str] = field(default_factory=lambda: {"nginx"})
    gateways: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(namespace, name) -> Gateway object; served only while `crds` holds httproutes.gateway.networking.k8s.io."""
    cluster_issuers: set[str] = field(default_factory=set)
    """Served only while `crds` holds clusterissuers.cert-manager.io, as a real API server does."""
    forced_status: int | None = None
    """Answer every request with this status (e.g. 403) instead."""
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.forced_status is not None:
            return self.forced_status, {"kind": "Status", "code": self.forced_status}
        if path == "/version":
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            return 200, {"major": major, "minor": minor, "gitVersion": self.git_version}
        prefix = PODMONITOR_PATH.rsplit("/", 1)[0] + "/"
        if path.startswith(prefix) and path.removeprefix(prefix) in self.crds:
            return 200, {"kind": "CustomResourceDefinition", "metadata": {"name": path.removeprefix(prefix)}}
        if path == STORAGE_CLASSES_PATH:
            return 200, {"kind": "StorageClassList", "items": self.storage_classes}
        collection, _, name = path.rpartition("/")
        if collection == INGRESS_CLASSES_PATH and name in self.ingress_classes:
            return 200, {"kind": "IngressClass", "metadata": {"name": name}}
        gateway_api = "httproutes.gateway.networking.k8s.io" in self.crds
        parts = path.split("/")  # /apis/gateway.networking.k8s.io/v1/namespaces/<ns>/gateways/<name>
        if gateway_api and len(parts) == 8 and parts[2:4] == [GATEWAY_GROUP, "v1"] and parts[6] == "gateways":
            gateway = self.gateways.get((parts[5], parts[7]))
            if gateway is not None:
                return 200, gateway
        served = "clusterissuers.cert-manager.io" in self.crds
        if collection == CLUSTER_ISSUERS_PATH and served and name in self.cluster_issuers:
            return 200, {"kind": "ClusterIssuer", "metadata": {"name": name}}
        return 404, {"kind": "Status", "code": 404}


@dataclass
class InProcessCluster:
    state: ClusterState = field(default_factory=ClusterState)

    def get(self, path: str) -> dict[str, Any] | None:
        self.state.requests.append((path, {}))
        status, body = self.state.answer(path)
        return body if status == 200 else None


def _handler(state: ClusterState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append((self.path, dict(self.headers)))
            status, body = state.answer(self.path)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: the recorded requests are what the tests look at."""

    return Handler


@contextmanager
def fake_api_server(state: ClusterState, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serves `state` until the block ends; yields the server URL for a kubeconfig."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.timeout = 5
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_kubeconfig(
    path: Path, server: str, *, user: dict[str, Any] | None = None, cluster: dict[str, Any] | None = None
) -> Path:
    """A one-context kubeconfig like `kind` writes, with the given user and extra cluster fields."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kind-e2e",
        "clusters": [{"name": "kind-e2e", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "kind-e2e", "user": user if user is not None else {"token": "test-token"}}],
        "contexts": [{"name": "kind-e2e", "context": {"cluster": "kind-e2e", "user": "kind-e2e"}}],
    }
    path.write_text(yaml.safe_dump(document))
    return path
