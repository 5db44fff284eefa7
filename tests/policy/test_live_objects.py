"""Every stack policy finds on live objects exactly what it finds on the inputs.

The engine hands stack policies each resource's outputs (pulumi/pulumi `analyzer_plugin.go` `AnalyzeStack`, with the
internal keys stripped), and for Kubernetes those are whatever the API server returned: its defaults and deprecated
mirrors, controller labels, status, managed fields, an HPA's `replicas`, annotations controllers and webhooks add.
So a stack policy must judge relations the user declared the same way on any such object. This property test
holds every stack policy of the pack to that, with the additions generated, not listed: the API-server model of
each modelled version (`harness.apiserver`) plus seeded random extras, on the compliant stacks and on every
catalogue fault of the policy, a fixed number of examples per policy so a failure names its seed and reproduces.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from deploy.policy_link import pack_registry
from harness.analyzer import PolicyPackProcess, load_policy_config
from harness.apiserver import SERVER_VERSIONS, server_object
from harness.manifests import is_kubernetes
from harness.phases import after_up
from harness.recording import RecordedResource, Recording
from tests.conftest import STACKS
from tests.policy.conftest import CONFIG_DIR, IMAGE_BUILD
from tests.policy.stack_edits import use_build_context, write_build_context
from tests.policy.test_bad_variants import CASES, Case

EXAMPLES = 8
"""Seeded examples per stack policy: each a stack (compliant, or with one of the policy's catalogue faults), an API
server version and a draw of extras."""
STACK_POLICIES = sorted(
    rule.name for family in pack_registry().FAMILIES for rule in family.rules if rule.kind == "stack"
)
EXTRA = "extra.example.com/"
"""The domain of every random label and annotation key: no selector or policy of the stacks names it."""


def _random_token(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))


def _add_metadata(rng: random.Random, metadata: dict[str, Any]) -> None:
    """Labels and annotations a controller or a mutating webhook may add; never removes or changes one."""
    for field in ("labels", "annotations"):
        if rng.random() < 0.7:
            metadata.setdefault(field, {})[EXTRA + _random_token(rng)] = _random_token(rng)


def _extras(rng: random.Random, obj: dict[str, Any], autoscaled: dict[str, tuple[int, int]]) -> None:
    """What a live object may carry beyond the modelled server's answer."""
    metadata = obj.setdefault("metadata", {})
    _add_metadata(rng, metadata)
    if rng.random() < 0.5:
        metadata.setdefault("finalizers", []).append(EXTRA + "protect")
    metadata.setdefault("managedFields", []).append(
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": obj.get("apiVersion"), "time": "x"}
    )
    if rng.random() < 0.7:
        status = obj.setdefault("status", {})
        status[_random_token(rng)] = rng.randint(0, 5)
        status.setdefault("conditions", []).append({"type": _random_token(rng), "status": "Unknown"})
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    template = spec.get("template")
    if isinstance(template, dict):
        _add_metadata(rng, template.setdefault("metadata", {}))
    bounds = autoscaled.get(metadata.get("name", ""))
    if obj.get("kind") == "Deployment" and bounds is not None:
        spec["replicas"] = rng.randint(*bounds)  # the HPA's business, anywhere in its range


def _autoscaled(recording: Recording) -> dict[str, tuple[int, int]]:
    bounds = {}
    for resource in recording:
        if resource.inputs.get("kind") == "HorizontalPodAutoscaler":
            spec = resource.inputs["spec"]
            low = int(spec.get("minReplicas", 1))
            bounds[spec["scaleTargetRef"]["name"]] = (low, int(spec.get("maxReplicas", low)))
    return bounds


def live_view(recording: Recording, rng: random.Random) -> Recording:
    """The stack after `up` on a randomly chosen modelled server, each live object with random extras."""
    state = after_up(recording, rng.choice(SERVER_VERSIONS)).recording
    autoscaled = _autoscaled(recording)

    def with_extras(resource: RecordedResource) -> RecordedResource:
        if not is_kubernetes(resource):
            return resource
        outputs = copy.deepcopy(resource.outputs)
        _extras(rng, outputs, autoscaled)
        return dataclasses.replace(resource, outputs=outputs)

    return dataclasses.replace(state, resources=[with_extras(r) for r in state])


IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, child in value.items() for p in [(*path, key), *_leaf_paths(child, (*path, key))]]
    if isinstance(value, list):
        return [p for index, child in enumerate(value) for p in _leaf_paths(child, (*path, index))]
    return []


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _without(value: Any, path: tuple[Any, ...]) -> Any:
    copied = copy.deepcopy(value)
    del _get(copied, path[:-1])[path[-1]]
    return copied


