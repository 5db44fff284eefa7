"""Pod Security Standards, baseline profile: no known privilege escalation through the pod spec."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import k8s
from ..floor import NO_PRIVILEGE
from ..framework import Config, HasProps, Item, Section, Setting, item_by_item
from ..k8s import dig, items, number, workload_containers
from .contexts import own_context

SECTION = Section(__name__, "pss-baseline", topic="Sec")


@SECTION.resource(
    "pss-baseline-no-privileged",
    "No container runs privileged (PSS baseline).",
    "Remove privileged: true.",
    types=k8s.WORKLOADS,
    floor=NO_PRIVILEGE,
)
@item_by_item
def check_no_privileged(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if own_context(container).get("privileged") is True:
                yield f"{label}: remove privileged: true (it grants every capability and all host devices)"


@SECTION.resource(
    "pss-baseline-no-host-namespaces-or-ports",
    "No hostNetwork, hostPID, hostIPC or hostPort (PSS baseline).",
    "Remove the host* fields; expose ports through a Service.",
    types=k8s.WORKLOADS,
)
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


@SECTION.resource(
    "pss-baseline-no-added-capabilities",
    "Containers add no Linux capabilities.",
    "Remove capabilities.add.",
    types=k8s.WORKLOADS,
    allowedCapabilities=Setting("array", [], "Capabilities that may be added.", {"type": "string"}),
    floor=NO_PRIVILEGE,
)
@item_by_item
def check_no_added_capabilities(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    allowed = set(config["allowedCapabilities"])
    for label, container in workload_containers(res):
        with item():
            added = [c for c in items(dig(own_context(container), "capabilities", "add")) if c not in allowed]
            if added:
                yield f"{label}: remove capabilities.add {added} (a port above 1023 needs none)"


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
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _allowed_apparmor(value: object) -> bool:
    """pod-security-admission `check_appArmorProfile.go` `allowedAnnotationValue`: empty, runtime/default or a
    localhost/ profile (unconfined and anything else are refused)."""
    return isinstance(value, str) and (value in ("", "runtime/default") or value.startswith("localhost/"))


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
        kind = dig(context, "appArmorProfile", "type")  # `allowedProfileType`: only these two
        if dig(context, "appArmorProfile") is not None and kind not in ("RuntimeDefault", "Localhost"):
            yield f"{label}: appArmorProfile.type {kind} is not allowed; use RuntimeDefault"
    with item():
        if dig(context, "windowsOptions", "hostProcess") is True:
            yield f"{label}: windowsOptions.hostProcess is not allowed"


@SECTION.resource(
    "pss-baseline-misc",
    "The rest of PSS baseline: procMount, sysctls, SELinux, AppArmor, hostProcess, probe hosts.",
    "Remove the listed field or use its default.",
    types=k8s.WORKLOADS,
)
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
                value = annotations[key]
                if key.startswith(_APPARMOR_ANNOTATION) and not _allowed_apparmor(value):
                    yield f"annotation {key}: AppArmor profile {value!r} is not allowed; use runtime/default"
    with item():
        yield from _context_findings("pod", dig(spec, "securityContext") or {}, item)
    for label, container in workload_containers(res):
        with item():
            yield from _context_findings(label, own_context(container), item)
        for hook in ("livenessProbe", "readinessProbe", "startupProbe", "preStop", "postStart"):
            with item():
                handler = dig(container, "lifecycle", hook) if hook.startswith("p") else dig(container, hook)
                if dig(handler, "httpGet", "host") or dig(handler, "tcpSocket", "host"):
                    yield f"{label}: remove `host` from probe/lifecycle handlers (it can reach other hosts)"
