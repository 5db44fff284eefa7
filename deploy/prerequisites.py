"""What the cluster must offer before `pulumi up`, derived from the stack's own settings, and the check itself.

Each prerequisite is one a failed `up` would otherwise reveal late and half-applied:
- the PodMonitor's CRD: pulumi-kubernetes skips a kind whose CRD is missing in preview and fails in up
  (`provider/pkg/provider/provider.go` `Create`), after the workloads were already rolled;
- a default StorageClass when a PersistentVolumeClaim names none: without one the claim stays Pending
  (kubernetes `pkg/volume/util/storageclass.go` `GetDefaultClass` returns nil) and the StatefulSet's await times
  out; a class named explicitly must exist for the same reason;
- Kubernetes 1.30 or newer: the pods' preStop hook uses the `sleep` action (KEP-3960), enabled by default
  (beta) only from 1.30; an older API server rejects or drops it;
- the IngressClass every Ingress names: pulumi-kubernetes waits for an Ingress until a controller publishes
  `status.loadBalancer.ingress` (`provider/pkg/await/ingress.go`), and a controller serves only the Ingresses of
  its class. The settings always name the class (`app.ingressClassName`), so the default class does not matter;
  the check cannot see whether the controller runs, only that its class is installed;
- the cert-manager ClusterIssuer the Ingresses' annotation names: without its CRD and object no certificate is
  issued, and the Ingress serves the controller's fallback certificate;
- with `app.edge.controller: envoy-gateway`, the Gateway API and Envoy Gateway CRDs (a missing CRD fails `up`, as
  above) and the named Gateway with its HTTPS listener: pulumi-kubernetes does not wait for an HTTPRoute
  (`provider/pkg/metadata/overrides.go` `ReadyCondition`: no await without `pulumi.com/waitFor`), so a route on a
  Gateway that does not exist would be applied, and `up` would succeed, with nothing serving it;
- no object the stack would create may already exist outside its state: pulumi-kubernetes fails `up` on it with
  "already exists" (`deploy.existing_objects`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from components.settings import (
    CONFIG_NAMESPACE,
    INGRESS_WORKLOAD,
    AppSettings,
    BackingService,
    EdgeController,
    RegistryMode,
    RegistrySettings,
    ServiceMode,
    Workload,
)
from deploy.errors import ExitCode, ShipsafeError
from deploy.existing_objects import ExistingObjects, StackObjects, existing_objects
from deploy.release import object_config

MIN_KUBERNETES = (1, 30)
PODMONITOR_CRD = "podmonitors.monitoring.coreos.com"
CLUSTER_ISSUER_CRD = "clusterissuers.cert-manager.io"
GATEWAY_CRDS = ("httproutes.gateway.networking.k8s.io", "backendtrafficpolicies.gateway.envoyproxy.io")
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",  # still honoured by GetDefaultClass
)


class ClusterApi(Protocol):
    def get(self, path: str) -> dict[str, Any] | None:
        """The JSON object at `path`; None when the API server answers 404."""
        ...


ClusterOpener = Callable[[Mapping[str, str]], ClusterApi]
"""Opens the cluster a stack deploys to, from its config (`kubernetes:context`, `kubernetes:kubeconfig`)."""


@dataclass(frozen=True)
class Requirements:
    """What this stack's settings need from the cluster."""

    pod_monitor_crd: bool
    default_storage_class_for: tuple[str, ...]
    """Claims (by config key) that name no StorageClass and so need the cluster's default."""
    storage_classes: Mapping[str, str]
    """Explicit StorageClass name -> the config key that names it."""
    ingress_class: str | None = None
    """The IngressClass the Ingresses name; None when the stack declares no Ingress."""
    cluster_issuer: str | None = None
    """The cert-manager ClusterIssuer the Ingresses name; None when unset or no Ingress."""
    gateway: tuple[str, str, str] | None = None
    """(namespace, name, listener) of the Gateway the web HTTPRoute attaches to; None without an HTTPRoute."""
    min_version: tuple[int, int] = MIN_KUBERNETES


M = TypeVar("M", bound=BaseModel)


def _model(config: Mapping[str, str], key: str, model: type[M]) -> M:
    return _validated(key, object_config(config, key), model)


def _validated(key: str, value: object, model: type[M]) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
        raise ShipsafeError(f"stack config {key} is invalid: {problems}", ExitCode.FAILED) from None


