"""What the offline engine sends the policy pack, read back by a pack that reports everything it is handed.

The real engine sends `Analyze` the provider's `Check` output and `AnalyzeStack` each resource's outputs without the
internal keys (pulumi/pulumi `analyzer_plugin.go` `AnalyzeStack`, `MarshalOptions{SkipInternalKeys: true}`). These
tests boot a pack whose two policies echo what they receive, through the same gRPC path the real pack takes, so they
hold the wire itself, not what the offline engine stores.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.analyzer import PolicyPackProcess
from harness.phases import Phase, PhaseRecording
from harness.provider_check import checked_inputs
from harness.recording import UNKNOWN, RecordedResource, Recording
from tests.conftest import STACKS
from tests.policy.stack_edits import at, edit, replace_resource

ECHO_PACK = """
import json
from pulumi_policy import PolicyPack, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

def plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    try:
        if hasattr(value, "keys"):
            result = {}
            for key in value.keys():
                try:
                    result[key] = plain(value[key])
                except UnknownValueError:
                    result[key] = "<unknown>"
            return result
        return [plain(item) for item in value]
    except UnknownValueError:
        return "<unknown>"

def stack(args, report):
    for resource in args.resources:
        report(json.dumps({"view": "stack", "name": resource.name, "props": plain(resource.props)}), resource.urn)

def resource(args, report):
    report(json.dumps({"view": "resource", "name": args.name, "props": plain(args.props)}))

