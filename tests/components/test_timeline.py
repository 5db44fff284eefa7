"""Await timeouts come from the deploy's worst-case timeline, and cover what each await really waits for.

pulumi-kubernetes fails `up` when an await times out, and does not stop a Deployment at its progress deadline
(`provider/pkg/await/deployment.go`), so each bound below is read from the recorded manifests themselves.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
import yaml

from components.settings import ConfigError, Settings, parse_settings
from components.timeline import ENDPOINTS_SETTLE_SECONDS, DeployTimeline, deploy_timeline, verification_seconds
from harness.apiserver import server_object
from harness.recording import RecordedResource, Recording
from harness.replacement import plan_update
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.conftest import STACKS, record
from tests.harness.test_replacement import next_release
from tests.support.stack_queries import DEPLOYMENT, JOB, STATEFUL_SET, containers, only, pod_spec

SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
AUTOSCALER = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
# What pulumi-kubernetes awaits among the kinds this stack declares (`provider/pkg/await/awaiters.go` `awaiters`).
AWAITED = (DEPLOYMENT, STATEFUL_SET, JOB, SERVICE, INGRESS)

# The deploy workflow's steps around `pulumi up`, which the timeline does not contain:
# checkout, setup-python, `make setup` (venv and pip install), the Pulumi CLI, kubeconfig and secret config.
JOB_SETUP_SECONDS = 10 * 60
# `deploy up`/`promote` preview first: the Pulumi CLI reads the stack state and boots the policy pack.
PREVIEW_SECONDS = 5 * 60
# Smoke tests: three requests, 5 s timeout each, on staging and again before promotion. (Verification has its own
# deadline in the timeline, `verification_seconds`.)
CHECKS_SECONDS = 60


def _settings(stack: str, **changes: dict[str, Any]) -> Settings:
    """The stack file's settings through the program's validation, with some `shipsafe:` objects merged."""
    _, config = read_stack_config(stack)
    raw = {key.removeprefix("shipsafe:"): value for key, value in config.items()}
    for key, fields in changes.items():
        raw[key] = {**raw.get(key, {}), **fields}
    return parse_settings(raw)


def _timeline(stack: str, **changes: dict[str, Any]) -> DeployTimeline:
    return deploy_timeline(_settings(stack, **changes))


def _seconds(resource: RecordedResource, operation: str = "update") -> int:
    duration = resource.custom_timeouts[operation]
    assert re.fullmatch(r"\d+s", duration), f"{resource.urn}: {duration}"
    return int(duration[:-1])


def _budget(probe: dict[str, Any]) -> int:
    """A probe's failure budget with the Kubernetes defaults (period 10, failureThreshold 3, no delay)."""
    return int(probe.get("initialDelaySeconds", 0) + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def _ready_after_start(container: dict[str, Any]) -> int:
    """A container's boot bound (its startup probe, else liveness restarts it), then one readiness period."""
    boot = container.get("startupProbe") or container["livenessProbe"]
    return _budget(boot) + int(container["readinessProbe"].get("periodSeconds", 10))


def _rollout_lower_bound(recording: Recording, deployment: RecordedResource) -> int:
    """One pod per maxSurge at a time, at the autoscaler's maximum, each booting, Ready and minReady."""
    spec = deployment.inputs["spec"]
    name = deployment.inputs["metadata"]["name"]
    autoscalers = [a for a in recording.of_type(AUTOSCALER) if a.inputs["spec"]["scaleTargetRef"]["name"] == name]
    replicas = autoscalers[0].inputs["spec"]["maxReplicas"] if autoscalers else spec["replicas"]
    rounds = math.ceil(replicas / spec["strategy"]["rollingUpdate"]["maxSurge"])
    return rounds * (_ready_after_start(containers(deployment)[0]) + int(spec["minReadySeconds"]))


def test_every_awaited_resource_has_an_explicit_timeout(recording: Recording) -> None:
    awaited = [resource for resource in recording if resource.type in AWAITED]
    assert {resource.type for resource in awaited} == set(AWAITED)
    for resource in awaited:
        # The provider's default is 10 minutes (`provider/pkg/await/await.go` Creation/Update).
        assert resource.custom_timeouts.keys() >= {"create", "update"}, resource.urn
        assert _seconds(resource, "create") == _seconds(resource, "update"), resource.urn


def test_deployment_awaits_cover_the_whole_rollout(recording: Recording) -> None:
    for deployment in recording.of_type(DEPLOYMENT):
        needed = _rollout_lower_bound(recording, deployment)
        assert _seconds(deployment) >= needed, f"{deployment.urn}: {_seconds(deployment)} s < rollout {needed} s"


def test_prod_web_rolls_ten_pods_longer_than_the_old_ten_minutes(recordings: dict[str, Recording]) -> None:
    prod = recordings["prod"]
    web = prod.named("notes-web-deployment")
    assert _rollout_lower_bound(prod, web) >= 750 > 600, "10 pods x (60 s startup + 5 s readiness + 10 s minReady)"
    assert _seconds(web) > _rollout_lower_bound(prod, web)


def test_the_job_await_outlasts_its_deadline(recording: Recording) -> None:
    job = only(recording, JOB)
    assert _seconds(job, "create") > job.inputs["spec"]["activeDeadlineSeconds"], job.urn


def test_stateful_set_awaits_cover_replacing_their_pod(recording: Recording) -> None:
    for stateful_set in recording.of_type(STATEFUL_SET):
        # The one pod is replaced in place: the old one stops within its grace period, then the new one boots.
        needed = pod_spec(stateful_set)["terminationGracePeriodSeconds"] + _ready_after_start(
            containers(stateful_set)[0]
        )
        assert _seconds(stateful_set) >= needed, stateful_set.urn


def _awaits_before_the_deployments(recording: Recording) -> int:
    """How long `up` may legitimately run before the Deployments start, each await running to its own timeout:
    the slowest backing server (an in-cluster registry's Ingress starts after its Service), then the previous
    release's Job is deleted (`delete_before_replace`) and the new Job runs."""
    servers = [_seconds(stateful_set) for stateful_set in recording.of_type(STATEFUL_SET)]
    registry_ingresses = [r for r in recording.of_type(INGRESS) if r.name.startswith("notes-registry-")]
    servers += [_seconds(recording.named("notes-registry-service")) + _seconds(r) for r in registry_ingresses]
    job = only(recording, JOB)
    return max(servers) + _seconds(job, "delete") + _seconds(job, "create")


def test_the_web_service_await_outlasts_every_await_before_its_pods_are_ready(recording: Recording) -> None:
    # The Service waits while a selected pod is not Ready (`service.go` checkAndLogStatus), and its await starts
    # with the deploy: before the backing services, the migration Job and the web rollout. Each of those may run
    # to its own timeout and still succeed; then the endpoints settle, with room left for the watch.
    service = recording.named("notes-web-service")
    web = recording.named("notes-web-deployment")
    needed = _awaits_before_the_deployments(recording) + _seconds(web) + ENDPOINTS_SETTLE_SECONDS
    assert _seconds(service) > needed, f"{service.urn}: {_seconds(service)} s <= {needed} s"
    assert deploy_timeline(_settings(recording.stack)).longest_up_seconds >= _seconds(service) + _seconds(
        recording.named("notes-web-ingress")
    ), "the Ingress starts when the Service's await ends"


def test_the_previous_jobs_deletion_has_an_explicit_timeout_that_the_timeline_counts(recording: Recording) -> None:
    # `delete_before_replace`: `up` waits for the previous release's Job to be deleted, 10 minutes unless
    # customTimeouts.delete is set (pulumi-kubernetes `provider/pkg/await/await.go` `Deletion`). The deletion is
    # foreground, so it lasts until the garbage collector deleted the Job's pod, which stops within its grace period.
    job = only(recording, JOB)
    grace = server_object(job.inputs, dry_run=False)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert _seconds(job, "delete") > grace, job.urn
    timeline = deploy_timeline(_settings(recording.stack))
    assert timeline.as_output()["awaitTimeoutSeconds"]["migration.jobDelete"] == _seconds(job, "delete")
    # A rollback declares no Job, so the engine deletes the previous one after every other step.
    rollback = deploy_timeline(_settings(recording.stack).model_copy(update={"rollback": True}))
    paths = [(w.service_seconds or 0) + (w.ingress_seconds or 0) for w in rollback.workloads.values()]
    assert rollback.longest_up_seconds >= max(paths) + _seconds(job, "delete")


@pytest.mark.parametrize("stack", STACKS)
def test_everything_a_release_replaces_or_deletes_has_a_delete_timeout(
    stack: str, recordings: dict[str, Recording]
) -> None:
    # The engine deletes with the timeout of the *previous* state (pulumi `pkg/resource/deploy/step.go`
    # `DeleteStep.Apply`: `s.old.CustomTimeouts.Delete`), so it is read from the earlier recording.
    previous = recordings[stack]
    steps = plan_update(previous, record(stack, **next_release(stack)))
    olds = {resource.urn: resource for resource in previous}
    removed = [olds[step.urn] for step in steps if step.op in ("replace", "delete")]
    assert removed, "each release replaces its migration Job"
    for resource in removed:
        assert "delete" in resource.custom_timeouts, f"{resource.urn}: the provider would wait up to 10 minutes"


def test_the_deploy_timeline_is_the_stack_output_of_the_stack_files_settings(recording: Recording) -> None:
    output = recording.stack_outputs["deployTimeline"]
    assert output == deploy_timeline(_settings(recording.stack)).as_output()
    assert output["totalSeconds"] == sum(output["stages"].values())
    assert list(output["stages"]) == ["backingServices", "migration", "rollout", "ingress"]
    for resource in recording:
        if resource.type in AWAITED and resource.name.startswith("notes-"):
            role, _, kind = resource.name.removeprefix("notes-").rpartition("-")
            key = f"{role}.{'statefulSet' if kind == 'statefulset' else kind}"
            if role == "migrate":
                key = "migration.job"
            assert output["awaitTimeoutSeconds"][key] == _seconds(resource), resource.urn


@pytest.mark.parametrize("stack", STACKS)
def test_the_timeline_counts_the_verification_watchs_deadline(stack: str) -> None:
    # `deploy/verify.py` `watch` fails at this deadline (tests/deploy/test_verify_logic.py shows it with slow answers);
    # the job timeouts below add it after `up`, so the rollback always has its time.
    verification = _settings(stack).verification
    timeline = _timeline(stack)
    assert timeline.verification_seconds == verification_seconds(verification) > verification.window_seconds
    assert timeline.as_output()["verificationSeconds"] == timeline.verification_seconds


def test_rollouts_grow_with_the_autoscaler_maximum_and_shrink_with_the_surge() -> None:
    base = _timeline("prod")
    doubled = _timeline(
        "prod",
        workloads={"web": {"autoscaling": {"minReplicas": 3, "maxReplicas": 20}}},
        postgres={"maxConnections": 400},  # the connection budget grows with the pods
    )
    assert doubled.stages["rollout"] == 2 * base.stages["rollout"]
    assert doubled.workloads["web"].deployment_seconds > base.workloads["web"].deployment_seconds
    wider = _timeline("prod", rollout={"maxSurge": 2})
    assert wider.stages["rollout"] == base.stages["rollout"] // 2
    assert base.total_seconds == sum(base.stages.values()) < base.longest_up_seconds


def test_a_rollback_has_no_migration_stage_and_no_job_await() -> None:
    settings = _settings("prod")
    rollback = deploy_timeline(settings.model_copy(update={"rollback": True}))
    normal = deploy_timeline(settings)
    assert "migration" not in rollback.stages and normal.stages["migration"] > 0
    assert rollback.migration_job_seconds is None and normal.migration_job_seconds is not None
    assert normal.stages["migration"] >= settings.migration.active_deadline_seconds


def test_external_servers_have_no_awaits_and_the_in_cluster_registry_is_awaited_through_its_ingress() -> None:
    _, config = read_stack_config("staging")
    raw = {key.removeprefix("shipsafe:"): value for key, value in config.items()}
    for role in ("postgres", "redis"):  # replaced whole: an external server takes none of the in-cluster keys
        raw[role] = {"mode": "external", "version": raw[role]["version"], "externalCidr": "10.0.0.0/16"}
    registry = {"mode": "in-cluster", "server": "registry.notes.example.com"}
    raw["registry"] = {**raw["registry"], **registry}
    timeline = deploy_timeline(parse_settings(raw))
    assert timeline.postgres is None and timeline.redis is None
    assert timeline.registry is not None and timeline.registry.ingress_seconds > 0
    # Its Service waits for the registry pod, whose StatefulSet may run to its own timeout; then endpoints settle.
    assert timeline.registry.service_seconds > timeline.registry.stateful_set_seconds + ENDPOINTS_SETTLE_SECONDS
    assert timeline.stages["backingServices"] > 0, "the Job depends on the registry component, Ingress included"
    recorded = record("staging", **{"shipsafe:registry": json.dumps({**config["shipsafe:registry"], **registry})})
    registry_awaits = [r for r in recorded if r.name.startswith("notes-registry-") and r.type in AWAITED]
    assert {r.type for r in registry_awaits} == {STATEFUL_SET, SERVICE, INGRESS}
    for resource in registry_awaits:
        assert resource.custom_timeouts.keys() >= {"create", "update"}, resource.urn


def test_a_user_await_timeout_that_covers_the_rollout_is_used() -> None:
    timeline = _timeline("prod", rollout={"awaitTimeoutSeconds": 3000})
    assert {w.deployment_seconds for w in timeline.workloads.values()} == {3000}


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        (
            {"awaitTimeoutSeconds": 600},
            [
                "shipsafe:rollout.awaitTimeoutSeconds = 600: shorter than the worst-case rollout of workload 'web'",
                "workloads.web.autoscaling.maxReplicas",
            ],
        ),
        ({"progressDeadlineSeconds": 60}, ["shipsafe:rollout.progressDeadlineSeconds = 60: shorter than one"]),
    ],
)
def test_awaits_that_cannot_cover_their_stage_are_refused(rollout: dict[str, int], expected: list[str]) -> None:
    with pytest.raises(ConfigError) as refused:
        _timeline("prod", rollout=rollout)
    for fragment in expected:
        assert fragment in str(refused.value), str(refused.value)


