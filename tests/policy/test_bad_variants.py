"""Bad variants of the real stacks: each must be caught, through the analyzer protocol, by the policy for its fault.

Each variant runs twice: as recorded (outputs = inputs, as in a preview whose dry run was skipped) and as the
state after `up` (outputs = the API server's objects, `harness.phases.after_up`, sent as the engine sends them:
without `__inputs`), where stack policies must find the fault in the live objects themselves.

Every policy of the pack has at least one violating case here (test_every_policy_has_a_violating_case); the
compliant cases are the real stacks themselves and the fixes in test_stacks.py.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.analyzer import AnalysisReport, PolicyPackProcess
from harness.apiserver import SERVER_VERSIONS
from harness.phases import after_up
from harness.recording import RecordedResource, Recording
from harness.runtime import run_stack
from harness.stack_config import read_stack_config
from tests.policy.conftest import IMAGE_BUILD, Analyze
from tests.policy.stack_edits import (
    COMPLIANT_DOCKERFILE,
    COMPLIANT_DOCKERIGNORE,
    Change,
    Edit,
    add_resource,
    at,
    chain,
    drop,
    edit,
    first_container,
    new_resource,
    pod,
    replace_resource,
    use_build_context,
    write_build_context,
)

WEB, WORKER, JOB = "notes-web-deployment", "notes-worker-deployment", "notes-migrate-job"
POSTGRES, CONFIG_MAP = "notes-postgres-statefulset", "notes-config-configmap"
APP_INGRESS, ALLOW_DNS = "notes-network-app-ingress", "notes-network-allow-dns"
POSTGRES_INGRESS, REDIS_INGRESS = "notes-network-postgres-ingress", "notes-network-redis-ingress"
POSTGRES_EGRESS, REDIS_EGRESS = "notes-network-postgres-egress", "notes-network-redis-egress"
WEB_INGRESS = "notes-web-ingress"
LEAST_ACCESS = "network-least-access"
OWN_IMAGE = "registry.example.com/shipsafe/notes"
SECRET_REF = {"secretKeyRef": {"name": "notes-database", "key": "url"}}
WAIVE = "shipsafe.dev/waive."
APPARMOR = "container.apparmor.security.beta.kubernetes.io/notes"
WEB_SERVICE, POSTGRES_SERVICE, REDIS_SERVICE = "notes-web-service", "notes-postgres-service", "notes-redis-service"
REDIS, AUTOSCALER = "notes-redis-statefulset", "notes-web-autoscaler"
PDB_TYPE, SERVICE_TYPE = "kubernetes:policy/v1:PodDisruptionBudget", "kubernetes:core/v1:Service"
HTTP_ROUTE_TYPE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
BACKEND = "spec.rules.0.http.paths.0.backend.service"
DATABASE_PODS = {"app.kubernetes.io/instance": "notes-database", "app.kubernetes.io/name": "notes"}
WORKER_PODS = {"app.kubernetes.io/instance": "notes-worker", "app.kubernetes.io/name": "notes"}


@dataclass(frozen=True)
class Case:
    id: str
    stack: str
    fault: Edit
    policy: str
    resource: str | None
    """The resource the violation must name (None: any)."""
    level: str = "mandatory"
    dockerfile: str | None = None
    """Replaces the Dockerfile the staging image build names."""
    dockerignore: str = COMPLIANT_DOCKERIGNORE
    """The .dockerignore beside that Dockerfile."""
    reason: str | None = None
    """When set, the fault must be caught for this reason (a phrase of each new message) and by this policy alone."""


def unchanged(recording: Recording) -> Recording:
    return recording


def added(type_: str, name: str, inputs: dict[str, object]) -> Edit:
    return lambda recording: add_resource(new_resource(recording, type_, name, inputs))(recording)


def _without_job_dependency(resource: RecordedResource) -> RecordedResource:
    kept = tuple(d for d in resource.dependencies if "batch/v1:Job" not in d and "MigrationJob" not in d)
    return dataclasses.replace(resource, dependencies=kept)


def without_label(key: str) -> Change:
    # Label keys contain dots, so `drop("metadata.labels...")` cannot name them.
    return lambda props: props["metadata"]["labels"].pop(key)


def without_annotation(key: str) -> Change:
    # Annotation keys contain dots and slashes, so `drop("metadata.annotations...")` cannot name them.
    return lambda props: props["metadata"]["annotations"].pop(key)


def with_annotation(key: str, value: str) -> Change:
    return lambda props: props["metadata"].setdefault("annotations", {}).__setitem__(key, value)


def with_pod_annotation(key: str, value: str) -> Change:
    return lambda props: props["spec"]["template"]["metadata"].setdefault("annotations", {}).__setitem__(key, value)


def sidecar_without_ports(props: dict[str, Any]) -> None:
    """A second regular container that serves nothing (a log shipper, say): only the app container declares the port."""
    sidecar = copy.deepcopy(pod(props)["containers"][0])
    sidecar["name"] = "sidecar"
    for key in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
        sidecar.pop(key, None)
    pod(props)["containers"].append(sidecar)


def init_container(path: str, value: object) -> Change:
    """Adds an init container (the first container without probes and hooks) with `path` set to `value`."""

    def change(props: dict[str, Any]) -> None:
        spec = pod(props)
        init = copy.deepcopy(spec["containers"][0])
        init["name"] = "init"
        for key in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
            init.pop(key, None)
        at(path, value)(init)
        spec.setdefault("initContainers", []).append(init)

    return change


def with_public_path(path: str) -> Change:
    def change(props: dict[str, Any]) -> None:
        paths = props["spec"]["rules"][0]["http"]["paths"]
        paths.append({**paths[0], "path": path})

    return change


def volume(name: str, source: dict[str, object], mount_path: str) -> list[Change]:
    return [
        at("pod.volumes", [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}, {"name": name, **source}]),
        at("container.volumeMounts", [{"name": "tmp", "mountPath": "/tmp"}, {"name": name, "mountPath": mount_path}]),
    ]


def tcp(*ports: int) -> list[dict[str, object]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def namespace(name: str) -> dict[str, object]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def database_budget(**budget: int) -> Edit:
    """A PodDisruptionBudget for the single Postgres pod of prod."""
    spec = {**budget, "selector": {"matchLabels": DATABASE_PODS}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    return added(PDB_TYPE, "notes-postgres-pdb", {"metadata": {"namespace": "notes-prod"}, "spec": spec})


def dockerfile(old: str, new: str) -> str:
    assert old in COMPLIANT_DOCKERFILE
    return COMPLIANT_DOCKERFILE.replace(old, new)


# fmt: off
CASES = [
    # The issue's catalogue of deliberately bad variants of the real stack.
    Case("latest-tag", "staging", edit(WEB, at("container.image", f"{OWN_IMAGE}:latest")),
         "12f-build-immutable-image", WEB),
    Case("untagged-postgres", "prod", edit(POSTGRES, at("container.image", "postgres")),
         "12f-build-immutable-image", POSTGRES),
    Case("own-image-without-digest", "prod", edit(WORKER, at("container.image", f"{OWN_IMAGE}:3f9c2a1b7d4e")),
         "12f-build-immutable-image", WORKER),
    Case("literal-database-url-password", "staging",
         edit(WEB, at("container.env.1", {"name": "DATABASE_URL", "value": "postgresql://app:hunter2@db:5432/app"})),
         "12f-config-no-plaintext-secret-env", WEB),
    Case("literal-database-url-detached", "prod",
         edit(WEB, at("container.env.1", {"name": "DATABASE_URL", "value": "postgresql://db:5432/app"})),
         "12f-backing-attached", WEB),
    Case("privileged-container", "staging", edit(WORKER, at("container.securityContext.privileged", True)),
         "pss-baseline-no-privileged", WORKER),
    Case("missing-probes", "staging", edit(WEB, drop("container.readinessProbe"), drop("container.livenessProbe")),
         "12f-disposability-probes", WEB),
    Case("missing-startup-probe", "prod", edit(WEB, drop("container.startupProbe")), "12f-disposability-probes", WEB),
    Case("deployment-not-after-job", "staging", replace_resource(WEB, _without_job_dependency),
         "12f-admin-migration-release-image", WEB),
    Case("job-with-another-image", "prod",
         edit(JOB, at("container.image", f"{OWN_IMAGE}:0ther0ther000@sha256:{'b' * 64}")),
         "12f-admin-migration-release-image", WEB),
    Case("max-unavailable-1", "staging", edit(WEB, at("spec.strategy.rollingUpdate.maxUnavailable", 1)),
         "rollout-zero-downtime", WEB),
    Case("recreate-strategy", "prod", edit(WORKER, at("spec.strategy", {"type": "Recreate"})),
         "rollout-zero-downtime", WORKER),
    Case("grace-0", "staging", edit(WEB, at("pod.terminationGracePeriodSeconds", 0)),
         "12f-disposability-graceful-shutdown", WEB),
    Case("pre-stop-longer-than-grace", "prod", edit(WEB, at("container.lifecycle.preStop.sleep.seconds", 45)),
         "12f-disposability-graceful-shutdown", WEB),
    Case("host-path", "staging", edit(WORKER, *volume("host", {"hostPath": {"path": "/"}}, "/host")),
         "pss-restricted-volume-types", WORKER),
    Case("host-path-state", "staging", edit(WORKER, *volume("state", {"hostPath": {"path": "/srv"}}, "/srv")),
         "12f-processes-stateless", WORKER),
    Case("pvc-on-app", "prod", edit(WEB, *volume("up", {"persistentVolumeClaim": {"claimName": "up"}}, "/up")),
         "12f-processes-stateless", WEB),
    Case("load-balancer-service", "staging", edit("notes-web-service", at("spec.type", "LoadBalancer")),
         "network-service-internal-only", "notes-web-service"),
    Case("image-build-in-prod", "prod",
         added("docker:index/image:Image", IMAGE_BUILD, {"build": {"context": "app"}, "imageName": f"{OWN_IMAGE}:x"}),
         "12f-build-once", IMAGE_BUILD),
    Case("postgres-version-mismatch", "prod",
         edit(POSTGRES, at("container.image", "docker.io/library/postgres:15.17-bookworm")),
         "12f-parity-backing-versions", POSTGRES),
    # Pod Security Standards and the other security rules.
    Case("run-as-root", "staging", edit(WEB, at("container.securityContext.runAsUser", 0)),
         "pss-restricted-run-as-non-root", WEB),
    Case("privilege-escalation", "staging", edit(JOB, at("container.securityContext.allowPrivilegeEscalation", True)),
         "pss-restricted-no-privilege-escalation", JOB),
    Case("writable-root-fs", "prod", edit(WEB, at("container.securityContext.readOnlyRootFilesystem", False)),
         "hardening-read-only-root-fs", WEB),
    Case("capabilities-kept", "staging", edit(WEB, at("container.securityContext.capabilities", {})),
         "pss-restricted-drop-all-capabilities", WEB),
    Case("capability-added", "staging", edit(WEB, at("container.securityContext.capabilities.add", ["NET_ADMIN"])),
         "pss-baseline-no-added-capabilities", WEB),
    Case("seccomp-unconfined", "prod",
         edit(WEB, at("pod.securityContext.seccompProfile.type", "Unconfined"),
              at("container.securityContext.seccompProfile.type", "Unconfined")),
         "pss-restricted-seccomp", WEB),
    Case("host-network", "staging", edit(WORKER, at("pod.hostNetwork", True)),
         "pss-baseline-no-host-namespaces-or-ports", WORKER),
    Case("unmasked-proc", "staging", edit(WEB, at("container.securityContext.procMount", "Unmasked")),
         "pss-baseline-misc", WEB),
    # Every PSS field at each level Kubernetes accepts it: the pod, containers and initContainers.
    Case("pod-run-as-root-overridden", "staging",
         edit(WEB, at("pod.securityContext.runAsUser", 0), at("container.securityContext.runAsUser", 10001)),
         "pss-restricted-run-as-non-root", WEB, reason="pod: runAsUser is 0"),
    Case("pod-run-as-non-root-false-overridden", "prod",
         edit(WORKER, at("pod.securityContext.runAsNonRoot", False),
              at("container.securityContext.runAsNonRoot", True)),
         "pss-restricted-run-as-non-root", WORKER, reason="pod: runAsNonRoot is false"),
    Case("init-run-as-root", "staging", edit(WEB, init_container("securityContext.runAsUser", 0)),
         "pss-restricted-run-as-non-root", WEB),
    Case("init-run-as-non-root-false", "prod", edit(WORKER, init_container("securityContext.runAsNonRoot", False)),
         "pss-restricted-run-as-non-root", WORKER, reason="container init: set runAsNonRoot: true"),
    Case("init-privileged", "prod", edit(WORKER, init_container("securityContext.privileged", True)),
         "pss-baseline-no-privileged", WORKER, reason="container init: remove privileged"),
    Case("init-privilege-escalation", "staging",
         edit(JOB, init_container("securityContext.allowPrivilegeEscalation", True)),
         "pss-restricted-no-privilege-escalation", JOB, reason="container init:"),
    Case("init-capability-added", "prod", edit(WEB, init_container("securityContext.capabilities.add", ["SYS_ADMIN"])),
         "pss-baseline-no-added-capabilities", WEB, reason="container init: remove capabilities.add"),
    Case("init-capabilities-kept", "staging", edit(WEB, init_container("securityContext.capabilities", {})),
         "pss-restricted-drop-all-capabilities", WEB, reason="container init:"),
    Case("init-host-port", "staging",
         edit(WORKER, init_container("ports.0.hostPort", 9000)),
         "pss-baseline-no-host-namespaces-or-ports", WORKER, reason="container init: remove hostPort 9000"),
    Case("pod-host-pid", "prod", edit(WEB, at("pod.hostPID", True)), "pss-baseline-no-host-namespaces-or-ports", WEB),
    Case("pod-host-ipc", "staging", edit(JOB, at("pod.hostIPC", True)),
         "pss-baseline-no-host-namespaces-or-ports", JOB),
    Case("init-seccomp-unconfined", "prod",
         edit(WEB, init_container("securityContext.seccompProfile", {"type": "Unconfined"})),
         "pss-restricted-seccomp", WEB, reason="container init:"),
    Case("pod-seccomp-unconfined-overridden", "staging",
         edit(WEB, at("pod.securityContext.seccompProfile.type", "Unconfined"),
              at("container.securityContext.seccompProfile", {"type": "RuntimeDefault"})),
         "pss-restricted-seccomp", WEB, reason="pod: seccompProfile.type Unconfined"),
    Case("init-unmasked-proc", "prod", edit(WORKER, init_container("securityContext.procMount", "Unmasked")),
         "pss-baseline-misc", WORKER, reason="container init: procMount"),
    Case("pod-selinux-user", "staging", edit(WEB, at("pod.securityContext.seLinuxOptions", {"user": "system_u"})),
         "pss-baseline-misc", WEB, reason="pod: remove seLinuxOptions"),
    Case("init-selinux-type", "prod", edit(WEB, init_container("securityContext.seLinuxOptions", {"type": "spc_t"})),
         "pss-baseline-misc", WEB, reason="container init: seLinuxOptions.type spc_t"),
    Case("pod-apparmor-unconfined", "staging",
         edit(WORKER, at("pod.securityContext.appArmorProfile", {"type": "Unconfined"})),
         "pss-baseline-misc", WORKER, reason="pod: appArmorProfile.type Unconfined"),
    Case("init-apparmor-unconfined", "prod",
         edit(WORKER, init_container("securityContext.appArmorProfile", {"type": "Unconfined"})),
         "pss-baseline-misc", WORKER, reason="container init: appArmorProfile"),
    Case("apparmor-annotation-not-runtime-default", "staging", edit(WEB, with_pod_annotation(APPARMOR, "custom")),
         "pss-baseline-misc", WEB, reason="AppArmor profile 'custom' is not allowed"),
    Case("pod-unsafe-sysctl", "prod",
         edit(WEB, at("pod.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "65536"}])),
         "pss-baseline-misc", WEB, reason="remove sysctl kernel.msgmax"),
    Case("pod-host-process", "staging", edit(WEB, at("pod.securityContext.windowsOptions", {"hostProcess": True})),
         "pss-baseline-misc", WEB, reason="pod: windowsOptions.hostProcess"),
    Case("init-host-process", "prod",
         edit(WEB, init_container("securityContext.windowsOptions", {"hostProcess": True})),
         "pss-baseline-misc", WEB, reason="container init: windowsOptions.hostProcess"),
    Case("namespace-without-pss", "prod", edit("notes-namespace", without_label("pod-security.kubernetes.io/enforce")),
         "pss-restricted-namespace-enforced", "notes-namespace"),
    Case("default-service-account", "staging", edit(WORKER, at("pod.serviceAccountName", "default")),
         "identity-dedicated-service-account", WORKER),
    # Under an HPA the live replicas are the autoscaler's; the count the program declared shows in who owns the field.
    Case("replicas-beside-the-autoscaler", "prod", edit(WEB, at("spec.replicas", 3)),
         "12f-concurrency-replica-range", WEB, reason="drop spec.replicas"),
    Case("claims-deleted-with-the-database", "prod",
         edit(POSTGRES, at("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Delete")),
         "12f-backing-stateful", POSTGRES, reason="Retain"),
    Case("undefined-service-account", "prod", edit(WEB, at("pod.serviceAccountName", "notes-elsewhere")),
         "identity-dedicated-service-account", WEB, reason="is not defined in this stack"),
    # Only the deprecated field declared: the server reads it as serviceAccountName (and mirrors it back), so the
    # account is right and only the resource rule, which sees what was declared, can say so.
    Case("deprecated-service-account-field", "prod",
         edit(WORKER, drop("pod.serviceAccountName"), at("pod.serviceAccount", "notes-worker")),
         "identity-service-account-name", WORKER, reason="deprecated serviceAccount field"),
    Case("token-automount", "prod", edit("notes-web-serviceaccount", at("automountServiceAccountToken", True)),
         "identity-no-token-automount", "notes-web-serviceaccount"),
    Case("cluster-admin-binding", "staging",
         added("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding", "notes-admin",
               {"metadata": {"name": "notes-admin"}, "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}}),
         "identity-rbac-least-privilege", "notes-admin"),
    Case("foreign-registry", "staging", edit(WORKER, at("container.image", "ghcr.io/someone/notes:1.0.0")),
         "image-allowed-registries", WORKER),
    Case("no-memory-limit", "prod", edit(WEB, drop("container.resources.limits.memory")), "hardening-resources", WEB),
    Case("request-above-limit", "prod", edit(WEB, at("container.resources.requests.memory", "64Gi")),
         "hardening-requests-within-limits", WEB, reason="requests.memory 64Gi is above its limit"),
    Case("init-request-above-limit", "staging",
         edit(WORKER, init_container("resources.requests.ephemeral-storage", "1Ei")),
         "hardening-requests-within-limits", WORKER, reason="container init: requests.ephemeral-storage 1Ei"),
    Case("no-default-deny", "staging", edit("notes-network-default-deny", at("spec.policyTypes", ["Ingress"])),
         "network-default-deny", WEB),
    Case("postgres-open-to-world", "prod",
         edit("notes-network-postgres-ingress", at("spec.ingress", [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}])),
         "network-least-access", "notes-network-postgres-ingress"),
    # Least access, one path at a time: backing-service ports, DNS, the app's HTTP port, app egress ports.
    Case("postgres-ingress-any-port", "prod", edit(POSTGRES_INGRESS, drop("spec.ingress.0.ports")),
         LEAST_ACCESS, POSTGRES_INGRESS, reason="admits more than port 5432 on the database pods"),
    Case("redis-ingress-cluster-bus-port", "staging", edit(REDIS_INGRESS, at("spec.ingress.0.ports", tcp(6379, 16379))),
         LEAST_ACCESS, REDIS_INGRESS, reason="admits more than port 6379 on the cache pods"),
    Case("dns-to-any-namespace", "staging", edit(ALLOW_DNS, at("spec.egress.0.to.0.namespaceSelector", {})),
         LEAST_ACCESS, ALLOW_DNS, reason="sends DNS (port 53) to any namespace; send it only to namespaceSelector"),
    Case("dns-to-every-destination", "prod", edit(ALLOW_DNS, drop("spec.egress.0.to")),
         LEAST_ACCESS, ALLOW_DNS, reason="sends DNS (port 53) to every destination"),
    Case("dns-to-a-public-resolver", "staging",
         edit(ALLOW_DNS, at("spec.egress.0.to", [{"ipBlock": {"cidr": "8.8.8.8/32"}}])),
         LEAST_ACCESS, ALLOW_DNS, reason="sends DNS (port 53) to ipBlock 8.8.8.8/32"),
    Case("kube-dns-metrics-port", "prod",
         edit(ALLOW_DNS, at("spec.egress.0.ports", [{"protocol": "UDP", "port": 53}, *tcp(53, 9153)])),
         LEAST_ACCESS, ALLOW_DNS, reason="reaches kube-dns on more than port 53"),
    Case("app-port-open-to-own-namespace", "staging",
         edit(APP_INGRESS, at("spec.ingress.0.from", [namespace("ingress-nginx"), {"podSelector": {}}])),
         LEAST_ACCESS, APP_INGRESS, reason="admits pods of its own namespace on the app's port 3002"),
    Case("app-port-open-to-all-namespaces", "prod",
         edit(APP_INGRESS, at("spec.ingress.0.from", [{"namespaceSelector": {}}])),
         LEAST_ACCESS, APP_INGRESS, reason="admits any namespace on the app's port 3002"),
    Case("app-port-open-to-another-namespace", "prod",
         edit(APP_INGRESS, at("spec.ingress.0.from", [namespace("ingress-nginx"), namespace("default")])),
         LEAST_ACCESS, APP_INGRESS, reason="admits namespaces default on the app's port 3002"),
    Case("app-port-open-to-everyone", "staging", edit(APP_INGRESS, drop("spec.ingress.0.from")),
         LEAST_ACCESS, APP_INGRESS, reason="opens the app's port 3002 to every source"),
    Case("app-egress-without-ports", "prod", edit(REDIS_EGRESS, drop("spec.egress.0.ports")),
         LEAST_ACCESS, REDIS_EGRESS, reason="egress rule 1 of app pods allows every port to its peers"),
    Case("app-egress-to-everything", "staging", edit(POSTGRES_EGRESS, at("spec.egress", [{}])),
         LEAST_ACCESS, POSTGRES_EGRESS, reason="egress rule 1 of app pods allows every port to every destination"),
    Case("ingress-without-tls", "staging", edit("notes-web-ingress", drop("spec.tls")),
         "network-service-internal-only", "notes-web-ingress"),
    Case("default-namespace", "staging", edit(CONFIG_MAP, at("metadata.namespace", "default")),
         "metadata-explicit-namespace", CONFIG_MAP),
    Case("beta-api", "staging",
         added("kubernetes:extensions/v1beta1:Ingress", "notes-legacy", {"metadata": {"namespace": "notes-staging"}}),
         "metadata-stable-api-versions", "notes-legacy"),
    # Twelve-factor.
    Case("password-in-configmap", "staging", edit(CONFIG_MAP, at("data.DB_PASSWORD", "hunter2")),
         "12f-config-no-sensitive-configmap", CONFIG_MAP),
    Case("placeholder-secret", "prod", edit("notes-postgres-url", at("stringData.url", "changeme")),
         "12f-config-secret-hygiene", "notes-postgres-url"),
    Case("hard-coded-host", "staging",
         edit(WORKER, at("container.args", ["--redis", "notes-redis.notes-staging.svc.cluster.local"])),
         "12f-config-from-env", WORKER),
    Case("fault-latency-env", "staging", edit(WEB, at("container.env.0", {"name": "FAULT_LATENCY_MS", "value": "800"})),
         "12f-config-no-fault-injection", WEB),
    Case("fault-hooks-in-configmap", "prod", edit(CONFIG_MAP, at("data.APP_ENABLE_TEST_HOOKS", "1")),
         "12f-config-no-fault-injection", CONFIG_MAP, reason="switches on test-only fault injection"),
    Case("fault-injection-on-pythonpath", "staging",
         edit(WORKER, at("container.args", ["env", "PYTHONPATH=/opt/fault_injection", "python", "-m", "notes_app"])),
         "12f-config-no-fault-injection", WORKER, reason="args[1] switches on test-only fault injection"),
    Case("redis-secret-missing", "prod", edit(WEB, at("container.env.2.valueFrom.secretKeyRef.name", "gone")),
         "refs-config-keys", WEB, reason="Secret gone is not defined in the stack"),
    Case("postgres-claims-deleted", "prod",
         edit(POSTGRES, at("spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Delete")),
         "12f-backing-stateful", POSTGRES),
    Case("unnamed-port", "staging", edit(WEB, at("container.ports.0.name", "web")), "12f-port-binding", WEB),
    Case("single-replica-in-prod", "prod", edit(WORKER, at("spec.replicas", 1)),
         "12f-concurrency-replica-range", WORKER),
    Case("log-file-volume", "prod", edit(WORKER, *volume("logs", {"emptyDir": {"sizeLimit": "1Gi"}}, "/var/log/x")),
         "12f-logs-to-stdout", WORKER),
    Case("job-retries-forever", "staging", edit(JOB, at("spec.backoffLimit", 10)),
         "12f-admin-migration-job-hygiene", JOB),
    # Rollout safety.
    Case("pdb-blocks-evictions", "prod", edit("notes-web-pdb", at("spec.maxUnavailable", 0)),
         "rollout-pdb-coverage", "notes-web-pdb"),
    Case("pdb-min-available-all", "prod",
         edit("notes-worker-pdb", drop("spec.maxUnavailable"), at("spec.minAvailable", 2)),
         "rollout-pdb-coverage", "notes-worker-pdb"),
    Case("selector-mismatch", "staging", edit(WEB, at("spec.selector.matchLabels", {"app": "other"})),
         "rollout-selector-integrity", WEB),
    Case("replicas-on-one-node", "prod", edit(WEB, drop("pod.topologySpreadConstraints")),
         "rollout-spread-replicas", WEB),
    Case("low-uid", "prod", edit(WORKER, at("pod.securityContext.runAsUser", 2000)), "hardening-high-uid-gid", WORKER),
    Case("unlabelled-configmap", "prod", edit(CONFIG_MAP, without_label("app.kubernetes.io/part-of")),
         "metadata-recommended-labels", CONFIG_MAP),
    # References that must resolve, at both ends, in every workload.
    Case("service-target-port-number-undeclared", "prod", edit(POSTGRES_SERVICE, at("spec.ports.0.targetPort", 5433)),
         "refs-service-target-ports", POSTGRES_SERVICE, reason="targetPort 5433 is not a containerPort"),
    Case("service-target-port-name-undeclared", "staging",
         edit(REDIS_SERVICE, at("spec.ports.0.targetPort", "redis-tls")),
         "refs-service-target-ports", REDIS_SERVICE, reason="targetPort redis-tls is not a containerPort"),
    Case("service-selector-matches-no-pod", "prod",
         edit(REDIS_SERVICE, at("spec.selector", {**DATABASE_PODS, "app.kubernetes.io/instance": "notes-redis"})),
         "rollout-selector-integrity", REDIS_SERVICE),
    Case("pdb-selects-no-pod", "staging",
         edit("notes-worker-pdb", at("spec.selector.matchLabels", {**WORKER_PODS, "app.kubernetes.io/name": "x"})),
         "rollout-selector-integrity", "notes-worker-pdb"),
    Case("ingress-backend-names-no-service", "staging", edit(WEB_INGRESS, at(f"{BACKEND}.name", "notes-api")),
         "refs-route-backends", WEB_INGRESS, reason="backend Service notes-api is not a Service of the stack"),
    Case("ingress-backend-names-no-port", "prod", edit(WEB_INGRESS, at(f"{BACKEND}.port", {"name": "https"})),
         "refs-route-backends", WEB_INGRESS, reason="Service notes-web exposes no port https"),
    Case("http-route-backend-port-missing", "staging",
         added(HTTP_ROUTE_TYPE, "notes-route",
               {"metadata": {"namespace": "notes-staging"},
                "spec": {"parentRefs": [{"name": "public"}], "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/notes"}}],
                     "backendRefs": [{"name": "notes-web", "port": 8080}]}]}}),
         "refs-route-backends", "notes-route"),
    Case("network-policy-admits-an-undeclared-port", "prod", edit(APP_INGRESS, at("spec.ingress.0.ports", tcp(8080))),
         "refs-network-policy-rules", APP_INGRESS, reason="ingress rule 1 names port 8080, which none of its pods"),
    Case("app-egress-to-a-mistyped-database-selector", "prod",
         edit(POSTGRES_EGRESS, at("spec.egress.0.to.0.podSelector.matchLabels",
                                  {**DATABASE_PODS, "app.kubernetes.io/instance": "notes-db"})),
         "refs-network-policy-rules", POSTGRES_EGRESS, reason="egress rule 1: its podSelector peer selects no pod"),
    Case("app-egress-to-the-wrong-database-port", "staging",
         edit(POSTGRES_EGRESS, at("spec.egress.0.ports", tcp(5433))),
         "refs-network-policy-rules", POSTGRES_EGRESS, reason="egress rule 1 names port 5433, which none of its pods"),
    Case("probe-on-undeclared-port", "staging", edit(POSTGRES, at("container.livenessProbe.tcpSocket.port", 5433)),
         "12f-disposability-probes", POSTGRES, reason="livenessProbe port 5433 is not a declared containerPort"),
    Case("readiness-on-the-liveness-path", "staging",
         edit(WEB, at("container.readinessProbe.httpGet.path", "/healthz")),
         "12f-disposability-probes", WEB, reason="liveness must differ from readiness"),
    Case("env-secret-key-missing", "prod", edit(WEB, at("container.env.1.valueFrom.secretKeyRef.key", "uri")),
         "refs-config-keys", WEB, reason="Secret notes-database has no key uri"),
    Case("init-configmap-key-missing", "staging",
         edit(JOB, init_container("env", [
             {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "notes-config", "key": "LOGLEVEL"}}}])),
         "refs-config-keys", JOB, reason="container init env LOG_LEVEL: ConfigMap notes-config has no key LOGLEVEL"),
    Case("secret-volume-names-no-secret", "prod",
         edit(POSTGRES, at("pod.volumes.2.secret.secretName", "notes-postgres-credentials")),
         "refs-config-keys", POSTGRES, reason="Secret notes-postgres-credentials is not defined in the stack"),
    Case("pull-secret-names-no-secret", "staging", edit(WEB, at("pod.imagePullSecrets", [{"name": "notes-old"}])),
         "refs-config-keys", WEB, reason="imagePullSecrets: Secret notes-old is not defined in the stack"),
    Case("mount-names-no-volume", "prod", edit(WORKER, at("container.volumeMounts.0.name", "scratch")),
         "refs-volume-mounts", WORKER, reason="container worker: mount scratch names no volume of the pod"),
    Case("hpa-targets-no-workload", "prod", edit(AUTOSCALER, at("spec.scaleTargetRef.name", "notes-api")),
         "refs-hpa-target", AUTOSCALER),
    Case("hpa-scales-the-database", "prod",
         added("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "notes-postgres-autoscaler", {
             "metadata": {"name": "notes-postgres", "namespace": "notes-prod"},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "notes-postgres"},
                      "minReplicas": 1, "maxReplicas": 3}}),
         "12f-backing-single-instance-not-autoscaled", "notes-postgres-autoscaler"),
    Case("spread-selects-other-pods", "prod",
         edit(WEB, at("pod.topologySpreadConstraints.0.labelSelector.matchLabels", WORKER_PODS)),
         "refs-spread-selects-own-pods", WEB, reason="topologySpreadConstraints[1]: its labelSelector does not"),
    Case("anti-affinity-selects-nothing", "staging",
         edit(WORKER, at("pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution", [
             {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                 "labelSelector": {"matchLabels": {"app": "worker"}}}}])),
         "refs-spread-selects-own-pods", WORKER, reason="podAntiAffinity term 1: its labelSelector does not"),
    Case("pdb-blocks-the-single-database-pod", "prod", database_budget(minAvailable=1),
         "rollout-pdb-coverage", "notes-postgres-pdb"),
    # Credentials reach a pod only through Secrets: never a command line, a label or annotation, or a token volume.
    Case("redis-password-on-command-line", "prod",
         edit(REDIS, at("container.command", ["redis-server", "--requirepass", "s3cr3t-redis"])),
         "12f-config-no-secret-on-command-line", REDIS, reason="command/args carries a literal secret"),
    Case("password-in-app-args", "staging", edit(WORKER, at("container.args", ["--db-password=s3cr3t"])),
         "12f-config-no-secret-on-command-line", WORKER, reason="command/args carries a literal secret"),
    Case("password-in-probe-exec", "staging",
         edit(POSTGRES, at("container.readinessProbe.exec.command", ["sh", "-c", "PGPASSWORD=s3cr3t pg_isready"])),
         "12f-config-no-secret-on-command-line", POSTGRES, reason="readinessProbe exec carries a literal secret"),
    Case("password-in-pod-annotation", "prod", edit(WEB, with_pod_annotation("notes/db-password", "s3cr3t")),
         "12f-config-no-secret-in-metadata", WEB, reason="pod template annotations notes/db-password carries"),
    Case("credential-url-in-service-annotation", "staging",
         edit(WEB_SERVICE, with_annotation("notes/backend", "postgresql://app:s3cr3t@db:5432/app")),
         "12f-config-no-secret-in-metadata", WEB_SERVICE, reason="annotations notes/backend carries a credential"),
    Case("projected-service-account-token", "staging",
         edit(WEB, *volume("token", {"projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                           "/var/run/secrets/tokens")),
         "identity-no-token-automount", WEB, reason="volume token: remove the serviceAccountToken projection"),
    Case("service-account-token-secret", "prod",
         added("kubernetes:core/v1:Secret", "notes-web-token",
               {"metadata": {"namespace": "notes-prod",
                             "annotations": {"kubernetes.io/service-account.name": "notes-web"}},
                "type": "kubernetes.io/service-account-token"}),
         "identity-no-token-automount", "notes-web-token"),
    # Traffic goes only to ready pods.
    Case("service-publishes-not-ready-addresses", "prod", edit(WEB_SERVICE, at("spec.publishNotReadyAddresses", True)),
         "rollout-ready-traffic-only", WEB_SERVICE, reason="publishNotReadyAddresses sends traffic to unready pods"),
    Case("service-tolerates-unready-endpoints", "staging",
         edit(POSTGRES_SERVICE, with_annotation("service.alpha.kubernetes.io/tolerate-unready-endpoints", "true")),
         "rollout-ready-traffic-only", POSTGRES_SERVICE, reason="tolerate-unready-endpoints sends traffic"),
    Case("service-selects-the-migration-job", "staging",
         chain(edit(JOB, at("container.ports", [{"name": "http", "containerPort": 3002}])),
               added(SERVICE_TYPE, "notes-migrate-service",
                     {"metadata": {"namespace": "notes-staging"},
                      "spec": {"selector": {"app.kubernetes.io/instance": "notes-migration"},
                               "ports": [{"port": 80, "targetPort": "http"}]}})),
         "rollout-ready-traffic-only", "notes-migrate-service"),
    # Stateful services keep one server per data set.
    Case("postgres-scaled-to-three", "prod", edit(POSTGRES, at("spec.replicas", 3)),
         "12f-backing-single-instance", POSTGRES),
    Case("database-in-a-rolling-deployment", "prod",
         added("kubernetes:apps/v1:Deployment", "notes-pg",
               {"metadata": {"namespace": "notes-prod"},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pg"}},
                         "template": {"metadata": {"labels": {"app": "pg"}}, "spec": {"containers": [
                             {"name": "postgres", "image": "docker.io/library/postgres:15.18-bookworm"}]}}}}),
         "12f-backing-single-instance", "notes-pg"),
    Case("redis-parallel-pod-management", "staging", edit(REDIS, at("spec.podManagementPolicy", "Parallel")),
         "12f-backing-single-instance", REDIS, reason="podManagementPolicy Parallel may run two servers at once"),
    # Advisory rules report without blocking, still for the right reason.
    Case("pull-policy-never", "staging", edit(WEB, at("container.imagePullPolicy", "Never")),
         "image-pull-policy", WEB, "advisory"),
    Case("third-party-without-digest", "prod", unchanged, "12f-build-third-party-digest", POSTGRES, "advisory"),
    Case("postgres-password-in-env", "staging",
         edit(POSTGRES, at("container.env.2", {"name": "POSTGRES_PASSWORD", "valueFrom": SECRET_REF})),
         "hardening-secrets-as-files", POSTGRES, "advisory"),
    # The Dockerfile the staging image build names.
    Case("dockerfile-root-user", "staging", unchanged, "docker-non-root-user", IMAGE_BUILD,
         dockerfile=dockerfile("USER 10001:10001", "USER root")),
    Case("pods-run-as-another-uid-than-the-image", "staging", edit(WEB, at("pod.securityContext.runAsUser", 10002)),
         "docker-user-matches-pods", WEB),
    Case("dockerfile-latest-base", "staging", unchanged, "docker-pinned-base-images", IMAGE_BUILD,
         dockerfile=dockerfile(f"python:3.11.14-slim-bookworm@sha256:{'a' * 64}", "python:latest")),
    Case("dockerfile-base-without-digest", "staging", unchanged, "docker-base-image-digest", IMAGE_BUILD, "advisory",
         dockerfile=dockerfile(f"@sha256:{'a' * 64}", "")),
    Case("dockerfile-unlocked-pip", "staging", unchanged, "docker-reproducible-deps", IMAGE_BUILD,
         dockerfile=dockerfile("--require-hashes ", "")),
    Case("dockerfile-single-stage", "staging", unchanged, "docker-reproducible-deps", IMAGE_BUILD,
         dockerfile="FROM docker.io/library/python:3.11.14-slim-bookworm\nCOPY requirements.txt .\n"
         "RUN pip install --require-hashes -r requirements.txt\nUSER 10001:10001\nCMD [\"python\"]\n"),
    Case("dockerfile-npm-install", "staging", unchanged, "docker-reproducible-deps", IMAGE_BUILD,
         dockerfile=dockerfile("/venv/bin/pip install", "npm install && /venv/bin/pip install")),
    Case("dockerfile-unknown-package-manager", "staging", unchanged, "docker-package-manager-known", IMAGE_BUILD,
         "advisory", dockerfile=dockerfile("AS builder\n", "AS builder\nRUN cargo build\n")),
    Case("dockerfile-compiles-in-final-stage", "staging", unchanged, "docker-reproducible-deps", IMAGE_BUILD,
         dockerfile=dockerfile("USER 10001:10001\n", "RUN make -C /app/ext\nUSER 10001:10001\n")),
    Case("dockerfile-shell-form-cmd", "staging", unchanged, "docker-runtime-contract", IMAGE_BUILD,
         dockerfile=dockerfile('CMD ["python", "-m", "notes_app", "serve"]', "CMD python -m notes_app serve")),
    Case("dockerfile-secret-arg", "staging", unchanged, "docker-no-baked-secrets", IMAGE_BUILD,
         dockerfile=dockerfile("AS builder\n", "AS builder\nARG PIP_TOKEN\n")),
    Case("dockerfile-copies-pypirc", "staging", unchanged, "docker-no-baked-secrets", IMAGE_BUILD,
         dockerfile=dockerfile("COPY requirements.txt .", "COPY .pypirc requirements.txt .")),
    Case("dockerignore-keeps-env", "staging", unchanged, "docker-context-excludes-secrets", IMAGE_BUILD,
         dockerfile=COMPLIANT_DOCKERFILE, dockerignore=".git\n"),
    Case("dockerfile-no-healthcheck", "staging", unchanged, "docker-healthcheck", IMAGE_BUILD, "advisory",
         dockerfile=dockerfile("HEALTHCHECK CMD", "LABEL healthcheck=none\n# CMD")),
    Case("ingress-without-body-limit", "staging",
         edit(WEB_INGRESS, without_annotation("nginx.ingress.kubernetes.io/proxy-body-size")),
         "edge-request-limits", WEB_INGRESS),
    Case("ingress-configuration-snippet", "staging",
         edit(WEB_INGRESS, with_annotation("nginx.ingress.kubernetes.io/configuration-snippet", "more_set_headers x;")),
         "edge-no-nginx-snippets", WEB_INGRESS, reason="remove nginx.ingress.kubernetes.io/configuration-snippet"),
    Case("readiness-routed-publicly", "prod", edit(WEB_INGRESS, with_public_path("/readyz")),
         "edge-internal-paths", WEB_INGRESS),
    Case("metrics-routed-publicly", "staging", edit(WEB_INGRESS, with_public_path("/metrics")),
         "edge-internal-paths", WEB_INGRESS, reason="routes /metrics to the internet"),
    # Waivers: one rule, one resource, a written reason; reported, never silent.
    Case("waiver-without-reason", "staging", edit(WEB, with_annotation(f"{WAIVE}hardening-read-only-root-fs", " ")),
         "waiver-reasons", WEB, reason="give a written reason"),
    Case("waiver-of-an-unknown-policy", "prod", edit(WEB, with_annotation(f"{WAIVE}k8s-read-only-root-fs", "why")),
         "waiver-reasons", WEB, reason="no policy 'k8s-read-only-root-fs' in this pack"),
    Case("waiver-of-a-waiver-rule", "staging", edit(WORKER, with_annotation(f"{WAIVE}waiver-reasons", "why")),
         "waiver-reasons", WORKER, reason="waiver-reasons cannot be waived"),
    Case("waived-writable-root-fs", "prod",
         edit(WEB, at("container.securityContext.readOnlyRootFilesystem", False),
              with_annotation(f"{WAIVE}hardening-read-only-root-fs", "vendor agent writes /opt/agent; ticket SEC-12")),
         "waiver-report", WEB, "advisory", reason="waived hardening-read-only-root-fs: vendor agent writes"),
]
# fmt: on


@dataclass(frozen=True)
class Compliant:
    """A variant that changes a field the new rules judge, within what they allow: `policy` must not blame it."""

    id: str
    stack: str
    change: Edit
    policy: str
    resource: str


def request_at_limit(resource: str) -> Change:
    def change(props: dict[str, Any]) -> None:
        resources = first_container(props)["resources"]
        resources["requests"][resource] = resources["limits"][resource]

    return change


# fmt: off
COMPLIANT = [
    Compliant("autoscaler-scales-the-app", "prod", unchanged, "12f-backing-single-instance-not-autoscaled", AUTOSCALER),
    Compliant("init-container-as-hardened-as-the-app", "staging", edit(WEB, init_container("name", "init")),
              "pss-restricted-run-as-non-root", WEB),
    Compliant("init-container-drops-all", "prod", edit(WORKER, init_container("name", "init")),
              "pss-restricted-drop-all-capabilities", WORKER),
    Compliant("init-container-baseline", "prod", edit(WORKER, init_container("name", "init")), "pss-baseline-misc",
              WORKER),
    Compliant("pod-and-container-run-as-non-root", "staging",
              edit(WEB, at("pod.securityContext.runAsNonRoot", True),
                   at("container.securityContext.runAsNonRoot", True)),
              "pss-restricted-run-as-non-root", WEB),
    Compliant("container-seccomp-over-pod-runtime-default", "prod",
              edit(WEB, at("container.securityContext.seccompProfile", {"type": "Localhost", "localhostProfile": "a"})),
              "pss-restricted-seccomp", WEB),
    Compliant("apparmor-runtime-default", "staging",
              edit(WEB, at("pod.securityContext.appArmorProfile", {"type": "RuntimeDefault"}),
                   with_pod_annotation(APPARMOR, "localhost/notes")), "pss-baseline-misc", WEB),
    Compliant("safe-sysctl", "prod",
              edit(WEB, at("pod.securityContext.sysctls", [{"name": "net.ipv4.tcp_syncookies", "value": "1"}])),
              "pss-baseline-misc", WEB),
    Compliant("request-equal-to-limit", "prod", edit(WEB, request_at_limit("memory")),
              "hardening-requests-within-limits", WEB),
    Compliant("request-in-another-unit-below-limit", "staging",
              edit(WORKER, at("container.resources.requests.memory", "1k")),
              "hardening-requests-within-limits", WORKER),
    Compliant("public-path-beside-metrics", "staging", edit(WEB_INGRESS, with_public_path("/metricsboard")),
              "edge-internal-paths", WEB_INGRESS),
    Compliant("init-container-and-sidecar-serve-no-port", "staging",
              edit(WEB, init_container("name", "init"), drop("pod.initContainers.0.ports"), sidecar_without_ports),
              "12f-port-binding", WEB),
    # The new rules' triggers against compliant variants of the same shape.
    Compliant("init-container-that-needs-no-config", "staging",
              edit(WEB, init_container("name", "init"), drop("pod.initContainers.0.envFrom"),
                   drop("pod.initContainers.0.env")),
              "12f-config-from-env", WEB),
    Compliant("numeric-target-port-declared", "prod", edit(POSTGRES_SERVICE, at("spec.ports.0.targetPort", 5432)),
              "refs-service-target-ports", POSTGRES_SERVICE),
    Compliant("target-port-left-to-the-default", "staging",
              edit(POSTGRES_SERVICE, at("spec.ports.0.port", 5432), drop("spec.ports.0.targetPort")),
              "refs-service-target-ports", POSTGRES_SERVICE),
    Compliant("ingress-backend-by-port-number", "prod", edit(WEB_INGRESS, at(f"{BACKEND}.port", {"number": 80})),
              "refs-route-backends", WEB_INGRESS),
    Compliant("optional-secret-key-absent", "staging",
              edit(WEB, at("container.env.1.valueFrom.secretKeyRef", {"name": "notes-database", "key": "replica",
                                                                      "optional": True})),
              "refs-config-keys", WEB),
    Compliant("settings-about-a-secret-are-no-secret", "prod",
              edit(WEB, at("container.env.0", {"name": "PASSWORD_MIN_LENGTH", "value": "12"})),
              "12f-config-no-plaintext-secret-env", WEB),
    Compliant("configmap-secret-ttl", "staging", edit(CONFIG_MAP, at("data.TOKEN_TTL_SECONDS", "3600")),
              "12f-config-no-sensitive-configmap", CONFIG_MAP),
    Compliant("probe-on-declared-port-number", "staging",
              edit(POSTGRES, at("container.livenessProbe.tcpSocket.port", 5432)), "12f-disposability-probes", POSTGRES),
    Compliant("anti-affinity-on-own-labels", "prod",
              edit(WORKER, at("pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution", [
                  {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": WORKER_PODS}}])),
              "refs-spread-selects-own-pods", WORKER),
    Compliant("pdb-allows-the-single-database-pod-to-move", "prod", database_budget(maxUnavailable=1),
              "rollout-pdb-coverage", "notes-postgres-pdb"),
    Compliant("password-from-file-or-env-expansion", "staging",
              edit(WORKER, at("container.args", ["--password-file", "/run/secrets/db/password",
                                                 "--db-password=$(DB_PASSWORD)"])),
              "12f-config-no-secret-on-command-line", WORKER),
    Compliant("secret-checksum-and-secret-name-annotations", "prod",
              edit(WEB, with_pod_annotation("checksum/db-password", "a" * 64),
                   with_pod_annotation("nginx.ingress.kubernetes.io/auth-secret", "basic-auth")),
              "12f-config-no-secret-in-metadata", WEB),
    Compliant("replicated-database-image", "prod",
              edit(POSTGRES, at("container.image", "docker.io/bitnami/postgresql-repmgr:16.4.0"),
                   at("spec.replicas", 3)),
              "12f-backing-single-instance", POSTGRES),
    Compliant("image-built-in-staging", "staging", unchanged, "12f-build-once", IMAGE_BUILD),
    Compliant("namespaced-read-only-role", "staging",
              added("kubernetes:rbac.authorization.k8s.io/v1:Role", "notes-reader",
                    {"metadata": {"namespace": "notes-staging"},
                     "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}),
              "identity-rbac-least-privilege", "notes-reader"),
    Compliant("stable-ingress-api", "staging",
              added("kubernetes:networking.k8s.io/v1:Ingress", "notes-legacy",
                    {"metadata": {"namespace": "notes-staging"}}),
              "metadata-stable-api-versions", "notes-legacy"),
    Compliant("third-party-image-by-digest", "prod",
              edit(POSTGRES, at("container.image", f"docker.io/library/postgres:15.18-bookworm@sha256:{'c' * 64}")),
              "12f-build-third-party-digest", POSTGRES),
    Compliant("waiver-with-a-reason", "prod",
              edit(WEB, with_annotation(f"{WAIVE}hardening-read-only-root-fs", "vendor agent writes; ticket SEC-12")),
              "waiver-reasons", WEB),
]
# fmt: on


@dataclass(frozen=True)
class ConfigCase:
    """A fault the stack config can express and the program accepts: only the policy pack stops it."""

    id: str
    stack: str
    overrides: dict[str, object]
    policy: str
    resource: str


COMMAND = ["python", "-m", "notes_app", "serve"]
FAULT_HOOKS = ["APP_ENABLE_TEST_HOOKS=1", "FAULT_ERROR_RATE=0.5"]
POSTGRES_15_17 = {"mode": "in-cluster", "version": "15.17", "image": "docker.io/library/postgres:15.17-bookworm"}
PROD_APP = read_stack_config("prod")[1]["shipsafe:app"]
CONFIG_CASES = [
    ConfigCase(
        "image-ref-without-digest",
        "prod",
        {"shipsafe:imageRef": f"{OWN_IMAGE}:3f9c2a1b7d4e"},
        "12f-build-immutable-image",
        WEB,
    ),
    ConfigCase(
        "postgres-version-mismatch",
        "prod",
        {"shipsafe:postgres": {**POSTGRES_15_17, "storageSize": "50Gi"}},
        "12f-parity-backing-versions",
        POSTGRES,
    ),
    ConfigCase(
        "single-web-replica-in-prod",
        "prod",
        {"shipsafe:workloads": {"web": {"replicas": 1, "command": COMMAND}}},
        "12f-concurrency-replica-range",
        WEB,
    ),
    ConfigCase(  # the issue's example: it passed preview with 0 mandatory findings
        "fault-hooks-in-the-web-command",
        "staging",
        {"shipsafe:workloads": {"web": {"command": ["env", *FAULT_HOOKS, *COMMAND]}}},
        "12f-config-no-fault-injection",
        WEB,
    ),
    ConfigCase(
        "app-port-open-to-an-unlisted-ingress-namespace",
        "prod",
        {"shipsafe:app": {**PROD_APP, "ingressNamespace": "kube-public"}},
        LEAST_ACCESS,
        APP_INGRESS,
    ),
    ConfigCase(  # the program allows up to 1000 per second; the platform's policy setting allows 100
        "edge-rate-above-the-platform-maximum",
        "prod",
        {"shipsafe:app": {**PROD_APP, "edge": {"requestsPerSecond": 500}}},
        "edge-request-limits",
        WEB_INGRESS,
    ),
]


PHASES = ("as-recorded", "after-up")


def in_phase(phase: str, recording: Recording) -> Recording:
    # The oldest modelled API server here; the preview phases (test_preview_phases_catch_faults.py) build on the
    # newest, so the catalogue meets both.
    return after_up(recording, SERVER_VERSIONS[0]).recording if phase == "after-up" else recording


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.id for c in CONFIG_CASES])
def test_bad_config_is_caught_by_its_policy(case: ConfigCase, phase: str, analyze: Analyze) -> None:
    report = analyze(in_phase(phase, run_stack(case.stack, config_overrides=case.overrides)))
    found = [v for v in report.violations if v.policy == case.policy]
    assert {(v.level, v.resource) for v in found} >= {("mandatory", case.resource)}, report.violations


@pytest.fixture(scope="session")
def compliant_after_up_reports(compliant: dict[str, Recording], analyze: Analyze) -> dict[str, AnalysisReport]:
    """What the pack finds on the compliant stacks after `up`: the baseline a fault's new findings are told from."""
    return {stack: analyze(in_phase("after-up", recording)) for stack, recording in compliant.items()}


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_variant_is_caught_by_its_policy(
    case: Case,
    phase: str,
    compliant: dict[str, Recording],
    compliant_reports: dict[str, AnalysisReport],
    compliant_after_up_reports: dict[str, AnalysisReport],
    analyze: Analyze,
    tmp_path: Path,
) -> None:
    recording = compliant[case.stack]
    if case.dockerfile is not None:
        context = write_build_context(tmp_path, case.dockerfile, case.dockerignore)
        recording = use_build_context(IMAGE_BUILD, context)(recording)
    report = analyze(in_phase(phase, case.fault(recording)))
    found = [v for v in report.violations if v.policy == case.policy]
    assert found, f"{case.id}: {case.policy} did not fire; got {[v.policy for v in report.violations]}"
    assert {v.level for v in found} == {case.level}, f"{case.id}: {case.policy} fired at {found[0].level}"
    if case.resource is not None:
        assert case.resource in {v.resource for v in found}, f"{case.id}: blamed {[v.resource for v in found]}"
    assert all(v.message and v.fix for v in found), f"{case.id}: violations must say what to change"
    if case.reason is not None:
        baseline = (
            (compliant_reports if phase == "as-recorded" else compliant_after_up_reports)[case.stack]
            if case.dockerfile is None
            else analyze(in_phase(phase, recording))
        )
        before = {(v.policy, v.resource, v.message) for v in baseline.violations}
        new = [v for v in report.violations if (v.policy, v.resource, v.message) not in before]
        assert {v.policy for v in new} == {case.policy}, f"{case.id}: also caught by {[v.policy for v in new]}"
        assert all(case.reason in v.message for v in new), f"{case.id}: {[v.message for v in new]}"


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("case", COMPLIANT, ids=[c.id for c in COMPLIANT])
def test_compliant_variant_passes_its_policy(
    case: Compliant, phase: str, compliant: dict[str, Recording], analyze: Analyze
) -> None:
    report = analyze(in_phase(phase, case.change(compliant[case.stack])))
    found = [v for v in report.violations if v.policy == case.policy and v.resource == case.resource]
    assert not found, f"{case.id}: {[v.message for v in found]}"


def test_the_catalogue_has_twenty_mandatory_variants() -> None:
    assert len([c for c in CASES if c.level == "mandatory"]) + len(CONFIG_CASES) >= 20


def test_every_policy_has_a_violating_case(pack: PolicyPackProcess) -> None:
    assert {p.name for p in pack.policies} == {c.policy for c in CASES}