PolicyPack("echo", [
    StackValidationPolicy("stack-view", "what AnalyzeStack sends", stack),
    ResourceValidationPolicy("resource-view", "what Analyze sends", resource),
])
"""

IMAGE, WEB, POSTGRES_URL = "notes-image-build", "notes-web-deployment", "notes-postgres-url"
CONFIG_MAP = "notes-config-configmap"
View = dict[tuple[str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    pack_dir = tmp_path_factory.mktemp("echo")
    (pack_dir / "__main__.py").write_text(ECHO_PACK)
    with PolicyPackProcess(pack_dir, python=Path(sys.executable)) as pack:
        pack.configure({})

        def sent(recording: Recording) -> View:
            report = pack.analyze(recording)
            messages = [json.loads(v.message) for v in report.violations]
            return {(m["view"], m["name"]): m["props"] for m in messages}

        yield sent


def _phase(phase_recordings: dict[tuple[str, Phase], PhaseRecording], stack: str, phase: Phase) -> Recording:
    return phase_recordings[stack, phase].recording


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("phase", list(Phase))
def test_stack_policies_never_see_internal_keys(
    stack: str, phase: Phase, phase_recordings: dict[tuple[str, Phase], PhaseRecording], echo: Any
) -> None:
    recording = _phase(phase_recordings, stack, phase)
    view = echo(recording)
    for resource in recording:
        props = view["stack", resource.name]
        assert not [key for key in props if key.startswith("__")], resource.name
        assert set(props) == {key for key in resource.outputs if not key.startswith("__")}, resource.name
    if phase is Phase.AFTER_UP:
        assert any("__inputs" in r.outputs for r in recording), "the state holds __inputs; the wire must not"


def test_a_built_image_reaches_stack_policies_as_pulumi_docker_returns_it(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], echo: Any
) -> None:
    # pulumi-docker `image.go` `dockerBuild`: `context` as given, `dockerfile` relative to it; no `build`.
    live = echo(_phase(phase_recordings, "staging", Phase.AFTER_UP))["stack", IMAGE]
    inputs = _phase(phase_recordings, "staging", Phase.AFTER_UP).named(IMAGE).inputs
    assert "build" not in live and live["context"] == inputs["build"]["context"]
    assert (Path(live["context"]) / live["dockerfile"]).resolve() == Path(inputs["build"]["dockerfile"]).resolve()
    assert not Path(live["dockerfile"]).is_absolute()
    # Where it cannot preview, Create returns the request's properties: `build` included (provider.go `Create`).
    preview = echo(_phase(phase_recordings, "staging", Phase.FIRST_PREVIEW))["stack", IMAGE]
    assert preview["build"]["dockerfile"] == inputs["build"]["dockerfile"] and "repoDigest" not in preview


def test_resource_policies_see_the_providers_check_output(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], echo: Any
) -> None:
    recording = _phase(phase_recordings, "prod", Phase.AFTER_UP)
    view = echo(recording)
    declared = recording.named(POSTGRES_URL).inputs
    checked = view["resource", POSTGRES_URL]
    assert "stringData" in declared and "stringData" not in checked, "normalizeSecret: stringData becomes data"
    for key, value in declared["stringData"].items():
        assert base64.b64decode(checked["data"][key]).decode() == value
    image = echo(_phase(phase_recordings, "staging", Phase.AFTER_UP))["resource", IMAGE]
    assert image["buildOnPreview"] is False, "pulumi-docker's Check fills buildOnPreview in"
    for resource in recording:
        metadata = view["resource", resource.name].get("metadata") or {}
        assert not set(metadata) & {"uid", "resourceVersion", "generation", "managedFields", "creationTimestamp"}


def test_check_leaves_inputs_with_unknowns_unnormalised(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], echo: Any
) -> None:
    # provider.go `normalizeInputs`: `hasComputedValue` skips the typed round trip, so stringData stays.
    recording = _phase(phase_recordings, "staging", Phase.FIRST_PREVIEW)
    secrets = [r for r in recording if r.inputs.get("kind") == "Secret" and "stringData" in r.inputs]
    unknown = [r for r in secrets if UNKNOWN in json.dumps(r.inputs["stringData"])]
    known = [r for r in secrets if r not in unknown]
    assert unknown and known
    view = echo(recording)
    assert all("stringData" in view["resource", r.name] for r in unknown)
    assert all("stringData" not in view["resource", r.name] and "data" in view["resource", r.name] for r in known)


def test_only_top_level_keys_are_internal_and_check_drops_read_only_metadata(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording], echo: Any
) -> None:
    # `IsInternalPropertyKey` is asked of top-level keys only; Check removes the metadata the server owns.
    recording = _phase(phase_recordings, "staging", Phase.AFTER_UP)
    marked = edit(CONFIG_MAP, at("data.__kept", "yes"), at("metadata.uid", "u-1"), at("metadata.generation", 3))

    def live_with_nested_key(resource: RecordedResource) -> RecordedResource:
        outputs = {**resource.outputs, "data": {**resource.outputs["data"], "__kept": "yes"}}
        return dataclasses.replace(resource, outputs=outputs)

    view = echo(replace_resource(CONFIG_MAP, live_with_nested_key)(marked(recording)))
    assert view["stack", CONFIG_MAP]["data"]["__kept"] == "yes"
    assert view["resource", CONFIG_MAP]["data"]["__kept"] == "yes"
    assert not {"uid", "generation"} & set(view["resource", CONFIG_MAP]["metadata"])


def test_docker_check_fills_a_known_dockerfile_even_beside_an_unknown_context(
    phase_recordings: dict[tuple[str, Phase], PhaseRecording],
) -> None:
    # pulumi-docker `marshalBuildAndApplyDefaults`: an unknown context stays empty, the Dockerfile defaults anyway.
    image = _phase(phase_recordings, "staging", Phase.FIRST_PREVIEW).named(IMAGE)
    unknown_context = dataclasses.replace(image, inputs={**image.inputs, "build": {"context": UNKNOWN}})
    checked, _ = checked_inputs(unknown_context)
    assert checked["build"] == {"context": UNKNOWN, "dockerfile": "Dockerfile"}
    known = dataclasses.replace(image, inputs={**image.inputs, "build": {"context": "app"}})
    assert checked_inputs(known)[0]["build"] == {"context": "app", "dockerfile": "app/Dockerfile"}
