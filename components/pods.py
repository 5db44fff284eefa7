"""Pod and container fragments every workload shares: labels and the restricted security profile."""

from __future__ import annotations

from typing import Any

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
