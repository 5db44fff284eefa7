"""Objects the stack would create that already exist in the cluster but not in the stack's state.

pulumi-kubernetes 4.29+ creates an object with a plain Create unless the provider upserts
(`provider/pkg/await/await.go` `Creation`: without `UpsertExistingObjects` or a Patch resource it calls
`client.Create` with field manager `pulumi-kubernetes`), so an object of the same kind, namespace and name that
something else made (a namespace created by hand, what an earlier, half-deleted install left behind) fails `up` with
"already exists" (`apierrors.IsAlreadyExists` there), after the objects before it were changed; the preview does not
show it (`provider.go` `Create` treats AlreadyExists in a server-side dry run as a failed preview and returns the
inputs). The objects come from the offline render of the program with the config `up` uses; which ones Pulumi
already manages, from the stack's state; the API server's own discovery maps each kind to its REST path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from deploy.backend import StateResource

if TYPE_CHECKING:
    from deploy.prerequisites import ClusterApi

ObjectKey = tuple[str, str, str, str]
"""(API group, kind, namespace or "", name): one object, whichever version of its group reads it."""


class Registration(NamedTuple):
    """A resource as the program registers it: what its URN, and so a `pulumi import` of it, is made of."""

    urn: str
    type: str
    name: str
    """The program's name for it (the first argument of the resource's constructor), not the object's name."""


@dataclass(frozen=True)
class PlannedObject:
    """A Kubernetes object the program registers, with what `pulumi import` needs to adopt it."""

    api_version: str
    kind: str
    namespace: str
    """"" when the manifest names none (cluster-scoped, or the provider's default namespace)."""
    name: str
    resource: Registration
    ancestors: tuple[Registration, ...] = ()
    """The ComponentResources it is registered under, its parent first; the root stack is left out."""

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> ObjectKey:
        return self.group, self.kind, self.namespace, self.name


@dataclass(frozen=True)
class StackObjects:
    """What `up` of one stack would create, and what its state already holds."""

    stack: str
    planned: tuple[PlannedObject, ...]
    managed: frozenset[ObjectKey]
    state_urns: frozenset[str]
    import_file: Path
    """Where the check writes a `pulumi import --file` for the objects it finds."""
    upsert: bool = False
    """The provider adopts existing objects (`kubernetes:upsertExistingObjects`): nothing can collide."""


def managed_objects(resources: Iterable[StateResource]) -> frozenset[ObjectKey]:
    """The objects the state holds, by their pulumi-kubernetes type token (`kubernetes:<group>/<version>:<Kind>`,
    `core` for the core group) and ID (`provider.go` `fqObjName`: `<namespace>/<name>`, or `<name>`). A pending
    delete or an external (read) resource does not count: the engine will not update either into the object."""
    keys = set()
    for resource in resources:
        provider, _, rest = resource.type.partition(":")
        group_version, _, kind = rest.partition(":")
        if provider != "kubernetes" or not kind or resource.pending_delete or resource.external:
            continue
        group = group_version.rpartition("/")[0]
        namespace, _, name = resource.id.rpartition("/")
        keys.add(("" if group == "core" else group, kind, namespace, name))
    return frozenset(keys)


class ServedKind(NamedTuple):
    """A kind as the API server's discovery lists it (`APIResourceList`): its REST name and scope."""

    plural: str
    """The resource in REST paths and for kubectl (`networkpolicies`)."""
    namespaced: bool


@dataclass(frozen=True)
class Collision:
    """An object `up` would create that the cluster already has."""

    planned: PlannedObject
    served: ServedKind

    @property
    def namespace(self) -> str:
        return self.planned.namespace if self.served.namespaced else ""

    @property
    def object_id(self) -> str:
        """The ID pulumi-kubernetes gives the object (`provider.go` `fqObjName`), which `pulumi import` takes."""
        return f"{self.namespace}/{self.planned.name}" if self.namespace else self.planned.name


@dataclass
class ExistingObjects:
    """The check's findings: one problem per colliding object, and what it could not or need not look at."""

    problems: list[str] = field(default_factory=list)
    not_served: set[str] = field(default_factory=set)
    """`<Kind> (<apiVersion>)` the cluster does not serve (a CRD not installed yet): no such object can exist."""
    unchecked: list[str] = field(default_factory=list)
    """Objects that were not looked up, each with the reason."""


def _api_root(api_version: str) -> str:
    # The core group lives under /api, every other group under /apis (Kubernetes API concepts, "API groups").
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def served_kinds(api: ClusterApi, api_version: str) -> dict[str, ServedKind]:
    """Discovery of one group version (`GET /api/v1`, `/apis/<group>/<version>`), as kubectl and the provider's
    REST mapper read it; subresources (`deployments/status`) are left out. Empty when the version is not served."""
    body = api.get(_api_root(api_version)) or {}
    return {
        str(item.get("kind")): ServedKind(str(item["name"]), bool(item.get("namespaced")))
        for item in body.get("resources") or []
        if "/" not in str(item.get("name", "/"))
    }


