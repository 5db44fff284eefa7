"""The offline engine's phases: what the policy pack sees as outputs before, after and between deploys."""

from __future__ import annotations

import dataclasses

import pytest

from deploy.offline.preview import ReleaseStep, release_plan
from deploy.prerequisites import MIN_KUBERNETES
from harness import phases, runtime
from harness.apiserver import SERVER_VERSIONS
from harness.phases import (
    NEXT_RELEASE_SHA,
    Phase,
    PhaseRecording,
    Source,
    later_preview,
    next_release_overrides,
)
from harness.recording import UNKNOWN, RecordedResource, Recording, contains_unknown
from tests.conftest import STACKS
from tests.policy.stack_edits import at, edit

WEB, JOB, NAMESPACE = "notes-web-deployment", "notes-migrate-job", "notes-namespace"
CONFIG_MAP, IMAGE, PASSWORD = "notes-config-configmap", "notes-image-build", "notes-postgres-password"
POSTGRES = "notes-postgres-statefulset"


def _container(resource: RecordedResource, props: str = "inputs") -> dict:
    return getattr(resource, props)["spec"]["template"]["spec"]["containers"][0]


def test_the_unknown_marker_is_the_engines() -> None:
    from pulumi.runtime import rpc

    assert rpc.UNKNOWN == UNKNOWN


