"""Twelve-factor family: every factor that shows on the resource graph, each policy naming its factor."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationPolicy, StackValidationPolicy

from . import k8s
from .framework import (
    ADVISORY,
    Config,
    Family,
    Finding,
    HasProps,
    Item,
    Setting,
    item_by_item,
    resource_policy,
    stack_policy,
)
from .images import IMAGE_BUILDS, matches_prefix, parse_image
from .k8s import Lookup, dig, items, number, workload_containers
from .patterns import HOST, SECRET_NAME, looks_secret, secret_by_name

FAMILY = Family("twelve-factor")

_OWN_REGISTRIES = Setting(
    "array",
    [],
    "registry/repository prefixes of the app's own images (set per stack): these need tag and digest.",
    {"type": "string"},
    platform=True,
)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _deployments(resources: list[PolicyResource], config: Config) -> list[PolicyResource]:
    """Long-running app Deployments (web, worker...): app workloads that are not the migration Job."""
    return [r for r in k8s.of_type(resources, k8s.DEPLOYMENT) if k8s.is_app_workload(r, config)]


# I Codebase / V Build, release, run ------------------------------------------------------------------------------


@item_by_item
def check_immutable_image(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with item():  # the app image is unknown in preview until it is built
            reference = str(container.get("image") or "")
            image = parse_image(reference)
            if image.tag_is_mutable:
                yield f"{label}: {reference or 'no image'} is untagged or latest; deploy <app>:<sha>@sha256:<digest>"
            elif matches_prefix(image, own):
                if not image.has_valid_digest:
                    yield f"{label}: {reference} lacks @sha256:<digest>; wire the build's repo digest into the pod spec"
            elif not image.tag_is_full_version:
                yield f"{label}: {reference} floats with upstream; pin a full version tag such as 15.18-bookworm"


@item_by_item
def check_third_party_digest(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with item():
            image = parse_image(str(container.get("image") or ""))
            if not matches_prefix(image, own) and not image.has_valid_digest:
                yield f"{label}: {image.name}:{image.tag} has no @sha256 digest; mirror it and pin the digest"


def check_no_build_in_prod(res: HasProps, config: Config) -> Iterator[str]:
    if not config["allowImageBuild"]:
        yield "this stack must not build images: build once in CI, then promote the digest (imageSource: prebuilt)"


# III Config ----------------------------------------------------------------------------------------------------


def _literal_env(container: Mapping[str, Any], item: Item) -> Iterator[tuple[str, str]]:
    with item():
        for variable in items(container.get("env")):
            with item():
                value = variable.get("value")
                if isinstance(value, str):
                    yield str(variable.get("name")), value


@item_by_item
def check_no_plaintext_secret_env(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        for name, value in _literal_env(container, item):
            if secret_by_name(name, value) or looks_secret(value):
                yield f"{label}: env {name} holds a literal secret; use valueFrom.secretKeyRef (or a *_FILE mount)"


def _entries(res: HasProps, field: str, item: Item) -> Iterator[tuple[str, Any]]:
    """(key, value) of a map field (ConfigMap/Secret data): an unknown value skips just its key."""
    with item():  # stringData built from a generated password is unknown in preview, often as a whole
        mapping = res.props.get(field) or {}
        for key in mapping:
            with item():
                yield key, mapping[key]


@item_by_item
def check_no_sensitive_configmap(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for field in ("data", "binaryData"):
        for key, value in _entries(res, field, item):
            if (value and SECRET_NAME.search(key)) or looks_secret(str(value)):
                yield f"{field}.{key} looks like a credential; move it to a Secret and use secretKeyRef"


_PLACEHOLDERS = re.compile(r"(?i)^(changeme|change-me|password|secret|replace.*|todo|xxx+|test|example)$")


@item_by_item
def check_secret_hygiene(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    with item():
        if not res.props.get("type"):
            yield "set the Secret type (Opaque, kubernetes.io/dockerconfigjson, ...)"
    for field in ("stringData", "data"):
        for key, value in _entries(res, field, item):
            if not value or _PLACEHOLDERS.match(str(value)):
                yield f"{field}.{key} is empty or a placeholder; set it with `pulumi config set --secret`"


@item_by_item
def check_config_from_env(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    for label, container in workload_containers(res):
        with item():
            from_config_map = any(dig(e, "configMapRef", "name") for e in items(container.get("envFrom"))) or any(
                dig(e, "valueFrom", "configMapKeyRef") for e in items(container.get("env"))
            )
            if not from_config_map:
                yield f"{label}: take non-secret config from the app ConfigMap (envFrom.configMapRef)"
        with item():
            names = [str(e.get("name")) for e in items(container.get("env"))]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                yield f"{label}: env {', '.join(duplicates)} set more than once; keep one"
        # Messages name the place, never the value: it may carry credentials and reports end up in CI logs.
        for name, value in _literal_env(container, item):
            if HOST.search(value):
                yield f"{label}: env {name} hard-codes a host; read it from the ConfigMap or a Secret"
        for field in ("command", "args"):
            with item():
                for index, part in enumerate(items(container.get(field))):
                    with item():
                        if isinstance(part, str) and HOST.search(part):
                            yield f"{label}: {field}[{index}] hard-codes a host; pass it through env from config"


# What switches on the reference app's test-only fault injection (app/fault_injection): its variables, and the
# directory that activates it when it is on PYTHONPATH. `\b` keeps DEFAULT_... and similar names out.
_FAULT_INJECTION = re.compile(r"\b(APP_ENABLE_TEST_HOOKS|FAULT_[A-Z0-9_]*)|fault_injection")
_FAULT_FIX = "test-only fault injection; remove it (faulty releases come from the Dockerfile's `faulty` test target)"


def _mentions_fault_injection(value: Any) -> bool:
    return isinstance(value, str) and _FAULT_INJECTION.search(value) is not None


@item_by_item
def check_no_fault_injection(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type == k8s.CONFIG_MAP:
        for field in ("data", "binaryData"):
            for key, value in _entries(res, field, item):
                if _mentions_fault_injection(key) or _mentions_fault_injection(value):
                    yield f"{field}.{key} switches on {_FAULT_FIX}"
        return
    for label, container in workload_containers(res):
        with item():
            for variable in items(container.get("env")):
                with item():
                    name, value = variable.get("name"), variable.get("value")
                    if _mentions_fault_injection(name) or _mentions_fault_injection(value):
                        yield f"{label}: env {name} switches on {_FAULT_FIX}"
        with item():
            for source in items(container.get("envFrom")):
                with item():
                    if _mentions_fault_injection(source.get("prefix")):
                        yield f"{label}: envFrom prefix {source.get('prefix')} switches on {_FAULT_FIX}"
        for field in ("command", "args"):
            with item():
                for index, part in enumerate(items(container.get(field))):
                    with item():
                        if _mentions_fault_injection(part):
                            yield f"{label}: {field}[{index}] switches on {_FAULT_FIX}"


# IV Backing services -------------------------------------------------------------------------------------------


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


# VI Processes --------------------------------------------------------------------------------------------------


@item_by_item
def check_stateless_processes(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    with item():
        for volume in items(dig(k8s.pod_spec(res), "volumes")):
            with item():
                for kind in [k for k in ("persistentVolumeClaim", "hostPath") if k in volume]:
                    yield f"volume {volume.get('name')}: app processes are stateless; drop the {kind} (use Postgres)"
    with item():
        if items(dig(res.props, "spec", "volumeClaimTemplates")):
            yield "app processes are stateless; drop volumeClaimTemplates"


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
            retention = dig(sts.props, "spec", "persistentVolumeClaimRetentionPolicy") or {}
            if retention.get("whenDeleted") != "Retain" or retention.get("whenScaled") != "Retain":
                yield f"{where}: set persistentVolumeClaimRetentionPolicy whenDeleted/whenScaled: Retain", sts.urn
        if config["requireProtect"] and not sts.opts.protect:
            yield f"{where}: set protect=True on the data-bearing StatefulSet", sts.urn


# VII Port binding ----------------------------------------------------------------------------------------------


@item_by_item
def check_port_binding(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[Finding, str]]:
    """The port is declared once, as the named containerPort; PORT and the Services agree with that declaration."""
    port_name = config["portName"]
    ports = ("container.ports",)
    config_maps = Lookup()
    for config_map in k8s.of_type(resources, k8s.CONFIG_MAP):
        with config_maps.adding():
            config_maps.entries[dig(config_map.props, "metadata", "name")] = config_map.props.get("data") or {}
    app_pods = Lookup()  # each app Deployment's pod labels and the number of its named port
    for deployment in _deployments(resources, config):
        with app_pods.adding():
            numbers = k8s.named_ports([deployment]).get(port_name, set())
            app_pods.entries[deployment.urn] = (k8s.pod_labels(deployment), numbers)
        for label, container in workload_containers(deployment):
            where = f"{k8s.display(deployment)} {label}"
            with item():
                declared = [p for p in items(container.get("ports")) if p.get("name") == port_name]
                port = number(declared[0].get("containerPort")) if declared else None
                if port is None:
                    yield Finding(f"{where}: declare the app's containerPort named {port_name}", ports), deployment.urn
                    continue
                values = [e.get("value") for e in items(container.get("env")) if e.get("name") == "PORT"]
                for source in items(container.get("envFrom")):
                    values.append(config_maps.get(dig(source, "configMapRef", "name"), {}).get("PORT"))
                values = [v for v in values if v is not None]
                if not values or any(str(v) != f"{port:.0f}" for v in values):
                    yield (
                        Finding(
                            f"{where}: PORT must be {port:.0f} (the containerPort named {port_name}), set via the "
                            "ConfigMap",
                            ports,
                        ),
                        deployment.urn,
                    )
    for service in k8s.of_type(resources, k8s.SERVICE):
        with item():
            selector = dig(service.props, "spec", "selector")
            selected = [n for labels, n in app_pods.entries.values() if k8s.service_selects(selector, labels)]
            if not selected:
                app_pods.ensure_complete()  # an app pod with unknown labels might be the one it selects
                continue
            for service_port in items(dig(service.props, "spec", "ports")):
                with item():
                    target = service_port.get("targetPort")
                    if target != port_name and not all(number(target) in n for n in selected):
                        message = f"{k8s.display(service)}: targetPort must be the named port {port_name}"
                        yield Finding(message, ("spec.ports",)), service.urn


# VIII Concurrency ----------------------------------------------------------------------------------------------


@item_by_item
def check_concurrency(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[Finding, str]]:
    low, high = float(config["minReplicas"]), float(config["maxReplicas"])
    autoscalers = Lookup()
    for hpa in k8s.of_type(resources, k8s.HPA):
        with autoscalers.adding():
            target = dig(hpa.props, "spec", "scaleTargetRef") or {}
            if target.get("kind") == "Deployment":
                autoscalers.entries[target.get("name")] = hpa
    for deployment in _deployments(resources, config):
        where = k8s.display(deployment)
        with item():
            hpa = autoscalers.get(dig(deployment.props, "metadata", "name"))
            if hpa is None:
                replicas = number(dig(deployment.props, "spec", "replicas"))
                replicas = 1.0 if replicas is None else replicas
                if not low <= replicas <= high:
                    yield (
                        Finding(
                            f"{where}: replicas {replicas:.0f} must lie within {low:.0f}-{high:.0f} for this stack",
                            ("spec.replicas",),
                            ("minReplicas", "maxReplicas"),
                        ),
                        deployment.urn,
                    )
                continue
            with item():
                floor = number(dig(hpa.props, "spec", "minReplicas")) or 1.0
                ceiling = number(dig(hpa.props, "spec", "maxReplicas")) or 0.0
                if floor < low or ceiling < floor or ceiling > high:
                    yield (
                        Finding(
                            f"{where}: autoscaler range {floor:.0f}-{ceiling:.0f} must lie within {low:.0f}-{high:.0f}",
                            ("spec.minReplicas", "spec.maxReplicas"),
                            ("minReplicas", "maxReplicas"),
                        ),
                        hpa.urn,
                    )
            with item():
                if dig(deployment.props, "spec", "replicas") is not None:
                    message = f"{where}: drop spec.replicas; the autoscaler owns the count"
                    yield Finding(message, ("spec.replicas",)), deployment.urn


# IX Disposability ----------------------------------------------------------------------------------------------


def _probe_budget(probe: Mapping[str, Any]) -> float:
    """Seconds of failure a probe tolerates before acting."""
    return (number(probe.get("periodSeconds")) or 10.0) * (number(probe.get("failureThreshold")) or 3.0)


_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")


@item_by_item
def check_probes(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    for container in items(dig(k8s.pod_spec(res), "containers")):
        with item():
            label = f"container {container.get('name')}"
            readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
            if not readiness or not liveness:
                yield f"{label}: add readinessProbe and livenessProbe"
                continue
            with item():
                if k8s.is_app_workload(res, config) and not container.get("startupProbe"):
                    yield f"{label}: add a startupProbe so slow boots are not killed by liveness"
            with item():
                if readiness == liveness:
                    yield f"{label}: liveness must differ from readiness (a busy dependency must not restart the pod)"
            with item():
                if _probe_budget(liveness) < _probe_budget(readiness):
                    yield f"{label}: liveness must tolerate failure longer than readiness"
            for kind in _PROBES:
                with item():
                    port = dig(container, kind, "httpGet", "port") or dig(container, kind, "tcpSocket", "port")
                    if isinstance(port, str) and port not in {p.get("name") for p in items(container.get("ports"))}:
                        yield f"{label}: {kind} port {port} is not a declared port name"


def _pre_stop_seconds(container: Mapping[str, Any]) -> float | None:
    hook = dig(container, "lifecycle", "preStop")
    seconds = number(dig(hook, "sleep", "seconds"))
    if seconds is None:
        command = items(dig(hook, "exec", "command"))
        if len(command) == 2 and command[0] in ("sleep", "/bin/sleep"):
            seconds = number(float(command[1])) if str(command[1]).isdigit() else None
    return seconds


@item_by_item
def check_graceful_shutdown(res: HasProps, config: Config, item: Item) -> Iterator[str | Finding]:
    """The rule, not the app's value: the grace period covers the preStop delay and leaves the app at least
    `minDrainSeconds` to finish in-flight requests after SIGTERM, within the platform's `maxGracePeriodSeconds`
    (a node drain or a rollout waits that long per pod)."""
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    grace = number(dig(k8s.pod_spec(res), "terminationGracePeriodSeconds"))  # unknown: every item depends on it
    grace_field = ("pod.terminationGracePeriodSeconds",)
    if grace is None:
        yield Finding("set terminationGracePeriodSeconds explicitly", grace_field)
        return
    if res.resource_type != k8s.DEPLOYMENT or not k8s.is_app_workload(res, config):
        return
    bound, drain = float(config["maxGracePeriodSeconds"]), float(config["minDrainSeconds"])
    if grace > bound:
        yield Finding(
            f"terminationGracePeriodSeconds {grace:.0f} exceeds this platform's {bound:.0f} s",
            grace_field,
            ("maxGracePeriodSeconds",),
        )
    for container in items(dig(k8s.pod_spec(res), "containers")):
        with item():
            label = f"container {container.get('name')}"
            seconds = _pre_stop_seconds(container)
            if seconds is None or seconds <= 0:
                yield Finding(
                    f"{label}: add a lifecycle.preStop sleep so endpoints drain before SIGTERM",
                    ("container.lifecycle",),
                )
            elif grace - seconds < drain:
                yield Finding(
                    f"{label}: terminationGracePeriodSeconds {grace:.0f} leaves {grace - seconds:.0f} s after the "
                    f"{seconds:.0f} s preStop; the app needs at least {drain:.0f} s to drain before SIGKILL",
                    ("pod.terminationGracePeriodSeconds", "container.lifecycle"),
                    ("minDrainSeconds",),
                )


# X Dev/prod parity ---------------------------------------------------------------------------------------------


@item_by_item
def check_dev_prod_parity(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    pinned = dict(config["images"])
    component = k8s.labels(res).get(k8s.COMPONENT)
    if component not in pinned:
        return
    for label, container in workload_containers(res):
        with item():
            if container.get("image") != pinned[component]:
                yield (
                    f"{label}: {component} runs {container.get('image')}, but dev/CI pin {pinned[component]}; "
                    "use the same version everywhere"
                )


# XI Logs -------------------------------------------------------------------------------------------------------


@item_by_item
def check_logs_to_stdout(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            for mount in items(container.get("volumeMounts")):
                with item():
                    path = str(mount.get("mountPath", ""))
                    if path.startswith("/var/log") or path.endswith(".log"):
                        yield f"{label}: log-file mount {path}; write logs to stdout/stderr instead"
        with item():
            for variable in items(container.get("env")):
                with item():
                    if variable.get("name") in ("LOG_FILE", "LOG_PATH", "LOG_DIR"):
                        yield f"{label}: env {variable.get('name')} sends logs to a file; log to stdout"


# XII Admin processes -------------------------------------------------------------------------------------------


def _ancestry(resource: PolicyResource) -> Iterator[PolicyResource]:
    current: PolicyResource | None = resource
    while current is not None:
        yield current
        current = current.parent


def _images(res: HasProps) -> set[str]:
    return {str(c.get("image")) for c in items(dig(k8s.pod_spec(res), "containers"))}


@item_by_item
def check_migration_release_image(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str]]:
    jobs = [
        j
        for j in k8s.of_type(resources, k8s.JOB)
        if k8s.labels(j).get(k8s.COMPONENT) == config["migrationComponent"] and k8s.is_app_workload(j, config)
    ]
    if not jobs:
        return  # a rollback runs no migration (shipsafe:rollback)
    deployments = _deployments(resources, config)
    for job in jobs:
        with item():  # the image is unknown in preview until it is built; the dependency checks below still run
            image = parse_image(next(iter(_images(job)), ""))
            release = {(image.tag or "")[:12], (image.digest or "").removeprefix("sha256:")[:12]} - {""}
            name = str(dig(job.props, "metadata", "name"))
            if not any(marker in name for marker in release):
                yield f"{k8s.display(job)}: name the Job after the release (…-migrate-<sha[:12]>)", job.urn
        for deployment in deployments:
            where = k8s.display(deployment)
            with item():
                job_images, images = _images(job), _images(deployment)
                if images != job_images:
                    yield (
                        f"{where} runs {sorted(images)} but the migration ran {sorted(job_images)}; "
                        "use the exact same image reference",
                        deployment.urn,
                    )
            depends = {a.urn for d in deployment.dependencies for a in _ancestry(d)}
            if job.urn not in depends and not any(a.urn in depends for a in _ancestry(job) if a is not job):
                yield (
                    f"{where}: add depends_on=[migration Job] so migrations finish before new pods start",
                    (deployment.urn),
                )


@item_by_item
def check_migration_job_hygiene(res: HasProps, config: Config, item: Item) -> Iterator[str | Finding]:
    if k8s.labels(res).get(k8s.COMPONENT) != config["migrationComponent"]:
        return
    spec = res.props.get("spec") or {}
    with item():
        if dig(spec, "template", "spec", "restartPolicy") != "Never":
            yield "set restartPolicy: Never (the Job's backoffLimit governs retries)"
    with item():
        backoff = number(spec.get("backoffLimit"))
        if backoff is None or backoff > float(config["maxBackoffLimit"]):
            yield Finding(
                f"set backoffLimit <= {config['maxBackoffLimit']:.0f}", ("spec.backoffLimit",), ("maxBackoffLimit",)
            )
    for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        with item():
            if spec.get(field) is None:
                yield Finding(f"set {field}", (f"spec.{field}",))


def build() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    workloads = k8s.WORKLOADS
    app = k8s.APP_SETTINGS
    migration = Setting("string", "migration", "Component label of the migration Job.")
    return [
        resource_policy(
            FAMILY.rule(
                "k8s-image-immutable-ref",
                "Images are immutable references: own images tag+digest, third-party a full-version tag.",
                "Deploy <registry>/<app>:<git-sha>@sha256:<digest>; pin third-party tags like 15.18-bookworm.",
                topic="I Codebase; V Build/release/run",
                fields=("container.image",),
                ownRegistries=_OWN_REGISTRIES,
            ),
            check_immutable_image,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-third-party-image-digest",
                "Third-party images also carry an @sha256 digest (advisory: public digests can't be resolved offline).",
                "Mirror the image into the project registry and pin its digest.",
                topic="V Build/release/run; X Dev/prod parity",
                level=ADVISORY,
                fields=("container.image",),
                ownRegistries=_OWN_REGISTRIES,
            ),
            check_third_party_digest,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "12f-no-image-build-in-prod",
                "Stacks that promote releases build no images: build once, promote the digest.",
                "Set shipsafe:imageSource to prebuilt with the digest staging verified.",
                topic="V Build/release/run",
                allowImageBuild=Setting("boolean", True, "Whether this stack may build images.", platform=True),
            ),
            check_no_build_in_prod,
            IMAGE_BUILDS,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-plaintext-secret-env",
                "No literal secret in env: credentials only through secretKeyRef or *_FILE mounts.",
                "Move the value into a Secret (pulumi config --secret) and use valueFrom.secretKeyRef.",
                topic="III Config; Sec",
            ),
            check_no_plaintext_secret_env,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-sensitive-configmap",
                "ConfigMaps hold no credentials.",
                "Move credential-looking keys into a Secret.",
                topic="III Config; Sec",
            ),
            check_no_sensitive_configmap,
            frozenset({k8s.CONFIG_MAP}),
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-secret-hygiene",
                "Secrets have a type and no empty or placeholder values.",
                "Set type and real values from `pulumi config set --secret`.",
                topic="III Config; Sec",
                level=ADVISORY,
            ),
            check_secret_hygiene,
            frozenset({k8s.SECRET}),
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-no-fault-injection",
                "No test-only fault injection: no APP_ENABLE_TEST_HOOKS, FAULT_* or fault_injection path in any env,"
                " envFrom prefix, command, args or ConfigMap.",
                "Remove the variable or argument; deploy faulty releases only in tests (the Dockerfile's `faulty`).",
                topic="III Config; X Dev/prod parity",
            ),
            check_no_fault_injection,
            frozenset({*workloads, k8s.CONFIG_MAP}),
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-config-from-env",
                "App config comes from the ConfigMap through env; no duplicate env, no hard-coded hosts.",
                "Use envFrom.configMapRef; move hosts/URLs into config or Secrets.",
                topic="III Config",
                **app,
            ),
            check_config_from_env,
            workloads,
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-backing-services-attached",
                "The app reaches its backing services only through URLs in stack Secrets (secretKeyRef).",
                "Set each service URL variable from valueFrom.secretKeyRef of the stack's <app>-<service> Secret.",
                topic="IV Backing services",
                serviceEnv=Setting(
                    "array",
                    [],
                    "Env vars every app Deployment must attach from a Secret, beyond those holding a URL.",
                    {"type": "string"},
                    platform=True,
                ),
                **app,
            ),
            check_backing_services_attached,
        ),
        resource_policy(
            FAMILY.rule(
                "12f-stateless-processes",
                "App processes are stateless: no PersistentVolumeClaim or hostPath on app workloads.",
                "Keep state in Postgres/Redis; use an emptyDir for scratch space.",
                topic="VI Processes",
                **app,
            ),
            check_stateless_processes,
            workloads,
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-stateful-backing-services",
                "Backing-service StatefulSets keep data in retained claims behind a headless Service.",
                "Use volumeClaimTemplates, a headless serviceName, Retain retention, and protect in prod.",
                topic="IV Backing services; VI Processes",
                **app,
                requireProtect=Setting("boolean", True, "Require Pulumi protect on data-bearing StatefulSets."),
            ),
            check_stateful_backing,
        ),
        stack_policy(
            FAMILY.rule(
                "12f-port-binding",
                "The app exports HTTP on a named containerPort that PORT and its Services target.",
                "Declare the port once (shipsafe:app.port): ports [{name: http, containerPort: <port>}], PORT in the "
                "ConfigMap, targetPort: http.",
                topic="VII Port binding",
                portName=Setting("string", "http", "Name of the app's container port."),
                **app,
            ),
            check_port_binding,
        ),
        stack_policy(
            FAMILY.rule(
                "12f-concurrency",
                "App Deployments scale out within the stack's replica range (HPA or fixed replicas).",
                "Set replicas (or the autoscaler's min/max) inside minReplicas..maxReplicas of this stack.",
                topic="VIII Concurrency",
                minReplicas=Setting("number", 2, "Fewest pods per app Deployment.", platform=True),
                maxReplicas=Setting("number", 20, "Most pods per app Deployment.", platform=True),
                **app,
            ),
            check_concurrency,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-probes",
                "Long-running containers have readiness and liveness probes (app also startup), sensibly tuned.",
                "Add httpGet probes on the named port: startup and liveness on app.livenessPath, readiness on "
                "app.readinessPath.",
                topic="IX Disposability",
                fields=("container.startupProbe", "container.livenessProbe", "container.readinessProbe"),
                **app,
            ),
            check_probes,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-graceful-shutdown",
                "Explicit grace period; the app's covers its preStop delay and a drain, within the platform's bound.",
                "Set terminationGracePeriodSeconds >= preStop + drain (default 30 s with a 5 s preStop sleep).",
                topic="IX Disposability",
                maxGracePeriodSeconds=Setting(
                    "number", 30, "Longest terminationGracePeriodSeconds of an app pod on this platform.", platform=True
                ),
                minDrainSeconds=Setting(
                    "number", 5, "Least time the grace period leaves the app after the preStop delay.", platform=True
                ),
                **app,
            ),
            check_graceful_shutdown,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "12f-dev-prod-parity",
                "Backing services run exactly the versions dev and CI pin.",
                "Set shipsafe:postgres/redis image to the pinned reference (and change both together).",
                topic="X Dev/prod parity",
                fields=("container.image",),
                images=Setting(
                    "object",
                    {
                        "database": "docker.io/library/postgres:15.18-bookworm",
                        "cache": "docker.io/library/redis:7.0.15-bookworm",
                    },
                    "Image per component label, as pinned in compose and CI.",
                    platform=True,
                ),
            ),
            check_dev_prod_parity,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-logs-to-stdout",
                "No log files: no /var/log or *.log mounts and no LOG_FILE env.",
                "Log to stdout/stderr and let the platform ship the stream.",
                topic="XI Logs",
            ),
            check_logs_to_stdout,
            workloads,
        ),
        stack_policy(
            FAMILY.rule(
                "k8s-migration-uses-release-image",
                "The migration Job runs the Deployments' exact image and every app Deployment depends on it.",
                "Pass the same image output to Job and Deployments; add depends_on=[job] to each Deployment.",
                topic="XII Admin processes; V Build/release/run",
                migrationComponent=migration,
                **app,
            ),
            check_migration_release_image,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-migration-job-hygiene",
                "The migration Job never restarts in place, retries at most a few times and cleans up.",
                "Set restartPolicy Never, backoffLimit <= 3, activeDeadlineSeconds and ttlSecondsAfterFinished.",
                topic="XII Admin processes",
                migrationComponent=migration,
                maxBackoffLimit=Setting("number", 3, "Largest acceptable backoffLimit.", platform=True),
            ),
            check_migration_job_hygiene,
            frozenset({k8s.JOB}),
        ),
    ]
