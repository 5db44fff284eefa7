"""The phases of a stack's life that the real engine shows the policy pack, modelled offline.

The engine runs resource policies (`Analyze`) on each resource's inputs and stack policies (`AnalyzeStack`) on
each resource's outputs, in preview as in `up` (pulumi/pulumi `pkg/resource/deploy/step_generator.go`
`AnalyzeResources`; `deployment_executor.go` calls it without a dry-run check). What "outputs" are depends on the
phase, because pulumi-kubernetes returns different things (`provider/pkg/provider/provider.go`):

- **first preview** (nothing deployed yet): `Create` with `preview` returns the inputs unchanged when they hold
  unknown values, when the kind's CRD is missing, or when the server dry run fails because the namespace does not
  exist yet (`await.go` `namespaceError`, a `PreviewError`). A cluster-scoped object (the Namespace) gets a server
  dry run: defaulted, checkpointed with `__inputs`, `status` removed.
- **after up**: every object is the live object the API server returned after the await, checkpointed with
  `__inputs`, `__initialApiVersion` and `__fieldManager` (`checkpointObject`).
- **later preview** (the next release against that state): unchanged resources keep their state (a "same" step);
  an `Update` or a replacing `Create` with unknown inputs returns the inputs; otherwise a server dry run of the new
  inputs, which for an update keeps the live object's status and identity.

Not modelled: see `harness.apiserver.NOT_MODELLED` (admission webhooks, quotas, the provider's Check step, ...).
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.apiserver import (
    CREATE_FIELD_MANAGER,
    NEWEST_SERVER,
    SERVER_VERSIONS,
    ServerVersion,
    checkpoint,
    server_object,
    server_objects,
)
from harness.manifests import is_kubernetes
from harness.provider_check import checked_inputs
from harness.recording import RecordedResource, Recording, contains_unknown, engine_outputs
from harness.replacement import PlannedStep, plan_update
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT, read_stack_config
from harness.standby_run import StandbyRun

NEXT_RELEASE_SHA = "0e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5"
"""The modelled next commit of a later preview (any SHA other than the deployed one plays the same part)."""
NEXT_RELEASE_DIGEST = "sha256:" + "1e" * 32
"""The modelled digest of the next release's image when the stack deploys a prebuilt image."""


class Phase(enum.StrEnum):
    FIRST_PREVIEW = "first-preview"
    AFTER_UP = "after-up"
    LATER_PREVIEW = "later-preview"


ALL_PHASES = tuple(Phase)


class Source(enum.StrEnum):
    """Where a resource's outputs come from in a phase."""

    LIVE = "live object"
    DRY_RUN = "server dry run"
    UNCHANGED = "state (unchanged)"
    INPUTS_UNKNOWN = "inputs (dry run skipped: unknown values)"
    INPUTS_NO_NAMESPACE = "inputs (dry run failed: namespace not created yet)"
    INPUTS_ALREADY_EXISTS = "inputs (dry run failed: replaced under the same name)"
    PROVIDER = "provider outputs"


@dataclass(frozen=True)
class PhaseRecording:
    phase: Phase
    recording: Recording
    """Inputs as the program registered them in this phase (Analyze), outputs as the phase holds them (AnalyzeStack)."""
    sources: Mapping[str, Source]
    """Per URN, where its outputs come from."""
    server: ServerVersion = NEWEST_SERVER
    """The Kubernetes API server version the outputs are modelled for."""

    @property
    def label(self) -> str:
        """The phase and the server, as reports name them: `after-up (Kubernetes 1.30)`."""
        return f"{self.phase} (Kubernetes {server_name(self.server)})"

    def summary(self) -> str:
        counts = Counter(self.sources.values())
        return ", ".join(f"{n} {source}" for source, n in sorted(counts.items(), key=lambda item: -item[1]))


def _namespace(resource: RecordedResource) -> str | None:
    metadata = resource.inputs.get("metadata") or {}
    return None if resource.inputs.get("kind") == "Namespace" else metadata.get("namespace")


