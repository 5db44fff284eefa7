"""Small readers over a recording's Kubernetes objects, shared by the stack tests."""

from __future__ import annotations

from typing import Any

from harness.recording import RecordedResource, Recording

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
JOB = "kubernetes:batch/v1:Job"
SECRET = "kubernetes:core/v1:Secret"
POD_OWNERS = (DEPLOYMENT, STATEFUL_SET, JOB)


def pod_spec(resource: RecordedResource) -> dict[str, Any]:
    return resource.inputs["spec"]["template"]["spec"]


def containers(resource: RecordedResource) -> list[dict[str, Any]]:
    return pod_spec(resource)["containers"]


def pod_owners(recording: Recording) -> list[RecordedResource]:
    return [r for r in recording if r.type in POD_OWNERS]


def only(recording: Recording, type_: str) -> RecordedResource:
    matches = recording.of_type(type_)
    assert len(matches) == 1, f"expected one {type_}, found {[m.name for m in matches]}"
    return matches[0]


def env_var(container: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [e for e in container.get("env", []) if e["name"] == name]
    assert len(matches) == 1, f"container {container['name']} has {len(matches)} {name} variables"
    return matches[0]
