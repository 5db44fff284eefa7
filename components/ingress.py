"""TLS Ingress specs: the only way outside traffic reaches the namespace (every Service is ClusterIP)."""

from __future__ import annotations

from typing import Any

import pulumi

CLUSTER_ISSUER_ANNOTATION = "cert-manager.io/cluster-issuer"


def tls_annotations(cluster_issuer: str | None) -> dict[str, str]:
    """With a cert-manager ClusterIssuer, cert-manager creates and renews the TLS Secret the Ingress names."""
    return {CLUSTER_ISSUER_ANNOTATION: cluster_issuer} if cluster_issuer else {}


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
