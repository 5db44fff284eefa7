"""The Kubernetes objects `up` of a stack would create, from the offline render of its program, and what the
stack's state already holds: the input of the existing-objects prerequisite (`deploy.existing_objects`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from deploy.backend import StackBackend
from deploy.existing_objects import PlannedObject, Registration, StackObjects, managed_objects
from deploy.offline.commands import run_program
from deploy.restore import SECRET_SENTINEL
from harness.manifests import apply_order_key, is_kubernetes
from harness.recording import RecordedResource

UPSERT_KEY = "kubernetes:upsertExistingObjects"
"""pulumi-kubernetes `provider.go` `Configure`: with this provider config (or `PULUMI_K8S_UPSERT_EXISTING_OBJECTS`)
`true`, a create is a server-side apply that adopts an existing object instead of failing; the config wins."""
UPSERT_ENV = "PULUMI_K8S_UPSERT_EXISTING_OBJECTS"


def stack_objects(project_dir: Path, backend: StackBackend, config: Mapping[str, str]) -> StackObjects:
    """What `up` of `backend` with `config` would create, against what its state holds."""
    short_name = backend.name.rsplit("/", 1)[-1]  # "org/project/prod" -> "prod"
    import_file = project_dir / "out" / "import" / f"{short_name}.json"
    if config.get(UPSERT_KEY, os.environ.get(UPSERT_ENV)) == "true":
        return StackObjects(backend.name, (), frozenset(), frozenset(), import_file, upsert=True)
    state = backend.resources()
    planned = tuple(planned_objects(project_dir, short_name, config))
    urns = frozenset(resource.urn for resource in state)
    return StackObjects(backend.name, planned, managed_objects(state), urns, import_file)


def _registration(resource: RecordedResource) -> Registration:
    return Registration(resource.urn, resource.type, resource.name)


def planned_objects(project_dir: Path, stack: str, config: Mapping[str, str]) -> list[PlannedObject]:
    """Every Kubernetes object the program creates with `config` (the stack's config, as `up` runs it), in apply
    order. Secret values the tool never reads (`SECRET_SENTINEL`) stay as the stack file holds them; no object's
    identity depends on one."""
    overrides = {key: value for key, value in config.items() if value != SECRET_SENTINEL}
    recording = run_program(project_dir, stack, overrides)
    components = {resource.urn: resource for resource in recording if not resource.custom}
    objects = []
    for resource in sorted(recording, key=lambda r: apply_order_key(r.inputs)):
        metadata = resource.inputs.get("metadata") or {}
        # A Patch resource upserts by design (await.go `kinds.IsPatchResource`); an object without metadata.name
        # gets a random suffix from the provider (autonaming): neither can collide.
        if not is_kubernetes(resource) or resource.type.endswith("Patch") or "name" not in metadata:
            continue
        ancestors = []
        parent = components.get(resource.parent or "")
        while parent is not None:
            ancestors.append(_registration(parent))
            parent = components.get(parent.parent or "")
        objects.append(
            PlannedObject(
                api_version=str(resource.inputs["apiVersion"]),
                kind=str(resource.inputs["kind"]),
                namespace=str(metadata.get("namespace") or ""),
                name=str(metadata["name"]),
                resource=_registration(resource),
                ancestors=tuple(ancestors),
            )
        )
    return objects
