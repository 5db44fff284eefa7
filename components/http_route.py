"""Gateway API route for `web` (the alternative to the ingress-nginx Ingress) and the Envoy Gateway policy that
limits it.

The Gateway API's HTTPRoute (kubernetes-sigs/gateway-api `apis/v1/httproute_types.go`, v1.6) has no field for a
request-body limit or a rate limit; each implementation offers its own policy attachment. Only Envoy Gateway's is
rendered here: a BackendTrafficPolicy (envoyproxy/gateway `api/v1alpha1/backendtrafficpolicy_types.go`, 1.4+)
targeting the route, with `requestBuffer.limit` (413 above it) and a local rate limit per distinct client IP
(`ratelimit_types.go` `SourceMatchDistinct`; 429 above it; counters per Envoy replica). TLS is the Gateway's: the
route attaches only to its HTTPS listener (`sectionName`).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.settings import Edge

GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTP_ROUTE_API_VERSION = f"{GATEWAY_GROUP}/v1"
TRAFFIC_POLICY_API_VERSION = "gateway.envoyproxy.io/v1alpha1"
# Every client address, IPv4 and IPv6; `Distinct` gives each address its own bucket.
ALL_CLIENTS = ("0.0.0.0/0", "::/0")


def http_route_spec(
    *,
    host: str,
    edge: Edge,
    service_name: pulumi.Input[str],
    service_port: int,
    paths: list[str],
) -> dict[str, Any]:
    """Routes `paths` of `host` to the Service; only through the Gateway's listener `edge.gatewayListener`."""
    parent: dict[str, Any] = {"name": edge.gateway_name, "sectionName": edge.gateway_listener}
    if edge.gateway_namespace:
        parent["namespace"] = edge.gateway_namespace
    return {
        "parentRefs": [parent],
        "hostnames": [host],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": path}} for path in paths],
                "backendRefs": [{"name": service_name, "port": service_port}],
            }
        ],
    }


def traffic_policy_spec(edge: Edge, route_name: str) -> dict[str, Any]:
    """The Envoy Gateway limits of the route named `route_name` (a policy targets routes in its own namespace)."""
    per_second = {"requests": edge.requests_per_second, "unit": "Second"}
    return {
        "targetRefs": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": route_name}],
        "requestBuffer": {"limit": edge.max_body_size},
        "rateLimit": {
            "local": {
                "rules": [
                    {"clientSelectors": [{"sourceCIDR": {"type": "Distinct", "value": cidr}}], "limit": per_second}
                    for cidr in ALL_CLIENTS
                ]
            }
        },
    }
