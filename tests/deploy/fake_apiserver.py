"""A fake Kubernetes API server: the read-only endpoints the prerequisite check uses, over real HTTP(S).

Besides the prerequisites themselves it serves API discovery (`/api/v1`, `/apis/<group>/<version>`) and single
objects (`ClusterState.objects`) at their REST paths, as kube-apiserver does.

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
# What discovery lists (`kubectl api-resources`): group version -> (resource, kind, namespaced). Subresources are
# listed too, as the API server does. A group outside BUILT_IN_GROUPS is served only while `crds` holds its CRD.
SERVED_RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("namespaces", "Namespace", False),
        ("namespaces/status", "Namespace", False),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("services/status", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("serviceaccounts/token", "TokenRequest", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("pods", "Pod", True),
    ],
    "apps/v1": [
        ("deployments", "Deployment", True),
        ("deployments/scale", "Scale", True),
        ("deployments/status", "Deployment", True),
        ("statefulsets", "StatefulSet", True),
    ],
    "batch/v1": [("jobs", "Job", True), ("jobs/status", "Job", True), ("cronjobs", "CronJob", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [
        ("networkpolicies", "NetworkPolicy", True),
        ("ingresses", "Ingress", True),
        ("ingresses/status", "Ingress", True),
        ("ingressclasses", "IngressClass", False),
    ],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "storage.k8s.io/v1": [("storageclasses", "StorageClass", False)],
    "monitoring.coreos.com/v1": [("podmonitors", "PodMonitor", True)],
    "gateway.networking.k8s.io/v1": [("gateways", "Gateway", True), ("httproutes", "HTTPRoute", True)],
    "gateway.envoyproxy.io/v1alpha1": [("backendtrafficpolicies", "BackendTrafficPolicy", True)],
    "cert-manager.io/v1": [("clusterissuers", "ClusterIssuer", False)],
}
BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "networking.k8s.io", "autoscaling", "storage.k8s.io"}


def prerequisite_paths(state: ClusterState) -> set[str]:
    """The GETs sent, without those of the existing-objects check (discovery roots and object paths)."""
    paths = {path for path, _ in state.requests}
    discovery = {f"/api/{v}" if "/" not in v else f"/apis/{v}" for v in SERVED_RESOURCES}
    return {p for p in paths if p not in discovery and "/namespaces/" not in p and not p.startswith("/api/v1/")}


def k8s_object(api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """An object as something other than the stack made it (by hand, or an earlier install)."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


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
    objects: list[dict[str, Any]] = field(default_factory=list)
    """Objects served at their REST paths (`k8s_object`), whichever version of their group is asked for."""
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
        return self._discovery_or_object(path)

    def _served(self, api_version: str) -> list[tuple[str, str, bool]]:
        group = api_version.rpartition("/")[0]
        resources = SERVED_RESOURCES.get(api_version, [])
        if group in BUILT_IN_GROUPS:
            return resources
        return [r for r in resources if f"{r[0].split('/')[0]}.{group}" in self.crds]

    def _discovery_or_object(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        root = 2 if parts[0] == "api" else 3  # /api/v1/... or /apis/<group>/<version>/...
        api_version = "/".join(parts[1:root])
        served = self._served(api_version)
        rest = parts[root:]
        if served and not rest:
            resources = [{"name": n, "kind": k, "namespaced": ns, "verbs": ["get"]} for n, k, ns in served]
            return 200, {"kind": "APIResourceList", "groupVersion": api_version, "resources": resources}
        namespace, rest = (rest[1], rest[2:]) if len(rest) == 4 and rest[0] == "namespaces" else ("", rest)
        kinds = {plural: (kind, namespaced) for plural, kind, namespaced in served}
        if len(rest) == 2 and rest[0] in kinds and kinds[rest[0]][1] == bool(namespace):
            wanted = (api_version.rpartition("/")[0], kinds[rest[0]][0], namespace, rest[1])
            for obj in self.objects:
                metadata = obj["metadata"]
                have = (
                    obj["apiVersion"].rpartition("/")[0],
                    obj["kind"],
                    metadata.get("namespace", ""),
                    metadata["name"],
                )
                if have == wanted:
                    return 200, obj
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
