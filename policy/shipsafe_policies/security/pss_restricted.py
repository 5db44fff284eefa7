"""Pod Security Standards, restricted profile: current pod hardening best practice."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..floor import NO_PRIVILEGE, NON_ROOT
from ..framework import Config, HasProps, Item, Section, Setting, item_by_item
from ..k8s import dig, items, number, workload_containers
from .contexts import effective, own_context

SECTION = Section(__name__, "pss-restricted", topic="Sec")


@SECTION.resource(
    "pss-restricted-run-as-non-root",
    "Pods run as a non-root user (PSS restricted: runAsNonRoot, runAsUser != 0).",
    "Set runAsNonRoot: true and a numeric runAsUser on the pod securityContext.",
    types=k8s.WORKLOADS,
    floor=NON_ROOT,
)
@item_by_item
def check_run_as_non_root(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    spec = k8s.pod_spec(res)
    with item():
        if dig(spec, "securityContext") is None:
            yield "set spec.template.spec.securityContext with runAsNonRoot: true and a numeric runAsUser"
    # pod-security-admission `check_runAsNonRoot.go`/`check_runAsUser.go`: the pod-level field is judged on its own,
    # so runAsNonRoot: false or runAsUser: 0 on the pod is refused even when every container overrides it.
    with item():
        if dig(spec, "securityContext", "runAsNonRoot") is False:
            yield "pod: runAsNonRoot is false; set it true (refused even when every container sets true)"
    with item():
        if number(dig(spec, "securityContext", "runAsUser")) == 0:
            yield "pod: runAsUser is 0 (root); use the image's numeric non-root UID (refused even when overridden)"
    for label, container in workload_containers(res):
        with item():
            if dig(spec, "securityContext") is not None and not own_context(container):
                yield f"{label}: add a securityContext (runAsNonRoot, allowPrivilegeEscalation: false, ...)"
        with item():
            if effective("runAsNonRoot", container, spec) is not True:
                yield f"{label}: set runAsNonRoot: true on the pod or the container"
        with item():
            if number(effective("runAsUser", container, spec)) == 0:
                yield f"{label}: runAsUser is 0 (root); use the image's numeric non-root UID"


@SECTION.resource(
    "pss-restricted-no-privilege-escalation",
    "Every container sets allowPrivilegeEscalation: false (PSS restricted).",
    "Add allowPrivilegeEscalation: false to each container securityContext.",
    types=k8s.WORKLOADS,
    floor=NO_PRIVILEGE,
)
@item_by_item
def check_no_privilege_escalation(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if own_context(container).get("allowPrivilegeEscalation") is not False:
                yield f"{label}: set securityContext.allowPrivilegeEscalation: false explicitly"


@SECTION.resource(
    "pss-restricted-drop-all-capabilities",
    "Containers drop ALL Linux capabilities (PSS restricted).",
    "Set capabilities.drop: [ALL].",
    types=k8s.WORKLOADS,
    floor=NO_PRIVILEGE,
)
@item_by_item
def check_drop_all_capabilities(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if "ALL" not in items(dig(own_context(container), "capabilities", "drop")):
                yield f"{label}: set securityContext.capabilities.drop: [ALL]"


@SECTION.resource(
    "pss-restricted-seccomp",
    "Pods use the RuntimeDefault (or Localhost) seccomp profile (PSS restricted).",
    "Set securityContext.seccompProfile.type: RuntimeDefault on the pod.",
    types=k8s.WORKLOADS,
)
@item_by_item
def check_seccomp(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    good = {"RuntimeDefault", "Localhost"}
    spec = k8s.pod_spec(res)
    with item():  # `check_seccompProfile_restricted.go`: a bad pod-level type is refused even when containers override
        pod_profile = dig(spec, "securityContext", "seccompProfile")
        if pod_profile is not None and dig(pod_profile, "type") not in good:
            yield f"pod: seccompProfile.type {dig(pod_profile, 'type')} is not allowed; use RuntimeDefault"
    for label, container in workload_containers(res):
        with item():
            profile = dig(own_context(container), "seccompProfile", "type") or dig(
                spec, "securityContext", "seccompProfile", "type"
            )
            if profile not in good:
                yield f"{label}: set seccompProfile.type: RuntimeDefault on the pod (found {profile or 'none'})"


@SECTION.resource(
    "pss-restricted-volume-types",
    "Only the volume types of PSS restricted; never hostPath.",
    "Replace hostPath (and other host volumes) by emptyDir, a PVC, a Secret or a ConfigMap.",
    types=k8s.WORKLOADS,
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
)
@item_by_item
def check_allowed_volume_types(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    allowed = set(config["allowedTypes"])
    for volume in items(dig(k8s.pod_spec(res), "volumes")):
        with item():
            for kind in [k for k in volume if k != "name" and k not in allowed]:  # keys are always known
                yield f"volume {volume.get('name')}: {kind} volumes are not allowed; use emptyDir or a PVC"


@SECTION.resource(
    "pss-restricted-namespace-enforced",
    "The app namespace enforces, audits and warns on the PSS restricted profile.",
    "Label the Namespace pod-security.kubernetes.io/{enforce,audit,warn}=restricted (+ -version).",
    types={k8s.NAMESPACE},
    pssLevel=Setting("string", "restricted", "The Pod Security Standards level to enforce.", platform=True),
)
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