def _stack_of(job: dict[str, Any]) -> str:
    """The stack a workflow job deploys: the one it sets the registry password on before running Pulumi."""
    text = "\n".join(str(step.get("run", "")) for step in job["steps"])
    stacks = set(re.findall(r"--stack (\w+)", text))
    assert len(stacks) == 1, stacks
    return stacks.pop()


@pytest.mark.parametrize("job_name", ["staging", "production"])
def test_deploy_job_timeouts_cover_the_timeline(job_name: str) -> None:
    job = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"][job_name]
    stack = _stack_of(job)
    assert stack in STACKS
    settings = _settings(stack)
    text = "\n".join(str(step.get("run", "")) for step in job["steps"])
    verify = deploy_timeline(settings).verification_seconds if "--verify" in text else 0
    # The job must outlast a release whose awaits all run to their timeouts, and then the rollback's `up`: if the
    # runner killed the job first, the rollback step would never run.
    rollback = deploy_timeline(settings.model_copy(update={"rollback": True})).longest_up_seconds
    needed = (
        JOB_SETUP_SECONDS
        + PREVIEW_SECONDS
        + deploy_timeline(settings).longest_up_seconds
        + verify
        + CHECKS_SECONDS
        + rollback
    )
    assert job["timeout-minutes"] * 60 >= needed, (
        f"{job_name}: timeout-minutes must be at least {math.ceil(needed / 60)}"
    )


