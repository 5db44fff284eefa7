"""IV Backing services: attached through stack Secrets; in-cluster ones keep their data safe."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, Finding, HasProps, Item, Section, Setting, item_by_item
from ..images import parse_image
from ..k8s import Lookup, dig, items, number, workload_containers

SECTION = Section(__name__, "12f-backing", topic="IV Backing services")

_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@SECTION.stack(
    "12f-backing-attached",
    "The app reaches its backing services only through URLs in stack Secrets (secretKeyRef).",
    "Set each service URL variable from valueFrom.secretKeyRef of the stack's <app>-<service> Secret.",
    serviceEnv=Setting(
        "array",
        [],
        "Env vars every app Deployment must attach from a Secret, beyond those holding a URL.",
        {"type": "string"},
        platform=True,
    ),
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_backing_services_attached(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[Finding, str]]:
    # That the Secret and its key exist is refs-config-keys' to check, for every workload.
    required = list(config["serviceEnv"])
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        if not k8s.is_app_workload(workload, config):
            continue
        regular = {id(c) for c in items(dig(k8s.pod_spec(workload), "containers"))}
        for label, container in workload_containers(workload):
            where = f"{k8s.display(workload)} {label}"
            # An init container attaches what it uses; only the app's processes must attach every service.
            needed = required if id(container) in regular else []
            with item():
                env = {str(e.get("name")): e for e in items(container.get("env"))}
                for name in [*needed, *(n for n in env if n not in needed)]:
                    with item():
                        yield from _attachment_findings(where, name, env.get(name), name in needed, workload)


def _attachment_findings(
    where: str,
    name: str,
    variable: Mapping[str, Any] | None,
    required: bool,
    workload: PolicyResource,
) -> Iterator[tuple[Finding, str]]:
    """A required variable must be attached from a Secret; any variable holding a URL (a service's address, maybe
    with credentials) must too."""
    env = ("container.env",)
    if variable is None:
        if workload.resource_type == k8s.DEPLOYMENT:
            yield Finding(f"{where}: attach {name} through valueFrom.secretKeyRef", env, ("serviceEnv",)), workload.urn
        return
    ref = dig(variable, "valueFrom", "secretKeyRef")
    value = variable.get("value")
    if ref is None and (required or (isinstance(value, str) and _URL.match(value))):
        message = f"{where}: {name} attaches a service, so it must come from a Secret (secretKeyRef), not a literal"
        yield Finding(message, env), workload.urn


@SECTION.stack(
    "12f-backing-stateful",
    "Backing-service StatefulSets keep data in retained claims behind a headless Service.",
    "Use volumeClaimTemplates, a headless serviceName, Retain retention, and protect in prod.",
    topic="IV Backing services; VI Processes",
    **k8s.APP_SETTINGS,
    requireProtect=Setting("boolean", True, "Require Pulumi protect on data-bearing StatefulSets."),
)
@item_by_item
def check_stateful_backing(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[str, str]]:
    headless = Lookup()
    for service in k8s.of_type(resources, k8s.SERVICE):
        with headless.adding():
            if dig(service.props, "spec", "clusterIP") == "None":
                headless.entries[dig(service.props, "metadata", "name")] = service
    backing = set(config["backingComponents"])
    for sts in k8s.of_type(resources, k8s.STATEFUL_SET):
        if k8s.labels(sts).get(k8s.COMPONENT) not in backing:
            continue
        where = k8s.display(sts)
        with item():
            claims = {dig(c, "metadata", "name") for c in items(dig(sts.props, "spec", "volumeClaimTemplates"))}
            if not claims:
                yield f"{where}: keep data in volumeClaimTemplates, not emptyDir", sts.urn
            for volume in items(dig(sts.props, "spec", "template", "spec", "volumes")):
                with item():
                    if volume.get("name") in claims and "emptyDir" in volume:
                        yield f"{where}: volume {volume.get('name')} shadows the claim with an emptyDir", sts.urn
        with item():  # serviceName is the headless Service's output name: maybe unknown in preview
            if not headless.has(dig(sts.props, "spec", "serviceName")):
                yield f"{where}: serviceName must name a headless Service (clusterIP: None) of the stack", sts.urn
        with item():
            # Unset is Retain: `SetDefaults_StatefulSet` fills both in (StatefulSetAutoDeletePVC, on by default
            # from 1.27), so a live object always carries them and the inputs may leave them out.
            retention = dig(sts.props, "spec", "persistentVolumeClaimRetentionPolicy") or {}
            if any((retention.get(key) or "Retain") != "Retain" for key in ("whenDeleted", "whenScaled")):
                yield f"{where}: set persistentVolumeClaimRetentionPolicy whenDeleted/whenScaled: Retain", sts.urn
        if config["requireProtect"] and not sts.opts.protect:
            yield f"{where}: set protect=True on the data-bearing StatefulSet", sts.urn


class SingleInstanceSettings(TypedDict):
    singleInstanceImages: Setting
    replicatedImages: Setting


SINGLE_INSTANCE_SETTINGS: SingleInstanceSettings = {
    "singleInstanceImages": Setting(
        type="array",
        default=["postgres", "mysql", "mariadb", "mongo", "redis", "valkey"],
        description="Repositories (last path segment) of database images that run one independent server per pod.",
        items={"type": "string"},
    ),
    "replicatedImages": Setting(
        type="array",
        default=["bitnami/postgresql-repmgr", "bitnami/redis-cluster", "bitnami/valkey-cluster"],
        description="Repositories (a suffix of the image name) that form a replicated cluster themselves.",
        items={"type": "string"},
        platform=True,
    ),
}
"""Which images run one independent database server per pod: shared by the rules on replicas and autoscaling."""


def _single_instance_databases(res: HasProps, config: Config, item: Item) -> list[str]:
    """The workload's containers that run a single-instance database image, as `container <name> (<repository>)`."""
    single, replicated = set(config["singleInstanceImages"]), list(config["replicatedImages"])
    databases = []
    for label, container in workload_containers(res):
        with item():
            image = parse_image(str(container.get("image") or ""))
            is_replicated = any(image.repository.endswith(r) for r in replicated)
            if image.repository.rsplit("/", 1)[-1] in single and not is_replicated:
                databases.append(f"{label} ({image.repository})")
    return databases