def _checkpointed(resource: RecordedResource, live: dict[str, Any]) -> RecordedResource:
    """The resource with `checkpointObject`'s outputs; secrets stay secret at their input paths, under `__inputs`,
    and in a Secret's `data` when `stringData` was secret (provider.go `checkpointObject`)."""
    paths = set(resource.secret_paths) | {f"__inputs.{p}" for p in resource.secret_paths}
    for path in resource.secret_paths:
        if path == "stringData" or path.startswith("stringData."):
            paths.add("data" + path.removeprefix("stringData"))
    return dataclasses.replace(
        resource, outputs=checkpoint(resource.inputs, live), output_secret_paths=frozenset(paths)
    )


def _as_inputs(resource: RecordedResource) -> RecordedResource:
    # The provider returns the request's properties as they came, no `__inputs`; the request holds what its
    # Check returned (provider.go `Create`/`Update` in preview), not the program's raw inputs.
    checked, secret_paths = checked_inputs(resource)
    return dataclasses.replace(resource, outputs=checked, output_secret_paths=secret_paths)


def _with(recording: Recording, resources: Iterable[RecordedResource]) -> Recording:
    return dataclasses.replace(recording, resources=list(resources))


def server_name(server: ServerVersion) -> str:
    return ".".join(str(part) for part in server)


def _created(resource: RecordedResource, *, dry_run: bool, servers: Sequence[ServerVersion]) -> list[dict[str, Any]]:
    # pulumi-kubernetes creates with a plain Create under its static field manager (`apiserver.CREATE_FIELD_MANAGER`).
    return server_objects(
        resource.inputs, dry_run=dry_run, field_manager=CREATE_FIELD_MANAGER, operation="Update", servers=servers
    )


def _preview_create(
    resource: RecordedResource, *, dry_run_fails: Source | None, server: ServerVersion
) -> tuple[Source, RecordedResource]:
    """What a preview's `Create` returns (provider.go `Create`): the inputs when they hold unknowns or the server dry
    run fails (`dry_run_fails` says why), else the dry-run object checkpointed."""
    if contains_unknown(resource.inputs):
        return Source.INPUTS_UNKNOWN, _as_inputs(resource)
    if dry_run_fails is not None:
        return dry_run_fails, _as_inputs(resource)
    return Source.DRY_RUN, _checkpointed(resource, _created(resource, dry_run=True, servers=(server,))[0])


def _modelled(
    preview: Recording,
    phase: Phase,
    server: ServerVersion,
    model: Callable[[RecordedResource], tuple[Source, RecordedResource]],
) -> PhaseRecording:
    sources: dict[str, Source] = {}
    resources = []
    for resource in preview:
        sources[resource.urn], modelled = model(resource) if is_kubernetes(resource) else (Source.PROVIDER, resource)
        resources.append(modelled)
    return PhaseRecording(phase, _with(preview, resources), sources, server)


def first_preview(preview: Recording, server: ServerVersion = NEWEST_SERVER) -> PhaseRecording:
    """`pulumi preview` of a stack never deployed: `preview` is the program run in preview mode."""
    created_namespaces = {r.inputs["metadata"]["name"] for r in preview if r.inputs.get("kind") == "Namespace"}

    def model(resource: RecordedResource) -> tuple[Source, RecordedResource]:
        no_namespace = _namespace(resource) in created_namespaces
        fails = Source.INPUTS_NO_NAMESPACE if no_namespace else None
        return _preview_create(resource, dry_run_fails=fails, server=server)

    return _modelled(preview, Phase.FIRST_PREVIEW, server, model)


def after_up(up: Recording, server: ServerVersion = NEWEST_SERVER) -> PhaseRecording:
    """The state `pulumi up` leaves: `up` is the program run in update mode (every value known)."""
    return after_up_views(up, (server,))[0]


