"""Network exposure: default-deny, least-access NetworkPolicies, internal Services, TLS Ingresses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, Finding, HasProps, Item, Section, Setting, item_by_item
from ..indexes import LabelIndex
from ..k8s import Lookup, dig, items, number
from ..reading import Memo

SECTION = Section(__name__, "network", topic="Sec")


def _is_default_deny(spec: Mapping[str, Any]) -> bool:
    return (
        not dig(spec, "podSelector", "matchLabels")
        and not dig(spec, "podSelector", "matchExpressions")
        and {"Ingress", "Egress"} <= set(items(spec.get("policyTypes")))
        and not items(spec.get("ingress"))
        and not items(spec.get("egress"))
    )


@SECTION.stack(
    "network-default-deny",
    "Every workload's namespace has a default-deny NetworkPolicy for ingress and egress.",
    "Add a NetworkPolicy with podSelector {} and policyTypes [Ingress, Egress] and no rules.",
)
@item_by_item
def check_default_deny(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[str, str | None]]:
    denied = Lookup()
    for policy in k8s.of_type(resources, k8s.NETWORK_POLICY):
        with denied.adding():  # the spec first: a policy that is no default-deny never needs its namespace
            if _is_default_deny(policy.props.get("spec") or {}):
                denied.entries[dig(policy.props, "metadata", "namespace")] = policy
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        with item():
            namespace = dig(workload.props, "metadata", "namespace")
            if not denied.has(namespace):
                yield (
                    f"{k8s.display(workload)}: namespace {namespace} has no default-deny NetworkPolicy "
                    "(podSelector: {}, policyTypes [Ingress, Egress], no rules); add one",
                    workload.urn,
                )


DNS_PORT = 53.0
Port = tuple[Any, float | None]
"""A declared container port: (its name, its number)."""


def _ports(workload: HasProps) -> list[Port]:
    """Every port the workload's containers declare."""
    ports = []
    for _, container in k8s.workload_containers(workload):
        for port in items(container.get("ports")):
            value = number(port.get("containerPort"))  # read before the name, as `k8s.named_ports` reads them
            ports.append((port.get("name"), value))
    return ports


@dataclass(frozen=True)
class Pods:
    """Every workload of the stack by its pod labels (one scope: a NetworkPolicy's peers may be in any namespace),
    and what the checks read of each workload, read once per policy call however many NetworkPolicies ask."""

    index: LabelIndex[PolicyResource]
    labels: Memo[PolicyResource, Mapping[str, Any]]
    app: Memo[PolicyResource, bool]
    ports: Memo[PolicyResource, list[Port]]

    def named(self, workloads: list[Any]) -> dict[str, set[float]]:
        """The workloads' port names and the numbers they stand for (`k8s.named_ports`)."""
        named: dict[str, set[float]] = {}
        for workload in workloads:
            for name, value in self.ports(workload):
                if name and value is not None:
                    named.setdefault(name, set()).add(value)
        return named

    def declared(self, workloads: list[Any]) -> set[float]:
        """Every containerPort the workloads' pods declare: what they serve, so all a NetworkPolicy may admit."""
        return {value for workload in workloads for _, value in self.ports(workload) if value is not None}


@SECTION.stack(
    "network-least-access",
    "NetworkPolicies select pods and never open 0.0.0.0/0; Postgres/Redis admit only app pods on the "
    "ports they declare; the app's ports admit only the ingress and monitoring namespaces; DNS goes only "
    "to kube-dns on 53; every egress rule of app pods names its ports.",
    "Narrow peers to the app's pods or the listed namespaces by label, name exact ports, send DNS "
    "only to kube-dns; remove world-wide ipBlocks.",
    topic="Sec; IV Backing services",
    fields=("spec.ingress", "spec.egress"),
    **k8s.APP_SETTINGS,
    ingressNamespaces=Setting(
        "array",
        ["ingress-nginx"],
        "Namespaces of the ingress controller: they may reach the app's HTTP port.",
        {"type": "string"},
        platform=True,
    ),
    monitoringNamespaces=Setting(
        "array",
        ["monitoring"],
        "Namespaces of the Prometheus that scrapes metrics: they may reach the app's HTTP port.",
        {"type": "string"},
        platform=True,
    ),
    dnsNamespace=Setting("string", "kube-system", "Namespace of the cluster DNS pods."),
    dnsPodLabels=Setting(
        "object",
        {"k8s-app": "kube-dns"},
        "Labels of the cluster DNS pods (CoreDNS keeps k8s-app=kube-dns).",
        values={"type": "string"},
    ),
)
@item_by_item
def check_least_access(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[Finding, str | None]]:
    # Every rule is judged against all pods' labels: one unknown label leaves the policy to the SDK (not run).
    pods = Pods(
        LabelIndex(),
        Memo(k8s.pod_labels),
        Memo(lambda workload: k8s.is_app_workload(workload, config)),
        Memo(_ports),
    )
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        pods.index.add(None, pods.labels(workload), workload)
    for policy in k8s.of_type(resources, k8s.NETWORK_POLICY):
        where = k8s.display(policy)
        with item():
            for message, platform in _least_access_findings(policy.props.get("spec") or {}, pods, config, item):
                yield Finding(f"{where}: {message}", ("spec.ingress", "spec.egress"), platform), policy.urn


