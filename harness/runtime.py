"""Runs the real stack program under Pulumi's mock runtime and records every registration.

This is the offline stand-in for the engine: config comes from `Pulumi.<stack>.yaml`, the program is the
project's own `__main__.py`, and a monitor subclass records each RegisterResource request with its parent and
dependencies. The mocks return the inputs as state plus the few computed values the program reads
(an image digest, generated passwords), so downstream Outputs resolve as they would after `pulumi up`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import mocks, rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from harness.recording import (
    DOCKER_IMAGE,
    MODELLED_DIGEST_PREFIX,
    UNKNOWN,
    RecordedResource,
    Recording,
    registration_order,
)
from harness.stack_config import PLACEHOLDER_SECRET, REPO_ROOT, engine_config, read_stack_config

_LOOP: asyncio.AbstractEventLoop | None = None


class ProgramFailed(Exception):
    """The program raised; `recording` holds whatever it registered before that (for bad config: nothing)."""

    def __init__(self, error: BaseException, recording: Recording) -> None:
        super().__init__(str(error))
        self.error = error
        self.recording = recording


def _unwrap_secrets(value: Any, path: str, secret_paths: set[str]) -> Any:
    """Plain values with secret paths noted; a preview's unknowns become the wire's unknown marker (`UNKNOWN`)."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if rpc.is_rpc_secret(value):
        secret_paths.add(path)
        return _unwrap_secrets(rpc.unwrap_rpc_secret(value), path, secret_paths)
    if isinstance(value, dict):
        return {k: _unwrap_secrets(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secrets(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    return value


class _LeftToTheSdk(Exception):
    """A value `rpc.deserialize_properties` turns into an object (asset, archive, resource reference, output value)
    or a secret within a secret: `_deserialized_request` leaves the whole request to the SDK."""


def _deserialized_value(value: struct_pb2.Value, keep_unknowns: bool, seen: list[int]) -> Any:
    # pulumi `runtime/rpc.py` `deserialize_property`, given the protobuf Value that struct_pb2's `_GetStructValue`
    # would have unpacked: the unknown marker becomes `Unknown()` (None outside a dry run unless `keep_unknowns`),
    # and a list or object holding a secret becomes a secret itself, its items unwrapped one level. `seen` counts
    # the secrets and unknowns met, so that an object or list without any skips the SDK's scan for them.
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        if text == UNKNOWN:
            seen[1] += 1
            return Unknown() if keep_unknowns or runtime_settings.is_dry_run() else None
        return text
    if kind == "struct_value":
        secrets = seen[0]
        props = _deserialized_struct(value.struct_value, keep_unknowns, seen)
        if seen[0] != secrets and any(rpc.is_rpc_secret(v) for v in props.values()):
            return rpc.wrap_rpc_secret({k: rpc.unwrap_rpc_secret(v) for k, v in props.items()})
        return props
    if kind == "list_value":
        secrets = seen[0]
        items = [_deserialized_value(v, keep_unknowns, seen) for v in value.list_value.values]
        if seen[0] != secrets and any(rpc.is_rpc_secret(v) for v in items):
            return rpc.wrap_rpc_secret([rpc.unwrap_rpc_secret(v) for v in items])
        return items
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "null_value":
        return None
    raise _LeftToTheSdk  # an unset Value: the SDK raises its own error


def _deserialized_struct(struct: struct_pb2.Struct, keep_unknowns: bool, seen: list[int]) -> dict[str, Any]:
    # pulumi `runtime/rpc.py` `deserialize_properties`: a signed object is a secret (or an object the SDK builds);
    # other keys whose value deserialises to None are left out.
    fields = struct.fields
    if rpc._special_sig_key in fields:
        signature = fields[rpc._special_sig_key]
        is_secret = signature.WhichOneof("kind") == "string_value" and signature.string_value == rpc._special_secret_sig
        if not is_secret or "value" not in fields:  # indexing a missing key would add it to the request
            raise _LeftToTheSdk
        # The SDK reads a secret's value without passing `keep_unknowns` on.
        secret = _deserialized_value(fields["value"], False, seen)
        if rpc.is_rpc_secret(secret):
            raise _LeftToTheSdk  # the SDK then lifts secretness through its own wrapper; keep its exact shape
        seen[0] += 1
        return rpc.wrap_rpc_secret(secret)
    output = {}
    for key in fields:  # not .items(): the map's Python mixin walks it through a generator, per key
        deserialized = _deserialized_value(fields[key], keep_unknowns, seen)
        if deserialized is not None:
            output[key] = deserialized
    return output


def _deserialized_request(struct: struct_pb2.Struct) -> tuple[dict[str, Any], bool]:
    """`rpc.deserialize_properties(struct, keep_unknowns=True)`, read straight off the protobuf Values: the SDK's
    version pays for struct_pb2's Python mapping and several checks per value (about three times slower), and the
    recording monitor reads every request. Equal to the SDK's on every request of both stacks
    (`tests/harness/test_lean_monitor.py`). Also whether it holds no secret and no unknown: then it is already
    what `_unwrap_secrets` would make of it."""
    seen = [0, 0]
    try:
        if rpc._special_sig_key in struct.fields:
            raise _LeftToTheSdk
        received = _deserialized_struct(struct, True, seen)
    except _LeftToTheSdk:
        return rpc.deserialize_properties(struct, keep_unknowns=True), False
    return received, seen == [0, 0]


def _fake_digest(*parts: str) -> str:
    # Still a well-formed sha256 digest (64 hex digits), and still distinct per image after the marker.
    return MODELLED_DIGEST_PREFIX + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


def _image_preview_state(inputs: dict[str, Any]) -> dict[str, Any]:
    # pulumi-docker `provider.go` `Create`: with build_on_preview off it cannot preview and returns the request's
    # properties as they came, with no `repoDigest` at all; the SDK resolves a missing output as unknown in preview.
    return dict(inputs)


def _image_state(inputs: dict[str, Any]) -> dict[str, Any]:
    """pulumi-docker 5.x `image.go` `dockerBuild` outputs, checkpointed with every input under a secret `__inputs`
    (`provider.go` `checkpointObject`)."""
    build = inputs.get("build") or {}
    name = inputs["imageName"]
    context = build.get("context", ".")
    # `marshalBuildAndApplyDefaults` defaults the Dockerfile to `<context>/Dockerfile`; docker's
    # `GetContextFromLocalDir` then makes it relative to the context, and that is the `dockerfile` output.
    dockerfile = build.get("dockerfile") or posixpath.join(context, "Dockerfile")
    return {
        "dockerfile": posixpath.relpath(posixpath.normpath(dockerfile), posixpath.normpath(context)),
        "context": context,
        "baseImageName": name,
        "registryServer": (inputs.get("registry") or {}).get("server"),
        "imageName": name,
        "platform": build.get("platform"),
        "repoDigest": f"{name.rsplit(':', 1)[0]}@{_fake_digest(name)}",
        "__inputs": rpc.wrap_rpc_secret(inputs),
    }


# pulumi-random `random_password` (terraform-provider-random `resource_password.go` schema defaults).
_PASSWORD_DEFAULTS = {
    "lower": True,
    "upper": True,
    "numeric": True,
    "number": True,
    "special": True,
    "minLower": 0,
    "minUpper": 0,
    "minNumeric": 0,
    "minSpecial": 0,
}


def _password_preview_state(inputs: dict[str, Any]) -> dict[str, Any]:
    # A bridged provider's preview Create plans computed attributes as unknown.
    return {**_PASSWORD_DEFAULTS, **inputs, "result": UNKNOWN, "bcryptHash": UNKNOWN}


def _password_state(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    result = hashlib.sha256(f"password:{name}".encode()).hexdigest()[: int(inputs.get("length", 32))]
    return {
        **_PASSWORD_DEFAULTS,
        **inputs,
        "result": rpc.wrap_rpc_secret(result),
        "bcryptHash": rpc.wrap_rpc_secret(f"$2a$10$offline{hashlib.md5(result.encode()).hexdigest()}"),
    }


class OfflineMocks(pulumi.runtime.Mocks):
    """Returns inputs as state, plus deterministic stand-ins for values only a real provider computes.

    In preview (`preview=True`) those provider-computed values are unknown, as the real providers leave them:
    pulumi-docker 5.x `Image` has `build_on_preview` false, so `repoDigest` is unknown until `up`; a bridged
    provider's preview Create (pulumi-random) returns computed attributes such as `result` as unknown; and the
    engine hands back an empty ID for a resource a preview would create (pulumi/pulumi `step_executor.go`).
    A resource whose inputs equal those in `prior` (the state an earlier `up` left) is a "same" step: the engine
    returns its old outputs (pulumi/pulumi `step_generator.go` `generateSteps`), so its computed values stay known;
    the stand-ins are functions of type, name and inputs, so recomputing them gives exactly the old outputs.
    """

    def __init__(self, *, preview: bool = False, prior: Recording | None = None) -> None:
        self.preview = preview
        self._prior = {(r.type, r.name): r.inputs for r in prior or ()}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return self.registered(args, _unwrap_secrets(args.inputs, "", set()))

    def registered(self, args: pulumi.runtime.MockResourceArgs, plain_inputs: Any) -> tuple[str, dict[str, Any]]:
        """`new_resource` given the inputs with secrets unwrapped, which the recording monitor has at hand."""
        state = dict(args.inputs)
        unknown = self.preview and self._prior.get((args.typ, args.name)) != plain_inputs
        if args.typ == DOCKER_IMAGE:
            state = _image_preview_state(state) if unknown else _image_state(state)
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state = _password_preview_state(state) if unknown else _password_state(args.name, state)
        return ("" if unknown else f"{args.name}-id"), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


class RecordingMonitor(mocks.MockMonitor):
    """The mock monitor, keeping each request's parent, dependencies and options, which the base drops."""

    mocks: OfflineMocks

    def __init__(self, offline_mocks: OfflineMocks, on_registration: Callable[[], object] | None = None) -> None:
        super().__init__(offline_mocks)
        self.on_registration = on_registration
        self.registrations: list[RecordedResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self.component_outputs: dict[str, dict[str, Any]] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack out of a child's qualified type; the base mock does not.
        if parent and parent.split("::")[2] == "pulumi:pulumi:Stack":
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.component_outputs[request.urn] = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return super().RegisterResourceOutputs(request)

    def RegisterResource(self, request: Any) -> Any:
        """`MockMonitor.RegisterResource` (pulumi `runtime/mocks.py`) deserialising the request once, and answering a
        resource whose state is its inputs with the request's own properties rather than re-serialising them: the
        SDK reads the answer with `deserialize_properties`, which lifts secretness to the top-level key either way,
        so each output's value and secretness are those the round trip gave (`tests/harness/test_lean_monitor.py`)."""
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        mocks._ensure_event_loop()  # resource references deserialise on this thread's loop
        received, plain = _deserialized_request(request.object)
        secret_paths: set[str] = set()
        inputs = received if plain else _unwrap_secrets(received, "", secret_paths)
        args = pulumi.runtime.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=received,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
            transforms=mocks._resolve_callbacks(request.transforms),
        )
        id_, state = self.mocks.registered(args, inputs)
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        if state == received:  # the state is the inputs: the same values, the same secrets
            answer, outputs, output_secret_paths = request.object, dict(inputs), secret_paths
        else:
            answer = _sync_await(rpc.serialize_properties(state, {}))
            output_secret_paths = set()
            outputs = _unwrap_secrets(state, "", output_secret_paths)
        self.registrations.append(
            RecordedResource(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=request.custom,
                inputs=inputs,
                secret_paths=frozenset(secret_paths),
                parent=request.parent or None,
                # Sorted: the SDK sends them from a set (`rpc._expand_dependencies`), in an order that changes per run.
                dependencies=tuple(sorted(request.dependencies)),
                property_dependencies={
                    k: tuple(sorted(v.urns)) for k, v in sorted(request.propertyDependencies.items())
                },
                provider=request.provider or None,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=tuple(request.ignoreChanges),
                replace_on_changes=tuple(request.replaceOnChanges),
                custom_timeouts={
                    k: getattr(request.customTimeouts, k)
                    for k in ("create", "update", "delete")
                    if getattr(request.customTimeouts, k)
                },
                outputs=outputs,
                # The engine keeps an input's secretness on the output of the same name.
                output_secret_paths=frozenset(output_secret_paths | secret_paths),
            )
        )
        if self.on_registration is not None:
            self.on_registration()
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=answer)


@contextmanager
def _project_cwd(project_dir: Path) -> Iterator[None]:
    # `pulumi up` runs the program from the project directory with it on sys.path.
    previous_cwd, previous_path = Path.cwd(), list(sys.path)
    os.chdir(project_dir)
    sys.path.insert(0, str(project_dir))
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        sys.path[:] = previous_path


def _run_once(
    monitor: RecordingMonitor,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str],
    project_dir: Path,
) -> None:
    preview = monitor.mocks.preview
    _use_event_loop()
    with _project_cwd(project_dir):
        runtime_settings.reset_options()
        pulumi.runtime.set_all_config(dict(config), secret_keys)
        pulumi.runtime.set_mocks(monitor.mocks, project=project, stack=stack, preview=preview, monitor=monitor)
        # A fresh module namespace each run, as in a separate `pulumi up` process.
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        # Drain every RPC the program queued, as the language host does before it exits.
        _sync_await(wait_for_rpcs())
        outputs = getattr(runtime_settings.get_root_resource(), "outputs", {})
        monitor.stack_outputs = _unwrap_secrets(_sync_await(_resolve(outputs)), "", set())


_FORGOTTEN: list[asyncio.AbstractEventLoop] = []


def forget_event_loop() -> None:
    """In a fork: the next run makes a loop of its own. The inherited one shares the parent's epoll instance and
    self-pipe, so the fork may neither run it nor close it (closing unregisters the parent's descriptors); it is
    kept from the collector too, whose finaliser would close them, or whatever a later file got their numbers."""
    global _LOOP
    if _LOOP is not None:
        _FORGOTTEN.append(_LOOP)
    _LOOP = None


def _use_event_loop() -> None:
    # The SDK awaits through asyncio.get_event_loop(); code that ran asyncio.run() before us leaves none set.
    # One loop serves every run, so pending Output tasks of earlier runs are never torn down mid-flight.
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    asyncio.set_event_loop(_LOOP)


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return await _resolve(await value.future(with_unknowns=True))
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _resolve(v) for v in value]
    return value


def run_stack(
    stack: str,
    *,
    config_overrides: Mapping[str, Any] | None = None,
    project_dir: Path = REPO_ROOT,
    preview: bool = False,
    prior: Recording | None = None,
    missing_secrets: Sequence[str] = (),
    on_registration: Callable[[], object] | None = None,
) -> Recording:
    """Runs the stack program offline with the stack file's config (plus overrides) and records it.

    `preview=True` runs it as `pulumi preview` does: the SDK's dry-run mode, provider-computed values unknown
    except on resources that `prior` (an earlier `up`) already holds with the same inputs.

    Secret config that the stack file does not hold in plain text (unset, or `secure:` ciphertext only the
    CLI can decrypt) is filled with a placeholder, marked secret, and listed in `placeholder_secrets`.
    `missing_secrets` (an earlier run's `placeholder_secrets`) are filled up front rather than found by a failed run.
    `on_registration` is called after each registration is recorded (on the SDK's worker threads).
    """
    project, values = read_stack_config(stack, project_dir, config_overrides)
    config, secret_keys = engine_config(values)
    placeholders = list(secret_keys)
    for key in missing_secrets:
        if key not in config:
            config[key] = PLACEHOLDER_SECRET
            placeholders.append(key)
    while True:
        monitor = RecordingMonitor(OfflineMocks(preview=preview, prior=prior), on_registration)
        recording = Recording(
            project=project,
            stack=stack,
            resources=monitor.registrations,
            placeholder_secrets=placeholders,
            component_outputs=monitor.component_outputs,
            preview=preview,
        )
        try:
            _run_once(monitor, project, stack, config, placeholders, project_dir)
        except pulumi.config.ConfigMissingError as missing:
            if missing.secret and missing.key not in placeholders:
                config[missing.key] = PLACEHOLDER_SECRET
                placeholders.append(missing.key)
                continue
            raise ProgramFailed(missing, recording) from missing
        except Exception as error:
            raise ProgramFailed(error, recording) from error
        recording.stack_outputs = monitor.stack_outputs
        recording.resources = registration_order(monitor.registrations)
        return recording
