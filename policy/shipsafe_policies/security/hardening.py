"""Hardening beyond the Pod Security Standards: read-only root, high IDs, bounded resources, secret files."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import ADVISORY, Config, HasProps, Item, Section, Setting, item_by_item
from ..k8s import dig, items, number, workload_containers
from .contexts import effective, own_context

SECTION = Section(__name__, "hardening", topic="Sec")


@SECTION.resource(
    "hardening-read-only-root-fs",
    "Containers have a read-only root filesystem; writable paths are emptyDir/PVC mounts.",
    "Set readOnlyRootFilesystem: true and mount an emptyDir at /tmp.",
    types=k8s.WORKLOADS,
    topic="Sec; VI Processes",
)
@item_by_item
def check_read_only_root_fs(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            if own_context(container).get("readOnlyRootFilesystem") is not True:
                yield f"{label}: set readOnlyRootFilesystem: true and mount an emptyDir where it must write (/tmp)"


@SECTION.resource(
    "hardening-high-uid-gid",
    "UID/GID >= minId; no group 0 (docker-user-matches-pods ties them to the image's USER).",
    "Use runAsUser/runAsGroup of at least 10000, the image's numeric USER (shipsafe:app.runAsUser).",
    types=k8s.WORKLOADS,
    level=ADVISORY,
    fields=("pod.securityContext",),
    minId=Setting("number", 10000, "Lowest acceptable runAsUser/runAsGroup.", platform=True),
    imageUidComponents=Setting(
        "array",
        ["database", "cache"],
        "Exception, recorded: app.kubernetes.io/component values that keep their official image's UID (Postgres and "
        "Redis run as 999, which owns their data directories; Postgres refuses a data directory owned by another "
        "user, and fsGroup changes only the group, so existing volumes need the migration in docs/policies.md).",
        {"type": "string"},
    ),
)
@item_by_item
def check_high_uid_gid(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if k8s.labels(res).get(k8s.COMPONENT) in list(config["imageUidComponents"]):
        return  # the recorded exception above: the image's own UID owns the data directory
    minimum = float(config["minId"])
    spec = k8s.pod_spec(res)
    with item():
        if number(dig(spec, "securityContext", "fsGroup")) == 0:
            yield "fsGroup is 0; use the app's GID"
    with item():
        if any(number(g) == 0 for g in items(dig(spec, "securityContext", "supplementalGroups"))):
            yield "supplementalGroups contains 0; drop it"
    for label, container in workload_containers(res):
        for field in ("runAsUser", "runAsGroup"):
            with item():
                value = number(effective(field, container, spec))
                if value is None or value < minimum:
                    yield f"{label}: set {field} >= {minimum:.0f} (and build the image with that numeric USER)"


@SECTION.resource(
    "hardening-resources",
    "Containers request CPU, memory and ephemeral storage and limit memory and ephemeral storage.",
    "Set resources.requests/limits; give every emptyDir a sizeLimit.",
    types=k8s.WORKLOADS,
    topic="Sec; VIII Concurrency",
    fields=("container.resources",),
    requests=Setting(
        "array",
        ["cpu", "memory", "ephemeral-storage"],
        "Required requests.",
        {"type": "string"},
        platform=True,
    ),
    limits=Setting("array", ["memory", "ephemeral-storage"], "Required limits.", {"type": "string"}, platform=True),
    requireCpuLimits=Setting(
        "boolean",
        False,
        "Decision: no CPU limits. A CPU limit makes the kernel's CFS quota throttle a latency-sensitive pod even on an "
        "idle node; the CPU request already guarantees each pod its share under contention. True requires limits.cpu.",
        platform=True,
    ),
)
@item_by_item
def check_resources(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    limits = [*config["limits"], *(["cpu"] if config["requireCpuLimits"] else [])]
    required = [("requests", r) for r in config["requests"]] + [("limits", r) for r in dict.fromkeys(limits)]
    for label, container in workload_containers(res):
        missing = []
        for kind, name in required:
            with item():
                if not dig(container, "resources", kind, name):
                    missing.append(f"{kind}.{name}")
        if missing:
            yield f"{label}: set resources {', '.join(missing)}"
    with item():
        for volume in items(dig(k8s.pod_spec(res), "volumes")):
            with item():
                if "emptyDir" in volume and not dig(volume, "emptyDir", "sizeLimit"):
                    yield f"volume {volume.get('name')}: give the emptyDir a sizeLimit"


@SECTION.resource(
    "hardening-secrets-as-files",
    "Backing services read credentials from mounted files (*_FILE), not env (env leaks into /proc).",
    "Mount the Secret as a volume and point the image's *_FILE variable at it.",
    types=k8s.WORKLOADS,
    level=ADVISORY,
    topic="Sec; III Config",
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_secrets_as_files(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if k8s.is_app_workload(res, config):
        return  # twelve-factor III: the app reads DATABASE_URL/REDIS_URL from env (secretKeyRef), by design
    for label, container in workload_containers(res):
        with item():
            for variable in items(container.get("env")):
                with item():
                    if dig(variable, "valueFrom", "secretKeyRef"):
                        yield f"{label}: mount Secret {variable.get('name')} as a file and pass its *_FILE path instead"


_SUFFIXES = {
    **{s: 1000.0**i for i, s in enumerate(("", "k", "M", "G", "T", "P", "E"))},
    **{s: 1024.0**i for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    "m": 0.001,
}


def quantity(value: object) -> float | None:
    """A Kubernetes resource quantity (`250m`, `1.5Gi`, `2e3`, 3) as a number; None when it is not one
    (kubernetes/apimachinery `pkg/api/resource/quantity.go` `ParseQuantity`: decimal SI, binary SI, exponent)."""
    if (plain := number(value)) is not None:
        return plain
    if not isinstance(value, str):
        return None
    text = value.strip()
    suffix = next((s for s in sorted(_SUFFIXES, key=len, reverse=True) if s and text.endswith(s)), "")
    try:
        return float(text[: len(text) - len(suffix)]) * _SUFFIXES[suffix]
    except ValueError:
        return None


@SECTION.resource(
    "hardening-requests-within-limits",
    "No container requests more of a resource than its limit (the API server refuses such a pod at `up`).",
    "Lower the request or raise the limit so that requests <= limits for each resource.",
    types=k8s.WORKLOADS,
    topic="Sec; VIII Concurrency",
    fields=("container.resources",),
)
@item_by_item
def check_requests_within_limits(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    # kubernetes `pkg/apis/core/validation/validation.go` (container resource requirements): a request "must be less
    # than or equal to" its limit; the API server refuses the object at `up`, long after a passing preview.
    for label, container in workload_containers(res):
        limits = dig(container, "resources", "limits") or {}
        for name in limits:
            with item():
                asked = dig(container, "resources", "requests", name)
                request, limit = quantity(asked), quantity(limits[name])
                if request is not None and limit is not None and request > limit:
                    yield f"{label}: requests.{name} {asked} is above its limit {limits[name]}"