@SECTION.resource(
    "12f-backing-single-instance",
    "A single-instance database image runs as one pod: more replicas, parallel pod management or a surging "
    "Deployment rollout start separate databases (or two servers on one volume), not a cluster.",
    "Keep replicas: 1 on a StatefulSet with OrderedReady pod management; for more, deploy a replicated setup "
    "(an operator or an image listed in replicatedImages) instead.",
    types={k8s.STATEFUL_SET, k8s.DEPLOYMENT, "kubernetes:apps/v1:ReplicaSet"},
    topic="IV Backing services; Data safety",
    fields=("spec.replicas", "spec.podManagementPolicy", "spec.strategy"),
    **SINGLE_INSTANCE_SETTINGS,
)
@item_by_item
def check_single_instance(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    databases = _single_instance_databases(res, config, item)
    if not databases:
        return
    spec = res.props.get("spec") or {}
    what = ", ".join(databases)
    with item():
        replicas = number(spec.get("replicas"))
        if replicas is not None and replicas > 1:
            yield f"{what}: {replicas:.0f} replicas are {replicas:.0f} separate databases, not a cluster; use 1"
    with item():
        if res.resource_type == k8s.STATEFUL_SET and spec.get("podManagementPolicy") == "Parallel":
            yield f"{what}: podManagementPolicy Parallel may run two servers at once; use OrderedReady"
    with item():
        if res.resource_type == k8s.DEPLOYMENT and dig(spec, "strategy", "type") != "Recreate":
            yield f"{what}: a rolling Deployment starts the new server beside the old one; use a StatefulSet"


@SECTION.stack(
    "12f-backing-single-instance-not-autoscaled",
    "No autoscaler scales a single-instance database: each pod it adds is a separate, empty database (or a second "
    "server on the same volume), not capacity.",
    "Remove the HorizontalPodAutoscaler from the database's workload (or keep its maxReplicas at 1); scale a "
    "database with a replicated setup (an operator or an image listed in replicatedImages).",
    topic="IV Backing services; Data safety",
    **SINGLE_INSTANCE_SETTINGS,
)
@item_by_item
def check_single_instance_not_autoscaled(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str]]:
    workloads = k8s.scale_targets(resources)
    for hpa in k8s.of_type(resources, k8s.HPA):
        with item():
            workload = workloads.get(k8s.scale_target(hpa))
            if workload is None:
                continue  # refs-* rules judge a reference to nothing
            databases = _single_instance_databases(workload, config, item)
            ceiling = number(dig(hpa.props, "spec", "maxReplicas"))
            if databases and (ceiling is None or ceiling > 1):
                shown = "unknown" if ceiling is None else f"{ceiling:.0f}"
                yield (
                    f"{k8s.display(hpa)} scales {k8s.display(workload)} up to {shown} pods, but "
                    f"{', '.join(databases)} runs one independent server per pod",
                    hpa.urn,
                )
