"""Security family: Pod Security Standards `restricted`, identity, images, exposure and metadata hygiene."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationPolicy, StackValidationPolicy

from . import k8s
from .framework import (
    ADVISORY,
    Config,
    Family,
    Finding,
    HasProps,
    Item,
    Setting,
    item_by_item,
    resource_policy,
    stack_policy,
)
from .images import IMAGE_BUILDS, matches_prefix, parse_image
from .k8s import Lookup, dig, items, number, workload_containers

FAMILY = Family("security", topic="Sec")


def _own_context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return dig(container, "securityContext") or {}


def _effective(field: str, container: Mapping[str, Any], spec: Mapping[str, Any] | None) -> Any:
    """A securityContext field as the kubelet applies it: the container's own setting, else the pod's."""
    own = _own_context(container)
    return own[field] if field in own else dig(spec, "securityContext", field)


# A. Pod and container hardening -------------------------------------------------------------------------------


@item_by_item
def check_run_as_non_root(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    spec = k8s.pod_spec(res)
    with item():
        if dig(spec, "securityContext") is None:
            yield "set spec.template.spec.securityContext with runAsNonRoot: true and a numeric runAsUser"
    for label, container in workload_containers(res):
        with item():
            if dig(spec, "securityContext") is not None and not _own_context(container):
                yield f"{label}: add a securityContext (runAsNonRoot, allowPrivilegeEscalation: false, ...)"
        with item():
            if _effective("runAsNonRoot", container, spec) is not True:
                yield f"{label}: set runAsNonRoot: true on the pod or the container"
        with item():
            if number(_effective("runAsUser", container, spec)) == 0:
                yield f"{label}: runAsUser is 0 (root); use the image's numeric non-root UID"


@item_by_item
def check_high_uid_gid(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if k8s.labels(res).get(k8s.COMPONENT) in list(config["backingComponents"]):
        return  # upstream Postgres/Redis images own their data directories as their own UID (999)
    minimum = float(config["minId"])
    spec = k8s.pod_spec(res)
    with item():
        if number(dig(spec, "securityContext", "fsGroup")) == 0:
            yield "fsGroup is 0; use the app's GID"
    with item():
        if any(number(g) == 0 for g in items(dig(spec, "securityContext", "supplementalGroups"))):
            yield "supplementalGroups contains 0; drop it"
    for label, container in workload_containers(res):
        for field in ("runAsUser", "runAsGroup"):
            with item():
                value = number(_effective(field, container, spec))
                if value is None or value < minimum:
                    yield f"{label}: set {field} >= {minimum:.0f} (and build the image with that numeric USER)"


@item_by_item
def check_no_privilege_escalation(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if _own_context(container).get("allowPrivilegeEscalation") is not False:
                yield f"{label}: set securityContext.allowPrivilegeEscalation: false explicitly"


@item_by_item
def check_no_privileged(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if _own_context(container).get("privileged") is True:
                yield f"{label}: remove privileged: true (it grants every capability and all host devices)"


@item_by_item
def check_read_only_root_fs(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if _own_context(container).get("readOnlyRootFilesystem") is not True:
                yield f"{label}: set readOnlyRootFilesystem: true and mount an emptyDir where it must write (/tmp)"


@item_by_item
def check_drop_all_capabilities(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if "ALL" not in items(dig(_own_context(container), "capabilities", "drop")):
                yield f"{label}: set securityContext.capabilities.drop: [ALL]"


@item_by_item
def check_no_added_capabilities(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    allowed = set(config["allowedCapabilities"])
    for label, container in workload_containers(res):
        with item():
            added = [c for c in items(dig(_own_context(container), "capabilities", "add")) if c not in allowed]
            if added:
                yield f"{label}: remove capabilities.add {added} (a port above 1023 needs none)"


@item_by_item
def check_seccomp(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    good = {"RuntimeDefault", "Localhost"}
    spec = k8s.pod_spec(res)
    for label, container in workload_containers(res):
        with item():
            profile = dig(_own_context(container), "seccompProfile", "type") or dig(
                spec, "securityContext", "seccompProfile", "type"
            )
            if profile not in good:
                yield f"{label}: set seccompProfile.type: RuntimeDefault on the pod (found {profile or 'none'})"


@item_by_item
def check_no_host_namespaces(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    spec = k8s.pod_spec(res)
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        with item():
            if dig(spec, field) is True:
                yield f"remove {field}: true (the pod would share the node's {field[4:].lower()} namespace)"
    for label, container in workload_containers(res):
        with item():
            for port in items(dig(container, "ports")):
                with item():
                    if dig(port, "hostPort"):
                        yield f"{label}: remove hostPort {number(port['hostPort']):.0f}; expose it through a Service"


@item_by_item
def check_allowed_volume_types(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    allowed = set(config["allowedTypes"])
    for volume in items(dig(k8s.pod_spec(res), "volumes")):
        with item():
            for kind in [k for k in volume if k != "name" and k not in allowed]:  # keys are always known
                yield f"volume {volume.get('name')}: {kind} volumes are not allowed; use emptyDir or a PVC"


_SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)
_SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")


def _context_findings(label: str, context: Mapping[str, Any], item: Item) -> Iterator[str]:
    """PSS baseline fields a pod or container securityContext may set."""
    with item():
        if context.get("procMount", "Default") != "Default":
            yield f"{label}: procMount must be Default"
    with item():
        if dig(context, "seLinuxOptions", "type") not in (None, *_SELINUX_TYPES):
            yield f"{label}: seLinuxOptions.type {dig(context, 'seLinuxOptions', 'type')} is not allowed"
    with item():
        if dig(context, "seLinuxOptions", "user") or dig(context, "seLinuxOptions", "role"):
            yield f"{label}: remove seLinuxOptions.user/role"
    with item():
        if dig(context, "appArmorProfile", "type") == "Unconfined":
            yield f"{label}: appArmorProfile must not be Unconfined"
    with item():
        if dig(context, "windowsOptions", "hostProcess") is True:
            yield f"{label}: windowsOptions.hostProcess is not allowed"


@item_by_item
def check_pss_baseline_misc(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    spec = k8s.pod_spec(res)
    with item():
        for sysctl in items(dig(spec, "securityContext", "sysctls")):
            with item():
                if sysctl.get("name") not in _SAFE_SYSCTLS:
                    yield f"remove sysctl {sysctl.get('name')}: only the PSS safe set is allowed"
    with item():
        annotations = dig(k8s.pod_template(res), "metadata", "annotations") or {}
        for key in annotations:
            with item():
                if key.startswith("container.apparmor.security.beta.kubernetes.io/") and (
                    annotations[key] == "unconfined"
                ):
                    yield f"annotation {key}: AppArmor must not be unconfined"
    with item():
        yield from _context_findings("pod", dig(spec, "securityContext") or {}, item)
    for label, container in workload_containers(res):
        with item():
            yield from _context_findings(label, _own_context(container), item)
        for hook in ("livenessProbe", "readinessProbe", "startupProbe", "preStop", "postStart"):
            with item():
                handler = dig(container, "lifecycle", hook) if hook.startswith("p") else dig(container, hook)
                if dig(handler, "httpGet", "host") or dig(handler, "tcpSocket", "host"):
                    yield f"{label}: remove `host` from probe/lifecycle handlers (it can reach other hosts)"


@item_by_item
def check_namespace_pss(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    labels = k8s.labels(res)
    level = config["pssLevel"]
    for mode in ("enforce", "audit", "warn"):
        key = f"pod-security.kubernetes.io/{mode}"
        with item():
            if labels.get(key) != level:
                yield f"label the namespace {key}={level}"
        with item():
            if not labels.get(f"{key}-version"):
                yield f"label the namespace {key}-version (a pinned version like v1.33, or latest)"


# B. Identity and RBAC -----------------------------------------------------------------------------------------


@item_by_item
def check_dedicated_service_account(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    accounts = Lookup()
    for account in k8s.of_type(resources, k8s.SERVICE_ACCOUNT):
        with accounts.adding():
            accounts.entries[(dig(account.props, "metadata", "namespace"), dig(account.props, "metadata", "name"))] = (
                account
            )
    owners: dict[tuple[Any, Any], set[Any]] = {}
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        where = k8s.display(workload)
        with item():
            if dig(k8s.pod_spec(workload), "serviceAccount"):
                yield f"{where}: replace the deprecated serviceAccount field by serviceAccountName", workload.urn
        with item():
            name = dig(k8s.pod_spec(workload), "serviceAccountName")
            if not name or name == "default":
                yield f"{where}: set serviceAccountName to a ServiceAccount of its own", workload.urn
                continue
            namespace = dig(workload.props, "metadata", "namespace")
            owners.setdefault((namespace, name), set()).add(k8s.labels(workload).get(k8s.COMPONENT))
            if not accounts.has((namespace, name)):
                yield f"{where}: ServiceAccount {name} is not defined in this stack; create it", workload.urn
    for (_, name), components in sorted(owners.items(), key=lambda kv: str(kv[0])):
        if len(components) > 1:
            listed = ", ".join(sorted(str(c) for c in components))
            yield f"ServiceAccount {name} is shared by components {listed}; give each its own", None


def check_no_token_automount(res: HasProps, config: Config) -> Iterator[str]:
    # One value decides: an unknown one leaves the policy to the SDK, which reports it as not run.
    if res.resource_type == k8s.SERVICE_ACCOUNT:
        if res.props.get("automountServiceAccountToken") is not False:
            yield "set automountServiceAccountToken: false on the ServiceAccount"
    elif dig(k8s.pod_spec(res), "automountServiceAccountToken") is not False:
        yield "set automountServiceAccountToken: false in the pod spec (the app never calls the API server)"


_RBAC = "kubernetes:rbac.authorization.k8s.io/v1:"
_CLUSTER_RBAC = frozenset({_RBAC + "ClusterRole", _RBAC + "ClusterRoleBinding"})
_DANGEROUS_VERBS = {"bind", "escalate", "impersonate"}
_EXEC_RESOURCES = {"pods/exec", "pods/attach", "nodes/proxy"}


@item_by_item
def check_rbac(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type in _CLUSTER_RBAC:
        yield "the app stack must not create cluster-wide RBAC; use a namespaced Role/RoleBinding"
    elif res.resource_type == _RBAC + "RoleBinding":
        with item():
            if dig(res.props, "roleRef", "name") in ("cluster-admin", "admin", "edit"):
                yield f"do not bind the built-in {dig(res.props, 'roleRef', 'name')} role"
        with item():
            for subject in items(res.props.get("subjects")):
                with item():
                    if subject.get("kind") == "ServiceAccount" and subject.get("name") == "default":
                        yield "do not bind roles to the default ServiceAccount"
    else:
        for rule in items(res.props.get("rules")):
            with item():
                yield from _rule_findings(rule)


def _rule_findings(rule: Mapping[str, Any]) -> Iterator[str]:
    verbs, resources = set(items(rule.get("verbs"))), set(items(rule.get("resources")))
    if "*" in verbs or "*" in resources or "*" in set(items(rule.get("apiGroups"))):
        yield "replace wildcards in Role rules by explicit verbs, resources and apiGroups"
    if "secrets" in resources and verbs & {"get", "list", "watch"}:
        yield "do not grant get/list/watch on secrets"
    if resources & _EXEC_RESOURCES and "create" in verbs:
        yield "do not grant create on pods/exec, pods/attach or nodes/proxy"
    if verbs & _DANGEROUS_VERBS:
        yield f"remove the verbs {sorted(verbs & _DANGEROUS_VERBS)}"


# C. Images ----------------------------------------------------------------------------------------------------


@item_by_item
def check_pull_policy(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            policy = container.get("imagePullPolicy")
            # The image (unknown in preview until it is built) matters only for IfNotPresent.
            if policy != "Always" and (
                policy != "IfNotPresent" or not parse_image(str(container.get("image") or "")).has_valid_digest
            ):
                yield f"{label}: use imagePullPolicy Always, or IfNotPresent with a digest-pinned image"


def _image_fields(res: HasProps) -> list[tuple[str, Mapping[str, Any], str]]:
    """(label, holder, key) of every image reference: each container's `image`, an image build's `imageName`."""
    if res.resource_type in k8s.WORKLOADS:
        return [(label, container, "image") for label, container in workload_containers(res)]
    return [("image build", res.props, "imageName")]


@item_by_item
def check_allowed_registries(res: HasProps, config: Config, item: Item) -> Iterator[Finding]:
    allowed = list(config["allowedRegistries"])
    for label, holder, key in _image_fields(res):
        with item():
            reference = holder.get(key)
            if isinstance(reference, str) and not matches_prefix(parse_image(reference), allowed):
                fields = ("container.image",) if res.resource_type in k8s.WORKLOADS else ("imageName",)
                message = f"{label}: {reference} is not from an allowed registry ({', '.join(allowed)})"
                yield Finding(message, fields, ("allowedRegistries",))


# D. Config and secrets (the twelve-factor family has the rest) --------------------------------------------------


@item_by_item
def check_secrets_as_files(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if k8s.is_app_workload(res, config):
        return  # twelve-factor III: the app reads DATABASE_URL/REDIS_URL from env (secretKeyRef), by design
    for label, container in workload_containers(res):
        with item():
            for variable in items(container.get("env")):
                with item():
                    if dig(variable, "valueFrom", "secretKeyRef"):
                        yield f"{label}: mount Secret {variable.get('name')} as a file and pass its *_FILE path instead"


# E. Resources ---------------------------------------------------------------------------------------------------


@item_by_item
def check_resources(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    required = [("requests", r) for r in config["requests"]] + [("limits", r) for r in config["limits"]]
    for label, container in workload_containers(res):
        missing = []
        for kind, name in required:
            with item():
                if not dig(container, "resources", kind, name):
                    missing.append(f"{kind}.{name}")
        if missing:
            yield f"{label}: set resources {', '.join(missing)}"
    with item():
        for volume in items(dig(k8s.pod_spec(res), "volumes")):
            with item():
                if "emptyDir" in volume and not dig(volume, "emptyDir", "sizeLimit"):
                    yield f"volume {volume.get('name')}: give the emptyDir a sizeLimit"


# F. Network -----------------------------------------------------------------------------------------------------


def _is_default_deny(spec: Mapping[str, Any]) -> bool:
    return (
        not dig(spec, "podSelector", "matchLabels")
        and not dig(spec, "podSelector", "matchExpressions")
        and {"Ingress", "Egress"} <= set(items(spec.get("policyTypes")))
        and not items(spec.get("ingress"))
        and not items(spec.get("egress"))
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


Pods = list[tuple[PolicyResource, Mapping[str, Any]]]
"""Every workload of the stack with its pod labels."""
DNS_PORT = 53.0


@item_by_item
def check_least_access(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[Finding, str | None]]:
    # Every rule is judged against all pods' labels: one unknown label leaves the policy to the SDK (not run).
    pods = [(w, k8s.pod_labels(w)) for w in k8s.of_type(resources, *k8s.WORKLOADS)]
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
    selected = [w for w, labels in pods if k8s.selector_matches(spec.get("podSelector"), labels)]
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


def _backing(selected: list[Any], config: Config) -> list[Any]:
    return [w for w in selected if k8s.pod_labels(w).get(k8s.COMPONENT) in list(config["backingComponents"])]


def _backing_clients(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    if not _backing(selected, config):
        return
    for rule in items(spec.get("ingress")):
        peers = items(rule.get("from"))
        if not peers:
            yield "ingress to a backing service must name its client pods"
        for peer in peers:
            clients = [w for w, labels in pods if k8s.selector_matches(peer.get("podSelector"), labels)]
            foreign = [k8s.display(w) for w in clients if not k8s.is_app_workload(w, config)]
            if peer.get("ipBlock") or peer.get("namespaceSelector") is not None or not clients or foreign:
                yield (
                    "backing-service ingress must come only from the app's own pods in this "
                    f"namespace{' (also admits ' + ', '.join(foreign) + ')' if foreign else ''}"
                )


def _declared_ports(workloads: list[Any]) -> set[float]:
    """Every containerPort the workloads' pods declare: what they serve, so all a NetworkPolicy may admit."""
    return {n for numbers in k8s.named_ports(workloads).values() for n in numbers} | {
        n
        for w in workloads
        for _, c in k8s.workload_containers(w)
        for p in items(c.get("ports"))
        if (n := number(p.get("containerPort"))) is not None
    }