def requirements_for(config: Mapping[str, str]) -> Requirements:
    """Reads only the settings that decide a prerequisite, with the program's own models and defaults."""
    app = _model(config, f"{CONFIG_NAMESPACE}:app", AppSettings)
    default_class: list[str] = []
    explicit: dict[str, str] = {}
    for role in ("postgres", "redis"):
        key = f"{CONFIG_NAMESPACE}:{role}"
        # Unset is mode none, as in the program's settings: no server, no claim.
        service = _model(config, key, BackingService) if key in config else BackingService()
        if service.mode is not ServiceMode.IN_CLUSTER:
            continue
        if service.storage_class_name:
            explicit.setdefault(service.storage_class_name, f"{key}.storageClassName")
        else:
            default_class.append(key)
    registry_key = f"{CONFIG_NAMESPACE}:registry"
    in_cluster_registry = _model(config, registry_key, RegistrySettings).mode is RegistryMode.IN_CLUSTER
    if in_cluster_registry:
        default_class.append(registry_key)  # the in-cluster registry's claim never names a class
    # The exposed `web` workload and the in-cluster registry each have an Ingress (components/workload.py,
    # components/registry.py), both with the app's class and ClusterIssuer.
    workloads_key = f"{CONFIG_NAMESPACE}:workloads"
    web = object_config(config, workloads_key).get(INGRESS_WORKLOAD)
    web_exposed = web is not None and _validated(f"{workloads_key}.{INGRESS_WORKLOAD}", web, Workload).expose
    edge = app.edge
    web_route = web_exposed and edge.controller is EdgeController.ENVOY_GATEWAY and edge.gateway_name is not None
    has_ingress = (web_exposed and not web_route) or in_cluster_registry
    return Requirements(
        app.pod_monitor,
        tuple(default_class),
        explicit,
        ingress_class=app.ingress_class_name if has_ingress else None,
        cluster_issuer=app.cluster_issuer if has_ingress else None,
        gateway=(edge.gateway_namespace or app.namespace, edge.gateway_name or "", edge.gateway_listener)
        if web_route
        else None,
    )


def _version(body: Mapping[str, Any]) -> tuple[int, int] | None:
    # gitVersion ("v1.29.4-eks-...") is exact; minor alone may carry a "+" on managed clusters ("29+").
    match = re.match(r"v?(\d+)\.(\d+)", str(body.get("gitVersion", "")))
    if match:
        return int(match.group(1)), int(match.group(2))
    major, minor = (re.match(r"\d+", str(body.get(k, ""))) for k in ("major", "minor"))
    return (int(major.group()), int(minor.group())) if major and minor else None


def _is_default(storage_class: Mapping[str, Any]) -> bool:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in DEFAULT_CLASS_ANNOTATIONS)


def missing_prerequisites(requirements: Requirements, api: ClusterApi) -> list[str]:
    """Every prerequisite the cluster lacks, as a sentence that says how to fix it; empty when all are met."""
    problems: list[str] = []
    version_body = api.get("/version") or {}
    version = _version(version_body)
    wanted = ".".join(map(str, requirements.min_version))
    if version is None:
        problems.append(f"the API server's /version answer {version_body!r} names no Kubernetes version")
    elif version < requirements.min_version:
        problems.append(
            f"Kubernetes {version[0]}.{version[1]} is too old: at least {wanted} is needed for the pods' preStop "
            "`sleep` hook (upgrade the cluster)"
        )
    if requirements.pod_monitor_crd:
        crd = CRD_PATH + PODMONITOR_CRD
        if api.get(crd) is None:
            problems.append(
                f"CustomResourceDefinition {PODMONITOR_CRD} is missing (shipsafe:app.podMonitor is true): install "
                "the Prometheus Operator CRDs, or set podMonitor to false"
            )
    if requirements.default_storage_class_for or requirements.storage_classes:
        classes = (api.get("/apis/storage.k8s.io/v1/storageclasses") or {}).get("items") or []
        names = {(item.get("metadata") or {}).get("name") for item in classes}
        if requirements.default_storage_class_for and not any(_is_default(item) for item in classes):
            claims = ", ".join(requirements.default_storage_class_for)
            problems.append(
                f'no default StorageClass (annotation {DEFAULT_CLASS_ANNOTATIONS[0]}="true"), and the volumes of '
                f"{claims} name none: mark a class as default, or set storageClassName"
            )
        for name, key in sorted(requirements.storage_classes.items()):
            if name not in names:
                problems.append(f"StorageClass {name!r} ({key}) does not exist in the cluster")
    problems += _missing_ingress_prerequisites(requirements, api)
    problems += _missing_gateway_prerequisites(requirements, api)
    return problems


