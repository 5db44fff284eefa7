"""Pod and container fragments every workload shares: labels and the restricted security profile."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.probes import DEFAULT_TERMINATION_GRACE_SECONDS

PART_OF = "shipsafe"
TMP_VOLUME = "tmp"


def labels(app: str, component: str, version: str | None = None) -> dict[str, str]:
    """app.kubernetes.io labels; selectors use only the stable ones (never `version`)."""
    result = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": f"{app}-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if version:
        result["app.kubernetes.io/version"] = version
    return result


def selector(app: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": f"{app}-{component}"}


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod Security Standards `restricted`: non-root numeric user, RuntimeDefault seccomp."""
    return {
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "fs_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allow_privilege_escalation": False,
        "privileged": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def tmp_volume(size: str = "64Mi") -> dict[str, Any]:
    """The only writable path besides data volumes: the root filesystem is read-only."""
    return {"name": TMP_VOLUME, "empty_dir": {"size_limit": size}}


def tmp_mount() -> dict[str, Any]:
    return {"name": TMP_VOLUME, "mount_path": "/tmp"}


def service_account(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    component_labels: dict[str, str],
    parent: pulumi.Resource,
) -> k8s.core.v1.ServiceAccount:
    """A dedicated account per workload, without an API token: none of these pods talk to the API server."""
    return k8s.core.v1.ServiceAccount(
        resource_name,
        metadata={"name": name, "namespace": namespace, "labels": component_labels},
        automount_service_account_token=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def single_stateful_set_spec(
    *,
    service: k8s.core.v1.Service,
    account: k8s.core.v1.ServiceAccount,
    pod_selector: dict[str, str],
    pod_labels: dict[str, str],
    uid: int,
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    storage_size: str,
    storage_class_name: str | None = None,
    termination_grace_period_seconds: int = DEFAULT_TERMINATION_GRACE_SECONDS,
    pull_secret_name: str | None = None,
) -> dict[str, Any]:
    """One stateful pod with its data on a retained PersistentVolumeClaim named `data`; `pull_secret_name` when its
    image comes from the project registry (a mirrored third-party image)."""
    claim: dict[str, Any] = {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage_size}}}
    if storage_class_name:
        claim["storage_class_name"] = storage_class_name
    return {
        "service_name": service.metadata.apply(lambda m: m.name),
        "replicas": 1,
        "selector": {"match_labels": pod_selector},
        # Deleting or scaling down the StatefulSet must never delete the data.
        "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
        "volume_claim_templates": [{"metadata": {"name": "data"}, "spec": claim}],
        "template": {
            "metadata": {"labels": pod_labels},
            "spec": {
                "service_account_name": account.metadata.apply(lambda m: m.name),
                "automount_service_account_token": False,
                "security_context": pod_security_context(uid),
                "termination_grace_period_seconds": termination_grace_period_seconds,
                "containers": [container],
                "volumes": [tmp_volume(), *volumes],
                **({"image_pull_secrets": [{"name": pull_secret_name}]} if pull_secret_name else {}),
            },
        },
    }


def pull_policy(image: str) -> str:
    """A digest never changes, so the cached copy is the image; a tag is re-resolved on every start."""
    return "IfNotPresent" if "@sha256:" in image else "Always"
