"""Reading a container's securityContext as the kubelet applies it (shared by the PSS and hardening rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..k8s import dig


def own_context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return dig(container, "securityContext") or {}


def effective(field: str, container: Mapping[str, Any], spec: Mapping[str, Any] | None) -> Any:
    """A securityContext field as the kubelet applies it: the container's own setting, else the pod's."""
    own = own_context(container)
    return own[field] if field in own else dig(spec, "securityContext", field)
