"""Runs one rule of the pack, in this process, on one resource or one stack, with the arguments pulumi-policy's
server would build for it: the pulumi-policy way of testing a rule, without a pack process or gRPC.

Everything the rule receives comes from the code the server runs (pulumi-policy 1.21 `policy.py`
`_PolicyAnalyzerServicer`): the engine's requests as `harness.analyzer` builds them for the gRPC pack (the provider's
checked inputs for Analyze, outputs without internal keys for AnalyzeStack, numbers as floats, secrets marked),
turned into `ResourceValidationArgs` / `StackValidationArgs` as `Analyze` and `AnalyzeStack` do
(`MessageToDict`, `deserialize_properties`, `unknown_checking_proxy`, the servicer's own options, provider and
policy-config helpers), and the config the engine's Configure call would give that servicer: the rule's schema
defaults, then the stack's `policy/config/<stack>.json`. The rule runs through the CrossGuard policy the pack
registers (`Rule.policy`), so its type filter, waivers and messages are the ones `pulumi preview` shows.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi_policy.policy as sdk
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from deploy.policy_link import pack_registry
from harness.analyzer import (
    analyze_request,
    configure_request,
    load_policy_config,
    policy_infos,
    stack_resource,
)
from harness.recording import Recording
from tests.policy.conftest import CONFIG_DIR


@dataclass(frozen=True)
class Reported:
    """One `report_violation` call: the message as the rule wrote it, and the resource it blames."""

    resource: str
    """The resource's Pulumi name, or `(stack)`."""
    message: str


@dataclass
class Outcome:
    level: str
    """The rule's enforcement level for the stack (the pack's, then the stack's policy config)."""
    reported: list[Reported] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Resources the rule could not judge because a value is unknown (the server reports "can't run policy")."""
    judged: list[str] = field(default_factory=list)
    """Resources the rule ran on (for a stack rule: `(stack)`)."""

    def on(self, resource: str) -> list[str]:
        return [r.message for r in self.reported if r.resource == resource]


def _props(properties: struct_pb2.Struct) -> Any:
    # As `Analyze` and `AnalyzeStack` convert every resource's properties, per policy.
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(properties)))


class PackInProcess:
    """The pack's policies and one pulumi-policy servicer configured for one stack, as the engine configures it."""

    def __init__(self, stack: str) -> None:
        registry = pack_registry()
        self.policies = {policy.name: policy for policy in registry.all_policies()}
        self.servicer = sdk._PolicyAnalyzerServicer(
            "shipsafe", "1.0.0", list(self.policies.values()), sdk.EnforcementLevel.MANDATORY
        )
        infos = policy_infos(self.servicer.GetAnalyzerInfo(empty_pb2.Empty(), None))
        request, self.levels = configure_request(infos, load_policy_config(CONFIG_DIR / f"{stack}.json"))
        self.servicer.Configure(request, None)

    def run(self, rule: str, recording: Recording, resource: str | None = None) -> Outcome:
        """Runs `rule` on `resource` of the recording (a resource rule; None: on each resource, as a preview
        does) or on the whole stack (a stack rule)."""
        policy = self.policies[rule]
        config = self.servicer._get_policy_config(rule)
        outcome = Outcome(self.levels[rule])
        by_urn = {r.urn: r for r in recording}
        names = {urn: r.name for urn, r in by_urn.items()}

        def judge(subject: str, validate: Any, args: Any) -> None:
            outcome.judged.append(subject)

            def report_violation(message: str, urn: str | None = None) -> None:
                outcome.reported.append(Reported(names.get(urn or "", subject), message))

            try:
                validate(args, report_violation)
            except UnknownValueError:
                outcome.skipped.append(subject)

        if isinstance(policy, sdk.ResourceValidationPolicy):
            subjects = [recording.named(resource)] if resource is not None else list(recording)
            for subject in subjects:
                request = analyze_request(subject, by_urn)
                args = sdk.ResourceValidationArgs(
                    request.type,
                    _props(request.properties),
                    request.urn,
                    request.name,
                    self.servicer._get_resource_options(request),
                    self.servicer._get_provider_resource(request),
                    config,
                )
                judge(subject.name, policy.validate, args)
        else:
            stack = [stack_resource(r, by_urn) for r in recording]
            judge("(stack)", policy.validate, sdk.StackValidationArgs(self._stack_resources(stack), config))
        return outcome

    def _stack_resources(self, stack: list[analyzer_pb2.AnalyzerResource]) -> list[sdk.PolicyResource]:
        """`AnalyzeStack`'s resources: each with its parent and dependencies linked to the others by URN."""
        resources = {
            r.urn: sdk.PolicyResource(
                r.type,
                _props(r.properties),
                r.urn,
                r.name,
                self.servicer._get_resource_options(r),
                self.servicer._get_provider_resource(r),
                None,
                [],
                {},
            )
            for r in stack
        }
        for r in stack:
            resource = resources[r.urn]
            resource.parent = resources.get(r.parent)
            resource.dependencies = [resources[d] for d in r.dependencies if d in resources]
            resource.property_dependencies = {
                key: [resources[d] for d in deps.urns if d in resources] for key, deps in r.propertyDependencies.items()
            }
        return list(resources.values())


@functools.cache
def pack_for(stack: str) -> PackInProcess:
    """One configured pack per stack for the whole session (building one is cheap, but not free)."""
    return PackInProcess(stack)


def rules() -> Mapping[str, Any]:
    """Every rule of the pack, by name, as the registry declares it."""
    return {rule.name: rule for rule in pack_registry().all_rules()}
