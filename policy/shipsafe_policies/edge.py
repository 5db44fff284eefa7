"""Edge family: what the public Ingress or HTTPRoute lets one client send, and which paths it exposes.

Checks what is rendered, per controller: ingress-nginx reads its annotations (kubernetes/ingress-nginx
`docs/user-guide/nginx-configuration/annotations.md`: `proxy-body-size`, `limit-rps`, `limit-connections`); an
HTTPRoute has no such field (kubernetes-sigs/gateway-api `apis/v1/httproute_types.go`), so it is limited only by an
Envoy Gateway BackendTrafficPolicy that targets it (envoyproxy/gateway `api/v1alpha1/backendtrafficpolicy_types.go`
`requestBuffer`, `ratelimit_types.go`). A route no such policy covers is unprotected, whatever runs the Gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource

from . import k8s
from .framework import Config, Finding, HasProps, Item, Section, Setting, item_by_item
from .k8s import dig, items, number

SECTION = Section(__name__, "edge", topic="Sec; Availability")

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
TRAFFIC_POLICY = "kubernetes:gateway.envoyproxy.io/v1alpha1:BackendTrafficPolicy"
NGINX = "nginx.ingress.kubernetes.io/"
_ANNOTATIONS = ("metadata.annotations",)
# nginx sizes (`ngx_parse_size`): bytes, or k/m/g in units of 1024.
_NGINX_SIZE = re.compile(r"^([0-9]+)([kKmMgG]?)$")
_NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Kubernetes quantities as Envoy Gateway's `requestBuffer.limit` accepts them (its CRD pattern).
_QUANTITY = re.compile(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_QUANTITY_UNITS = {"": 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 10**3, "M": 10**6}
_QUANTITY_UNITS |= {"G": 10**9, "T": 10**12}
# ratelimit_types.go `RateLimitUnit`.
_UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Week": 604800}
_EXEMPT = Setting(
    "array",
    ["registry"],
    "app.kubernetes.io/component values of routes that are not the app (the in-cluster registry takes image "
    "layers, behind htpasswd).",
    {"type": "string"},
)


def _size(text: Any, pattern: re.Pattern[str], units: Mapping[str, int]) -> int | None:
    match = pattern.match(str(text)) if isinstance(text, str | int) else None
    return int(match.group(1)) * units[match.group(2) or ""] if match else None


def _exempt(res: HasProps, config: Config) -> bool:
    return k8s.labels(res).get(k8s.COMPONENT) in list(config["exemptComponents"])


def _body_problem(where: str, size: int | None, config: Config) -> str | None:
    limit = number(config["maxBodyBytes"]) or 0
    if size is None:
        return f"{where} is not a size"
    if size == 0:
        return f"{where} is 0, which disables the body limit"
    if size > limit:
        return f"{where} allows {size} bytes, above maxBodyBytes {limit:.0f}"
    return None


def _rate_problem(where: str, per_second: float | None, config: Config) -> str | None:
    limit = number(config["maxRequestsPerSecond"]) or 0
    if per_second is None or per_second <= 0:
        return f"{where} is not a positive rate"
    if per_second > limit:
        return f"{where} allows {per_second:g} requests per second per client, above maxRequestsPerSecond {limit:g}"
    return None


def _ingress_findings(res: HasProps, config: Config, item: Item) -> Iterator[Finding]:
    annotations = dig(res.props, "metadata", "annotations") or {}
    platform = ("maxBodyBytes", "maxRequestsPerSecond")
    with item():
        body = annotations.get(NGINX + "proxy-body-size")
        if body is None:
            yield Finding(f"set {NGINX}proxy-body-size (without it ingress-nginx forwards up to 1m)", _ANNOTATIONS)
        elif problem := _body_problem(
            f"{NGINX}proxy-body-size {body!r}", _size(body, _NGINX_SIZE, _NGINX_UNITS), config
        ):
            yield Finding(problem, _ANNOTATIONS, platform)
    with item():
        rps = annotations.get(NGINX + "limit-rps")
        if rps is None:
            yield Finding(f"set {NGINX}limit-rps: without it one client may send without limit", _ANNOTATIONS)
        elif problem := _rate_problem(f"{NGINX}limit-rps {rps!r}", number(_integer(rps)), config):
            yield Finding(problem, _ANNOTATIONS, platform)
    with item():
        connections = number(_integer(annotations.get(NGINX + "limit-connections")))
        if connections is None or connections < 1:
            yield Finding(f"set {NGINX}limit-connections to a positive number of connections per client", _ANNOTATIONS)


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _targets(policy: PolicyResource, route: PolicyResource) -> bool:
    same_namespace = dig(policy.props, "metadata", "namespace") == dig(route.props, "metadata", "namespace")
    name = dig(route.props, "metadata", "name")
    return same_namespace and any(
        ref.get("kind") == "HTTPRoute" and ref.get("name") == name
        for ref in items(dig(policy.props, "spec", "targetRefs"))
    )


def _per_client_rates(spec: Mapping[str, Any]) -> list[float]:
    """Requests per second of each rate-limit rule that counts every client address separately."""
    rates = []
    for scope in ("local", "global"):
        for rule in items(dig(spec, "rateLimit", scope, "rules")):
            distinct = any(
                dig(selector, "sourceCIDR", "type") == "Distinct"
                and dig(selector, "sourceCIDR", "value") == "0.0.0.0/0"
                for selector in items(rule.get("clientSelectors"))
            )
            requests, unit = number(dig(rule, "limit", "requests")), _UNIT_SECONDS.get(dig(rule, "limit", "unit"))
            if distinct and requests is not None and unit:
                rates.append(requests / unit)
    return rates


def _traffic_policy_findings(policy: PolicyResource, config: Config, item: Item) -> Iterator[Finding]:
    spec = dig(policy.props, "spec") or {}
    platform = ("maxBodyBytes", "maxRequestsPerSecond")
    with item():
        limit = dig(spec, "requestBuffer", "limit")
        if limit is None:
            yield Finding("set spec.requestBuffer.limit: without it Envoy forwards bodies of any size", ("spec",))
        elif problem := _body_problem(
            f"requestBuffer.limit {limit!r}", _size(limit, _QUANTITY, _QUANTITY_UNITS), config
        ):
            yield Finding(problem, ("spec",), platform)
    with item():
        rates = _per_client_rates(spec)
        if not rates:
            yield Finding(
                "add a rateLimit rule with clientSelectors [{sourceCIDR: {type: Distinct, value: 0.0.0.0/0}}]: "
                "without it one client may send without limit",
                ("spec",),
            )
        elif problem := _rate_problem("the per-client rateLimit", min(rates), config):
            yield Finding(problem, ("spec",), platform)


@SECTION.stack(
    "edge-request-limits",
    "Every public route limits the request body and the request rate per client: ingress-nginx annotations on an "
    "Ingress, an Envoy Gateway BackendTrafficPolicy on an HTTPRoute.",
    "Set shipsafe:app.edge (maxBodySize, requestsPerSecond); with the Gateway API use controller envoy-gateway, "
    "whose BackendTrafficPolicy carries the limits.",
    fields=_ANNOTATIONS,
    exemptComponents=_EXEMPT,
    maxBodyBytes=Setting("number", 1048576, "Largest request body a route may allow, in bytes.", platform=True),
    maxRequestsPerSecond=Setting("number", 100, "Highest per-client request rate a route may allow.", platform=True),
)
@item_by_item
def check_edge_limits(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str | Finding, str | None]]:
    policies = k8s.of_type(resources, TRAFFIC_POLICY)
    for route in k8s.of_type(resources, INGRESS, HTTP_ROUTE):
        with item():
            if _exempt(route, config):
                continue
            if route.resource_type == INGRESS:
                yield from ((finding, route.urn) for finding in _ingress_findings(route, config, item))
                continue
            covering = [policy for policy in policies if _targets(policy, route)]
            if not covering:
                yield (
                    f"no BackendTrafficPolicy targets HTTPRoute {dig(route.props, 'metadata', 'name')}: the Gateway "
                    "API has no body-size or rate-limit field, so nothing limits it (set shipsafe:app.edge.controller "
                    "to envoy-gateway, or use ingress-nginx)",
                    route.urn,
                )
            for policy in covering:
                yield from ((finding, policy.urn) for finding in _traffic_policy_findings(policy, config, item))


def _routes(prefix_or_exact: tuple[str, str], path: str) -> bool:
    """Whether a Prefix (element-wise, or by characters as some controllers match) or Exact match reaches `path`."""
    kind, value = prefix_or_exact
    if kind == "Exact":
        return value.rstrip("/") == path.rstrip("/")
    elements, target = [e for e in value.split("/") if e], [e for e in path.split("/") if e]
    return path.startswith(value) or target[: len(elements)] == elements


def _matches(res: HasProps) -> Iterator[tuple[str, str]]:
    """Every (match type, path) the route serves, with the defaults the API server would fill in."""
    if res.resource_type == INGRESS:
        if dig(res.props, "spec", "defaultBackend") is not None:
            yield "Prefix", "/"
        for rule in items(dig(res.props, "spec", "rules")):
            for path in items(dig(rule, "http", "paths")):
                kind = "Exact" if path.get("pathType") == "Exact" else "Prefix"
                yield kind, path.get("path") or "/"
        return
    # gateway-api httproute_types.go `+kubebuilder:default`: no rules or no matches means PathPrefix "/".
    for rule in items(dig(res.props, "spec", "rules")) or [{}]:
        for match in items(rule.get("matches")) or [{}]:
            kind, value = dig(match, "path", "type") or "PathPrefix", dig(match, "path", "value") or "/"
            yield ("Exact" if kind == "Exact" else "Prefix" if kind == "PathPrefix" else kind), value


@SECTION.resource(
    "edge-internal-paths",
    "Public routes never reach the metrics or probe paths (readiness names the backends that are down).",
    "Remove the path from shipsafe:app.publicPaths; Prometheus and the kubelet reach the pods directly.",
    types=(INGRESS, HTTP_ROUTE),
    fields=("spec.rules",),
    internalPaths=Setting(
        "array",
        ["/metrics", "/healthz", "/readyz"],
        "Paths the app serves only inside the cluster.",
        {"type": "string"},
    ),
    exemptComponents=_EXEMPT,
)
@item_by_item
def check_internal_paths(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if _exempt(res, config):
        return
    with item():
        for kind, value in _matches(res):
            if kind not in ("Exact", "Prefix"):
                yield f"path match {kind} {value!r} cannot be checked; route the public paths by PathPrefix or Exact"
                continue
            for internal in config["internalPaths"]:
                if _routes((kind, value), internal):
                    yield f"path {value!r} routes {internal} to the internet; list only public paths"


_SNIPPET = re.compile(r"-snippets?$")


@SECTION.resource(
    "edge-no-nginx-snippets",
    "No ingress-nginx snippet annotation (configuration-, server-, auth-, stream-snippet): raw nginx config runs in "
    "the controller, which can read every Secret it may (CVE-2021-25742); controllers from 1.9 ignore them by default.",
    "Use the controller's dedicated annotations (rate limits, body size, headers) instead of a snippet.",
    types=(INGRESS,),
    fields=_ANNOTATIONS,
    topic="Sec",
)
@item_by_item
def check_no_nginx_snippets(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    with item():
        annotations = dig(res.props, "metadata", "annotations") or {}
        for key in annotations:  # keys are always known
            if key.startswith(NGINX) and _SNIPPET.search(key):
                yield f"remove {key}: snippets inject raw nginx config into the shared controller (CVE-2021-25742)"
