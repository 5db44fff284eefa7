"""References that must resolve: every name one object gives another (a port, a Service, a Secret key, a workload)
names something the stack declares, so nothing breaks only once it runs.

These are stack policies: they read each resource's outputs, which for Kubernetes are the API server's objects
(defaults filled in, controller labels and generated selectors added, `status`). So a selector "selects" a pod when
its labels are a subset of the pod's (never equal), an absent Service `targetPort` is the `port` the server fills
in (`SetDefaults_Service`), and extra fields are ignored. Values unknown until `up` (a generated password's Secret)
skip just the reference that reads them, and the policy is listed as not fully run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource

from . import k8s
from .framework import Config, HasProps, Item, Section, item_by_item
from .indexes import workloads_by_pod_labels
from .k8s import Lookup, dig, items, number

SECTION = Section(__name__, "refs", topic="Correctness")


@SECTION.stack(
    "refs-service-target-ports",
    "Every Service port's targetPort (a name or a number; absent means its port) is a port the selected pods declare.",
    "Name the container port (ports: [{name: http, containerPort: 3002}]) and set the Service's targetPort to that "
    "name (shipsafe:app.port).",
    fields=("spec.ports",),
)
@item_by_item
def check_service_target_ports(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    pods, index = workloads_by_pod_labels(resources)
    for service in k8s.of_type(resources, k8s.SERVICE):
        with item():
            namespace = dig(service.props, "metadata", "namespace")
            selected = index.served_by(namespace, dig(service.props, "spec", "selector"))
            if not selected:
                continue  # a Service selecting nothing is rollout-selector-integrity's finding
            for port in items(dig(service.props, "spec", "ports")):
                with item():
                    target = port.get("targetPort")
                    target = port.get("port") if target is None else target  # SetDefaults_Service
                    lacking = [
                        k8s.display(w)
                        for w in selected
                        if not any(k8s.declares_port(c, target) for c in k8s.serving_containers(w))
                    ]
                    if lacking:
                        yield (
                            f"{k8s.display(service)}: targetPort {_shown(target)} is not a containerPort of "
                            f"{', '.join(lacking)}; traffic to it is refused",
                            service.urn,
                        )
                    else:
                        pods.ensure_complete()  # a selected workload read as unknown might lack it


def _shown(port: Any) -> str:
    value = number(port)
    return f"{value:.0f}" if value is not None else str(port)


def _services(resources: list[PolicyResource]) -> Lookup:
    """(namespace, name) -> the Service's port names and port numbers."""
    services = Lookup()
    for service in k8s.of_type(resources, k8s.SERVICE):
        with services.adding():
            key = (dig(service.props, "metadata", "namespace"), dig(service.props, "metadata", "name"))
            ports = items(dig(service.props, "spec", "ports"))
            services.entries[key] = ({p.get("name") for p in ports}, {number(p.get("port")) for p in ports})
    return services


HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def _backends(route: PolicyResource) -> Iterator[tuple[Any, Any, Any]]:
    """(namespace, Service name, port name or number) of each Service a route sends traffic to."""
    namespace = dig(route.props, "metadata", "namespace")
    spec = dig(route.props, "spec") or {}
    if route.resource_type == k8s.INGRESS:
        backends = [dig(spec, "defaultBackend")] + [
            dig(path, "backend") for rule in items(spec.get("rules")) for path in items(dig(rule, "http", "paths"))
        ]
        for backend in backends:
            service = dig(backend, "service")
            if service is not None:
                port = dig(service, "port", "number")
                yield namespace, service.get("name"), number(port) if port is not None else dig(service, "port", "name")
        return
    for rule in items(spec.get("rules")):
        for ref in items(rule.get("backendRefs")):
            # gateway-api `BackendObjectReference`: group "" and kind Service by default; other kinds aren't ours.
            if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service":
                yield ref.get("namespace") or namespace, ref.get("name"), number(ref.get("port"))


