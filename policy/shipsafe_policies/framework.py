"""Turns plain check functions into CrossGuard policies.

A check is a generator of violation messages, each saying what to change. The wrapper supplies the policy
config merged over the schema defaults (so a check behaves the same with or without `Configure`) and filters on
resource types before any work. Values unknown at preview are never failed and never passed silently: a check
guards each independent item of work with `with item():` (`item_by_item`), which drops just that item, lets the
other items report their violations, and at the end re-raises the first unknown it met. pulumi-policy abandons
the policy for that resource there (`policy.py`: UnknownValueError becomes "can't run policy ... during preview",
advisory) while keeping what was already reported, and the harness lists the skip.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

Config = Mapping[str, Any]


class HasProps(Protocol):
    """What both `ResourceValidationArgs` and a stack's `PolicyResource` offer."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str
    name: str


ResourceCheck = Callable[[HasProps, Config], Iterable[str]]
StackCheck = Callable[[list[PolicyResource], Config], Iterable[tuple[str, str | None]]]
"""Yields (message, urn of the offending resource or None for the stack as a whole)."""


Subject = TypeVar("Subject")
Finding = TypeVar("Finding")


class Item:
    """`with item(): ...` drops the enclosed item of work when it reads an unknown value, and remembers that."""

    def __init__(self) -> None:
        self.unknown: UnknownValueError | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        try:
            yield
        except UnknownValueError as unknown:
            self.unknown = self.unknown or unknown


def item_by_item(
    check: Callable[[Subject, Config, Item], Iterator[Finding]],
) -> Callable[[Subject, Config], Iterator[Finding]]:
    """Runs a check whose items are guarded by `item`, then raises the first unknown an item met."""

    @functools.wraps(check)
    def run(subject: Subject, config: Config) -> Iterator[Finding]:
        item = Item()
        yield from check(subject, config, item)
        if item.unknown is not None:
            raise item.unknown

    return run


@dataclass(frozen=True)
class Setting:
    """One config property: JSON schema fragment plus its default (the engine fills defaults in)."""

    type: str
    default: Any
    description: str
    items: Mapping[str, Any] | None = None
    values: Mapping[str, Any] | None = None
    """For `object` settings: the JSON schema every value of the mapping must meet."""

    def schema(self) -> dict[str, Any]:
        result: dict[str, Any] = {"type": self.type, "default": self.default, "description": self.description}
        if self.items is not None:
            result["items"] = dict(self.items)
        if self.values is not None:
            result["additionalProperties"] = dict(self.values)
        return result


@dataclass(frozen=True)
class Rule:
    """Metadata shared by both policy kinds; `topic` names the twelve-factor factor or the threat."""

    name: str
    description: str
    topic: str
    family: str
    level: EnforcementLevel
    fix: str
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def config_schema(self) -> PolicyConfigSchema | None:
        if not self.settings:
            return None
        return PolicyConfigSchema(properties={k: s.schema() for k, s in self.settings.items()})

    def config(self, given: Config) -> dict[str, Any]:
        return {**{k: s.default for k, s in self.settings.items()}, **given}

    @property
    def full_description(self) -> str:
        """Every description names its twelve-factor factor or threat first."""
        return f"[{self.topic}] {self.description}"

    def tags(self) -> list[str]:
        return [f"family:{self.family}", f"topic:{self.topic}"]


@dataclass(frozen=True)
class Family:
    """A module of policies: `FAMILY.rule(...)` fills in the family and its usual topic."""

    name: str
    topic: str = ""

    def rule(
        self,
        name: str,
        description: str,
        fix: str,
        *,
        topic: str | None = None,
        level: EnforcementLevel = MANDATORY,
        **settings: Setting,
    ) -> Rule:
        return Rule(name, description, topic or self.topic, self.name, level, fix, settings)


def _policy_fields(rule: Rule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "description": rule.full_description,
        "enforcement_level": rule.level,
        "config_schema": rule.config_schema(),
        "tags": rule.tags(),
        "remediation_steps": rule.fix,
    }


def resource_policy(rule: Rule, check: ResourceCheck, types: frozenset[str] | None = None) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if types is not None and args.resource_type not in types:
            return
        for message in check(args, rule.config(args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(validate=validate, **_policy_fields(rule))


INPUTS_KEY = "__inputs"
"""Where pulumi-kubernetes keeps the inputs in a resource's state (`provider.go` `checkpointObject`)."""


def declared(resources: list[PolicyResource]) -> list[PolicyResource]:
    """The stack as the program declared it, with the graph (parent, dependencies) rebuilt over the new objects.

    Stack policies get each resource's *outputs* (pulumi/pulumi `step_generator.go` `AnalyzeResources`), and for
    Kubernetes those are the API server's object: defaults filled in (`spec.replicas` of an autoscaled
    Deployment), deprecated fields mirrored (`serviceAccount` from `serviceAccountName`), controller labels, status.
    A rule about what the stack declares must not trip over what the server added, so every stack policy reads the
    declared inputs: `__inputs` where the provider checkpointed the object, the outputs themselves where it
    returned the inputs unchanged (a preview whose server dry run was skipped) and for other providers.
    """
    copies = {
        r.urn: PolicyResource(
            r.resource_type, r.props.get(INPUTS_KEY, r.props), r.urn, r.name, r.opts, r.provider, None, [], {}
        )
        for r in resources
    }
    for original in resources:
        copy = copies[original.urn]
        copy.parent = copies.get(original.parent.urn) if original.parent is not None else None
        copy.dependencies = [copies[d.urn] for d in original.dependencies if d.urn in copies]
        copy.property_dependencies = {
            key: [copies[d.urn] for d in deps if d.urn in copies]
            for key, deps in original.property_dependencies.items()
        }
    return [copies[r.urn] for r in resources]


def stack_policy(rule: Rule, check: StackCheck) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for message, urn in check(declared(args.resources), rule.config(args.get_config())):
            report_violation(message, urn)

    return StackValidationPolicy(validate=validate, **_policy_fields(rule))
