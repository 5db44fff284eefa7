"""The object the Kubernetes API server returns for a server-side apply, and the state pulumi-kubernetes keeps.

The real engine runs stack policies on each resource's *outputs*; for pulumi-kubernetes those are the live object
(server defaults, deprecated mirrors, server metadata, status) plus the provider's bookkeeping keys
(pulumi-kubernetes `provider/pkg/provider/provider.go` `Create` and `checkpointObject`). This module is a pure,
deterministic model of both, so offline previews see what a cluster would hand back. Every defaulting rule cites the
Kubernetes function it copies; everything it leaves out is listed in `NOT_MODELLED`.

Secret material in the results: for a `v1` Secret whose inputs gave `stringData` or `data`, every `data.<key>` of
`server_object` (and so of `checkpoint`) holds secret bytes (base64), as do `__inputs.stringData.<key>` /
`__inputs.data.<key>` of `checkpoint`. This module marks nothing secret; the caller does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FIELD_MANAGER = "pulumi-kubernetes-5ea1f1e1"
"""pulumi-kubernetes `provider.go` `fieldManagerName`: in server-side-apply mode (the default, `enableServerSideApply`
unset) the manager is `pulumi-kubernetes-` plus 8 random hex characters (`resource.NewUniqueName` with no seed),
unless the `pulumi.com/patchFieldManager` annotation or earlier state names one. Random per resource in reality;
this fixed stand-in keeps the model deterministic."""

CREATE_FIELD_MANAGER = "pulumi-kubernetes"
"""pulumi-kubernetes 4.29+ `provider/pkg/await/await.go` `Creation`: without `upsertExistingObjects` a create is a
plain Create with this static manager (its managedFields entry has operation `Update`), so that a later update's
`fixCSAFieldManagers` can hand the fields to the server-side-apply manager (`FIELD_MANAGER`). An object that already
exists fails that Create ("already exists"; the preview's dry run shows the inputs)."""

ServerVersion = tuple[int, int]
SERVER_VERSIONS: tuple[ServerVersion, ...] = ((1, 30), (1, 35))
"""The API servers every phase is modelled against: the oldest the prerequisites accept (`deploy/prerequisites.py`
`MIN_KUBERNETES`, a test holds them equal) and the newest modelled. What differs between them: `_by_version`."""
NEWEST_SERVER = SERVER_VERSIONS[-1]

CREATION_TIMESTAMP = "2026-01-01T00:00:00Z"
"""Every server-set timestamp (creation, managedFields, conditions): fixed so output is byte-identical per input."""

NOT_MODELLED: tuple[str, ...] = (
    "Mutating and validating admission webhooks (sidecar injectors, policy engines such as Kyverno/Gatekeeper).",
    "ResourceQuota rejection and LimitRange defaults (default requests/limits injected into pod templates' pods).",
    "PodSecurity admission (warnings or rejections for the namespace's pod-security.kubernetes.io levels).",
    "The provider's own Check step beyond `harness.provider_check` (what it leaves out: its `LEFT_OUT`).",
    "Controllers that mutate later: HPA rescaling spec.replicas, pods/ReplicaSets/PVCs created by workloads.",
    "Server-side validation: invalid objects are returned defaulted instead of rejected with 422.",
    "One process per run, one run after the other: the engine runs each `pulumi preview` and `pulumi up` as a"
    " process of its own; the model runs the program's runs in the preview's process (a large program's `up` in a"
    " fork made before the first run, beside it: `harness.standby_run`), so state a program keeps in its own modules"
    " carries from one run to the next, and files a run writes may be read by a run that overlaps it.",
    "Resource quantity canonicalisation (SetDefaults_ResourceList: e.g. 0.5 -> 500m, 1024Mi -> 1Gi); kept as written.",
    "omitempty normalisation of empty values, except empty metadata.labels/annotations, which are dropped.",
    "CRD schema defaults and CRD status, except the Gateway API HTTPRoute's; other custom resources (PodMonitor, "
    "Envoy Gateway's BackendTrafficPolicy) get server metadata only.",
    "Dual-stack clusters: Services get a single IPv4 family and a clusterIP hashed into 10.96.0.0/12.",
    "Feature gates off by default in the modelled versions, and version differences other than `_by_version`'s.",
    "managedFields fieldsV1 is derived with a simplified list-key table, not the server's OpenAPI schema.",
    "Status counts that depend on other objects (PDB healthy pods, HPA current metrics); PDBs report no pods.",
)

_LEGACY_JOB_NAME = "job-name"
_JOB_NAME = "batch.kubernetes.io/job-name"
_LEGACY_CONTROLLER_UID = "controller-uid"
_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
_REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_SERVICE_CIDR_BASE = 0x0A600000  # 10.96.0.0/12, kube-apiserver's default --service-cluster-ip-range
_SERVICE_CIDR_SIZE = 1 << 20
_NODE_PORT_RANGE = (30000, 32767)
# API groups served by kube-apiserver itself; any other group is a custom resource (or an aggregated API).
_BUILT_IN_GROUPS = frozenset(
    ["", "apps", "batch", "policy", "autoscaling", "flowcontrol.apiserver.k8s.io"]
    + [f"{group}.k8s.io" for group in ("networking", "rbac.authorization", "storage", "scheduling", "coordination")]
    + [f"{group}.k8s.io" for group in ("discovery", "node", "certificates", "admissionregistration", "resource")]
    + ["apiextensions.k8s.io", "apiregistration.k8s.io"]
)
# Kinds whose registry strategy sets metadata.generation = 1 in PrepareForCreate (pkg/registry/<group>/<kind>/
# strategy.go); custom resources get it from apiextensions-apiserver `customResourceStrategy.PrepareForCreate`.
_GENERATION_KINDS = frozenset(
    {
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "ReplicaSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("networking.k8s.io/v1", "Ingress"),
    }
)


def server_object(
    manifest: Mapping[str, Any],
    *,
    dry_run: bool,
    field_manager: str = FIELD_MANAGER,
    operation: str = "Apply",
    server: ServerVersion = NEWEST_SERVER,
) -> dict[str, Any]:
    """The object the API server returns for a create/apply of `manifest` (camelCase Kubernetes JSON, as the
    program's inputs arrive: numbers may be int or float). dry_run=True: a server-side dry run (defaults, conversion,
    server metadata, no status); dry_run=False: the live object after `pulumi up` finished awaiting it, with a
    plausible status of a ready/complete object. `field_manager` and `operation` name the entry of the request in
    managedFields (`Apply` for a server-side apply, `Update` for pulumi-kubernetes' plain Create). `server` is the
    API server's version (`SERVER_VERSIONS`).

    Raises ValueError when apiVersion, kind or metadata.name is missing. Kinds outside `_KINDS` (custom resources
    included) get server metadata only."""
    return server_objects(
        manifest, dry_run=dry_run, field_manager=field_manager, operation=operation, servers=(server,)
    )[0]


def server_objects(
    manifest: Mapping[str, Any],
    *,
    dry_run: bool,
    field_manager: str = FIELD_MANAGER,
    operation: str = "Apply",
    servers: Sequence[ServerVersion] = SERVER_VERSIONS,
) -> list[dict[str, Any]]:
    """`server_object` for each of `servers`, each its own object sharing nothing with the others or the manifest.
    What no version changes is modelled once: the defaulting and the request's managedFields entry always, and the
    whole object for the servers on which `_by_version` changes nothing (a copy each)."""
    api_version, kind, name = _identity(manifest)
    prepared = _copy(manifest)
    metadata = prepared.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        if key in metadata and not metadata[key]:
            del metadata[key]  # ObjectMeta labels/annotations are omitempty: an empty map does not come back
    uid = _uid(api_version, kind, metadata.get("namespace", ""), name)
    kind_rules = _KINDS.get((api_version, kind))
    if kind_rules is not None:
        kind_rules.prepare(prepared, uid)
    request_entry = _request_entry(manifest, field_manager, operation)
    objects: list[dict[str, Any]] = []
    as_prepared: dict[str, Any] | None = None  # the finished object of a server `_by_version` left as prepared
    for index, server in enumerate(servers):
        obj = prepared if index == len(servers) - 1 else _copy(prepared)
        changed = kind_rules is not None and _by_version(obj, server)
        if not changed and as_prepared is not None:
            objects.append(_copy(as_prepared))
            continue
        # staging/src/k8s.io/apiserver/pkg/registry/rest/meta.go `FillObjectMetaSystemFields` (via `BeforeCreate`)
        # runs for dry runs too; a dry-run create never reaches etcd, so it has no resourceVersion
        # (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/dryrun.go `DryRunnableStorage.Create`).
        server_metadata: dict[str, Any] = {"uid": uid, "creationTimestamp": CREATION_TIMESTAMP}
        if not dry_run:
            server_metadata["resourceVersion"] = str(100000 + _hash_int(uid) % 900000)
        if (api_version, kind) in _GENERATION_KINDS or _group(api_version) not in _BUILT_IN_GROUPS:
            server_metadata["generation"] = 1
        obj["metadata"].update(server_metadata)
        managed = [request_entry if not objects else _copy(request_entry)]
        if not dry_run and kind_rules is not None and kind_rules.status is not None:
            obj["status"] = kind_rules.status(obj)
            managed.extend(_controller_entries(obj, kind_rules.status_manager))
        obj["metadata"]["managedFields"] = managed
        objects.append(obj)
        if not changed:
            as_prepared = obj
    return objects


def checkpoint(
    inputs: Mapping[str, Any], live: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER
) -> dict[str, Any]:
    """pulumi-kubernetes `provider.go` `checkpointObject`: the live object plus `__inputs`, `__initialApiVersion`
    (the inputs' apiVersion at `Create`) and `__fieldManager`; `x-kubernetes-*` keys become `x_kubernetes_*`
    (`mapReplDashToUnderscore`) in both. Secret paths: see the module docstring."""
    state = _copy(live, rename=_DASH_TO_UNDERSCORE)
    state["__inputs"] = _copy(inputs, rename=_DASH_TO_UNDERSCORE)
    state["__initialApiVersion"] = inputs["apiVersion"]
    state["__fieldManager"] = field_manager
    return state


# --- generic helpers ---------------------------------------------------------------------------------------------

# provider.go `underscoreToDashMap`, reversed.
_DASH_TO_UNDERSCORE = {
    f"x-kubernetes-{name}": f"x_kubernetes_{name.replace('-', '_')}"
    for name in (
        "embedded-resource",
        "int-or-string",
        "list-map-keys",
        "list-type",
        "map-type",
        "preserve-unknown-fields",
        "validations",
    )
}


def _copy(value: Any, rename: Mapping[str, str] | None = None) -> Any:
    # JSON-shaped data only: a plain recursive copy is several times faster than copy.deepcopy. Exact types are
    # tested first: an ABC check (`Mapping`) on every value costs more than the copy.
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict or isinstance(value, Mapping):
        if rename:
            return {rename.get(k, k): _copy(v, rename) for k, v in value.items()}
        return {k: _copy(v) for k, v in value.items()}
    if kind is list or isinstance(value, list | tuple):
        return [_copy(v, rename) for v in value]
    return value


def _identity(manifest: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = manifest.get("metadata") or {}
    return (
        _required_string("apiVersion", manifest.get("apiVersion")),
        _required_string("kind", manifest.get("kind")),
        _required_string("metadata.name", metadata.get("name")),
    )


def _required_string(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"manifest {key} must be a non-empty string, got {value!r}")
    return value


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def is_built_in(api_version: str) -> bool:
    """Served by kube-apiserver itself (pulumi-kubernetes `kinds.KnownGroupVersions`), not a custom resource."""
    return _group(api_version) in _BUILT_IN_GROUPS


def _hash_int(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:8], "big")


def _uid(api_version: str, kind: str, namespace: str, name: str) -> str:
    digest = hashlib.sha256("/".join((api_version, kind, namespace, name)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _short_hash(*parts: str) -> str:
    # The controllers' ComputeHash output is rendered in this alphabet (k8s.io/apimachinery rand.SafeEncodeString).
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    number = _hash_int(*parts)
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def _unset(obj: Mapping[str, Any], key: str) -> bool:
    """A Go pointer field left nil (absent or null)."""
    return obj.get(key) is None


def _zero(obj: Mapping[str, Any], key: str) -> bool:
    """A Go value field at its zero value ("" or 0), or absent."""
    value = obj.get(key)
    return value is None or value == "" or (value == 0 and not isinstance(value, bool))


def _condition(type_: str, status: str, reason: str, message: str, *, update_time: bool = False) -> dict[str, Any]:
    condition = {"type": type_, "status": status, "reason": reason, "message": message}
    condition["lastTransitionTime"] = CREATION_TIMESTAMP
    if update_time:
        condition["lastUpdateTime"] = CREATION_TIMESTAMP
    return condition


def _count(value: Any, default: int) -> int:
    return default if value is None else int(value)


# --- pod templates (pkg/apis/core/v1) ------------------------------------------------------------------------------


def _image_tag(image: str) -> str:
    # pkg/util/parsers/parsers.go `ParseImageName`: no tag and no digest means "latest".
    name, _, digest = image.partition("@")
    last_component = name.rsplit("/", 1)[-1]
    if ":" in last_component:
        return last_component.rsplit(":", 1)[1]
    return "" if digest else "latest"


def _default_http_get(action: dict[str, Any] | None) -> None:
    # defaults.go `SetDefaults_HTTPGetAction`
    if action is None:
        return
    if _zero(action, "path"):
        action["path"] = "/"
    if _zero(action, "scheme"):
        action["scheme"] = "HTTP"


def _default_probe(probe: dict[str, Any] | None) -> None:
    # defaults.go `SetDefaults_Probe` (int32 value fields: zero means unset)
    if probe is None:
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if _zero(probe, key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))


def _default_container(container: dict[str, Any]) -> None:
    # defaults.go `SetDefaults_Container`
    if _zero(container, "imagePullPolicy"):
        container["imagePullPolicy"] = (
            "Always" if _image_tag(container.get("image", "")) == "latest" else "IfNotPresent"
        )
    if _zero(container, "terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if _zero(container, "terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    # Container.Resources is a value struct without omitempty: it always comes back, `{}` when unset.
    container.setdefault("resources", {})
    for port in container.get("ports") or []:
        if _zero(port, "protocol"):
            port["protocol"] = "TCP"  # `SetDefaults_ContainerPort` / `+default="TCP"` in k8s.io/api core/v1 types
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if field_ref is not None and _zero(field_ref, "apiVersion"):
            field_ref["apiVersion"] = "v1"  # `SetDefaults_ObjectFieldSelector`
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(container.get(probe_key))
    lifecycle = container.get("lifecycle") or {}
    for hook in ("postStart", "preStop"):
        _default_http_get((lifecycle.get(hook) or {}).get("httpGet"))


def _default_volume(volume: dict[str, Any]) -> None:
    # defaults.go `SetDefaults_Volume` and the per-source defaulters zz_generated.defaults.go calls for each volume.
    if not set(volume) - {"name"}:
        volume["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if source in volume and _unset(volume[source], "defaultMode"):
            volume[source]["defaultMode"] = 420  # 0644: Secret/ConfigMap/DownwardAPI/ProjectedVolumeSourceDefaultMode
    for item in (volume.get("downwardAPI") or {}).get("items") or []:
        if item.get("fieldRef") is not None and _zero(item["fieldRef"], "apiVersion"):
            item["fieldRef"]["apiVersion"] = "v1"
    for projection in (volume.get("projected") or {}).get("sources") or []:
        token = projection.get("serviceAccountToken")
        if token is not None and _unset(token, "expirationSeconds"):
            token["expirationSeconds"] = 3600  # `SetDefaults_ServiceAccountTokenProjection`
    if "hostPath" in volume and _unset(volume["hostPath"], "type"):
        volume["hostPath"]["type"] = ""  # `SetDefaults_HostPathVolumeSource`: HostPathUnset
    claim = (volume.get("ephemeral") or {}).get("volumeClaimTemplate")
    if claim is not None:
        _default_claim_spec(claim.setdefault("spec", {}))


def _default_pod_template(template: dict[str, Any]) -> None:
    """Defaults for a pod *template*: `SetDefaults_PodSpec` and the nested defaulters, never `SetDefaults_Pod`
    (requests copied from limits, enableServiceLinks), which the comment in defaults.go reserves for bare Pods."""
    spec = template.setdefault("spec", {})
    # defaults.go `SetDefaults_PodSpec`
    if _zero(spec, "dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if _zero(spec, "restartPolicy"):
        spec["restartPolicy"] = "Always"
    if _unset(spec, "securityContext"):
        spec["securityContext"] = {}
    if _unset(spec, "terminationGracePeriodSeconds"):
        spec["terminationGracePeriodSeconds"] = 30
    if _zero(spec, "schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            _default_container(container)
    for volume in spec.get("volumes") or []:
        _default_volume(volume)
    # conversion.go `Convert_v1_PodSpec_To_core_PodSpec` takes the deprecated field when the new one is empty, and
    # `Convert_core_PodSpec_To_v1_PodSpec` always mirrors serviceAccountName into serviceAccount on the way out.
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or ""
    spec.pop("serviceAccount", None)
    spec.pop("serviceAccountName", None)
    if account:
        spec["serviceAccountName"] = account
        spec["serviceAccount"] = account


def _default_claim_spec(spec: dict[str, Any]) -> None:
    if _unset(spec, "volumeMode"):
        spec["volumeMode"] = "Filesystem"  # defaults.go `SetDefaults_PersistentVolumeClaimSpec`


def _templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates (and a StatefulSet's claim templates) an object embeds."""
    spec = obj.get("spec") or {}
    found = [spec["template"]] if isinstance(spec.get("template"), dict) else []
    job_template = (spec.get("jobTemplate") or {}).get("spec") or {}
    if isinstance(job_template.get("template"), dict):
        found.append(job_template["template"])
    return found + [claim for claim in spec.get("volumeClaimTemplates") or [] if isinstance(claim, dict)]


def _by_version(obj: dict[str, Any], server: ServerVersion) -> bool:
    """What the modelled API server versions do differently; whether it changed `obj`.

    - Before 1.33 an embedded template's `metadata.creationTimestamp` (a non-pointer `metav1.Time` without
      omitzero) comes back as `null`; from 1.33 the apimachinery JSON encoder omits the zero time.
    - From 1.35 the `MaxUnavailableStatefulSet` gate is on by default (`pkg/features/kube_features.go`), and
      `SetDefaults_StatefulSet` defaults a RollingUpdate's `maxUnavailable` to 1 (`pkg/apis/apps/v1/defaults.go`).
    """
    changed = False
    if server < (1, 33):
        for template in _templates(obj):
            template_metadata = template.setdefault("metadata", {})
            if "creationTimestamp" not in template_metadata:
                template_metadata["creationTimestamp"] = None
                changed = True
    if server >= (1, 35) and obj.get("kind") == "StatefulSet" and obj.get("apiVersion") == "apps/v1":
        strategy = (obj.get("spec") or {}).get("updateStrategy") or {}
        rolling = strategy.get("rollingUpdate")
        if strategy.get("type") == "RollingUpdate" and isinstance(rolling, dict) and _unset(rolling, "maxUnavailable"):
            rolling["maxUnavailable"] = 1
            changed = True
    return changed


# --- kinds -----------------------------------------------------------------------------------------------------------


def _prepare_namespace(obj: dict[str, Any], uid: str) -> None:
    metadata = obj["metadata"]
    # core/v1 defaults.go `SetDefaults_Namespace`
    metadata.setdefault("labels", {})["kubernetes.io/metadata.name"] = metadata["name"]
    # pkg/registry/core/namespace/strategy.go `PrepareForCreate`: the "kubernetes" finalizer is always added.
    finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")


def _prepare_secret(obj: dict[str, Any], uid: str) -> None:
    if _zero(obj, "type"):
        obj["type"] = "Opaque"  # defaults.go `SetDefaults_Secret`
    # conversion.go `Convert_v1_Secret_To_core_Secret`: stringData overwrites data; the internal type has no
    # stringData, so it never comes back.
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _prepare_service(obj: dict[str, Any], uid: str) -> None:
    spec = obj.setdefault("spec", {})
    # defaults.go `SetDefaults_Service`
    if _zero(spec, "sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
        if _unset(client_ip, "timeoutSeconds"):
            client_ip["timeoutSeconds"] = 10800  # DefaultClientIPServiceAffinitySeconds
    if _zero(spec, "type"):
        spec["type"] = "ClusterIP"
    service_type = spec["type"]
    for port in spec.get("ports") or []:
        if _zero(port, "protocol"):
            port["protocol"] = "TCP"
        if _zero(port, "targetPort"):
            port["targetPort"] = port["port"]
    externally_accessible = service_type in ("LoadBalancer", "NodePort") or (
        service_type == "ClusterIP" and bool(spec.get("externalIPs"))
    )  # pkg/api/v1/service/util.go `ExternallyAccessible`
    if externally_accessible and _zero(spec, "externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if _unset(spec, "internalTrafficPolicy") and service_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if service_type == "LoadBalancer" and _unset(spec, "allocateLoadBalancerNodePorts"):
        spec["allocateLoadBalancerNodePorts"] = True
    if service_type == "ExternalName":
        return
    _allocate_service_ips(obj, spec)
    if service_type in ("NodePort", "LoadBalancer") and spec.get("allocateLoadBalancerNodePorts", True):
        low, high = _NODE_PORT_RANGE
        for port in spec.get("ports") or []:
            if _zero(port, "nodePort"):
                port["nodePort"] = low + _hash_int(uid, str(port["port"])) % (high - low + 1)


def _allocate_service_ips(obj: dict[str, Any], spec: dict[str, Any]) -> None:
    # pkg/registry/core/service/storage/alloc.go `initIPFamilyFields` and `allocClusterIPs`, on a single-stack
    # IPv4 cluster; clusterIPs[0] and clusterIP are kept equal (storage.go `normalizeClusterIPs`).
    headless = spec.get("clusterIP") == "None"
    if _unset(spec, "ipFamilyPolicy"):
        selectorless_headless = headless and not spec.get("selector")
        spec["ipFamilyPolicy"] = "RequireDualStack" if selectorless_headless else "SingleStack"
    if not spec.get("ipFamilies"):
        spec["ipFamilies"] = ["IPv4"]
    dual = spec["ipFamilyPolicy"] != "SingleStack"
    if headless and not spec.get("selector") and dual and len(spec["ipFamilies"]) < 2:
        spec["ipFamilies"].append("IPv6" if spec["ipFamilies"][0] == "IPv4" else "IPv4")
    if _zero(spec, "clusterIP"):
        metadata = obj["metadata"]
        offset = 2 + _hash_int(metadata.get("namespace", ""), metadata["name"]) % (_SERVICE_CIDR_SIZE - 3)
        address = _SERVICE_CIDR_BASE + offset  # .0 is the network, 10.96.0.1 the `kubernetes` Service
        spec["clusterIP"] = ".".join(str((address >> shift) & 0xFF) for shift in (24, 16, 8, 0))
    if not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]


def _service_status(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["spec"].get("type") != "LoadBalancer":
        return {"loadBalancer": {}}
    ip = f"203.0.113.{1 + _hash_int(obj['metadata']['uid']) % 254}"
    return {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}  # SetDefaults_Service: ipMode VIP


def _prepare_deployment(obj: dict[str, Any], uid: str) -> None:
    spec = obj.setdefault("spec", {})
    # pkg/apis/apps/v1/defaults.go `SetDefaults_Deployment`
    if _unset(spec, "replicas"):
        spec["replicas"] = 1
    strategy = spec.setdefault("strategy", {})
    if _zero(strategy, "type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        for key in ("maxUnavailable", "maxSurge"):
            if _unset(rolling, key):
                rolling[key] = "25%"
    if _unset(spec, "revisionHistoryLimit"):
        spec["revisionHistoryLimit"] = 10
    if _unset(spec, "progressDeadlineSeconds"):
        spec["progressDeadlineSeconds"] = 600
    _default_pod_template(spec.setdefault("template", {}))


def _deployment_status(obj: dict[str, Any]) -> dict[str, Any]:
    # What the deployment controller reports once pulumi-kubernetes' await (provider/pkg/await/deployment.go)
    # sees the rollout finished; it also stamps the revision annotation on the Deployment.
    metadata, replicas = obj["metadata"], _count(obj["spec"].get("replicas"), 1)
    metadata.setdefault("annotations", {})[_REVISION_ANNOTATION] = "1"
    replica_set = f"{metadata['name']}-{_short_hash(json.dumps(obj['spec']['template'], sort_keys=True))}"
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            _condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                update_time=True,
            ),
            _condition(
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{replica_set}" has successfully progressed.',
                update_time=True,
            ),
        ],
    }


def _prepare_stateful_set(obj: dict[str, Any], uid: str) -> None:
    spec = obj.setdefault("spec", {})
    # pkg/apis/apps/v1/defaults.go `SetDefaults_StatefulSet` (MaxUnavailableStatefulSet gate off; the
    # StatefulSetAutoDeletePVC gate is GA)
    if _zero(spec, "podManagementPolicy"):
        spec["podManagementPolicy"] = "OrderedReady"
    update_strategy = spec.setdefault("updateStrategy", {})
    if _zero(update_strategy, "type"):
        update_strategy["type"] = "RollingUpdate"
        update_strategy.setdefault("rollingUpdate", {})
    rolling = update_strategy.get("rollingUpdate")
    if update_strategy["type"] == "RollingUpdate" and rolling is not None and _unset(rolling, "partition"):
        rolling["partition"] = 0
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    for key in ("whenDeleted", "whenScaled"):
        if _zero(retention, key):
            retention[key] = "Retain"
    if _unset(spec, "replicas"):
        spec["replicas"] = 1
    if _unset(spec, "revisionHistoryLimit"):
        spec["revisionHistoryLimit"] = 10
    _default_pod_template(spec.setdefault("template", {}))
    for claim in spec.get("volumeClaimTemplates") or []:
        # pkg/apis/apps/v1/conversion.go `Convert_apps_StatefulSetSpec_To_v1_StatefulSetSpec` sets apiVersion/kind
        # on the way out (issue 87583); zz_generated.defaults.go runs the PVC defaulters on each template.
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        _default_claim_spec(claim.setdefault("spec", {}))
        status = claim.setdefault("status", {})
        if _zero(status, "phase"):
            status["phase"] = "Pending"  # defaults.go `SetDefaults_PersistentVolumeClaim`


def _stateful_set_status(obj: dict[str, Any]) -> dict[str, Any]:
    replicas = _count(obj["spec"].get("replicas"), 1)
    revision = f"{obj['metadata']['name']}-{_short_hash(json.dumps(obj['spec']['template'], sort_keys=True))}"
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "readyReplicas": replicas,
        "currentReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    }


def _prepare_job(obj: dict[str, Any], uid: str) -> None:
    metadata, spec = obj["metadata"], obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    # pkg/apis/batch/v1/defaults.go `SetDefaults_Job`
    if _unset(spec, "completions") and _unset(spec, "parallelism"):
        spec["completions"] = 1
        spec["parallelism"] = 1
    if _unset(spec, "parallelism"):
        spec["parallelism"] = 1
    if _unset(spec, "backoffLimit"):
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    # The defaulter assigns the template's label map itself to an unlabelled Job, and v1->internal conversion keeps
    # sharing it, so the selector labels generated below land on the Job's own labels too.
    job_shares_template_labels = template_metadata.get("labels") is not None and not metadata.get("labels")
    if _unset(spec, "completionMode"):
        spec["completionMode"] = "NonIndexed"
    if _unset(spec, "suspend"):
        spec["suspend"] = False
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or []:
            if _zero(pattern, "status"):
                pattern["status"] = "True"
    if _unset(spec, "podReplacementPolicy"):  # JobPodReplacementPolicy gate: on by default
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
    if _unset(spec, "manualSelector"):
        spec["manualSelector"] = False
    # pkg/registry/batch/job/strategy.go `PrepareForCreate` -> `generateSelectorIfNeeded` -> `generateSelector`
    if not spec["manualSelector"]:
        labels = template_metadata.setdefault("labels", {})
        for key in (_LEGACY_JOB_NAME, _JOB_NAME):
            labels.setdefault(key, metadata["name"])
        for key in (_LEGACY_CONTROLLER_UID, _CONTROLLER_UID):
            labels.setdefault(key, uid)
        selector = spec.get("selector") or {}
        spec["selector"] = selector
        selector.setdefault("matchLabels", {}).setdefault(_CONTROLLER_UID, uid)
    if job_shares_template_labels:
        metadata["labels"] = dict(template_metadata["labels"])
    _default_pod_template(template)


def _job_status(obj: dict[str, Any]) -> dict[str, Any]:
    # A Job pulumi-kubernetes' await (provider/pkg/await/job.go) accepted: complete. Since Kubernetes 1.31 the job
    # controller adds SuccessCriteriaMet before Complete, both with reason CompletionsReached.
    message = "Reached expected number of succeeded pods"
    return {
        "startTime": CREATION_TIMESTAMP,
        "completionTime": CREATION_TIMESTAMP,
        "succeeded": _count(obj["spec"].get("completions"), 1),
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            _condition("SuccessCriteriaMet", "True", "CompletionsReached", message),
            _condition("Complete", "True", "CompletionsReached", message),
        ],
    }


def _namespace_status(obj: dict[str, Any]) -> dict[str, Any]:
    return {"phase": "Active"}  # namespace strategy `PrepareForCreate` / defaults.go `SetDefaults_NamespaceStatus`


def _pdb_status(obj: dict[str, Any]) -> dict[str, Any]:
    # The disruption controller needs the matching pods, which one manifest cannot show: report none (strictest).
    return {
        "observedGeneration": 1,
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
        "conditions": [
            {**_condition("DisruptionAllowed", "False", "InsufficientPods", ""), "observedGeneration": 1},
        ],
    }


def _prepare_hpa(obj: dict[str, Any], uid: str) -> None:
    spec = obj.setdefault("spec", {})
    # pkg/apis/autoscaling/v2/defaults.go `SetDefaults_HorizontalPodAutoscaler`
    if _unset(spec, "minReplicas"):
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        cpu_target = {"type": "Utilization", "averageUtilization": 80}  # autoscaling.DefaultCPUUtilization
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": cpu_target}}]
    # `SetDefaults_HorizontalPodAutoscalerBehavior`: only a behavior that is present gets its rules filled.
    behavior = spec.get("behavior")
    if behavior is not None:
        behavior["scaleUp"] = _scaling_rules(
            behavior.get("scaleUp"),
            window=0,
            policies=[
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        )
        behavior["scaleDown"] = _scaling_rules(
            behavior.get("scaleDown"), window=None, policies=[{"type": "Percent", "value": 100, "periodSeconds": 15}]
        )


def _scaling_rules(
    given: Mapping[str, Any] | None, *, window: int | None, policies: list[dict[str, Any]]
) -> dict[str, Any]:
    # autoscaling/v2 defaults.go `GenerateHPAScaleUpRules` / `GenerateHPAScaleDownRules` -> `copyHPAScalingRules`
    rules: dict[str, Any] = {"selectPolicy": "Max", "policies": policies}
    if window is not None:
        rules["stabilizationWindowSeconds"] = window
    for key, value in (given or {}).items():
        if value is not None:
            rules[key] = value
    return rules


def _hpa_status(obj: dict[str, Any]) -> dict[str, Any]:
    replicas = _count(obj["spec"].get("minReplicas"), 1)
    return {
        "currentReplicas": replicas,
        "desiredReplicas": replicas,
        "conditions": [
            _condition("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
            _condition(
                "ScalingActive",
                "True",
                "ValidMetricFound",
                "the HPA was able to successfully calculate a replica count",
            ),
            _condition(
                "ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"
            ),
        ],
    }


def _prepare_network_policy(obj: dict[str, Any], uid: str) -> None:
    spec = obj.setdefault("spec", {})
    # pkg/apis/networking/v1/defaults.go `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in rule.get("ports") or []:
                if _unset(port, "protocol"):
                    port["protocol"] = "TCP"


_RBAC_GROUP = "rbac.authorization.k8s.io"


def _prepare_role_binding(obj: dict[str, Any], uid: str) -> None:
    # pkg/apis/rbac/v1/defaults.go `SetDefaults_RoleBinding`/`SetDefaults_ClusterRoleBinding` and
    # `SetDefaults_Subject` (a ServiceAccount subject's group is "", omitempty, so it does not come back).
    role_ref = obj.setdefault("roleRef", {})
    if not role_ref.get("apiGroup"):
        role_ref["apiGroup"] = _RBAC_GROUP
    for subject in obj.get("subjects") or []:
        if not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = _RBAC_GROUP


def _ingress_status(obj: dict[str, Any]) -> dict[str, Any]:
    # pulumi-kubernetes' await (provider/pkg/await/ingress.go) waits for an address in status.loadBalancer.ingress.
    return {"loadBalancer": {"ingress": [{"ip": f"198.51.100.{1 + _hash_int(obj['metadata']['uid']) % 254}"}]}}


_GATEWAY_GROUP = "gateway.networking.k8s.io"


def _prepare_http_route(obj: dict[str, Any], uid: str) -> None:
    """The CRD's structural defaults (`+kubebuilder:default` in kubernetes-sigs/gateway-api v1.6.1
    `apis/v1/httproute_types.go`, `shared_types.go`, `object_reference_types.go`), applied by the API server to
    fields that are absent."""
    spec = obj.setdefault("spec", {})
    for parent in spec.get("parentRefs") or []:
        parent.setdefault("group", _GATEWAY_GROUP)  # ParentReference.Group
        parent.setdefault("kind", "Gateway")  # ParentReference.Kind
    rules = spec.setdefault("rules", [{}])  # HTTPRouteSpec.Rules: {{matches: {{path: {PathPrefix, /}}}}}
    for rule in rules:
        matches = rule.setdefault("matches", [{}])  # HTTPRouteRule.Matches: {{path: {PathPrefix, /}}}
        for match in matches:
            path = match.setdefault("path", {})  # HTTPRouteMatch.Path: {type: PathPrefix, value: /}
            path.setdefault("type", "PathPrefix")  # HTTPPathMatch.Type
            path.setdefault("value", "/")  # HTTPPathMatch.Value
            for header in [*(match.get("headers") or []), *(match.get("queryParams") or [])]:
                header.setdefault("type", "Exact")  # HTTPHeaderMatch.Type, HTTPQueryParamMatch.Type
        for backend in rule.get("backendRefs") or []:
            backend.setdefault("group", "")  # BackendObjectReference.Group
            backend.setdefault("kind", "Service")  # BackendObjectReference.Kind
            backend.setdefault("weight", 1)  # BackendRef.Weight


def _http_route_status(obj: dict[str, Any]) -> dict[str, Any]:
    # What a Gateway controller (Envoy Gateway) writes once it accepted the route on each parent.
    parents = []
    for parent in obj["spec"].get("parentRefs") or []:
        conditions = [
            {**_condition("Accepted", "True", "Accepted", "Route is accepted"), "observedGeneration": 1},
            {
                **_condition("ResolvedRefs", "True", "ResolvedRefs", "Resolved all the Object references"),
                "observedGeneration": 1,
            },
        ]
        parents.append(
            {
                "parentRef": _copy(parent),  # its own: the object shares nothing within itself
                "controllerName": "gateway.envoyproxy.io/gatewayclass-controller",
                "conditions": conditions,
            }
        )
    return {"parents": parents}


def _no_defaults(obj: dict[str, Any], uid: str) -> None:
    """ConfigMap (`SetDefaults_ConfigMap` only makes an omitempty map), ServiceAccount, PodDisruptionBudget (policy/v1
    has no defaulter; the strategy sets generation), Ingress (networking/v1 has no Ingress defaulter), Role and
    ClusterRole (pkg/apis/rbac/v1/defaults.go defaults only bindings and subjects)."""


@dataclass(frozen=True)
class _KindRules:
    prepare: Callable[[dict[str, Any], str], None]
    """Defaulting, conversion and the registry strategy's PrepareForCreate; gets the object's uid."""
    status: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """The status of a ready/complete live object (may also stamp controller-owned metadata)."""
    status_manager: str = "kube-controller-manager"
    """Who writes that status (its managedFields entry); empty when the API server sets it at create."""


_KINDS: dict[tuple[str, str], _KindRules] = {
    ("v1", "Namespace"): _KindRules(_prepare_namespace, _namespace_status, status_manager=""),
    ("v1", "ServiceAccount"): _KindRules(_no_defaults),
    ("v1", "Secret"): _KindRules(_prepare_secret),
    ("v1", "ConfigMap"): _KindRules(_no_defaults),
    ("v1", "Service"): _KindRules(_prepare_service, _service_status, status_manager=""),
    ("apps/v1", "Deployment"): _KindRules(_prepare_deployment, _deployment_status),
    ("apps/v1", "StatefulSet"): _KindRules(_prepare_stateful_set, _stateful_set_status),
    ("batch/v1", "Job"): _KindRules(_prepare_job, _job_status),
    ("policy/v1", "PodDisruptionBudget"): _KindRules(_no_defaults, _pdb_status),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): _KindRules(_prepare_hpa, _hpa_status),
    ("networking.k8s.io/v1", "NetworkPolicy"): _KindRules(_prepare_network_policy),
    ("networking.k8s.io/v1", "Ingress"): _KindRules(
        _no_defaults, _ingress_status, status_manager="nginx-ingress-controller"
    ),
    (f"{_GATEWAY_GROUP}/v1", "HTTPRoute"): _KindRules(
        _prepare_http_route, _http_route_status, status_manager="envoy-gateway"
    ),
    (f"{_RBAC_GROUP}/v1", "Role"): _KindRules(_no_defaults),
    (f"{_RBAC_GROUP}/v1", "ClusterRole"): _KindRules(_no_defaults),
    (f"{_RBAC_GROUP}/v1", "RoleBinding"): _KindRules(_prepare_role_binding),
    (f"{_RBAC_GROUP}/v1", "ClusterRoleBinding"): _KindRules(_prepare_role_binding),
}


# --- managedFields -------------------------------------------------------------------------------------------------

# Simplified from the OpenAPI `x-kubernetes-list-map-keys`: lists of objects SSA merges by key; others are atomic.
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
}
_SET_LISTS = frozenset({"finalizers"})
_ATOMIC_FIELDS = frozenset({"selector", "podSelector", "namespaceSelector", "labelSelector"})
# What the field manager strips from every managed set (apiserver fieldmanager internal/stripmeta.go).
_STRIPPED_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def _list_item_key(field: str, item: Mapping[str, Any]) -> str | None:
    if field == "ports" and "containerPort" in item:
        keys: tuple[str, ...] = ("containerPort", "protocol")
    elif field == "ports" and "port" in item:
        keys = ("port", "protocol")
    else:
        keys = _LIST_KEYS.get(field, ())
    if not keys:
        return None
    values = {key: item.get(key, "TCP" if key == "protocol" else None) for key in keys}
    whole = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}
    return "k:" + json.dumps(whole, separators=(",", ":"), sort_keys=True)


def _field_set(value: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, child in value.items():
        # `dict` first: the ABC check alone (`Mapping`) costs more than the rest on JSON-shaped data.
        is_map = isinstance(child, dict) or (not isinstance(child, str | list) and isinstance(child, Mapping))
        if key in _ATOMIC_FIELDS or not child or not (is_map or isinstance(child, list)):
            fields[f"f:{key}"] = {}
        elif is_map:
            fields[f"f:{key}"] = _field_set(child)
        elif key in _SET_LISTS:
            fields[f"f:{key}"] = {f"v:{json.dumps(v)}": {} for v in child}
        else:
            items: dict[str, Any] = {}
            for item in child:
                item_key = _list_item_key(key, item) if isinstance(item, dict | Mapping) else None
                if item_key is None:
                    items = {}  # atomic list: owned as a whole
                    break
                items[item_key] = {".": {}, **_field_set(item)}
            fields[f"f:{key}"] = items
    return fields


def _managed_entry(manager: str, operation: str, api_version: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": CREATION_TIMESTAMP,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }


def _request_entry(manifest: Mapping[str, Any], field_manager: str, operation: str) -> dict[str, Any]:
    applied = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "status")}
    metadata = {k: v for k, v in (manifest.get("metadata") or {}).items() if k not in _STRIPPED_METADATA}
    if metadata:
        applied["metadata"] = metadata
    else:
        applied.pop("metadata", None)
    return _managed_entry(field_manager, operation, manifest["apiVersion"], _field_set(applied))


def _controller_entries(obj: Mapping[str, Any], manager: str) -> list[dict[str, Any]]:
    if not manager:
        return []  # status written by the API server itself at create (Namespace, Service)
    entries = []
    annotations = obj["metadata"].get("annotations") or {}
    if _REVISION_ANNOTATION in annotations:
        fields: dict[str, Any] = {"f:metadata": {"f:annotations": {f"f:{_REVISION_ANNOTATION}": {}}}}
        entries.append(_managed_entry(manager, "Update", obj["apiVersion"], fields))
    status_entry = _managed_entry(manager, "Update", obj["apiVersion"], {"f:status": _field_set(obj["status"])})
    entries.append({**status_entry, "subresource": "status"})
    return entries
