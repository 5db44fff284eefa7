"""Deliberate faults injected into a copy of the real stack's recording, one field at a time."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.recording import RecordedResource, Recording

Props = dict[str, Any]
Edit = Callable[[Recording], Recording]

COMPLIANT_DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE_IMAGE=docker.io/library/python:3.11.14-slim-bookworm@sha256:{digest}
FROM ${{BASE_IMAGE}} AS builder
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir --require-hashes -r requirements.txt
FROM ${{BASE_IMAGE}} AS production
ENV PYTHONDONTWRITEBYTECODE=1 PATH=/venv/bin:$PATH
COPY --from=builder /venv /venv
COPY notes_app /app/notes_app
WORKDIR /app
USER 10001:10001
EXPOSE 3002
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3002/healthz')"]
CMD ["python", "-m", "notes_app", "serve"]
""".format(digest="a" * 64)
COMPLIANT_DOCKERIGNORE = ".git\n.env*\n__pycache__\n"


Change = Callable[[Props], None]


def at(path: str, value: Any) -> Change:
    """Set a dotted path; `pod.` and `container.` start at the pod spec or its first container; digits index lists."""

    def change(props: Props) -> None:
        *parents, last = path.split(".")
        target = _walk(props, parents)
        target[int(last) if last.isdigit() else last] = copy.deepcopy(value)

    return change


def drop(path: str) -> Change:
    def change(props: Props) -> None:
        *parents, last = path.split(".")
        del _walk(props, parents)[last]

    return change


def _walk(props: Props, steps: list[str]) -> Any:
    target: Any = props
    for step in steps:
        if step == "pod":
            target = pod(target)
        elif step == "container":
            target = first_container(target)
        elif step.isdigit():
            target = target[int(step)]
        else:
            target = target.setdefault(step, {})
    return target


def edit(name: str, *changes: Change) -> Edit:
    """Apply changes to the named resource's inputs and outputs (Analyze reads one, AnalyzeStack the other)."""

    def apply(recording: Recording) -> Recording:
        def changed(resource: RecordedResource) -> RecordedResource:
            if resource.name != name:
                return resource
            inputs, outputs = copy.deepcopy(resource.inputs), copy.deepcopy(resource.outputs)
            # Where the provider checkpoints its inputs (pulumi-docker), the declared inputs live under `__inputs`.
            declared_outputs = outputs.get("__inputs", outputs)
            for change in changes:
                change(inputs)
                change(declared_outputs)
            return dataclasses.replace(resource, inputs=inputs, outputs=outputs)

        recording.named(name)  # fail loudly when the stack renamed the resource
        return _replace(recording, [changed(r) for r in recording])

    return apply


def replace_resource(name: str, change: Callable[[RecordedResource], RecordedResource]) -> Edit:
    def apply(recording: Recording) -> Recording:
        recording.named(name)
        return _replace(recording, [change(r) if r.name == name else r for r in recording])

    return apply


def add_resource(resource: RecordedResource) -> Edit:
    return lambda recording: _replace(recording, [*recording, resource])


def chain(*edits: Edit) -> Edit:
    def apply(recording: Recording) -> Recording:
        for step in edits:
            recording = step(recording)
        return recording

    return apply


def _replace(recording: Recording, resources: list[RecordedResource]) -> Recording:
    return Recording(
        project=recording.project,
        stack=recording.stack,
        resources=resources,
        stack_outputs=recording.stack_outputs,
        placeholder_secrets=list(recording.placeholder_secrets),
    )


def pod(props: Props) -> Props:
    template = props["spec"]["template"]
    return template["spec"]


def first_container(props: Props) -> Props:
    return pod(props)["containers"][0]


def new_resource(recording: Recording, type_: str, name: str, inputs: Props) -> RecordedResource:
    """A resource as the engine would receive it: for Kubernetes, with the apiVersion and kind the SDK class sets
    and the name the provider's Check step gives an unnamed object (pulumi-kubernetes autonaming, suffix left out)."""
    urn = f"urn:pulumi:{recording.stack}::{recording.project}::{type_}::{name}"
    if type_.startswith("kubernetes:"):
        _, group_version, kind = type_.split(":")
        metadata = {"name": name, **inputs.get("metadata", {})}
        inputs = {"apiVersion": group_version.removeprefix("core/"), "kind": kind, **inputs, "metadata": metadata}
    return RecordedResource(
        urn=urn,
        type=type_,
        name=name,
        custom=True,
        inputs=inputs,
        secret_paths=frozenset(),
        parent=None,
        dependencies=(),
        property_dependencies={},
        provider=None,
        protect=False,
        retain_on_delete=False,
        delete_before_replace=False,
        ignore_changes=(),
        replace_on_changes=(),
        custom_timeouts={},
        outputs=copy.deepcopy(inputs),
        output_secret_paths=frozenset(),
    )


def write_build_context(directory: Path, dockerfile: str, dockerignore: str | None = COMPLIANT_DOCKERIGNORE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    if dockerignore is not None:
        (directory / ".dockerignore").write_text(dockerignore)
    return directory


def use_build_context(image_resource: str, directory: Path) -> Edit:
    """Point the image build at a Dockerfile under test (absolute paths override the project directory)."""

    def change(props: Props) -> None:
        props["build"]["context"] = str(directory)
        props["build"]["dockerfile"] = str(directory / "Dockerfile")

    def built(resource: RecordedResource) -> RecordedResource:
        # A build's own outputs (pulumi-docker `image.go`): the context as given, the Dockerfile relative to it.
        if "build" in resource.outputs or "context" not in resource.outputs:
            return resource
        outputs = {**resource.outputs, "context": str(directory), "dockerfile": "Dockerfile"}
        return dataclasses.replace(resource, outputs=outputs)

    return chain(edit(image_resource, change), replace_resource(image_resource, built))
