"""The second `pulumi up`: the steps planned under the engine's and the providers' replacement rules."""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

import pytest

from harness.phases import next_release_overrides
from harness.recording import UNKNOWN, RecordedResource, Recording
from harness.replacement import PlannedStep, blocked_by_protect, is_data_bearing, plan_update
from harness.runtime import run_stack
from harness.stack_config import read_stack_config
from tests.conftest import STACKS, record
from tests.policy.stack_edits import Change, at, drop, new_resource

UNIT = Recording(project="shipsafe", stack="unit")


def resource(type_: str, name: str, inputs: dict[str, Any], **options: Any) -> RecordedResource:
    return dataclasses.replace(new_resource(UNIT, type_, name, inputs), **options)


def kubernetes(kind: str, name: str, api_version: str = "v1", **fields: Any) -> RecordedResource:
    module = api_version if "/" in api_version else f"core/{api_version}"
    inputs = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "ns"}, **fields}
    return resource(f"kubernetes:{module}:{kind}", name, inputs)


def edited(original: RecordedResource, *changes: Change, **options: Any) -> RecordedResource:
    inputs = copy.deepcopy(original.inputs)
    for change in changes:
        change(inputs)
    return dataclasses.replace(original, inputs=inputs, outputs=copy.deepcopy(inputs), **options)


def plan(previous: list[RecordedResource], current: list[RecordedResource], **kwargs: Any) -> list[PlannedStep]:
    return plan_update(
        dataclasses.replace(UNIT, resources=previous), dataclasses.replace(UNIT, resources=current), **kwargs
    )


def step_of(old: RecordedResource, new: RecordedResource, **kwargs: Any) -> PlannedStep:
    (step,) = plan([old], [new], **kwargs)
    return step


def pod_template(image: str = "postgres:15") -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": image}]}}


def stateful_set() -> RecordedResource:
    requests = {"requests": {"storage": "10Gi"}}
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": requests}}
    return kubernetes(
        "StatefulSet",
        "db",
        "apps/v1",
        spec={
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": pod_template(),
            "volumeClaimTemplates": [claim],
        },
    )