def after_up_views(up: Recording, servers: Sequence[ServerVersion] = SERVER_VERSIONS) -> list[PhaseRecording]:
    """`after_up` for each of `servers`, each object modelled for all of them at once (`server_objects`: what no
    version changes is done once)."""
    sources: dict[str, Source] = {}
    views: list[list[RecordedResource]] = [[] for _ in servers]
    for resource in up:
        if is_kubernetes(resource):
            sources[resource.urn] = Source.LIVE
            for resources, live in zip(views, _created(resource, dry_run=False, servers=servers), strict=True):
                resources.append(_checkpointed(resource, live))
        else:
            sources[resource.urn] = Source.PROVIDER
            for resources in views:
                resources.append(resource)
    return [
        PhaseRecording(Phase.AFTER_UP, _with(up, resources), dict(sources), server)
        for resources, server in zip(views, servers, strict=True)
    ]


def _identity(live: Mapping[str, Any]) -> tuple[Any, Any]:
    metadata = live.get("metadata") or {}
    return metadata.get("name"), metadata.get("namespace")


def _update_dry_run(new_inputs: dict[str, Any], old_live: Mapping[str, Any], server: ServerVersion) -> dict[str, Any]:
    """A server-side apply dry run of changed inputs over the live object: the new spec, defaulted, with the live
    object's identity and status, and the generation bumped (provider.go `Update` keeps `status` in preview)."""
    merged = server_object(new_inputs, dry_run=True, server=server)
    old_metadata = old_live.get("metadata") or {}
    metadata = merged.setdefault("metadata", {})
    for key in ("uid", "creationTimestamp", "resourceVersion"):
        if key in old_metadata:
            metadata[key] = old_metadata[key]
    if "generation" in old_metadata:
        metadata["generation"] = old_metadata["generation"] + 1
    if "status" in old_live:
        merged["status"] = old_live["status"]
    return merged


def later_preview(
    state: PhaseRecording, preview: Recording, steps: Sequence[PlannedStep] | None = None
) -> PhaseRecording:
    """`pulumi preview` of the next release against `state` (an after-up phase); `preview` is the program run in
    preview mode with `prior=state.recording`. Which step each resource takes is the engine's and the providers'
    diff (`harness.replacement.plan_update`); `steps`, when given, is that plan, made once for every server's state
    (it reads inputs and options, which no server changes)."""
    old = {r.urn: r for r in state.recording}
    ops = {step.urn: step.op for step in (plan_update(state.recording, preview) if steps is None else steps)}

    def model(resource: RecordedResource) -> tuple[Source, RecordedResource]:
        before, op = old.get(resource.urn), ops.get(resource.urn, "create")
        if before is None or op == "create":
            return _preview_create(resource, dry_run_fails=None, server=state.server)
        if op == "same":
            return Source.UNCHANGED, dataclasses.replace(
                resource, outputs=before.outputs, output_secret_paths=before.output_secret_paths
            )
        if op == "replace":
            # A replacement under the same name deletes first; its preview Create meets the old object and the
            # provider returns the inputs (provider.go `Create`: IsAlreadyExists under server-side apply).
            same_name = _identity(before.inputs) == _identity(resource.inputs)
            fails = Source.INPUTS_ALREADY_EXISTS if same_name else None
            return _preview_create(resource, dry_run_fails=fails, server=state.server)
        if contains_unknown(resource.inputs):  # provider.go `Update`: unknowns skip the dry run
            return Source.INPUTS_UNKNOWN, _as_inputs(resource)
        live = engine_outputs(before.outputs)
        return Source.DRY_RUN, _checkpointed(resource, _update_dry_run(resource.inputs, live, state.server))

    modelled = _modelled(preview, Phase.LATER_PREVIEW, state.server, model)
    # Other providers' unchanged resources keep their state too (a "same" step returns the old outputs).
    resources = [
        dataclasses.replace(r, outputs=old[r.urn].outputs, output_secret_paths=old[r.urn].output_secret_paths)
        if not is_kubernetes(r) and ops.get(r.urn) == "same"
        else r
        for r in modelled.recording
    ]
    sources = {urn: Source.UNCHANGED if ops.get(urn) == "same" else source for urn, source in modelled.sources.items()}
    return PhaseRecording(Phase.LATER_PREVIEW, _with(preview, resources), sources, state.server)