def _backing_ports(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    by_component: dict[str, list[Any]] = {}
    for workload in _backing(selected, config):
        by_component.setdefault(k8s.pod_labels(workload)[k8s.COMPONENT], []).append(workload)
    for component, workloads in sorted(by_component.items()):
        served = _declared_ports(workloads)
        named = k8s.named_ports(workloads)
        shown = ", ".join(f"{p:.0f}" for p in sorted(served)) or "(none declared)"
        for index, rule in enumerate(items(spec.get("ingress")), start=1):
            if any(start != end or start not in served for start, end in k8s.port_spans(rule, named)):
                yield (
                    f"ingress rule {index} admits more than port {shown} on the {component} pods; "
                    f"set its ports to the ones the pods declare ({shown})"
                )


def _app_port_sources(spec: Mapping[str, Any], selected: list[Any], pods: Pods, config: Config) -> Iterator[str]:
    app = [w for w in selected if k8s.is_app_workload(w, config)]
    if not app:
        return
    allowed = [*config["ingressNamespaces"], *config["monitoringNamespaces"]]
    fix = f"admit only namespaceSelector {k8s.NAMESPACE_NAME} in [{', '.join(allowed)}]"
    named = k8s.named_ports(app)
    served = sorted(_declared_ports(app))  # the app's port is what its pods declare, never a copy of it here
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
    if not any(k8s.is_app_workload(w, config) for w in selected):
        return
    for index, rule in enumerate(items(spec.get("egress")), start=1):
        entries = items(rule.get("ports"))
        if not entries or any(entry.get("port") is None for entry in entries):
            target = "every destination" if not items(rule.get("to")) else "its peers"
            yield f"egress rule {index} of app pods allows every port to {target}; list the ports the app needs"


@item_by_item
def check_service_internal(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type == INGRESS:
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


# G. Metadata and API hygiene ----------------------------------------------------------------------------------

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
_CLUSTER_SCOPED = frozenset(
    {k8s.NAMESPACE, *_CLUSTER_RBAC, "kubernetes:core/v1:PersistentVolume", "kubernetes:storage.k8s.io/v1:StorageClass"}
)


def check_explicit_namespace(res: HasProps, config: Config) -> Iterator[str]:
    if not res.resource_type.startswith("kubernetes:") or res.resource_type in _CLUSTER_SCOPED:
        return
    if res.resource_type.startswith("kubernetes:yaml") or res.resource_type.startswith("kubernetes:helm"):
        return
    # The namespace is often another resource's output: unknown, the SDK reports the policy as not run.
    namespace = dig(res.props, "metadata", "namespace")
    if not namespace or namespace == "default":
        yield "set metadata.namespace to the app namespace (never default)"


@item_by_item
def check_recommended_labels(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if not res.resource_type.startswith("kubernetes:") or res.resource_type.startswith("kubernetes:yaml"):
        return
    labels = k8s.labels(res)
    missing = []
    for key in config["required"]:
        with item():
            if not labels.get(key):
                missing.append(key)
    if missing:
        yield f"add labels {', '.join(missing)}"


def check_stable_api_versions(res: HasProps, config: Config) -> Iterator[str]:
    if not res.resource_type.startswith("kubernetes:"):
        return
    version = res.resource_type.split(":")[1].rsplit("/", 1)[-1]
    if "alpha" in version or "beta" in version or res.resource_type.startswith("kubernetes:extensions/"):
        yield f"{res.resource_type} is a deprecated API version; use the stable (v1/v2) kind"


def build() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    workloads = k8s.WORKLOADS
    return [
        resource_policy(
            FAMILY.rule(
                "k8s-run-as-non-root",
                "Pods run as a non-root user (PSS restricted: runAsNonRoot, runAsUser != 0).",
                "Set runAsNonRoot: true and a numeric runAsUser on the pod securityContext.",
            ),
            check_run_as_non_root,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-high-uid-gid",
                "UID/GID >= minId; no group 0 (docker-user-matches-pods ties them to the image's USER).",
                "Use runAsUser/runAsGroup of at least 10000, the image's numeric USER (shipsafe:app.runAsUser).",
                level=ADVISORY,
                fields=("pod.securityContext",),
                minId=Setting("number", 10000, "Lowest acceptable runAsUser/runAsGroup.", platform=True),
                **k8s.APP_SETTINGS,
            ),
            check_high_uid_gid,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-privilege-escalation",
                "Every container sets allowPrivilegeEscalation: false (PSS restricted).",
                "Add allowPrivilegeEscalation: false to each container securityContext.",
            ),
            check_no_privilege_escalation,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-privileged", "No container runs privileged (PSS baseline).", "Remove privileged: true."
            ),
            check_no_privileged,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-read-only-root-fs",
                "Containers have a read-only root filesystem; writable paths are emptyDir/PVC mounts.",
                "Set readOnlyRootFilesystem: true and mount an emptyDir at /tmp.",
                topic="Sec; VI Processes",
            ),
            check_read_only_root_fs,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-drop-all-capabilities",
                "Containers drop ALL Linux capabilities (PSS restricted).",
                "Set capabilities.drop: [ALL].",
            ),
            check_drop_all_capabilities,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-added-capabilities",
                "Containers add no Linux capabilities.",
                "Remove capabilities.add.",
                allowedCapabilities=Setting("array", [], "Capabilities that may be added.", {"type": "string"}),
            ),
            check_no_added_capabilities,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-seccomp-runtime-default",
                "Pods use the RuntimeDefault (or Localhost) seccomp profile (PSS restricted).",
                "Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
            ),
            check_seccomp,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-host-namespaces-or-ports",
                "No hostNetwork, hostPID, hostIPC or hostPort (PSS baseline).",
                "Remove the host* fields; expose ports through a Service.",
            ),
            check_no_host_namespaces,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-allowed-volume-types",
                "Only the volume types of PSS restricted; never hostPath.",
                "Replace hostPath (and other host volumes) by emptyDir, a PVC, a Secret or a ConfigMap.",
                allowedTypes=Setting(
                    "array",
                    [
                        "configMap",
                        "secret",
                        "emptyDir",
                        "projected",
                        "downwardAPI",
                        "persistentVolumeClaim",
                        "ephemeral",
                        "csi",
                        "image",
                    ],
                    "Volume source fields that are allowed.",
                    {"type": "string"},
                ),
            ),
            check_allowed_volume_types,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-pss-baseline-misc",
                "The rest of PSS baseline: procMount, sysctls, SELinux, AppArmor, hostProcess, probe hosts.",
                "Remove the listed field or use its default.",
            ),
            check_pss_baseline_misc,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-namespace-pss-enforced",
                "The app namespace enforces, audits and warns on the PSS restricted profile.",
                "Label the Namespace pod-security.kubernetes.io/{enforce,audit,warn}=restricted (+ -version).",
                pssLevel=Setting("string", "restricted", "The Pod Security Standards level to enforce.", platform=True),
            ),
            check_namespace_pss,
            frozenset({k8s.NAMESPACE}),
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-dedicated-service-account",
                "Every workload runs as its own ServiceAccount defined in the stack (never `default`).",
                "Create a ServiceAccount per component and set serviceAccountName.",
            ),
            check_dedicated_service_account,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-sa-token-automount",
                "No API token is mounted into pods; ServiceAccounts disable automount.",
                "Set automountServiceAccountToken: false on the pod spec and the ServiceAccount.",
            ),
            check_no_token_automount,
            workloads | {k8s.SERVICE_ACCOUNT},
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-rbac-least-privilege",
                "No cluster-wide RBAC; Roles have no wildcards, secret reads, exec or escalation verbs.",
                "Delete ClusterRole(Binding)s; narrow Role rules to explicit verbs and resources.",
            ),
            check_rbac,
            frozenset({_RBAC + k for k in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")}),
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-image-pull-policy",
                "imagePullPolicy is Always, or IfNotPresent for digest-pinned images.",
                "Pin the image by digest and use IfNotPresent, or use Always.",
                level=ADVISORY,
            ),
            check_pull_policy,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-image-allowed-registries",
                "Images (run and built) come only from allow-listed registries.",
                "Push the image to the project registry, or add a reviewed mirror to allowedRegistries.",
                allowedRegistries=Setting(
                    "array",
                    ["docker.io/library/postgres", "docker.io/library/redis"],
                    "registry/repository prefixes images may come from (the project registry is set per stack).",
                    {"type": "string"},
                    platform=True,
                ),
            ),
            check_allowed_registries,
            workloads | IMAGE_BUILDS,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-secrets-as-files-preferred",
                "Backing services read credentials from mounted files (*_FILE), not env (env leaks into /proc).",
                "Mount the Secret as a volume and point the image's *_FILE variable at it.",
                level=ADVISORY,
                topic="Sec; III Config",
                **k8s.APP_SETTINGS,
            ),
            check_secrets_as_files,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-resources",
                "Containers request CPU, memory and ephemeral storage and limit memory and ephemeral storage.",
                "Set resources.requests/limits; give every emptyDir a sizeLimit.",
                topic="Sec; VIII Concurrency",
                fields=("container.resources",),
                requests=Setting(
                    "array",
                    ["cpu", "memory", "ephemeral-storage"],
                    "Required requests.",
                    {"type": "string"},
                    platform=True,
                ),
                limits=Setting(
                    "array", ["memory", "ephemeral-storage"], "Required limits.", {"type": "string"}, platform=True
                ),
            ),
            check_resources,
            workloads,
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-networkpolicy-default-deny",
                "Every workload's namespace has a default-deny NetworkPolicy for ingress and egress.",
                "Add a NetworkPolicy with podSelector {} and policyTypes [Ingress, Egress] and no rules.",
            ),
            check_default_deny,
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-networkpolicy-least-access",
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
            ),
            check_least_access,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-service-internal-only",
                "Services are ClusterIP (no NodePort, LoadBalancer or externalIPs); Ingresses terminate TLS.",
                "Use type ClusterIP and route outside traffic through an Ingress/Gateway with TLS.",
                topic="Sec; VII Port binding",
            ),
            check_service_internal,
            frozenset({k8s.SERVICE, INGRESS}),
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-explicit-namespace",
                "Namespaced objects name the app namespace explicitly (never default).",
                "Set metadata.namespace to the app namespace.",
            ),
            check_explicit_namespace,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-recommended-labels",
                "Objects carry the app.kubernetes.io recommended labels.",
                "Add the missing app.kubernetes.io labels.",
                level=ADVISORY,
                topic="Ops",
                required=Setting(
                    "array",
                    [f"app.kubernetes.io/{k}" for k in ("name", "instance", "component", "part-of", "managed-by")],
                    "Labels every Kubernetes object must carry.",
                    {"type": "string"},
                ),
            ),
            check_recommended_labels,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-stable-api-versions",
                "No alpha, beta or removed Kubernetes API versions.",
                "Use the stable apiVersion of the kind.",
                topic="Correctness; X Dev/prod parity",
            ),
            check_stable_api_versions,
        ),
    ]
