"""IV Backing services: attached through stack Secrets; in-cluster ones keep their data safe."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, Finding, Item, Section, Setting, item_by_item
from ..k8s import Lookup, dig, items, workload_containers

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
    secrets = Lookup()
    for secret in k8s.of_type(resources, k8s.SECRET):
        with secrets.adding():
            secrets.entries[dig(secret.props, "metadata", "name")] = secret
    required = list(config["serviceEnv"])
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        if not k8s.is_app_workload(workload, config):
            continue
        for label, container in workload_containers(workload):
            where = f"{k8s.display(workload)} {label}"
            with item():
                env = {str(e.get("name")): e for e in items(container.get("env"))}
                for name in [*required, *(n for n in env if n not in required)]:
                    with item():
                        yield from _attachment_findings(where, name, env.get(name), name in required, workload, secrets)


def _attachment_findings(
    where: str,
    name: str,
    variable: Mapping[str, Any] | None,
    required: bool,
    workload: PolicyResource,
    secrets: Lookup,
) -> Iterator[tuple[Finding, str]]:
    """A required variable must be attached from a Secret of the stack; any variable holding a URL (a service's
    address, maybe with credentials) must too; a Secret a variable references must exist."""
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
    elif ref is not None and not secrets.has(ref.get("name")):
        yield (
            Finding(f"{where}: {name} references Secret {ref.get('name')} not defined in the stack", env),
            workload.urn,
        )


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