def next_release_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config for the modelled next release: a new commit, and for a prebuilt stack the image staging built of it."""
    overrides: dict[str, Any] = {"shipsafe:gitSha": NEXT_RELEASE_SHA}
    if config.get("shipsafe:imageSource") == "prebuilt" and isinstance(config.get("shipsafe:imageRef"), str):
        repository = config["shipsafe:imageRef"].split("@", 1)[0].rsplit(":", 1)[0]
        overrides["shipsafe:imageRef"] = f"{repository}:{NEXT_RELEASE_SHA[:12]}@{NEXT_RELEASE_DIGEST}"
        overrides["shipsafe:gitSha"] = NEXT_RELEASE_SHA[:12]
    return overrides


def model_phases(
    stack: str,
    *,
    config_overrides: Mapping[str, Any] | None = None,
    project_dir: Path = REPO_ROOT,
    phases: Iterable[Phase] = ALL_PHASES,
    servers: Sequence[ServerVersion] = SERVER_VERSIONS,
    on_phase: Callable[[PhaseRecording], object] | None = None,
    on_run: Callable[[str], object] | None = None,
) -> list[PhaseRecording]:
    """Run the program once per phase it needs and model each requested phase for each API server version, in the
    order a stack lives them (phase by phase, each for every server). The program's runs do not depend on the
    server, only the outputs do. `on_phase` gets each phase as soon as it is modelled (the preview hands it to the
    policy pack, another process, while the program runs for the next); `on_run` is told before each program run
    which run it is (`before up`, `up`, `next release`), for a progress display."""
    wanted = set(phases)
    overrides = dict(config_overrides or {})
    result: list[PhaseRecording] = []

    def modelled(phase: PhaseRecording) -> None:
        result.append(phase)
        if on_phase is not None:
            on_phase(phase)

    missing: Sequence[str] = ()  # secrets an earlier run found unset: later runs need not fail to find them

    def running(what: str) -> None:
        if on_run is not None:
            on_run(what)

    def run_up(unset: Sequence[str]) -> Recording:
        return run_stack(stack, config_overrides=overrides, project_dir=project_dir, missing_secrets=unset)

    needs_up = bool(wanted & {Phase.AFTER_UP, Phase.LATER_PREVIEW})
    # `up` does not read the first preview's run: a fork may run it meanwhile (`harness.standby_run`).
    with StandbyRun(lambda: run_up(()), enabled=needs_up and Phase.FIRST_PREVIEW in wanted) as standby:
        if Phase.FIRST_PREVIEW in wanted:
            running("before up")
            preview = run_stack(
                stack,
                config_overrides=overrides,
                project_dir=project_dir,
                preview=True,
                on_registration=standby.registered,
            )
            missing = preview.placeholder_secrets
            for server in servers:
                modelled(first_preview(preview, server))
        if needs_up:
            running("up")
            forked = standby.result(missing)
            up = forked if forked is not None else run_up(missing)
    if needs_up:
        states = after_up_views(up, servers)
        missing = up.placeholder_secrets
        if Phase.AFTER_UP in wanted:
            for state in states:
                modelled(state)
        if Phase.LATER_PREVIEW in wanted:
            _, file_config = read_stack_config(stack, project_dir)
            next_overrides = {**overrides, **next_release_overrides({**file_config, **overrides})}
            running("next release")
            preview = run_stack(
                stack,
                config_overrides=next_overrides,
                project_dir=project_dir,
                preview=True,
                prior=up,  # "same" steps are decided on inputs, which no server changes
                missing_secrets=missing,
            )
            steps = plan_update(up, preview)
            for state in states:
                modelled(later_preview(state, preview, steps))
    return result