def _missing_gateway_prerequisites(requirements: Requirements, api: ClusterApi) -> list[str]:
    if requirements.gateway is None:
        return []
    missing = [crd for crd in GATEWAY_CRDS if api.get(CRD_PATH + crd) is None]
    if missing:
        return [
            f"CustomResourceDefinition {crd} is missing (shipsafe:app.edge.controller is envoy-gateway): install the "
            "Gateway API CRDs and Envoy Gateway 1.4 or newer, or use controller ingress-nginx"
            for crd in missing
        ]
    namespace, name, listener = requirements.gateway
    gateway = api.get(f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}")
    if gateway is None:
        return [
            f"Gateway {namespace}/{name} (shipsafe:app.edge.gatewayName, gatewayNamespace) does not exist: create "
            "it with an HTTPS listener, served by Envoy Gateway"
        ]
    listeners = {item.get("name"): item.get("protocol") for item in (gateway.get("spec") or {}).get("listeners") or []}
    if listeners.get(listener) != "HTTPS":
        return [
            f"Gateway {namespace}/{name} has no HTTPS listener named {listener!r} (shipsafe:app.edge.gatewayListener); "
            f"its listeners: {listeners or 'none'}"
        ]
    return []


def _missing_ingress_prerequisites(requirements: Requirements, api: ClusterApi) -> list[str]:
    problems: list[str] = []
    name = requirements.ingress_class
    if name and api.get(f"/apis/networking.k8s.io/v1/ingressclasses/{name}") is None:
        problems.append(
            f"IngressClass {name!r} (shipsafe:app.ingressClassName) does not exist: install an ingress controller "
            "that serves it (`up` waits for the controller to publish each Ingress's address), or name the "
            "class of the controller you run"
        )
    issuer = requirements.cluster_issuer
    if issuer:
        if api.get(CRD_PATH + CLUSTER_ISSUER_CRD) is None:
            problems.append(
                f"CustomResourceDefinition {CLUSTER_ISSUER_CRD} is missing (shipsafe:app.clusterIssuer is "
                f"{issuer!r}): install cert-manager, or unset clusterIssuer and provide the TLS Secrets"
            )
        elif api.get(f"/apis/cert-manager.io/v1/clusterissuers/{issuer}") is None:
            problems.append(f"ClusterIssuer {issuer!r} (shipsafe:app.clusterIssuer) does not exist in the cluster")
    return problems


def require_prerequisites(config: Mapping[str, str], open_cluster: ClusterOpener, objects: StackObjects) -> str:
    """Fails with PREREQUISITES_MISSING listing every gap; returns a one-line summary of what was checked."""
    requirements = requirements_for(config)
    api = open_cluster(config)
    problems = missing_prerequisites(requirements, api)
    existing = existing_objects(objects, api)
    problems += existing.problems
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ShipsafeError(
            f"the cluster lacks prerequisites of this stack (docs/prerequisites.md):\n{listed}",
            ExitCode.PREREQUISITES_MISSING,
        )
    checked = [f"Kubernetes >= {'.'.join(map(str, requirements.min_version))}"]
    if requirements.pod_monitor_crd:
        checked.append(f"CRD {PODMONITOR_CRD}")
    if requirements.default_storage_class_for:
        checked.append("a default StorageClass")
    checked += [f"StorageClass {name}" for name in sorted(requirements.storage_classes)]
    if requirements.ingress_class:
        checked.append(f"IngressClass {requirements.ingress_class}")
    if requirements.cluster_issuer:
        checked.append(f"ClusterIssuer {requirements.cluster_issuer}")
    if requirements.gateway:
        namespace, name, listener = requirements.gateway
        checked.append(f"CRDs {', '.join(GATEWAY_CRDS)}, Gateway {namespace}/{name} listener {listener}")
    return "; ".join([", ".join(checked), _objects_summary(objects, existing)])


def _objects_summary(objects: StackObjects, existing: ExistingObjects) -> str:
    if objects.upsert:
        return "objects to create not looked up (kubernetes:upsertExistingObjects: the provider adopts them)"
    summary = f"none of the {len(objects.planned)} objects to create exists outside the state"
    if existing.not_served:
        summary += f" (not served yet, so none exists: {', '.join(sorted(existing.not_served))})"
    if existing.unchecked:
        summary += f"; not looked up: {'; '.join(existing.unchecked)}"
    return summary