def omit_defaults(recording: Recording, rng: random.Random, per_object: int = 4) -> Recording:
    """The stack with some fields left out that the API server model fills back in (its defaults, in the server's
    own value or another): a rule must read an absent field as the server's default, or judge it as a resource rule."""

    def omitted(resource: RecordedResource) -> RecordedResource:
        if not is_kubernetes(resource):
            return resource
        inputs = resource.inputs
        candidates = [p for p in _leaf_paths(inputs) if p[:2] not in IDENTITY and len(p) > 1 and isinstance(p[-1], str)]
        for path in rng.sample(candidates, min(per_object, len(candidates))):
            try:
                fewer = _without(inputs, path)
                _get(server_object(fewer, dry_run=True), path)
            except (KeyError, IndexError, TypeError, ValueError):
                continue  # the server does not fill it back in: leaving it out would change what was declared
            inputs = fewer
        return dataclasses.replace(resource, inputs=inputs, outputs=inputs)

    return dataclasses.replace(recording, resources=[omitted(r) for r in recording])


def declared_view(recording: Recording) -> Recording:
    """What the program declared: every Kubernetes object's outputs are its inputs (as a preview sends them when the
    server dry run is skipped)."""
    return dataclasses.replace(
        recording,
        resources=[
            dataclasses.replace(r, outputs=r.inputs, output_secret_paths=r.secret_paths) if is_kubernetes(r) else r
            for r in recording
        ],
    )


def _examples(policy: str) -> list[tuple[int, Case | None, str]]:
    """Every catalogue fault of the policy, then compliant stacks, at least `EXAMPLES` in all."""
    faults: list[Case | None] = [c for c in CASES if c.policy == policy]
    compliant: list[Case | None] = [None] * max(EXAMPLES - len(faults), 2)
    rng = random.Random(policy)
    return [
        (seed, fault, fault.stack if fault is not None else rng.choice(STACKS))
        for seed, fault in enumerate([*faults, *compliant])
    ]


def _findings(pack: PolicyPackProcess, recording: Recording, policy: str) -> set[tuple[str, str, str]]:
    report = pack.analyze(recording, resources=False)
    assert not [s for s in report.skipped if s.startswith(policy + " ")], "every value is known after up"
    return {(v.level, v.resource, v.message) for v in report.violations if v.policy == policy}


def test_every_stack_policy_is_held_to_live_objects() -> None:
    assert len(STACK_POLICIES) >= 12
    for policy in STACK_POLICIES:
        assert any(fault is not None for _, fault, _ in _examples(policy)), f"{policy}: no catalogue fault to vary"


@pytest.mark.parametrize("policy", STACK_POLICIES)
def test_stack_policy_finds_the_same_on_live_objects(
    policy: str,
    pack: PolicyPackProcess,
    compliant: dict[str, Recording],
    tmp_path: Path,
) -> None:
    for seed, fault, stack in _examples(policy):
        recording = compliant[stack]
        if fault is not None and fault.dockerfile is not None:
            context = write_build_context(tmp_path / str(seed), fault.dockerfile)
            recording = use_build_context(IMAGE_BUILD, context)(recording)
        if fault is not None:
            recording = fault.fault(recording)
        else:  # the faults stay as the catalogue declares them; compliant stacks also leave defaults out
            recording = omit_defaults(recording, random.Random(f"{policy}/omit/{seed}"))
        pack.configure(load_policy_config(CONFIG_DIR / f"{stack}.json"))
        declared = _findings(pack, declared_view(recording), policy)
        live = _findings(pack, live_view(recording, random.Random(f"{policy}/{seed}")), policy)
        example = f"{policy} example {seed} ({stack}, fault {fault.id if fault else 'none'})"
        assert live == declared, f"{example}: only live {live - declared}; only declared {declared - live}"
        if fault is not None and fault.level == "mandatory" and fault.resource is not None:
            assert any(resource == fault.resource for _, resource, _ in declared), f"{example}: fault not found"