def deployment() -> RecordedResource:
    spec = {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": pod_template("web:1")}
    return kubernetes("Deployment", "web", "apps/v1", spec=spec)


def job() -> RecordedResource:
    spec = {"backoffLimit": 1, "parallelism": 1, "template": pod_template("app:1")}
    original = kubernetes("Job", "migrate", "batch/v1", spec=spec)
    return edited(original, at("metadata.annotations", {"pulumi.com/replaceUnready": "true"}))


def password(**inputs: Any) -> RecordedResource:
    return resource("random:index/randomPassword:RandomPassword", "pw", {"length": 32, "special": False, **inputs})


STORAGE = "spec.volumeClaimTemplates.0.spec.resources.requests.storage"
IMAGE = "spec.template.spec.containers.0.image"


# --- Kubernetes (pulumi-kubernetes diff.go forceNew and provider.go Diff) ------------------------------------------


def test_a_volume_claim_template_change_replaces_the_stateful_set() -> None:
    old = stateful_set()
    step = step_of(old, edited(old, at(STORAGE, "20Gi")))
    assert step.op == "replace"
    assert step.changed == ("spec.volumeClaimTemplates[0].spec.resources.requests.storage",)
    assert len(step.replace_reasons) == 1 and ".spec.volumeClaimTemplates" in step.replace_reasons[0]


def test_an_image_change_only_updates_a_stateful_set() -> None:
    old = stateful_set()
    step = step_of(old, edited(old, at(IMAGE, "postgres:16")))
    assert (step.op, step.changed, step.replace_reasons) == (
        "update",
        ("spec.template.spec.containers[0].image",),
        (),
    )


@pytest.mark.parametrize(
    ("original", "change", "op"),
    [
        (stateful_set, at("spec.serviceName", "db2"), "replace"),
        (stateful_set, at("spec.podManagementPolicy", "Parallel"), "replace"),
        (stateful_set, at("spec.selector.matchLabels.tier", "x"), "replace"),
        (stateful_set, at("spec.replicas", 3), "update"),
        (deployment, at("spec.selector.matchLabels.app", "web2"), "replace"),
        (deployment, at("spec.replicas", 3), "update"),
        (job, at(IMAGE, "app:2"), "replace"),
        (job, at("spec.parallelism", 2), "replace"),
        (job, at("spec.backoffLimit", 3), "update"),
        (lambda: kubernetes("Service", "svc", spec={"clusterIP": "None"}), at("spec.clusterIP", "10.0.0.9"), "replace"),
        (lambda: kubernetes("Service", "svc", spec={"type": "ClusterIP"}), at("spec.type", "NodePort"), "update"),
        (lambda: kubernetes("Secret", "s", type="Opaque", stringData={"k": "a"}), at("stringData.k", "b"), "replace"),
        (lambda: kubernetes("ConfigMap", "c", data={"k": "a"}), at("data.k", "b"), "replace"),
        (lambda: kubernetes("ConfigMap", "c", data={"k": "a"}), at("metadata.labels.x", "y"), "update"),
        (
            lambda: kubernetes("PersistentVolumeClaim", "c", spec={"storageClassName": "a"}),
            at("spec.storageClassName", "b"),
            "replace",
        ),
        (
            lambda: kubernetes("PodDisruptionBudget", "p", "policy/v1", spec={"minAvailable": 1}),
            at("spec.minAvailable", 2),
            "update",
        ),
        (
            lambda: kubernetes("PodDisruptionBudget", "p", "policy/v1beta1", spec={"minAvailable": 1}),
            at("spec.minAvailable", 2),
            "replace",
        ),
        (deployment, at("metadata.namespace", "other"), "replace"),
        (deployment, drop("metadata"), "replace"),
    ],
)
def test_the_providers_force_new_table(original: Any, change: Change, op: str) -> None:
    old = original()
    step = step_of(old, edited(old, change))
    assert step.op == op, step


def test_a_name_change_replaces() -> None:
    old = deployment()
    step = step_of(old, edited(old, at("metadata.name", "web-2")))
    assert step.op == "replace" and step.replace_reasons[0].startswith("metadata.name: ")


def test_a_force_new_path_inside_an_added_object_replaces() -> None:
    # The change is at `spec` (absent before); `.spec.template` inside the new value still forces replacement.
    old = kubernetes("Job", "migrate", "batch/v1")
    step = step_of(old, edited(old, at("spec", {"template": pod_template()})))
    assert (step.op, step.changed) == ("replace", ("spec",))


def test_an_unknown_value_replaces_only_under_a_force_new_path() -> None:
    old_job, old_deployment = job(), deployment()
    assert step_of(old_job, edited(old_job, at(IMAGE, UNKNOWN))).op == "replace"
    assert step_of(old_deployment, edited(old_deployment, at(IMAGE, UNKNOWN))).op == "update"
    # A wholly unknown spec is rendered null: `.spec.selector` below it is not matched (openapi/match.go).
    assert step_of(old_deployment, edited(old_deployment, at("spec", UNKNOWN))).op == "update"


def test_replace_unready_replaces_a_job_that_did_not_complete() -> None:
    old_job, old_deployment = job(), deployment()
    assert step_of(old_job, old_job).op == "same"
    unready = step_of(old_job, old_job, unready_jobs={old_job.urn})
    assert unready.op == "replace" and "replaceUnready" in unready.replace_reasons[0]
    annotated = edited(old_deployment, at("metadata.annotations", {"pulumi.com/replaceUnready": "true"}))
    assert step_of(annotated, annotated, unready_jobs={annotated.urn}).op == "same", "only Jobs are replaced"


# --- Engine options (step_generator.go) ------------------------------------------------------------------------


def test_replace_on_changes_star_makes_a_label_change_replace() -> None:
    old = deployment()
    label = at("metadata.labels", {"release": "2"})
    assert step_of(old, edited(old, label)).op == "update"
    step = step_of(old, edited(old, label, replace_on_changes=("*",)))
    assert step.op == "replace" and "replaceOnChanges '*'" in step.replace_reasons[0]


def test_replace_on_changes_names_a_path() -> None:
    old = deployment()
    options = {"replace_on_changes": ('spec.template.spec.containers[0]["image"]',)}
    assert step_of(old, edited(old, at(IMAGE, "web:2"), **options)).op == "replace"
    assert step_of(old, edited(old, at("spec.replicas", 5), **options)).op == "update"


def test_ignore_changes_hides_a_change() -> None:
    old = stateful_set()
    step = step_of(old, edited(old, at(STORAGE, "20Gi"), ignore_changes=("spec.volumeClaimTemplates",)))
    assert (step.op, step.changed) == ("same", ())
    version = ('metadata.labels["app.kubernetes.io/version"]',)
    labelled = edited(old, at("metadata.labels", {"app.kubernetes.io/version": "1"}))
    relabelled = edited(labelled, at("metadata.labels", {"app.kubernetes.io/version": "2"}), ignore_changes=version)
    assert step_of(labelled, relabelled).op == "same"
    # processIgnoreChanges cannot reset a path whose parent the old inputs lack: adding the labels still shows.
    assert step_of(old, dataclasses.replace(labelled, ignore_changes=version)).changed == ("metadata.labels",)


def test_a_bad_option_path_names_itself() -> None:
    old = deployment()
    with pytest.raises(ValueError, match=r"property path 'spec\.\.replicas'"):
        step_of(old, edited(old, ignore_changes=("spec..replicas",)))


def test_creates_and_deletes_follow_the_urns() -> None:
    kept, gone, added = deployment(), stateful_set(), kubernetes("ConfigMap", "c", data={})
    steps = plan([gone, kept], [added, kept])
    assert [(step.op, step.urn) for step in steps] == [
        ("create", added.urn),
        ("same", kept.urn),
        ("delete", gone.urn),
    ]


def test_protect_blocks_a_replace_or_a_delete() -> None:
    old = dataclasses.replace(stateful_set(), protect=True)
    grown = edited(old, at(STORAGE, "20Gi"))
    assert blocked_by_protect(plan([old], [grown])) == plan([old], [grown])
    assert blocked_by_protect(plan([old], [])) == plan([old], [])
    assert not blocked_by_protect(plan([old], [edited(old, at(IMAGE, "postgres:16"))])), "updates are allowed"
    # Unprotecting and replacing in one up is allowed (continueStepsFromDiff checks both old and new).
    assert not blocked_by_protect(plan([old], [dataclasses.replace(grown, protect=False)]))


def test_a_changed_provider_replaces() -> None:
    old = deployment()
    step = step_of(old, edited(old, provider="urn:pulumi:unit::shipsafe::pulumi:providers:kubernetes::other::id"))
    assert step.op == "replace" and step.replace_reasons[0].startswith("provider: ")


def test_a_component_is_never_replaced() -> None:
    old = resource("shipsafe:components:AppWorkload", "web", {"name": "web"}, custom=False)
    step = step_of(old, edited(old, at("name", "web-2"), replace_on_changes=("*",)))
    assert (step.op, step.replace_reasons) == ("update", ())


def test_a_delete_before_replace_takes_dependents_whose_inputs_it_feeds() -> None:
    # The named auth Secret replaces with the same name, so pulumi-kubernetes deletes it first; the URL Secret's
    # stringData comes from it and would become unknown: a Secret's stringData forces replacement, so it goes too.
    # The Deployment's spec comes from it as well, but no force-new path is `spec` itself: it stays.
    auth = kubernetes("Secret", "auth", type="Opaque", stringData={"password": "a"})
    deps: dict[str, tuple[str, ...]] = {"stringData": (auth.urn,)}
    url = dataclasses.replace(
        kubernetes("Secret", "url", type="Opaque", stringData={"url": "x"}), property_dependencies=deps
    )
    web = dataclasses.replace(deployment(), property_dependencies={"spec": (auth.urn,)}, dependencies=(auth.urn,))
    steps = plan([auth, url, web], [edited(auth, at("stringData.password", "b")), url, web])
    assert [step.op for step in steps] == ["replace", "replace", "same"]
    assert "calculateDependentReplacements" in steps[1].replace_reasons[0]
    protected_url = dataclasses.replace(url, protect=True)
    blocked = blocked_by_protect(
        plan([auth, protected_url, web], [edited(auth, at("stringData.password", "b")), url, web])
    )
    assert [step.urn for step in blocked] == [url.urn], "the state's protect blocks the cascade even if unprotected now"


def test_a_replacement_under_a_new_name_creates_first_and_takes_no_dependents() -> None:
    auth = kubernetes("Secret", "auth", type="Opaque", stringData={"password": "a"})
    deps: dict[str, tuple[str, ...]] = {"stringData": (auth.urn,)}
    url = dataclasses.replace(
        kubernetes("Secret", "url", type="Opaque", stringData={"url": "x"}), property_dependencies=deps
    )
    steps = plan([auth, url], [edited(auth, at("metadata.name", "auth-2")), url])
    assert [step.op for step in steps] == ["replace", "same"]


# --- Other providers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change", [at("length", 40), at("special", True), at("keepers", {"release": "2"})])
def test_every_random_password_input_replaces(change: Change) -> None:
    old = password()
    step = step_of(old, edited(old, change))
    assert step.op == "replace" and "RequiresReplace" in step.replace_reasons[0]


def test_a_docker_image_rebuilds_in_place_and_ignores_new_credentials() -> None:
    old = resource(
        "docker:index/image:Image",
        "image",
        {"imageName": "r.example/app:1", "registry": {"server": "r.example", "username": "u", "password": "p"}},
    )
    assert step_of(old, edited(old, at("imageName", "r.example/app:2"))).op == "update"
    assert step_of(old, edited(old, at("registry.server", "r2.example"))).op == "update"
    assert step_of(old, edited(old, at("registry.password", "q"), at("registry.username", "v"))).op == "same"


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (stateful_set, True),
        (lambda: edited(stateful_set(), drop("spec.volumeClaimTemplates")), False),
        (lambda: kubernetes("PersistentVolumeClaim", "data", spec={}), True),
        (lambda: kubernetes("Namespace", "ns"), True),
        (password, True),
        (deployment, False),
        (lambda: kubernetes("Secret", "auth", stringData={"password": "a"}), False),
        (lambda: resource("shipsafe:components:BackingService", "db", {}, custom=False), False),
    ],
)
def test_what_bears_data(original: Any, expected: bool) -> None:
    assert is_data_bearing(original()) is expected