# Only who reaches the app's port is the platform owner's to widen.
_APP_PORT_SETTINGS = ("ingressNamespaces", "monitoringNamespaces")


def _least_access_findings(
    spec: Mapping[str, Any], pods: Pods, config: Config, item: Item
) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(message, the platform settings that would allow it)."""
    selected = list(pods.index.selected_by(None, spec.get("podSelector")))
    if not selected:
        yield "selects no pod of this stack; fix its podSelector or delete it", ()
    for check in (_no_world_peers, _backing_clients, _backing_ports, _app_port_sources, _dns_egress, _egress_ports):
        platform = _APP_PORT_SETTINGS if check is _app_port_sources else ()
        with item():  # an unknown value skips just this check of this policy
            for message in check(spec, selected, pods, config):
                yield message, platform


def _no_world_peers(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        for rule in items(spec.get(direction)):
            for peer in items(rule.get(peer_key)):
                if dig(peer, "ipBlock", "cidr") in ("0.0.0.0/0", "::/0"):
                    yield f"{direction} peer {peer['ipBlock']['cidr']} is the whole world"


def _backing(selected: list[Any], pods: Pods, config: Config) -> list[Any]:
    return [w for w in selected if pods.labels(w).get(k8s.COMPONENT) in list(config["backingComponents"])]


def _backing_clients(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    if not _backing(selected, pods, config):
        return
    for rule in items(spec.get("ingress")):
        peers = items(rule.get("from"))
        if not peers:
            yield "ingress to a backing service must name its client pods"
        for peer in peers:
            clients = list(pods.index.selected_by(None, peer.get("podSelector")))
            foreign = [k8s.display(w) for w in clients if not pods.app(w)]
            if peer.get("ipBlock") or peer.get("namespaceSelector") is not None or not clients or foreign:
                yield (
                    "backing-service ingress must come only from the app's own pods in this "
                    f"namespace{' (also admits ' + ', '.join(foreign) + ')' if foreign else ''}"
                )


def _backing_ports(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    by_component: dict[str, list[Any]] = {}
    for workload in _backing(selected, pods, config):
        by_component.setdefault(pods.labels(workload)[k8s.COMPONENT], []).append(workload)
    for component, workloads in sorted(by_component.items()):
        served = pods.declared(workloads)
        named = pods.named(workloads)
        shown = ", ".join(f"{p:.0f}" for p in sorted(served)) or "(none declared)"
        for index, rule in enumerate(items(spec.get("ingress")), start=1):
            if any(start != end or start not in served for start, end in k8s.port_spans(rule, named)):
                yield (
                    f"ingress rule {index} admits more than port {shown} on the {component} pods; "
                    f"set its ports to the ones the pods declare ({shown})"
                )


def _app_port_sources(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    app = [w for w in selected if pods.app(w)]
    if not app:
        return
    allowed = [*config["ingressNamespaces"], *config["monitoringNamespaces"]]
    fix = f"admit only namespaceSelector {k8s.NAMESPACE_NAME} in [{', '.join(allowed)}]"
    named = pods.named(app)
    served = sorted(pods.declared(app))  # the app's port is what its pods declare, never a copy of it here
    for index, rule in enumerate(items(spec.get("ingress")), start=1):
        spans = k8s.port_spans(rule, named)
        port = next((p for p in served if k8s.admits(spans, p)), None)
        if port is None:
            continue
        peers = items(rule.get("from"))
        if not peers:
            yield f"ingress rule {index} opens the app's port {port:.0f} to every source; {fix}"
        for peer in peers:
            if not k8s.pins(peer.get("namespaceSelector"), k8s.NAMESPACE_NAME, allowed) or peer.get("ipBlock"):
                yield f"ingress rule {index} admits {_describe(peer)} on the app's port {port:.0f}; {fix}"


def _describe(peer: Mapping[str, Any]) -> str:
    if peer.get("ipBlock"):
        return f"ipBlock {dig(peer, 'ipBlock', 'cidr')}"
    if peer.get("namespaceSelector") is None:
        return "pods of its own namespace"
    selector = peer["namespaceSelector"]
    namespaces = k8s.pinned_values(selector, k8s.NAMESPACE_NAME)
    if namespaces is not None:
        return f"namespaces {', '.join(sorted(namespaces)) or '(none)'}"
    if dig(selector, "matchLabels") or dig(selector, "matchExpressions"):
        return f"namespaces not pinned by {k8s.NAMESPACE_NAME}"
    return "any namespace"


def _is_cluster_dns(peer: Mapping[str, Any], config: Config) -> bool:
    pod_selector = peer.get("podSelector")
    return (
        k8s.pins(peer.get("namespaceSelector"), k8s.NAMESPACE_NAME, [config["dnsNamespace"]])
        and pod_selector is not None
        and all(k8s.pins(pod_selector, key, [value]) for key, value in config["dnsPodLabels"].items())
        and not peer.get("ipBlock")
    )


def _dns_egress(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    dns_labels = ", ".join(f"{k}={v}" for k, v in config["dnsPodLabels"].items())
    kube_dns = f"namespaceSelector {k8s.NAMESPACE_NAME}={config['dnsNamespace']} with podSelector {dns_labels}"
    for index, rule in enumerate(items(spec.get("egress")), start=1):
        peers = items(rule.get("to"))
        spans = k8s.port_spans(rule, {})
        # Port-less rules are the egress-ports check's business; here a rule is DNS when it names port 53.
        if items(rule.get("ports")) and k8s.admits(spans, DNS_PORT):
            if not peers:
                yield f"egress rule {index} sends DNS (port 53) to every destination; send it only to {kube_dns}"
            for peer in peers:
                if not _is_cluster_dns(peer, config):
                    yield f"egress rule {index} sends DNS (port 53) to {_describe(peer)}; send it only to {kube_dns}"
        if any(_is_cluster_dns(peer, config) for peer in peers) and any(s != (DNS_PORT, DNS_PORT) for s in spans):
            yield f"egress rule {index} reaches kube-dns on more than port 53; set its ports to 53 (UDP and TCP)"


def _egress_ports(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    if not any(pods.app(w) for w in selected):
        return
    for index, rule in enumerate(items(spec.get("egress")), start=1):
        entries = items(rule.get("ports"))
        if not entries or any(entry.get("port") is None for entry in entries):
            target = "every destination" if not items(rule.get("to")) else "its peers"
            yield f"egress rule {index} of app pods allows every port to {target}; list the ports the app needs"


@SECTION.resource(
    "network-service-internal-only",
    "Services are ClusterIP (no NodePort, LoadBalancer or externalIPs); Ingresses terminate TLS.",
    "Use type ClusterIP and route outside traffic through an Ingress/Gateway with TLS.",
    types={k8s.SERVICE, k8s.INGRESS},
    topic="Sec; VII Port binding",
)
@item_by_item
def check_service_internal(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type == k8s.INGRESS:
        with item():
            hosts = {h for rule in items(dig(res.props, "spec", "rules")) for h in [rule.get("host")] if h}
            covered = {h for tls in items(dig(res.props, "spec", "tls")) for h in items(tls.get("hosts"))}
            if not items(dig(res.props, "spec", "tls")) or hosts - covered:
                yield f"terminate TLS for every host ({', '.join(sorted(hosts - covered)) or 'all'}) in spec.tls"
        return
    with item():
        kind = dig(res.props, "spec", "type") or "ClusterIP"
        if kind != "ClusterIP":
            yield f"type {kind} exposes the Service outside the cluster; use ClusterIP behind an Ingress with TLS"
    with item():
        if items(dig(res.props, "spec", "externalIPs")):
            yield "remove externalIPs (CVE-2020-8554)"
