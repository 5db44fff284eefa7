"""The worst-case timeline of one `pulumi up`, computed from the validated settings, and every await timeout.

pulumi-kubernetes waits for each Deployment, StatefulSet, Job, Service and Ingress it creates or updates, and
fails the update when the resource's timeout passes: 10 minutes unless `customTimeouts` say otherwise
(pulumi-kubernetes `provider/pkg/await/await.go` `Creation`/`Update`; `provider/pkg/metadata/overrides.go`
`TimeoutDuration`: customTimeouts win over `pulumi.com/timeoutSeconds`). A Deployment is *not* failed at its
progress deadline: `provider/pkg/await/deployment.go` `processDeploymentEvent` only logs ProgressDeadlineExceeded
and `await` ends on ready, timeout or cancel. The progress deadline also counts from the last progress, not from
the start. So each await timeout here covers the whole stage it waits for, plus `AWAIT_MARGIN_SECONDS`; an
await that starts with the deploy and waits on later stages (a Service waiting for its pods) gets the sum of those
stages' awaits, since each of them may legitimately run to its own timeout.

The stages run one after another: backing services (the Job `depends_on` them), the migration Job (every
Deployment `depends_on` it), the Deployments' rolling updates (in parallel), and the web Ingress (it waits for its
Service, whose await may last until the web rollout ends). An in-stack image build is not bounded here:
pulumi-docker has no await timeout, and CI deploys prebuilt images.

After `up`, `shipsafe up --verify` and `promote --verify` watch the release for the verification window; the watch
has one deadline, `verification_seconds`, after which it has failed (`deploy/verify.py` `watch`), so a job
timeout sized from this timeline always leaves the rollback its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pulumi

from components.probes import (
    APP,
    BACKING_SERVICE,
    BACKING_SERVICE_TERMINATION_GRACE_SECONDS,
    DEFAULT_TERMINATION_GRACE_SECONDS,
    REGISTRY,
    PodTiming,
)
from components.settings import (
    INGRESS_WORKLOAD,
    ConfigError,
    RegistryMode,
    ServiceMode,
    Settings,
    Verification,
    Workload,
)

# Added to each stage's worst case: API server, controller and watch latency the probes do not measure.
AWAIT_MARGIN_SECONDS = 60
# Before any probe runs (probes start with the container): scheduling, pulling the pinned image onto a node that
# lacks it (the topology spread puts pods on different nodes), creating the container.
POD_START_SECONDS = 20
# A StatefulSet pod waits for its data volume: provisioned on create, detached and attached on a move.
VOLUME_ATTACH_SECONDS = 60
# `provider/pkg/await/service.go` and `ingress.go` `processEndpointEvent`: 10 s of quiet after each Endpoints event.
ENDPOINTS_SETTLE_SECONDS = 10
# kubernetes/ingress-nginx `internal/ingress/status/status.go`: the controller publishes Ingress addresses every
# `UpdateInterval` (60 s); the provider's Ingress await waits for `status.loadBalancer.ingress`.
INGRESS_STATUS_SECONDS = 60
# `delete_before_replace` deletes the previous release's Job before the new one is created, and a rollback (which
# declares no Job) deletes it at the end of its `up`. pulumi-kubernetes deletes with foreground propagation
# (`provider/pkg/metadata/overrides.go` `DeletionPropagation`), so the Job is gone only once the garbage collector
# has deleted its pod, which stops within the API default grace period (the Job's pod sets none), and
# `provider/pkg/await/await.go` `Deletion` waits 10 minutes unless `customTimeouts.delete` says otherwise.
# The engine takes that timeout from the *previous* state (pulumi `pkg/resource/deploy/step.go` `DeleteStep.Apply`:
# `s.old.CustomTimeouts.Delete`), so a Job recorded before this timeout existed is still deleted within 10 minutes.
JOB_DELETE_AWAIT_SECONDS = DEFAULT_TERMINATION_GRACE_SECONDS + AWAIT_MARGIN_SECONDS
# What verification may take past its window: the last interval is queried a second after it ends, with its six
# queries (requests, 5xx, 4xx, and per route requests, 5xx and p99), each within the Prometheus client's 10 s.
# Measurements that ran late take from the same allowance: the watch has failed once it is used up.
VERIFICATION_OVERRUN_SECONDS = 60


def verification_seconds(verification: Verification) -> int:
    """The deadline of one verification watch: its window, then at most `VERIFICATION_OVERRUN_SECONDS`."""
    return verification.window_seconds + VERIFICATION_OVERRUN_SECONDS


def _await(worst_case_seconds: int) -> int:
    return worst_case_seconds + AWAIT_MARGIN_SECONDS


def _after(waited_on_awaits: int) -> int:
    """The await of a Service that waits for pods: as long as the awaits before those pods are Ready may last, then
    its endpoints settle (`service.go` `processEndpointEvent`), with the margin for the watch."""
    return waited_on_awaits + _await(ENDPOINTS_SETTLE_SECONDS)


def await_timeouts(seconds: int, delete_seconds: int | None = None) -> pulumi.CustomTimeouts:
    """The resource option that gives the provider's create and update awaits `seconds`, and its delete await
    `delete_seconds` (the provider's 10 minutes when None)."""
    delete = None if delete_seconds is None else f"{delete_seconds}s"
    return pulumi.CustomTimeouts(create=f"{seconds}s", update=f"{seconds}s", delete=delete)


@dataclass(frozen=True)
class ServerAwaits:
    """Await timeouts of a one-pod StatefulSet server (Postgres, Redis, the in-cluster registry)."""

    stateful_set_seconds: int
    service_seconds: int


@dataclass(frozen=True)
class RegistryAwaits(ServerAwaits):
    ingress_seconds: int
    """The registry's TLS Ingress, which the image build pushes through."""


@dataclass(frozen=True)
class WorkloadAwaits:
    deployment_seconds: int
    service_seconds: int | None
    """None where the workload is not exposed."""
    ingress_seconds: int | None
    """Only the exposed workload named `web` has the Ingress."""


@dataclass(frozen=True)
class DeployTimeline:
    stages: dict[str, int]
    """Worst-case seconds of each stage of a healthy deploy, in the order they run; a stage the deploy does not
    have (no in-cluster server, no migration Job, no Ingress) is left out."""
    longest_up_seconds: int
    """The longest `pulumi up` runs before every await has succeeded or timed out."""
    postgres: ServerAwaits | None
    redis: ServerAwaits | None
    registry: RegistryAwaits | None
    """None where the server is external (or, for Postgres and Redis, absent: mode none)."""
    migration_job_seconds: int | None
    """None for a rollback or an app without migrations, which run no Job."""
    migration_job_delete_seconds: int
    """The previous release's Job's delete await: before the new Job, or at the end of a rollback."""
    workloads: dict[str, WorkloadAwaits]
    verification_seconds: int
    """The verification watch's deadline, after `up` (`--verify`); a failed watch is followed by a rollback `up`."""

    @property
    def total_seconds(self) -> int:
        return sum(self.stages.values())

    def as_output(self) -> dict[str, Any]:
        """The `deployTimeline` stack output, so `pulumi preview` shows the numbers."""
        awaits: dict[str, int] = {}
        for role, server in (("postgres", self.postgres), ("redis", self.redis), ("registry", self.registry)):
            if server:
                awaits[f"{role}.statefulSet"] = server.stateful_set_seconds
                awaits[f"{role}.service"] = server.service_seconds
                if isinstance(server, RegistryAwaits):
                    awaits[f"{role}.ingress"] = server.ingress_seconds
        if self.migration_job_seconds is not None:
            awaits["migration.job"] = self.migration_job_seconds
        awaits["migration.jobDelete"] = self.migration_job_delete_seconds
        for name, workload in self.workloads.items():
            awaits[f"{name}.deployment"] = workload.deployment_seconds
            if workload.service_seconds is not None:
                awaits[f"{name}.service"] = workload.service_seconds
            if workload.ingress_seconds is not None:
                awaits[f"{name}.ingress"] = workload.ingress_seconds
        return {
            "stages": dict(self.stages),
            "totalSeconds": self.total_seconds,
            "longestUpSeconds": self.longest_up_seconds,
            "verificationSeconds": self.verification_seconds,
            "awaitTimeoutSeconds": awaits,
        }


@dataclass(frozen=True)
class _Rollout:
    """One Deployment's worst-case rolling update: `rounds` of maxSurge new pods, each round waiting for
    its pods to start, become Ready and stay Ready for minReadySeconds before old pods go (maxUnavailable 0)."""

    replicas: int
    replicas_key: str
    rounds: int
    round_seconds: int

    @property
    def seconds(self) -> int:
        return self.rounds * self.round_seconds


def _rollout(name: str, workload: Workload, settings: Settings) -> _Rollout:
    # Rolled at the autoscaler's maximum: the HPA may have scaled up just before the deploy.
    if workload.autoscaling:
        replicas, key = workload.autoscaling.max_replicas, f"workloads.{name}.autoscaling.maxReplicas"
    else:
        replicas, key = workload.replicas, f"workloads.{name}.replicas"
    rollout = settings.rollout
    # The old pod's termination does not hold the next round back: the controller counts ReplicaSet replicas,
    # not terminating pods (kubernetes `pkg/controller/deployment/util/deployment_util.go` `NewRSNewReplicas`).
    round_seconds = POD_START_SECONDS + APP.ready_after_start_seconds + rollout.min_ready_seconds
    return _Rollout(replicas, key, math.ceil(replicas / rollout.max_surge), round_seconds)


def _stateful_set_worst_case(timing: PodTiming, termination_grace_seconds: int) -> int:
    # An update replaces the one pod in place: the old pod stops (its grace period), then the new one starts.
    return termination_grace_seconds + VOLUME_ATTACH_SECONDS + POD_START_SECONDS + timing.ready_after_start_seconds


def _backing_server(in_cluster: bool) -> tuple[ServerAwaits | None, int]:
    """A Postgres or Redis server's awaits and worst case. Its Service is headless, so the provider does not wait
    for its endpoints (`service.go` `shouldWaitForPods`): the Service await gets the margin alone."""
    if not in_cluster:
        return None, 0
    worst = _stateful_set_worst_case(BACKING_SERVICE, BACKING_SERVICE_TERMINATION_GRACE_SECONDS)
    return ServerAwaits(stateful_set_seconds=_await(worst), service_seconds=_await(0)), worst


def _registry_server(in_cluster: bool) -> tuple[RegistryAwaits | None, int, int]:
    """The in-cluster registry: its ClusterIP Service waits while the pod is not Ready (`service.go`
    `checkAndLogStatus`), then its Ingress (which names the Service) waits for the controller's address."""
    if not in_cluster:
        return None, 0, 0
    stateful_set = _stateful_set_worst_case(REGISTRY, DEFAULT_TERMINATION_GRACE_SECONDS)
    ingress = ENDPOINTS_SETTLE_SECONDS + INGRESS_STATUS_SECONDS
    awaits = RegistryAwaits(_await(stateful_set), _after(_await(stateful_set)), _await(ingress))
    return awaits, stateful_set + ENDPOINTS_SETTLE_SECONDS + ingress, awaits.service_seconds + awaits.ingress_seconds


def _check(settings: Settings, rollouts: dict[str, _Rollout]) -> None:
    rollout, problems = settings.rollout, []
    slowest_name, slowest = max(rollouts.items(), key=lambda item: item[1].seconds)
    how = (
        f"{slowest.rounds} rounds of {slowest.round_seconds} s: {slowest.replicas} pods "
        f"({slowest.replicas_key}) at maxSurge {rollout.max_surge}, each {POD_START_SECONDS} s to start, "
        f"{APP.ready_after_start_seconds} s to Ready and minReadySeconds {rollout.min_ready_seconds}"
    )
    if rollout.await_timeout_seconds is not None and rollout.await_timeout_seconds < slowest.seconds:
        problems.append(
            f"shipsafe:rollout.awaitTimeoutSeconds = {rollout.await_timeout_seconds}: shorter than the worst-case "
            f"rollout of workload {slowest_name!r} ({slowest.seconds} s = {how}). pulumi-kubernetes does not stop "
            "at the progress deadline, so the await must cover the whole rollout: set at least "
            f"{slowest.seconds}, or remove it to use the derived {_await(slowest.seconds)}"
        )
    round_seconds = slowest.round_seconds
    if rollout.progress_deadline_seconds < round_seconds:
        problems.append(
            f"shipsafe:rollout.progressDeadlineSeconds = {rollout.progress_deadline_seconds}: shorter than one "
            f"rollout round ({round_seconds} s), so Kubernetes would report a healthy rollout as "
            f"ProgressDeadlineExceeded; set at least {round_seconds}"
        )
    if problems:
        raise ConfigError(problems)


def deploy_timeline(settings: Settings) -> DeployTimeline:
    """The deploy's worst-case stages and each awaited resource's timeout; raises ConfigError, naming the
    `shipsafe:` keys, for settings whose awaits cannot cover what they wait for."""
    rollouts = {name: _rollout(name, workload, settings) for name, workload in settings.workloads.items()}
    _check(settings, rollouts)

    postgres, postgres_seconds = _backing_server(settings.postgres.mode is ServiceMode.IN_CLUSTER)
    redis, redis_seconds = _backing_server(settings.redis.mode is ServiceMode.IN_CLUSTER)
    registry, registry_seconds, registry_await = _registry_server(settings.registry.mode is RegistryMode.IN_CLUSTER)
    backing = max(postgres_seconds, redis_seconds, registry_seconds)
    backing_await = max([server.stateful_set_seconds for server in (postgres, redis) if server] + [registry_await])

    # `delete_before_replace`: the previous release's Job is deleted first (`JOB_DELETE_AWAIT_SECONDS`), then the
    # new Job runs; activeDeadlineSeconds bounds all its retries, and the provider fails the Job as soon as it
    # reports DeadlineExceeded (`provider/pkg/await/checker/job/check.go`).
    deadline = settings.migration.active_deadline_seconds
    migration = DEFAULT_TERMINATION_GRACE_SECONDS + deadline if settings.runs_migration else 0
    job_await = _await(deadline) if settings.runs_migration else None
    migration_await = 0 if job_await is None else JOB_DELETE_AWAIT_SECONDS + job_await
    # A rollback declares no Job: the engine deletes the previous release's Job after every other step.
    final_deletes = JOB_DELETE_AWAIT_SECONDS if settings.rollback else 0

    override = settings.rollout.await_timeout_seconds
    ingress = _await(ENDPOINTS_SETTLE_SECONDS + INGRESS_STATUS_SECONDS)
    workloads: dict[str, WorkloadAwaits] = {}
    for name, rollout in rollouts.items():
        exposed = settings.workloads[name].expose
        deployment = override or _await(rollout.seconds)
        # The Service only needs the namespace, so its await starts with the deploy, and it keeps waiting while
        # any selected pod is not Ready (`service.go` `checkAndLogStatus`): as long as the backing services', the
        # migration's and this Deployment's awaits may each last.
        service = _after(backing_await + migration_await + deployment) if exposed else None
        workloads[name] = WorkloadAwaits(
            deployment_seconds=deployment,
            service_seconds=service,
            ingress_seconds=ingress if exposed and name == INGRESS_WORKLOAD else None,
        )

    serves_ingress = any(w.ingress_seconds is not None for w in workloads.values())
    # Only the stages this deploy has: no in-cluster server (a stack without a database, with an external
    # registry), no Job (an app without migrations, a rollback), no Ingress.
    all_stages = {
        "backingServices": backing,
        "migration": migration,
        "rollout": max(rollout.seconds for rollout in rollouts.values()),
        # The web Service's last endpoints settle, then the Ingress's, and the controller publishes its address.
        "ingress": 2 * ENDPOINTS_SETTLE_SECONDS + INGRESS_STATUS_SECONDS if serves_ingress else 0,
    }
    stages = {name: seconds for name, seconds in all_stages.items() if seconds > 0}
    # The Ingress names its Service, so it starts when the Service's await ends.
    service_paths = [(w.service_seconds or 0) + (w.ingress_seconds or 0) for w in workloads.values()]
    deployments = backing_await + migration_await + max(w.deployment_seconds for w in workloads.values())
    return DeployTimeline(
        stages=stages,
        longest_up_seconds=max(deployments, *service_paths) + final_deletes,
        postgres=postgres,
        redis=redis,
        registry=registry,
        migration_job_seconds=job_await,
        migration_job_delete_seconds=JOB_DELETE_AWAIT_SECONDS,
        workloads=workloads,
        verification_seconds=verification_seconds(settings.verification),
    )