def import_document(objects: StackObjects, collisions: Iterable[Collision]) -> dict[str, Any]:
    """A `pulumi import --file` document (pulumi `pkg/cmd/pulumi/operations/import.go` `importFile`) adopting every
    collision with the URN the program registers it under: components the state lacks are imported with it
    (`component: true`; a planned import fails on a parent that is not in the state, `deploy/step.go`
    `ImportStep.Apply`), parents already in the state are named in `nameTable`. Each entry's `name` is its URN."""
    resources: list[dict[str, Any]] = []
    name_table: dict[str, str] = {}
    added: set[str] = set()

    def add(resource: Registration, parent: Registration | None, **fields: Any) -> None:
        if parent is not None and parent.urn in objects.state_urns:
            name_table[parent.urn] = parent.urn
        entry = {"type": resource.type, "name": resource.urn, "logicalName": resource.name, **fields}
        resources.append({**entry, "parent": parent.urn} if parent else entry)
        added.add(resource.urn)

    for collision in collisions:
        chain = (collision.planned.resource, *collision.planned.ancestors)  # the object, its parent, ...
        parents = (*chain[1:], None)
        held = next((i for i in range(1, len(chain)) if chain[i].urn in objects.state_urns), len(chain))
        for i in reversed(range(1, held)):  # the components the state lacks, outermost first
            if chain[i].urn not in added:
                add(chain[i], parents[i], component=True)
        add(chain[0], parents[0], id=collision.object_id)
    return {"nameTable": name_table, "resources": resources}


def _message(objects: StackObjects, collision: Collision) -> str:
    planned, stack = collision.planned, objects.stack
    parent = planned.ancestors[0] if planned.ancestors else None
    if parent is None or parent.urn in objects.state_urns:
        # `pulumi import [type] [name] [id] --parent 'parent=<urn>'` (`import.go`): the program's own name and parent,
        # so the imported resource has the URN the program registers.
        where = f" --parent 'parent={parent.urn}'" if parent else ""
        adopt = f"pulumi import --stack {stack} {planned.resource.type} {planned.resource.name} {collision.object_id}"
        adopt = f"`{adopt}{where}`"
    else:
        adopt = (
            f"`pulumi import --stack {stack} --file {objects.import_file}` (written now: every object listed here, "
            "with the components the state lacks)"
        )
    resource = f"{collision.served.plural}.{planned.group}" if planned.group else collision.served.plural
    namespace = f" --namespace {collision.namespace}" if collision.namespace else ""
    delete = f"`kubectl delete {resource} {planned.name}{namespace}`"
    if planned.kind == "Namespace" and not planned.group:
        delete += " (this deletes everything in the namespace)"
    return (
        f"{planned.kind} {collision.object_id} already exists in the cluster but is not in the state of stack {stack}: "
        f'`up` would fail to create it ("already exists"). Adopt it with {adopt}, or delete it with {delete}'
    )


def existing_objects(objects: StackObjects, api: ClusterApi) -> ExistingObjects:
    """Looks up every object `up` would create that the state does not hold; each one found is a problem, and all
    of them are written to `objects.import_file` (removed when there are none)."""
    found = ExistingObjects()
    if objects.upsert:
        return found
    discovered: dict[str, dict[str, ServedKind]] = {}
    collisions = []
    for planned in objects.planned:
        if planned.key in objects.managed:
            continue  # an update of an object Pulumi already manages
        if planned.api_version not in discovered:
            discovered[planned.api_version] = served_kinds(api, planned.api_version)
        served = discovered[planned.api_version].get(planned.kind)
        if served is None:
            found.not_served.add(f"{planned.kind} ({planned.api_version})")
            continue
        if served.namespaced and not planned.namespace:
            found.unchecked.append(
                f"{planned.kind} {planned.name}: names no namespace, so the provider's default namespace decides"
            )
            continue
        scope = f"/namespaces/{planned.namespace}" if served.namespaced else ""
        if api.get(f"{_api_root(planned.api_version)}{scope}/{served.plural}/{planned.name}") is not None:
            collisions.append(Collision(planned, served))
    if collisions:
        objects.import_file.parent.mkdir(parents=True, exist_ok=True)
        objects.import_file.write_text(json.dumps(import_document(objects, collisions), indent=2) + "\n")
    else:
        objects.import_file.unlink(missing_ok=True)  # an earlier run's file would adopt what is no longer in the way
    found.problems = [_message(objects, collision) for collision in collisions]
    return found
