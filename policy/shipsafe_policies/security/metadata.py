"""Metadata and API hygiene: explicit namespaces, recommended labels, stable API versions."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import ADVISORY, Config, HasProps, Item, Section, Setting, item_by_item
from ..k8s import dig

SECTION = Section(__name__, "metadata", topic="Sec")

_CLUSTER_SCOPED = frozenset(
    {
        k8s.NAMESPACE,
        *k8s.CLUSTER_RBAC,
        "kubernetes:core/v1:PersistentVolume",
        "kubernetes:storage.k8s.io/v1:StorageClass",
    }
)


@SECTION.resource(
    "metadata-explicit-namespace",
    "Namespaced objects name the app namespace explicitly (never default).",
    "Set metadata.namespace to the app namespace.",
    types=None,
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


@SECTION.resource(
    "metadata-recommended-labels",
    "Objects carry the app.kubernetes.io recommended labels.",
    "Add the missing app.kubernetes.io labels.",
    types=None,
    level=ADVISORY,
    topic="Ops",
    required=Setting(
        "array",
        [f"app.kubernetes.io/{k}" for k in ("name", "instance", "component", "part-of", "managed-by")],
        "Labels every Kubernetes object must carry.",
        {"type": "string"},
    ),
)
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


@SECTION.resource(
    "metadata-stable-api-versions",
    "No alpha, beta or removed versions of Kubernetes' own APIs (a CRD's group versions itself).",
    "Use the stable apiVersion of the kind.",
    types=None,
    topic="Correctness; X Dev/prod parity",
)
def check_stable_api_versions(res: HasProps, config: Config) -> Iterator[str]:
    if not res.resource_type.startswith("kubernetes:"):
        return
    group_version = res.resource_type.split(":")[1]
    group, _, version = group_version.rpartition("/")
    # Kubernetes' own groups are the core group and *.k8s.io (incl. the Gateway API); any other group belongs to a
    # CRD whose maintainers version it (Envoy Gateway's BackendTrafficPolicy has only v1alpha1).
    kubernetes_own = group in ("core", "apps", "batch", "policy", "autoscaling", "extensions") or group.endswith(
        "k8s.io"
    )
    if not kubernetes_own:
        return
    if "alpha" in version or "beta" in version or group == "extensions":
        yield f"{res.resource_type} is a deprecated API version; use the stable (v1/v2) kind"
