"""TLS Ingress specs: the only way outside traffic reaches the namespace (every Service is ClusterIP), and the
ingress-nginx annotations that limit what one client may send through it."""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import Edge

CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"
NGINX_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


def tls_annotations(cluster_issuer: str | None) -> dict[str, str]:
    """With a cert-manager ClusterIssuer, cert-manager creates and renews the TLS Secret the Ingress names."""
    return {CLUSTER_ISSUER_ANNOTATION: cluster_issuer} if cluster_issuer else {}


def nginx_limit_annotations(edge: Edge) -> dict[str, str]:
    """ingress-nginx's per-Ingress limits (kubernetes/ingress-nginx `docs/user-guide/nginx-configuration/
    annotations.md`, "Custom max body size" and "Rate Limiting"): `proxy-body-size` is nginx's
    `client_max_body_size` (413 above it; nginx sizes: `k` = 1024 bytes); `limit-rps` requests per second from one
    client IP with a burst of `limit-burst-multiplier` times that, and `limit-connections` concurrent connections
    per client IP (503 above either, `limit-req-status-code`). Counters are per controller replica. Values are
    strings: annotations hold only strings."""
    return {
        f"{NGINX_ANNOTATION_PREFIX}{name}": value
        for name, value in (
            ("proxy-body-size", f"{edge.max_body_bytes // 1024}k"),
            ("limit-rps", str(edge.requests_per_second)),
            ("limit-burst-multiplier", str(edge.burst_multiplier)),
            ("limit-connections", str(edge.connections_per_client)),
        )
    }


def tls_ingress_spec(
    *,
    host: str,
    class_name: str,
    tls_secret: str,
    service_name: pulumi.Input[str],
    port_name: str,
    paths: list[str],
) -> dict[str, Any]:
    backend = {"service": {"name": service_name, "port": {"name": port_name}}}
    return {
        "ingress_class_name": class_name,
        "tls": [{"hosts": [host], "secret_name": tls_secret}],
        "rules": [
            {
                "host": host,
                "http": {"paths": [{"path": path, "path_type": "Prefix", "backend": backend} for path in paths]},
            }
        ],
    }