def test_first_preview_runs_the_program_in_preview_mode(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    staging = phase_recordings["staging", Phase.FIRST_PREVIEW].recording
    assert _container(staging.named(WEB))["image"] == UNKNOWN, "the image is built only on up: its digest is unknown"
    assert "repoDigest" not in staging.named(IMAGE).outputs, "pulumi-docker returns the inputs when it cannot preview"
    prod = phase_recordings["prod", Phase.FIRST_PREVIEW].recording
    assert not contains_unknown(_container(prod.named(WEB))["image"]), "a prebuilt image is known in preview"


@pytest.mark.parametrize("stack", STACKS)
def test_first_preview_dry_runs_only_what_can_be_dry_run(
    stack: str, phase_recordings: dict[tuple[str, Phase], PhaseRecording]
) -> None:
    phase = phase_recordings[stack, Phase.FIRST_PREVIEW]
    namespace = phase.recording.named(NAMESPACE)
    assert phase.sources[namespace.urn] is Source.DRY_RUN, "a cluster-scoped object can be dry-run at once"
    assert namespace.outputs["__inputs"] == namespace.inputs
    assert "status" not in namespace.outputs, "the provider strips status from preview objects"
    config_map = phase.recording.named(CONFIG_MAP)
    assert phase.sources[config_map.urn] is Source.INPUTS_NO_NAMESPACE
    assert config_map.outputs == config_map.inputs and "__inputs" not in config_map.outputs


@pytest.mark.parametrize("stack", STACKS)
def test_after_up_every_kubernetes_object_is_the_live_checkpoint(
    stack: str, phase_recordings: dict[tuple[str, Phase], PhaseRecording]
) -> None:
    phase = phase_recordings[stack, Phase.AFTER_UP]
    kubernetes = [r for r in phase.recording if r.type.startswith("kubernetes:") and r.custom]
    assert kubernetes
    for resource in kubernetes:
        assert phase.sources[resource.urn] is Source.LIVE, resource.urn
        assert resource.outputs["__inputs"] == resource.inputs, resource.urn
        assert resource.outputs["__initialApiVersion"] == resource.inputs["apiVersion"], resource.urn
        assert resource.outputs["metadata"]["uid"], resource.urn
    web = phase.recording.named(WEB)
    assert "replicas" in web.outputs["spec"], "the API server always sets spec.replicas"
    pod = web.outputs["spec"]["template"]["spec"]
    assert pod["serviceAccount"] == pod["serviceAccountName"], "the deprecated mirror is always set"
    assert web.outputs["status"]["readyReplicas"] >= 1


def test_after_up_secret_data_stays_secret(phase_recordings: dict[tuple[str, Phase], PhaseRecording]) -> None:
    url = phase_recordings["prod", Phase.AFTER_UP].recording.named("notes-postgres-url")
    assert "data" in url.outputs and "stringData" not in url.outputs, "the server stores stringData as data"
    assert any(p == "data" or p.startswith("data.") for p in url.output_secret_paths), url.output_secret_paths
    assert any(p.startswith("__inputs.stringData") for p in url.output_secret_paths), url.output_secret_paths


def test_later_preview_keeps_state_for_what_did_not_change(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    state = phase_recordings["staging", Phase.AFTER_UP].recording
    later = phase_recordings["staging", Phase.LATER_PREVIEW]
    config_map = later.recording.named(CONFIG_MAP)
    assert later.sources[config_map.urn] is Source.UNCHANGED
    assert config_map.outputs == state.named(CONFIG_MAP).outputs
    password = later.recording.named(PASSWORD)
    assert not contains_unknown(password.outputs), "an unchanged password keeps its value: a same step"


def test_later_preview_of_a_build_sees_the_new_image_as_unknown(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    later = phase_recordings["staging", Phase.LATER_PREVIEW]
    web = later.recording.named(WEB)
    assert later.sources[web.urn] is Source.INPUTS_UNKNOWN
    assert _container(web, "outputs")["image"] == UNKNOWN and "__inputs" not in web.outputs
    assert NEXT_RELEASE_SHA[:12] in later.recording.named(JOB).inputs["metadata"]["name"]


def test_later_preview_of_a_prebuilt_release_is_a_server_dry_run(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    state = phase_recordings["prod", Phase.AFTER_UP].recording
    later = phase_recordings["prod", Phase.LATER_PREVIEW]
    web, before = later.recording.named(WEB), state.named(WEB)
    assert later.sources[web.urn] is Source.DRY_RUN
    assert _container(web, "outputs")["image"] != _container(before, "outputs")["image"]
    assert web.outputs["metadata"]["uid"] == before.outputs["metadata"]["uid"], "an update keeps the object"
    assert web.outputs["metadata"]["generation"] == before.outputs["metadata"]["generation"] + 1
    assert web.outputs["status"] == before.outputs["status"], "an update's dry run keeps the live status"
    job = later.recording.named(JOB)
    assert later.sources[job.urn] is Source.DRY_RUN and "status" not in job.outputs, "a new Job is created"


def test_a_replacement_under_the_same_name_previews_as_inputs(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    state = phase_recordings["prod", Phase.AFTER_UP]
    later = phase_recordings["prod", Phase.LATER_PREVIEW]
    # The same Job name with a changed template: delete-before-replace, so the preview Create meets the old object.
    same_name = edit(JOB, at("metadata.name", state.recording.named(JOB).inputs["metadata"]["name"]))
    replaced = later_preview(state, same_name(later.recording))
    job = replaced.recording.named(JOB)
    assert replaced.sources[job.urn] is Source.INPUTS_ALREADY_EXISTS
    assert job.outputs == job.inputs and "__inputs" not in job.outputs


def test_the_next_release_of_a_prebuilt_stack_is_a_new_pinned_image() -> None:
    overrides = next_release_overrides(
        {"shipsafe:imageSource": "prebuilt", "shipsafe:imageRef": "r.example.com/a/b:3f9c2a1b7d4e@sha256:" + "0" * 64}
    )
    assert overrides["shipsafe:imageRef"].startswith(f"r.example.com/a/b:{overrides['shipsafe:gitSha']}@sha256:")
    assert next_release_overrides({"shipsafe:imageSource": "build"}) == {"shipsafe:gitSha": NEXT_RELEASE_SHA}


def test_other_providers_keep_their_real_state_shape(phase_recordings: dict[tuple[str, Phase], PhaseRecording]) -> None:
    image = phase_recordings["staging", Phase.AFTER_UP].recording.named(IMAGE)
    # pulumi-docker `image.go` dockerBuild outputs plus a secret `__inputs` (`provider.go` checkpointObject).
    assert {"baseImageName", "registryServer", "repoDigest", "dockerfile", "context", "platform"} <= set(image.outputs)
    assert image.outputs["__inputs"]["imageName"] == image.inputs["imageName"]
    assert "__inputs" in image.output_secret_paths, "the provider stores its inputs as one secret"
    password = phase_recordings["staging", Phase.AFTER_UP].recording.named(PASSWORD)
    assert password.outputs["upper"] is True and password.outputs["minSpecial"] == 0, "schema defaults are state"
    assert "result" in password.output_secret_paths
    preview = phase_recordings["staging", Phase.FIRST_PREVIEW].recording.named(PASSWORD)
    assert preview.outputs["result"] == UNKNOWN


def test_the_preview_refuses_a_release_that_would_replace_data(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    phases = [phase_recordings["prod", phase] for phase in Phase]
    steps = release_plan(phases)
    assert steps is not None and not any(step.unsafe for step in steps), steps
    assert ReleaseStep("replace", "notes-migrate-job") in steps

    later = phases[-1]
    grown = edit(POSTGRES, at("spec.volumeClaimTemplates.0.spec.resources.requests.storage", "500Gi"))
    phases[-1] = dataclasses.replace(later, recording=grown(later.recording))
    unsafe = [(step.op, step.name) for step in release_plan(phases) or [] if step.unsafe]
    assert unsafe == [("replace", "notes-postgres-statefulset")]


def test_each_phase_is_handed_on_as_soon_as_it_is_modelled(monkeypatch: pytest.MonkeyPatch) -> None:
    # The preview gives each phase to the policy pack while the program runs for the next one.
    events: list[str] = []
    real_run_stack = phases.run_stack

    def run_stack(*args: object, **kwargs: object) -> Recording:
        events.append("run")
        return real_run_stack(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(phases, "run_stack", run_stack)
    modelled = phases.model_phases("staging", on_phase=lambda phase: events.append(phase.label))
    each = [f"{phase} (Kubernetes {major}.{minor})" for phase in Phase for major, minor in SERVER_VERSIONS]
    assert events == ["run", *each[0:2], "run", *each[2:4], "run", *each[4:6]], "one program run per phase"
    assert [p.label for p in modelled] == [e for e in events if e != "run"]
    assert SERVER_VERSIONS[0] == MIN_KUBERNETES, "the oldest modelled server is the oldest the prerequisites accept"


def test_a_secret_found_unset_is_filled_up_front_in_later_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # staging reads `registryPassword`, which Pulumi.staging.yaml does not hold: the first run fails to find it
    # and runs again with a placeholder; a run told of it up front runs once and records the same stack.
    runs: list[int] = []
    real_run_once = runtime._run_once

    def run_once(*args: object, **kwargs: object) -> None:
        runs.append(1)
        real_run_once(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime, "_run_once", run_once)
    found = runtime.run_stack("staging")
    assert (len(runs), found.placeholder_secrets) == (2, ["shipsafe:registryPassword"])
    told = runtime.run_stack("staging", missing_secrets=found.placeholder_secrets)
    assert len(runs) == 3
    phases.model_phases("staging")
    assert len(runs) == 3 + 4, "only the first phase's run has to find the secret unset"
    assert told.placeholder_secrets == found.placeholder_secrets
    assert [(r.urn, r.inputs, r.secret_paths) for r in sorted(told, key=lambda r: r.urn)] == [
        (r.urn, r.inputs, r.secret_paths) for r in sorted(found, key=lambda r: r.urn)
    ]


def test_two_runs_record_the_same_order_each_after_what_it_depends_on() -> None:
    """The SDK registers a resource once its inputs resolve, on a thread pool: the raw order changes between runs."""
    runs = [runtime.run_stack("prod") for _ in range(3)]
    orders = [[r.urn for r in run] for run in runs]
    assert orders[0] == orders[1] == orders[2]
    position = {urn: index for index, urn in enumerate(orders[0])}
    for resource in runs[0]:
        for earlier in [resource.parent, *resource.dependencies]:
            if earlier in position:
                assert position[earlier] < position[resource.urn], f"{resource.name} before {earlier}"