def test_rollback_job_timeout_covers_the_slowest_stacks_rollback() -> None:
    job = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "rollback.yml").read_text())["jobs"]["rollback"]
    # The job rolls back whichever stack the dispatch names: it must outlast the slowest one's rollback `up`.
    slowest = max(
        deploy_timeline(_settings(stack).model_copy(update={"rollback": True})).longest_up_seconds for stack in STACKS
    )
    needed = JOB_SETUP_SECONDS + PREVIEW_SECONDS + slowest
    assert job["timeout-minutes"] * 60 >= needed, f"rollback: timeout-minutes must be at least {math.ceil(needed / 60)}"


# e2e.yml's steps that the deploy jobs do not have. The cluster: `kind create cluster --wait 120s`, `helm install
# --wait --timeout 10m`, `kubectl wait --timeout=300s`, plus the applies and image pulls around them.
E2E_CLUSTER_SECONDS = 20 * 60
# Two docker builds of the app (a cold build takes about a minute, docs/development.md) and their pushes to the
# local registry.
E2E_IMAGES_SECONDS = 10 * 60
# `pulumi destroy` deletes in parallel within each dependency level; counted as one provider default delete await
# (`provider/pkg/await/await.go` `Deletion`: 10 minutes), the namespace's, which waits for everything in it.
E2E_DESTROY_SECONDS = 10 * 60