# --- The real stacks ------------------------------------------------------------------------------------------


def data_loss(steps: list[PlannedStep], previous: Recording, current: Recording) -> list[PlannedStep]:
    by_urn = {r.urn: r for r in previous} | {r.urn: r for r in current}
    return [s for s in steps if s.op in ("replace", "delete") and is_data_bearing(by_urn[s.urn])]


def next_release(stack: str) -> dict[str, Any]:
    _, file_config = read_stack_config(stack)
    return next_release_overrides(file_config)


@pytest.mark.parametrize("stack", STACKS)
def test_a_new_release_replaces_or_deletes_nothing_that_holds_data(
    stack: str, recordings: dict[str, Recording]
) -> None:
    previous, current = recordings[stack], record(stack, **next_release(stack))
    steps = plan_update(previous, current)
    assert any(is_data_bearing(r) for r in previous), "the stack holds data: the check below is not vacuous"
    replaced = {s.type for s in steps if s.op == "replace"}
    assert "kubernetes:batch/v1:Job" in replaced, f"each release runs its own migration Job: {steps}"
    assert data_loss(steps, previous, current) == []
    assert blocked_by_protect(steps) == []


@pytest.mark.parametrize("stack", STACKS)
def test_a_preview_of_the_new_release_replaces_nothing_that_holds_data(
    stack: str, recordings: dict[str, Recording]
) -> None:
    previous = recordings[stack]
    preview = run_stack(stack, config_overrides=next_release(stack), preview=True, prior=previous)
    steps = plan_update(previous, preview)
    assert data_loss(steps, previous, preview) == [] and blocked_by_protect(steps) == []


