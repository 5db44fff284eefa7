"""The reference and traffic stack rules give the same findings on the API server's objects as on what the program
declared: the real engine hands stack policies each resource's outputs without `__inputs` (pulumi/pulumi
`analyzer_plugin.go` AnalyzeStack, `SkipInternalKeys`), i.e. the live object with defaults, controller labels,
annotations and an HPA-set `replicas`. Each check is called directly on both views of the compliant stacks and of
every catalogue case (violating and compliant) for these rules, the live view with random server-side additions on
top of the modelled ones.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any, cast

import pytest
from pulumi_policy import PolicyResource

from harness.manifests import is_kubernetes
from harness.phases import after_up
from harness.policy_link import pack_registry
from harness.recording import Recording
from tests.policy.test_bad_variants import CASES, COMPLIANT

RULES = (
    "rollout-selector-integrity",
    "rollout-pdb-coverage",
    "rollout-ready-traffic-only",
    "refs-service-target-ports",
    "refs-route-backends",
    "refs-config-keys",
    "refs-hpa-target",
    "refs-network-policy-rules",
)
_CATALOGUE: list[Any] = [*CASES, *COMPLIANT]
SCENARIOS: list[tuple[str, Any]] = [("staging", None), ("prod", None)]
SCENARIOS += [(c.stack, c) for c in _CATALOGUE if c.policy in RULES]
SEEDS = range(3)


def _resource(type_: str, props: dict[str, Any], urn: str, name: str) -> PolicyResource:
    return PolicyResource(type_, props, urn, name, cast(Any, None), None, None, [], {})


def _templates(props: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = props.get("spec") or {}
    for template in (spec.get("template"), ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")):
        if isinstance(template, dict):
            yield template


def _with_server_additions(props: dict[str, Any], scaled: set[Any], rng: random.Random) -> dict[str, Any]:
    """What else an API server or its controllers may put on an object: labels and annotations added by
    controllers and webhooks (on the object and its pod template), fields of newer API versions, HPA replicas."""
    live = copy.deepcopy(props)
    metadata = live.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[f"example.com/added-{rng.randrange(99)}"] = "by a controller"
    for template in _templates(live):
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels[f"example.com/injected-{rng.randrange(99)}"] = str(rng.randrange(10**6))
        template["metadata"].setdefault("annotations", {})["example.com/restartedAt"] = "2026-01-01T00:00:00Z"
    if isinstance(live.get("spec"), dict):
        live["spec"][f"fieldOfANewerServer{rng.randrange(9)}"] = {"enabled": True}
    if live.get("kind") == "Deployment" and metadata.get("name") in scaled:
        live["spec"]["replicas"] = rng.randrange(3, 11)
    return live


def _views(recording: Recording, seed: int) -> tuple[list[PolicyResource], list[PolicyResource]]:
    """(as declared, as the API server returns it after up with random additions)."""
    rng = random.Random(seed)
    live = {r.urn: r.outputs for r in after_up(recording).recording}
    scaled = {
        ((r.inputs.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
        for r in recording
        if r.inputs.get("kind") == "HorizontalPodAutoscaler"
    }
    declared, returned = [], []
    for r in recording:
        if not is_kubernetes(r):
            continue
        declared.append(_resource(r.type, r.inputs, r.urn, r.name))
        outputs = {k: v for k, v in live[r.urn].items() if not k.startswith("__")}  # SkipInternalKeys
        returned.append(_resource(r.type, _with_server_additions(outputs, scaled, rng), r.urn, r.name))
    return declared, returned


def _findings(rule: Any, resources: list[PolicyResource]) -> set[tuple[str, str | None]]:
    return {(str(message), urn) for message, urn in rule.check(resources, rule.config({}))}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("stack", "case"), SCENARIOS, ids=[f"{s}-{c.id}" if c else f"{s}-compliant" for s, c in SCENARIOS]
)
def test_stack_rules_judge_live_objects_as_declared_ones(
    stack: str, case: Any, seed: int, recordings: dict[str, Recording]
) -> None:
    edit = getattr(case, "fault", None) or getattr(case, "change", None)
    recording = edit(recordings[stack]) if edit else recordings[stack]
    declared, live = _views(recording, seed)
    rules = {rule.name: rule for rule in pack_registry().all_rules()}
    for name in RULES:
        expected = _findings(rules[name], declared)
        assert _findings(rules[name], live) == expected, f"{name} differs on live objects"
        if case is not None and case.policy == name and hasattr(case, "fault"):
            assert expected, f"{case.id}: {name} found nothing on the declared objects"
