"""Twelve-factor family: every factor that shows on the resource graph, each policy naming its factor."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationPolicy, StackValidationPolicy

from . import k8s
from .framework import ADVISORY, Config, Family, HasProps, Setting, known, resource_policy, stack_policy
from .images import IMAGE_BUILDS, matches_prefix, parse_image
from .k8s import dig, items, number, workload_containers
from .patterns import HOST, SECRET_NAME, looks_secret, secret_by_name

FAMILY = Family("twelve-factor")

_OWN_REGISTRIES = Setting(
    "array",
    [],
    "registry/repository prefixes of the app's own images (set per stack): these need tag and digest.",
    {"type": "string"},
)


def _deployments(resources: list[PolicyResource], config: Config) -> list[PolicyResource]:
    """Long-running app Deployments (web, worker...): app workloads that are not the migration Job."""
    return [r for r in k8s.of_type(resources, k8s.DEPLOYMENT) if k8s.is_app_workload(r, config)]


# I Codebase / V Build, release, run ------------------------------------------------------------------------------


def check_immutable_image(res: HasProps, config: Config) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with known():
            reference = str(container.get("image") or "")
            image = parse_image(reference)
            if image.tag_is_mutable:
                yield f"{label}: {reference or 'no image'} is untagged or latest; deploy <app>:<sha>@sha256:<digest>"
            elif matches_prefix(image, own):
                if not image.has_valid_digest:
                    yield f"{label}: {reference} lacks @sha256:<digest>; wire the build's repo digest into the pod spec"
            elif not image.tag_is_full_version:
                yield f"{label}: {reference} floats with upstream; pin a full version tag such as 15.18-bookworm"


def check_third_party_digest(res: HasProps, config: Config) -> Iterator[str]:
    own = list(config["ownRegistries"])
    for label, container in workload_containers(res):
        with known():
            image = parse_image(str(container.get("image") or ""))
            if not matches_prefix(image, own) and not image.has_valid_digest:
                yield f"{label}: {image.name}:{image.tag} has no @sha256 digest; mirror it and pin the digest"


def check_no_build_in_prod(res: HasProps, config: Config) -> Iterator[str]:
    if not config["allowImageBuild"]:
        yield "this stack must not build images: build once in CI, then promote the digest (imageSource: prebuilt)"


# III Config ----------------------------------------------------------------------------------------------------


def _literal_env(container: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for variable in items(container.get("env")):
        with known():
            value = variable.get("value")
            if isinstance(value, str):
                yield str(variable.get("name")), value


def check_no_plaintext_secret_env(res: HasProps, config: Config) -> Iterator[str]:
    for label, container in workload_containers(res):
        for name, value in _literal_env(container):
            if secret_by_name(name, value) or looks_secret(value):
                yield f"{label}: env {name} holds a literal secret; use valueFrom.secretKeyRef (or a *_FILE mount)"


def check_no_sensitive_configmap(res: HasProps, config: Config) -> Iterator[str]:
    for field in ("data", "binaryData"):
        with known():
            for key, value in (res.props.get(field) or {}).items():
                with known():
                    if (value and SECRET_NAME.search(key)) or looks_secret(str(value)):
                        yield f"{field}.{key} looks like a credential; move it to a Secret and use secretKeyRef"


_PLACEHOLDERS = re.compile(r"(?i)^(changeme|change-me|password|secret|replace.*|todo|xxx+|test|example)$")


def check_secret_hygiene(res: HasProps, config: Config) -> Iterator[str]:
    with known():
        if not res.props.get("type"):
            yield "set the Secret type (Opaque, kubernetes.io/dockerconfigjson, ...)"
    for field in ("stringData", "data"):
        with known():
            for key, value in (res.props.get(field) or {}).items():
                with known():
                    if not value or _PLACEHOLDERS.match(str(value)):
                        yield f"{field}.{key} is empty or a placeholder; set it with `pulumi config set --secret`"


def check_config_from_env(res: HasProps, config: Config) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    for label, container in workload_containers(res):
        with known():
            env_from = items(container.get("envFrom"))
            env = items(container.get("env"))
            from_config_map = any(dig(e, "configMapRef", "name") for e in env_from) or any(
                dig(e, "valueFrom", "configMapKeyRef") for e in env
            )
            if not from_config_map:
                yield f"{label}: take non-secret config from the app ConfigMap (envFrom.configMapRef)"
            names = [str(e.get("name")) for e in env]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                yield f"{label}: env {', '.join(duplicates)} set more than once; keep one"
        # Messages name the place, never the value: it may carry credentials and reports end up in CI logs.
        for name, value in _literal_env(container):
            if HOST.search(value):
                yield f"{label}: env {name} hard-codes a host; read it from the ConfigMap or a Secret"
        for field in ("command", "args"):
            with known():
                for index, part in enumerate(items(container.get(field))):
                    if isinstance(part, str) and HOST.search(part):
                        yield f"{label}: {field}[{index}] hard-codes a host; pass it through env from config"


# IV Backing services -------------------------------------------------------------------------------------------


def check_backing_services_attached(resources: list[PolicyResource], config: Config) -> Iterator[tuple[str, str]]:
    secrets = set()
    for secret in k8s.of_type(resources, k8s.SECRET):
        with known():
            secrets.add(dig(secret.props, "metadata", "name"))
    required = list(config["serviceEnv"])
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        if not k8s.is_app_workload(workload, config):
            continue
        for label, container in workload_containers(workload):
            with known():
                env = {str(e.get("name")): e for e in items(container.get("env"))}
                where = f"{k8s.display(workload)} {label}"
                for name in required:
                    variable = env.get(name)
                    if variable is None:
                        if workload.resource_type == k8s.DEPLOYMENT:
                            yield f"{where}: attach {name} through valueFrom.secretKeyRef", workload.urn
                        continue
                    ref = dig(variable, "valueFrom", "secretKeyRef")
                    if ref is None:
                        yield f"{where}: {name} must come from a Secret (secretKeyRef), not a literal", workload.urn
                    elif ref.get("name") not in secrets:
                        yield (
                            f"{where}: {name} references Secret {ref.get('name')} not defined in the stack",
                            (workload.urn),
                        )


# VI Processes --------------------------------------------------------------------------------------------------


def check_stateless_processes(res: HasProps, config: Config) -> Iterator[str]:
    if not k8s.is_app_workload(res, config):
        return
    for volume in items(dig(k8s.pod_spec(res), "volumes")):
        with known():
            for kind in ("persistentVolumeClaim", "hostPath"):
                if kind in volume:
                    yield f"volume {volume.get('name')}: app processes are stateless; drop the {kind} (use Postgres)"
    with known():
        if items(dig(res.props, "spec", "volumeClaimTemplates")):
            yield "app processes are stateless; drop volumeClaimTemplates"


def check_stateful_backing(resources: list[PolicyResource], config: Config) -> Iterator[tuple[str, str]]:
    headless = set()
    for service in k8s.of_type(resources, k8s.SERVICE):
        with known():
            if dig(service.props, "spec", "clusterIP") == "None":
                headless.add(dig(service.props, "metadata", "name"))
    backing = set(config["backingComponents"])
    for sts in k8s.of_type(resources, k8s.STATEFUL_SET):
        if k8s.labels(sts).get(k8s.COMPONENT) not in backing:
            continue
        where = k8s.display(sts)
        with known():
            spec = sts.props.get("spec") or {}
            claims = {dig(c, "metadata", "name") for c in items(spec.get("volumeClaimTemplates"))}
            if not claims:
                yield f"{where}: keep data in volumeClaimTemplates, not emptyDir", sts.urn
            for volume in items(dig(spec, "template", "spec", "volumes")):
                if volume.get("name") in claims and "emptyDir" in volume:
                    yield f"{where}: volume {volume.get('name')} shadows the claim with an emptyDir", sts.urn
        with known():
            if spec.get("serviceName") not in headless:
                yield f"{where}: serviceName must name a headless Service (clusterIP: None) of the stack", sts.urn
        with known():
            retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
            if retention.get("whenDeleted") != "Retain" or retention.get("whenScaled") != "Retain":
                yield f"{where}: set persistentVolumeClaimRetentionPolicy whenDeleted/whenScaled: Retain", sts.urn
        if config["requireProtect"] and not sts.opts.protect:
            yield f"{where}: set protect=True on the data-bearing StatefulSet", sts.urn


# VII Port binding ----------------------------------------------------------------------------------------------


def check_port_binding(resources: list[PolicyResource], config: Config) -> Iterator[tuple[str, str]]:
    port, port_name = float(config["port"]), config["portName"]
    config_maps = {}
    for config_map in k8s.of_type(resources, k8s.CONFIG_MAP):
        with known():
            config_maps[dig(config_map.props, "metadata", "name")] = config_map.props.get("data") or {}
    app_pods = []
    for deployment in _deployments(resources, config):
        app_pods.append(k8s.pod_labels(deployment))
        for label, container in workload_containers(deployment):
            where = f"{k8s.display(deployment)} {label}"
            with known():
                declared = [p for p in items(container.get("ports")) if p.get("name") == port_name]
                if not declared or number(declared[0].get("containerPort")) != port:
                    yield f"{where}: declare containerPort {port:.0f} named {port_name}", deployment.urn
            with known():
                values = [e.get("value") for e in items(container.get("env")) if e.get("name") == "PORT"]
                for source in items(container.get("envFrom")):
                    values.append(config_maps.get(dig(source, "configMapRef", "name"), {}).get("PORT"))
                values = [v for v in values if v is not None]
                if not values or any(str(v) != f"{port:.0f}" for v in values):
                    yield (
                        f"{where}: PORT must be {port:.0f} (the declared containerPort), set via the ConfigMap",
                        (deployment.urn),
                    )
    for service in k8s.of_type(resources, k8s.SERVICE):
        with known():
            selector = dig(service.props, "spec", "selector")
            if not any(k8s.service_selects(selector, labels) for labels in app_pods):
                continue
            for service_port in items(dig(service.props, "spec", "ports")):
                target = service_port.get("targetPort")
                if target != port_name and number(target) != port:
                    yield f"{k8s.display(service)}: targetPort must be the named port {port_name}", service.urn


# VIII Concurrency ----------------------------------------------------------------------------------------------


def check_concurrency(resources: list[PolicyResource], config: Config) -> Iterator[tuple[str, str]]:
    low, high = float(config["minReplicas"]), float(config["maxReplicas"])
    autoscalers = {}
    for hpa in k8s.of_type(resources, k8s.HPA):
        with known():
            target = dig(hpa.props, "spec", "scaleTargetRef") or {}
            if target.get("kind") == "Deployment":
                autoscalers[target.get("name")] = hpa
    for deployment in _deployments(resources, config):
        where = k8s.display(deployment)
        with known():
            hpa = autoscalers.get(dig(deployment.props, "metadata", "name"))
            if hpa is not None:
                floor = number(dig(hpa.props, "spec", "minReplicas")) or 1.0
                ceiling = number(dig(hpa.props, "spec", "maxReplicas")) or 0.0
                if floor < low or ceiling < floor or ceiling > high:
                    yield (
                        f"{where}: autoscaler range {floor:.0f}-{ceiling:.0f} must lie within {low:.0f}-{high:.0f}",
                        hpa.urn,
                    )
                if dig(deployment.props, "spec", "replicas") is not None:
                    yield f"{where}: drop spec.replicas; the autoscaler owns the count", deployment.urn
                continue
            replicas = number(dig(deployment.props, "spec", "replicas"))
            replicas = 1.0 if replicas is None else replicas
            if not low <= replicas <= high:
                yield (
                    f"{where}: replicas {replicas:.0f} must lie within {low:.0f}-{high:.0f} for this stack",
                    (deployment.urn),
                )


# IX Disposability ----------------------------------------------------------------------------------------------


def _probe_budget(probe: Mapping[str, Any]) -> float:
    """Seconds of failure a probe tolerates before acting."""
    return (number(probe.get("periodSeconds")) or 10.0) * (number(probe.get("failureThreshold")) or 3.0)


def check_probes(res: HasProps, config: Config) -> Iterator[str]:
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    for container in items(dig(k8s.pod_spec(res), "containers")):
        label = f"container {container.get('name')}"
        with known():
            readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
            if not readiness or not liveness:
                yield f"{label}: add readinessProbe and livenessProbe"
                continue
            if k8s.is_app_workload(res, config) and not container.get("startupProbe"):
                yield f"{label}: add a startupProbe so slow boots are not killed by liveness"
            if readiness == liveness:
                yield f"{label}: liveness must differ from readiness (a busy dependency must not restart the pod)"
            if _probe_budget(liveness) < _probe_budget(readiness):
                yield f"{label}: liveness must tolerate failure longer than readiness"
            declared = {p.get("name") for p in items(container.get("ports"))}
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe_port = dig(container, kind, "httpGet", "port") or dig(container, kind, "tcpSocket", "port")
                if isinstance(probe_port, str) and probe_port not in declared:
                    yield f"{label}: {kind} port {probe_port} is not a declared port name"


def _pre_stop_seconds(container: Mapping[str, Any]) -> float | None:
    hook = dig(container, "lifecycle", "preStop")
    seconds = number(dig(hook, "sleep", "seconds"))
    if seconds is None:
        command = items(dig(hook, "exec", "command"))
        if len(command) == 2 and command[0] in ("sleep", "/bin/sleep"):
            seconds = number(float(command[1])) if str(command[1]).isdigit() else None
    return seconds


def check_graceful_shutdown(res: HasProps, config: Config) -> Iterator[str]:
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    grace = number(dig(k8s.pod_spec(res), "terminationGracePeriodSeconds"))  # unknown: skip the policy
    if grace is None:
        yield "set terminationGracePeriodSeconds explicitly"
        return
    if res.resource_type != k8s.DEPLOYMENT or not k8s.is_app_workload(res, config):
        return
    expected = float(config["gracePeriodSeconds"])
    if grace != expected:
        yield f"terminationGracePeriodSeconds is {grace:.0f}; set {expected:.0f} (preStop + longest request)"
    for container in items(dig(k8s.pod_spec(res), "containers")):
        with known():
            seconds = _pre_stop_seconds(container)
            if seconds is None or not 0 < seconds < grace:
                yield (
                    f"container {container.get('name')}: add lifecycle.preStop sleep of more than 0 and less than "
                    f"{grace:.0f} s so endpoints drain before SIGTERM"
                )


# X Dev/prod parity ---------------------------------------------------------------------------------------------


def check_dev_prod_parity(res: HasProps, config: Config) -> Iterator[str]:
    pinned = dict(config["images"])
    component = k8s.labels(res).get(k8s.COMPONENT)
    if component not in pinned:
        return
    for label, container in workload_containers(res):
        with known():
            if container.get("image") != pinned[component]:
                yield (
                    f"{label}: {component} runs {container.get('image')}, but dev/CI pin {pinned[component]}; "
                    "use the same version everywhere"
                )


# XI Logs -------------------------------------------------------------------------------------------------------


def check_logs_to_stdout(res: HasProps, config: Config) -> Iterator[str]:
    for label, container in workload_containers(res):
        for mount in items(container.get("volumeMounts")):
            with known():
                path = str(mount.get("mountPath", ""))
                if path.startswith("/var/log") or path.endswith(".log"):
                    yield f"{label}: log-file mount {path}; write logs to stdout/stderr instead"
        for variable in items(container.get("env")):
            with known():
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


def check_migration_release_image(resources: list[PolicyResource], config: Config) -> Iterator[tuple[str, str]]:
    jobs = [
        j
        for j in k8s.of_type(resources, k8s.JOB)
        if k8s.labels(j).get(k8s.COMPONENT) == config["migrationComponent"] and k8s.is_app_workload(j, config)
    ]
    if not jobs:
        return  # a rollback runs no migration (shipsafe:rollback)
    deployments = _deployments(resources, config)
    for job in jobs:
        job_images = _images(job)  # an unknown image (preview of a fresh build) skips the policy
        with known():
            image = parse_image(next(iter(job_images), ""))
            release = {(image.tag or "")[:12], (image.digest or "").removeprefix("sha256:")[:12]} - {""}
            name = str(dig(job.props, "metadata", "name"))
            if not any(marker in name for marker in release):
                yield f"{k8s.display(job)}: name the Job after the release (…-migrate-<sha[:12]>)", job.urn
        for deployment in deployments:
            where = k8s.display(deployment)
            with known():
                if _images(deployment) != job_images:
                    yield (
                        f"{where} runs {sorted(_images(deployment))} but the migration ran {sorted(job_images)}; "
                        "use the exact same image reference",
                        deployment.urn,
                    )
            depends = {a.urn for d in deployment.dependencies for a in _ancestry(d)}
            if job.urn not in depends and not any(a.urn in depends for a in _ancestry(job) if a is not job):
                yield (
                    f"{where}: add depends_on=[migration Job] so migrations finish before new pods start",
                    (deployment.urn),
                )


def check_migration_job_hygiene(res: HasProps, config: Config) -> Iterator[str]:
    if k8s.labels(res).get(k8s.COMPONENT) != config["migrationComponent"]:
        return
    spec = res.props.get("spec") or {}
    with known():
        if dig(spec, "template", "spec", "restartPolicy") != "Never":
            yield "set restartPolicy: Never (the Job's backoffLimit governs retries)"
    with known():
        backoff = number(spec.get("backoffLimit"))
        if backoff is None or backoff > float(config["maxBackoffLimit"]):
            yield f"set backoffLimit <= {config['maxBackoffLimit']:.0f}"
    for field in ("activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        with known():
            if spec.get(field) is None:
                yield f"set {field}"


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
                allowImageBuild=Setting("boolean", True, "Whether this stack may build images."),
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
                "The app reaches Postgres and Redis only through URLs in stack Secrets (secretKeyRef).",
                "Set DATABASE_URL/REDIS_URL from valueFrom.secretKeyRef of the <app>-database/<app>-redis Secrets.",
                topic="IV Backing services",
                serviceEnv=Setting(
                    "array", ["DATABASE_URL", "REDIS_URL"], "Env vars that attach backing services.", {"type": "string"}
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
                "Declare ports [{name: http, containerPort: 3002}], PORT=3002 in the ConfigMap, targetPort: http.",
                topic="VII Port binding",
                port=Setting("number", 3002, "The app's port."),
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
                minReplicas=Setting("number", 2, "Fewest pods per app Deployment."),
                maxReplicas=Setting("number", 20, "Most pods per app Deployment."),
                **app,
            ),
            check_concurrency,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-probes",
                "Long-running containers have readiness and liveness probes (app also startup), sensibly tuned.",
                "Add httpGet probes on the named port: startup+liveness /healthz, readiness /readyz.",
                topic="IX Disposability",
                **app,
            ),
            check_probes,
            workloads,
        ),
        resource_policy(
            FAMILY.rule(
                "k8s-graceful-shutdown",
                "Explicit grace period (app: 30 s) and a preStop delay > 0 and < the grace period.",
                "Set terminationGracePeriodSeconds: 30 and lifecycle.preStop.sleep.seconds: 5.",
                topic="IX Disposability",
                gracePeriodSeconds=Setting("number", 30, "The app's terminationGracePeriodSeconds."),
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
                images=Setting(
                    "object",
                    {
                        "database": "docker.io/library/postgres:15.18-bookworm",
                        "cache": "docker.io/library/redis:7.0.15-bookworm",
                    },
                    "Image per component label, as pinned in compose and CI.",
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
                maxBackoffLimit=Setting("number", 3, "Largest acceptable backoffLimit."),
            ),
            check_migration_job_hygiene,
            frozenset({k8s.JOB}),
        ),
    ]