@SECTION.stack(
    "refs-route-backends",
    "Every Ingress and HTTPRoute backend names a Service of the stack and a port that Service exposes.",
    "Route to the app's Service by its name and its port name (http); both come from shipsafe:app.",
    fields=("spec.rules",),
    topic="Correctness; VII Port binding",
)
@item_by_item
def check_route_backends(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    services = _services(resources)
    for route in k8s.of_type(resources, k8s.INGRESS, HTTP_ROUTE):
        with item():
            for namespace, name, port in _backends(route):
                with item():
                    ports = services.get((namespace, name))
                    where = k8s.display(route)
                    if ports is None:
                        yield f"{where}: backend Service {name} is not a Service of the stack in {namespace}", route.urn
                    elif port not in (ports[0] if isinstance(port, str) else ports[1]):
                        yield f"{where}: Service {name} exposes no port {_shown(port)}", route.urn


def _stores(resources: list[PolicyResource], type_: str) -> Lookup:
    """(namespace, name) -> the Secret or ConfigMap (its keys are read only where a reference needs them)."""
    stores = Lookup()
    for store in k8s.of_type(resources, type_):
        with stores.adding():
            stores.entries[(dig(store.props, "metadata", "namespace"), dig(store.props, "metadata", "name"))] = store
    return stores


def _keys(store: PolicyResource) -> set[Any]:
    """The keys a Secret or ConfigMap holds: `data` (a Secret's `stringData` comes back in it), `stringData` as
    declared, `binaryData`. Iterating keys never reads a value, so secret values unknown in preview still give
    their keys; a map that is unknown as a whole raises."""
    return {key for field in ("data", "stringData", "binaryData") for key in (store.props.get(field) or {})}


def _references(spec: Mapping[str, Any] | None) -> Iterator[tuple[str, str, Any, Any]]:
    """(where, kind, name, key or None) of every Secret and ConfigMap the pod spec needs (optional ones left out)."""
    for container in k8s.containers(spec):
        label = f"container {dig(container, 'name') or '?'}"
        for variable in items(container.get("env")):
            for field, kind in (("secretKeyRef", k8s.SECRET), ("configMapKeyRef", k8s.CONFIG_MAP)):
                ref = dig(variable, "valueFrom", field)
                if ref is not None and ref.get("optional") is not True:
                    yield f"{label} env {variable.get('name')}", kind, ref.get("name"), ref.get("key")
        for source in items(container.get("envFrom")):
            for field, kind in (("secretRef", k8s.SECRET), ("configMapRef", k8s.CONFIG_MAP)):
                ref = source.get(field)
                if ref is not None and ref.get("optional") is not True:
                    yield f"{label} envFrom", kind, ref.get("name"), None
    for pull in items(dig(spec, "imagePullSecrets")):
        yield "imagePullSecrets", k8s.SECRET, pull.get("name"), None
    for volume in items(dig(spec, "volumes")):
        sources = [volume] + [s for s in items(dig(volume, "projected", "sources"))]
        for source in sources:
            for field, kind, name_key in (("secret", k8s.SECRET, "secretName"), ("configMap", k8s.CONFIG_MAP, "name")):
                ref = source.get(field)
                if ref is None or ref.get("optional") is True:
                    continue
                name = ref.get(name_key) or ref.get("name")
                where = f"volume {volume.get('name')}"
                yield where, kind, name, None
                for entry in items(ref.get("items")):
                    yield where, kind, name, entry.get("key")


@SECTION.stack(
    "refs-config-keys",
    "Every Secret and ConfigMap a pod reads (env secretKeyRef/configMapKeyRef, envFrom, volumes and their items, "
    "imagePullSecrets) is one of the stack, in the pod's namespace, holding the key named.",
    "Reference the stack's Secret/ConfigMap by its name and an existing key, or mark the reference optional: true "
    "when the pod copes without it.",
    topic="Correctness; III Config",
    fields=("container.env", "container.envFrom", "pod.volumes"),
)
@item_by_item
def check_config_keys(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[str, str | None]]:
    stores = {kind: _stores(resources, kind) for kind in (k8s.SECRET, k8s.CONFIG_MAP)}
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        with item():
            namespace = dig(workload.props, "metadata", "namespace")
            for where, kind, name, key in _references(k8s.pod_spec(workload)):
                with item():  # one reference: its store's keys may be unknown until up
                    store = stores[kind].get((namespace, name))
                    named = f"{k8s.display(workload)} {where}: {kind.rsplit(':', 1)[-1]} {name}"
                    if store is None:
                        yield f"{named} is not defined in the stack", workload.urn
                    elif key is not None and key not in _keys(store):
                        yield f"{named} has no key {key}", workload.urn


@SECTION.stack(
    "refs-hpa-target",
    "Every HorizontalPodAutoscaler scales a Deployment, StatefulSet or ReplicaSet of the stack in its namespace.",
    "Point scaleTargetRef (apiVersion apps/v1, kind, name) at the workload's exact name.",
    topic="Correctness; VIII Concurrency",
    fields=("spec.scaleTargetRef",),
)
@item_by_item
def check_hpa_target(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[str, str | None]]:
    workloads = k8s.scale_targets(resources)
    for hpa in k8s.of_type(resources, k8s.HPA):
        with item():
            ref = dig(hpa.props, "spec", "scaleTargetRef") or {}
            type_, namespace, name = k8s.scale_target(hpa)
            if type_ is None or not workloads.has((type_, namespace, name)):
                shown = f"{ref.get('apiVersion')} {ref.get('kind')} {ref.get('name')}"
                yield f"{k8s.display(hpa)}: scaleTargetRef {shown} is no workload of the stack in {namespace}", hpa.urn


def _undeclared(ports: list[Any], workloads: list[PolicyResource]) -> Iterator[Any]:
    """The single ports (name or number; ranges and `every port` aside) that no serving container of `workloads`
    declares."""
    containers = [c for workload in workloads for c in k8s.serving_containers(workload)]
    for entry in ports:
        port = entry.get("port")
        if (
            port is not None
            and entry.get("endPort") is None
            and not any(k8s.declares_port(c, port) for c in containers)
        ):
            yield port


@SECTION.stack(
    "refs-network-policy-rules",
    "NetworkPolicy rules name what exists: each pod peer (podSelector in the policy's namespace) selects pods of the "
    "stack, each ingress port is one the selected pods declare, and each egress port one the peer pods declare; "
    "anything else admits nothing and drops the traffic it was written for (backing services' ingress: "
    "network-least-access).",
    "Select peers and ports with the labels and port names the workloads carry (http, postgres, redis).",
    topic="Correctness; Sec",
    fields=("spec.ingress", "spec.egress"),
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_network_policy_rules(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    pods, index = workloads_by_pod_labels(resources)
    backing = list(config["backingComponents"])
    for policy in k8s.of_type(resources, k8s.NETWORK_POLICY):
        with item():
            where, namespace = k8s.display(policy), dig(policy.props, "metadata", "namespace")
            selected = list(index.selected_by(namespace, dig(policy.props, "spec", "podSelector")))
            guards_backing = any(k8s.pod_labels(w).get(k8s.COMPONENT) in backing for w in selected)
            for direction, key in (("ingress", "from"), ("egress", "to")):
                if direction == "ingress" and guards_backing:
                    continue  # who and which ports may reach a backing service is network-least-access's
                for number_of_rule, rule in enumerate(items(dig(policy.props, "spec", direction)), start=1):
                    with item():
                        named = f"{where}: {direction} rule {number_of_rule}"
                        peers = [p for p in items(rule.get(key)) if p.get("namespaceSelector") is None]
                        peer_pods = [list(index.selected_by(namespace, p.get("podSelector"))) for p in peers]
                        for peer, found in zip(peers, peer_pods, strict=True):
                            if peer.get("podSelector") is not None and not found:
                                pods.ensure_complete()  # a workload read as unknown might be the peer
                                yield f"{named}: its podSelector peer selects no pod of the stack", policy.urn
                        # Ingress ports are the selected pods'; egress ports those of pod peers (when all are).
                        owners = selected if direction == "ingress" else [w for found in peer_pods for w in found]
                        judged = direction == "ingress" or (peers and len(peers) == len(items(rule.get(key))))
                        for port in _undeclared(items(rule.get("ports")), owners) if owners and judged else ():
                            yield f"{named} names port {_shown(port)}, which none of its pods declares", policy.urn
                        if owners and judged:
                            pods.ensure_complete()  # a workload read as unknown might change the verdict


def _own_selectors(spec: Mapping[str, Any] | None) -> Iterator[tuple[str, Mapping[str, Any] | None]]:
    """(where, labelSelector) of each constraint that spreads the pod away from its own replicas: topology spread
    constraints and pod anti-affinity terms that look in the pod's own namespace (podAffinity means other pods)."""
    for index, constraint in enumerate(items(dig(spec, "topologySpreadConstraints")), start=1):
        yield f"topologySpreadConstraints[{index}]", constraint.get("labelSelector")
    anti = dig(spec, "affinity", "podAntiAffinity") or {}
    required = items(anti.get("requiredDuringSchedulingIgnoredDuringExecution"))
    preferred = [dig(t, "podAffinityTerm") for t in items(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))]
    for index, term in enumerate([*required, *preferred], start=1):
        if term is not None and not items(term.get("namespaces")) and term.get("namespaceSelector") is None:
            yield f"podAntiAffinity term {index}", term.get("labelSelector")


@SECTION.resource(
    "refs-spread-selects-own-pods",
    "Topology spread constraints and pod anti-affinity select the pod's own labels (else they spread nothing).",
    "Use the workload's selector labels (app.kubernetes.io/name and instance) as the labelSelector.",
    types=k8s.WORKLOADS,
    fields=("pod.topologySpreadConstraints", "pod.affinity"),
    topic="Correctness; Availability",
)
@item_by_item
def check_spread_selects_own_pods(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    with item():
        labels = k8s.pod_labels(res)
        for where, selector in _own_selectors(k8s.pod_spec(res)):
            with item():
                if not k8s.selector_matches(selector, labels):
                    yield f"{where}: its labelSelector does not select this pod's own labels, so it spreads nothing"


@SECTION.resource(
    "refs-volume-mounts",
    "Every volumeMount names a volume of the pod (or a StatefulSet's volumeClaimTemplate); the API server refuses "
    "the pod at `up` otherwise, long after a passing preview.",
    "Declare the volume in the pod spec (or the claim template) under the name the mount uses.",
    types=k8s.WORKLOADS,
    fields=("container.volumeMounts", "pod.volumes"),
)
@item_by_item
def check_volume_mounts(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    # kubernetes pkg/apis/core/validation/validation.go `ValidateVolumeMounts`: a name no volume has is NotFound.
    with item():
        claims = [dig(c, "metadata", "name") for c in items(dig(res.props, "spec", "volumeClaimTemplates"))]
        volumes = {v.get("name") for v in items(dig(k8s.pod_spec(res), "volumes"))} | set(claims)
        for label, container in k8s.workload_containers(res):
            for mount in [*items(container.get("volumeMounts")), *items(container.get("volumeDevices"))]:
                with item():
                    if mount.get("name") not in volumes:
                        yield f"{label}: mount {mount.get('name')} names no volume of the pod; declare it"