def _e2e() -> tuple[dict[str, Any], str, Settings]:
    """The e2e job, its scripts, and the settings of the stack it creates (a copy of a stack file, with the
    workflow's own verification window)."""
    job = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e.yml").read_text())["jobs"]["e2e"]
    text = "\n".join(str(step.get("run", "")) for step in job["steps"])
    copied = re.search(r"cp Pulumi\.(\w+)\.yaml", text)
    assert copied and copied.group(1) in STACKS, "the e2e stack is a copy of a committed stack file"
    settings = _settings(copied.group(1))
    window = re.search(r"verification\.windowSeconds'? (\d+)", text)
    if window:
        verification = settings.verification.model_copy(update={"window_seconds": int(window.group(1))})
        settings = settings.model_copy(update={"verification": verification})
    return job, text, settings


def test_the_e2e_job_timeout_covers_every_up_of_the_run() -> None:
    job, text, settings = _e2e()
    ups, previews = text.count("-m deploy up"), text.count("pulumi preview")
    assert ups >= 3 and "--verify" in text and "pulumi destroy" in text, "first up, no-op up, faulty release"
    # Every up may run its awaits to their timeouts (the no-op up too, if the model were wrong and it changed
    # something), each after its preview; the faulty release is verified and then rolled back.
    longest = deploy_timeline(settings).longest_up_seconds
    rollback = deploy_timeline(settings.model_copy(update={"rollback": True})).longest_up_seconds
    needed = (
        JOB_SETUP_SECONDS
        + E2E_CLUSTER_SECONDS
        + E2E_IMAGES_SECONDS
        + ups * (PREVIEW_SECONDS + longest)
        + previews * PREVIEW_SECONDS
        + CHECKS_SECONDS
        + deploy_timeline(settings).verification_seconds
        + rollback
        + E2E_DESTROY_SECONDS
    )
    assert job["timeout-minutes"] * 60 >= needed, f"e2e: timeout-minutes must be at least {math.ceil(needed / 60)}"


def test_the_e2e_traffic_lasts_through_the_faulty_release_and_its_verification() -> None:
    job, _, settings = _e2e()
    [faulty] = [str(step["run"]) for step in job["steps"] if "--verify" in str(step.get("run", ""))]
    bound = re.search(r"deadline=\$\(\(\$\(date \+%s\) \+ (\d+) \* 60\)\)", faulty)
    assert bound and "while true" not in faulty, "the traffic loop is bounded"
    needed = PREVIEW_SECONDS + deploy_timeline(settings).longest_up_seconds + settings.verification.window_seconds
    assert int(bound.group(1)) * 60 >= needed, f"traffic must last at least {math.ceil(needed / 60)} minutes"