@pytest.mark.parametrize("stack", STACKS)
def test_an_unchanged_rerun_plans_only_same(stack: str, recordings: dict[str, Recording]) -> None:
    steps = plan_update(recordings[stack], record(stack))
    assert len(steps) == len(recordings[stack].resources)
    assert [s for s in steps if s.op != "same"] == []


@pytest.mark.parametrize("stack", STACKS)
def test_a_bigger_postgres_volume_is_a_blocked_replace_of_the_database(
    stack: str, recordings: dict[str, Recording]
) -> None:
    _, file_config = read_stack_config(stack)
    postgres = dict(file_config["shipsafe:postgres"])
    size = re.fullmatch(r"(\d+)(\w+)", postgres["storageSize"])
    assert size, postgres["storageSize"]
    postgres["storageSize"] = f"{int(size.group(1)) * 2}{size.group(2)}"
    previous, current = recordings[stack], record(stack, **{"shipsafe:postgres": postgres})
    steps = plan_update(previous, current)
    database = current.named(f"{file_config['shipsafe:app']['name']}-postgres-statefulset")
    assert [s.urn for s in data_loss(steps, previous, current)] == [database.urn]
    assert [s.urn for s in blocked_by_protect(steps)] == [database.urn], "protect stops the up before it deletes"
