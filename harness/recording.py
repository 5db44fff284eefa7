"""What one offline run of the stack program registered: the data the preview, the tests and the policy checks read."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

MODELLED_DIGEST_PREFIX = "sha256:" + "0ff11e" * 4
"""How every digest the offline run invents begins ("0ff11e" reads "offline"), so none passes for a real image."""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the engine marshals a value unknown during preview (`pulumi.runtime.rpc.UNKNOWN`, Go `UnknownStringValue`):
recorded inputs and outputs carry it as this string, exactly as it travels to the policy pack."""


def contains_unknown(value: Any) -> bool:
    """Whether the value holds the unknown marker anywhere (pulumi-kubernetes `util.go` `hasComputedValue`)."""
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list):
        return value == UNKNOWN
    for item in value:  # a loop rather than any(): this runs on every value of every previewed resource
        if isinstance(item, dict | list):
            if contains_unknown(item):
                return True
        elif item == UNKNOWN:
            return True
    return False


DOCKER_IMAGE = "docker:index/image:Image"
"""pulumi-docker's `Image`, the one non-Kubernetes resource whose state the engine model shapes itself."""

INTERNAL_KEY_PREFIX = "__"
"""pulumi/pulumi `sdk/go/common/resource/properties.go` `IsInternalPropertyKey`."""


def engine_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs as the engine sends them to a stack policy: pulumi/pulumi `pkg/resource/plugin/analyzer_plugin.go`
    `AnalyzeStack` marshals them with `SkipInternalKeys: true`, and `sdk/go/common/resource/plugin/rpc.go`
    `MarshalProperties` drops every top-level key `resource.IsInternalPropertyKey` holds for (a `__` prefix:
    pulumi-kubernetes' `__inputs`, `__initialApiVersion`, `__fieldManager`; pulumi-docker's `__inputs`)."""
    return {key: value for key, value in outputs.items() if not key.startswith(INTERNAL_KEY_PREFIX)}


@dataclass(frozen=True)
class RecordedResource:
    """One RegisterResource call as the engine would have received it."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    """Inputs with secrets unwrapped to their plain values (what a policy sees). Kubernetes keys are camelCase."""
    secret_paths: frozenset[str]
    """Dotted paths into ``inputs`` whose values were Pulumi secrets (for example ``stringData.password``)."""
    parent: str | None
    dependencies: tuple[str, ...]
    """URNs from ``depends_on`` and from Outputs the inputs were built from, as the SDK sends them."""
    property_dependencies: dict[str, tuple[str, ...]]
    provider: str | None
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    custom_timeouts: dict[str, str]
    outputs: dict[str, Any]
    """What the resource's state holds: what the mocks returned (inputs plus stand-ins for computed values), or,
    once `harness.phases` modelled a phase, what the provider would return in it (for Kubernetes, the API server's
    object checkpointed with `__inputs`). Stack policies see this without its top-level `__` keys, as the engine
    sends it (`engine_outputs`)."""
    output_secret_paths: frozenset[str]
    """Dotted paths into ``outputs`` whose values are secrets."""


def _provider_urn(reference: str) -> str:
    return reference.rsplit("::", 1)[0] if reference.count("::") > 3 else reference


def registration_order(resources: Iterable[RecordedResource]) -> list[RecordedResource]:
    """The resources in one order every run gives: each after its parent, its dependencies and its provider (an
    order the engine could have received them in), ties broken by URN. The SDK registers a resource once its inputs
    resolve, on a thread pool, so two runs of the same program register in different orders; what reports list in
    registration order (the next release's steps, the resource tree) would change between runs."""
    by_urn = {r.urn: r for r in resources}
    waiting_on: dict[str, set[str]] = {}
    dependents: dict[str, list[str]] = {urn: [] for urn in by_urn}
    for urn, resource in by_urn.items():
        before = {resource.parent or "", _provider_urn(resource.provider or ""), *resource.dependencies}
        before |= {u for urns in resource.property_dependencies.values() for u in urns}
        waiting_on[urn] = {u for u in before if u in by_urn and u != urn}
        for earlier in waiting_on[urn]:
            dependents[earlier].append(urn)
    ready = [urn for urn, earlier in waiting_on.items() if not earlier]
    heapq.heapify(ready)
    ordered: list[RecordedResource] = []
    while ready:
        urn = heapq.heappop(ready)
        ordered.append(by_urn[urn])
        for later in dependents[urn]:
            waiting_on[later].discard(urn)
            if not waiting_on[later]:
                heapq.heappush(ready, later)
    if len(ordered) != len(by_urn):  # a cycle cannot be registered; keep what the run gave
        return list(by_urn.values())
    return ordered


@dataclass
class Recording:
    project: str
    stack: str
    resources: list[RecordedResource] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)
    component_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What each ComponentResource passed to `register_outputs`, by URN."""
    placeholder_secrets: list[str] = field(default_factory=list)
    """Secret config keys the stack file did not hold (or held encrypted) and the run filled with stand-ins."""
    preview: bool = True
    """Whether the program ran as `pulumi preview` runs it (the SDK's dry run) or as `pulumi up` does; the engine
    starts the policy pack of that deployment with the same flag (`harness.analyzer.PolicyPackProcess`)."""

    def __iter__(self) -> Iterator[RecordedResource]:
        return iter(self.resources)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self, urn: str) -> RecordedResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def children_of(self, urn: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == urn]
