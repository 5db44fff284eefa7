"""Turns plain check functions into CrossGuard policies.

A check is a generator of violation messages, each saying what to change. The wrapper supplies the policy
config merged over the schema defaults (so a check behaves the same with or without `Configure`) and filters on
resource types before any work. Values unknown at preview are never failed and never passed silently: a check
guards each independent item of work with `with item():` (`item_by_item`), which drops just that item, lets the
other items report their violations, and at the end re-raises the first unknown it met. pulumi-policy abandons
the policy for that resource there (`policy.py`: UnknownValueError becomes "can't run policy ... during preview",
advisory) while keeping what was already reported, and the harness lists the skip.

Every violation names what produced the offending field and who may change the rule (`explain`): the `shipsafe:`
keys from the object's `shipsafe.dev/config-keys` annotation, which the stack's components set, so the link
travels with the resources to a real `pulumi preview`; and the policy settings the platform owner sets
(`Setting.platform`), when the finding is about one of them.

A resource may waive one rule for itself only, with a written reason: the annotation
`shipsafe.dev/waive.<policy-name>: "<reason>"` (`waiver`). The rule then reports nothing on that resource, and the
waiver section reports the waiver itself in every preview (pulumi-policy fixes a diagnostic's level per policy:
`policy.py` `_create_report_violation`, so the waived finding cannot be re-levelled inside its own rule).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

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

from .reading import derived, read_props, read_request, untraced_unknowns

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

Config = Mapping[str, Any]


class HasProps(Protocol):
    """What both `ResourceValidationArgs` and a stack's `PolicyResource` offer."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str
    name: str


CONFIG_KEYS_ANNOTATION = "shipsafe.dev/config-keys"
"""JSON object: field path -> the `shipsafe:` keys that produced it (`components/config_link.py` writes it; paths
`pod.<field>` and `container.<field>` stand for the pod spec and each container, others start at the object)."""


@dataclass(frozen=True)
class Finding:
    """A violation with where it comes from: `fields` of the offending object (paths as in its config-keys
    annotation) and `settings` of this policy the platform owner could change instead. A check that yields a plain
    message gets its rule's `fields` and platform settings."""

    message: str
    fields: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()


ResourceCheck = Callable[[HasProps, Config], Iterable[str | Finding]]
StackCheck = Callable[[list[PolicyResource], Config], Iterable[tuple[str | Finding, str | None]]]
"""Yields (message, urn of the offending resource or None for the stack as a whole)."""
Check = TypeVar("Check", ResourceCheck, StackCheck)


Subject = TypeVar("Subject")
Result = TypeVar("Result")


class Item:
    """`with item(): ...` drops the enclosed item of work when it reads an unknown value, and remembers that.
    (A plain context manager, not `contextlib`'s generator one: rules enter one per container, port or key.)"""

    def __init__(self) -> None:
        self.unknown: UnknownValueError | None = None

    def __call__(self) -> Item:
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> bool:
        if isinstance(error, UnknownValueError):
            self.unknown = self.unknown or error
            return True
        return False


def item_by_item(
    check: Callable[[Subject, Config, Item], Iterator[Result]],
) -> Callable[[Subject, Config], Iterator[Result]]:
    """Runs a check whose items are guarded by `item`, then raises the first unknown an item met."""

    @functools.wraps(check)
    def run(subject: Subject, config: Config) -> Iterator[Result]:
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
    platform: bool = False
    """A constraint the platform owner sets per stack (`policy/config/<stack>.json`): violations name it as the
    other way out, and the offline preview checks the stack's settings against it before the program runs."""

    def schema(self) -> dict[str, Any]:
        result: dict[str, Any] = {"type": self.type, "default": self.default, "description": self.description}
        if self.items is not None:
            result["items"] = dict(self.items)
        if self.values is not None:
            result["additionalProperties"] = dict(self.values)
        return result


@dataclass(frozen=True)
class Floor:
    """What a policy config may not lower for this rule (`floor.py` refuses it, in the pack's Configure and
    offline): the rule stays at its declared level, never advisory or disabled; a bounded setting stays within its
    bound, a `free` one may take any valid value, and every other setting keeps its default (a setting that narrows
    what the rule judges, such as `partOf`, would otherwise switch the rule off without lowering its level).
    `why` is what the policy reference says."""

    why: str
    at_least: Mapping[str, float] = field(default_factory=dict)
    """Numeric settings a policy config may not set lower (e.g. `minReplicas`)."""
    at_most: Mapping[str, float] = field(default_factory=dict)
    """Numeric settings a policy config may not set higher (e.g. `maxBackoffLimit`)."""
    free: Mapping[str, str] = field(default_factory=dict)
    """Settings a policy config may change, each with why changing it cannot weaken the rule."""
    every_stack: bool = False
    """Held in every stack, not only production: the rule judges the image a build produces, and the image any
    stack builds is the one promoted to production (build once, promote the same image)."""

    def settings(self) -> list[str]:
        """The settings the floor names (bounded or free); every other setting of the rule is fixed."""
        return [*self.at_least, *self.at_most, *self.free]


@dataclass(frozen=True)
class Rule:
    """One policy as a unit: what it is called, checks and asks of whom, next to the function that checks it.

    `topic` names the twelve-factor factor or the threat; `types` limits a resource rule to those resource types
    (None: every type); `section` is the module it lives in, whose prefix its name carries."""

    name: str
    description: str
    topic: str
    level: EnforcementLevel
    fix: str
    check: ResourceCheck | StackCheck
    kind: str
    """`resource` (Analyze: each resource's inputs as the provider's Check returns them) or `stack` (AnalyzeStack:
    every resource's outputs, which for Kubernetes are the live objects; see `Section.stack`)."""
    section: Section
    types: frozenset[str] | None = None
    settings: Mapping[str, Setting] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    """The object fields the rule judges (config-keys paths), for findings that name none."""
    floor: Floor | None = None
    """Part of the platform floor: a production stack's policy config (every stack's, for a rule on the image
    build) may not lower it, and no resource may waive it (None: it may)."""

    @property
    def waivable(self) -> bool:
        """A resource may waive the rule: its section allows waivers and the rule is not in the floor. The waiver
        annotation is program code, the same in every stack, so waiving a floor rule anywhere would waive it in
        production too."""
        return self.section.waivable and self.floor is None

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

    def explain(self, finding: str | Finding, props: Mapping[str, Any] | None) -> str:
        """The message, followed by the `shipsafe:` keys that produced the offending fields and the platform
        settings that would allow it instead."""
        if isinstance(finding, str):
            finding = Finding(finding, self.fields, tuple(k for k, s in self.settings.items() if s.platform))
        keys = _produced_by(props, finding.fields or self.fields)
        parts = [f"set by {', '.join(keys)}"] if keys else []
        if finding.settings:
            settings = ", ".join(f"{self.name}.{name}" for name in finding.settings)
            parts.append(f"{'or, ' if keys else ''}if the platform owner agrees, policy setting {settings}")
        return f"{finding.message} ({'; '.join(parts)})" if parts else finding.message

    def policy(self, family: str) -> ResourceValidationPolicy | StackValidationPolicy:
        """The CrossGuard policy the pack registers, tagged with its family and topic."""
        fields: dict[str, Any] = {
            "name": self.name,
            "description": self.full_description,
            "enforcement_level": self.level,
            "config_schema": self.config_schema(),
            "tags": [f"family:{family}", f"topic:{self.topic}", f"module:{self.section.module}"],
            "remediation_steps": self.fix,
        }
        if self.kind == "stack":
            return StackValidationPolicy(validate=untraced_unknowns(_validate_stack(self)), **fields)
        return ResourceValidationPolicy(validate=untraced_unknowns(_validate_resource(self)), **fields)


WAIVER_ANNOTATION = "shipsafe.dev/waive."
"""Prefix of the annotation that waives the policy named after it on this one resource; its value is the reason."""


def waivers(props: Mapping[str, Any] | None) -> dict[str, str]:
    """Policy name -> the reason as written, for every waiver annotation of the object (an unknown value: none)."""
    try:
        annotations = ((props or {}).get("metadata") or {}).get("annotations") or {}
        return {
            key[len(WAIVER_ANNOTATION) :]: annotations[key] for key in annotations if key.startswith(WAIVER_ANNOTATION)
        }
    except (UnknownValueError, AttributeError):
        return {}  # stricter: a waiver that cannot be read waives nothing


def waived(props: Mapping[str, Any] | None, policy: str) -> bool:
    """The object waives `policy` with a non-empty written reason (an empty one waives nothing)."""
    reason = derived(props, waivers).get(policy)  # read once per request, not once per policy
    return isinstance(reason, str) and bool(reason.strip())


def _covers(path: str, other: str) -> bool:
    return path == other or path.startswith(other + ".") or other.startswith(path + ".")


def _produced_by(props: Mapping[str, Any] | None, fields: Iterable[str]) -> list[str]:
    """The `shipsafe:` keys the object's config-keys annotation gives for `fields` (none when it has no link)."""
    try:
        text = ((props or {}).get("metadata") or {}).get("annotations", {}).get(CONFIG_KEYS_ANNOTATION)
        link = json.loads(text) if isinstance(text, str) else {}
    except (UnknownValueError, ValueError, AttributeError):
        return []  # a link that cannot be read names nothing; the message itself still holds
    wanted = list(fields)
    keys = [k for path, names in sorted(link.items()) if any(_covers(path, f) for f in wanted) for k in names]
    return list(dict.fromkeys(keys))


class Section:
    """A module of rules. Its rules are declared where they are checked, with `@SECTION.resource(...)` or
    `@SECTION.stack(...)`, and each rule's name starts with the section's prefix, so a name says where it lives."""

    def __init__(self, module: str, prefix: str, topic: str = "", *, waivable: bool = True) -> None:
        self.module, self.prefix, self.topic = module, prefix, topic
        self.waivable = waivable
        """Whether a resource may waive this section's rules (the rules about waivers themselves may not)."""
        self.rules: list[Rule] = []

    def resource(
        self,
        name: str,
        description: str,
        fix: str,
        *,
        types: Iterable[str] | None,
        topic: str | None = None,
        level: EnforcementLevel = MANDATORY,
        fields: tuple[str, ...] = (),
        floor: Floor | None = None,
        **settings: Setting,
    ) -> Callable[[ResourceCheck], ResourceCheck]:
        """Declares a resource rule (Analyze: one resource's inputs) over `types` (None: every type)."""
        kinds = None if types is None else frozenset(types)
        return self._declare("resource", name, description, fix, kinds, topic, level, fields, floor, settings)

    def stack(
        self,
        name: str,
        description: str,
        fix: str,
        *,
        topic: str | None = None,
        level: EnforcementLevel = MANDATORY,
        fields: tuple[str, ...] = (),
        floor: Floor | None = None,
        **settings: Setting,
    ) -> Callable[[StackCheck], StackCheck]:
        """Declares a stack rule (AnalyzeStack: every resource's outputs). The engine sends outputs without the
        provider's internal keys (pulumi/pulumi `analyzer_plugin.go` `AnalyzeStack`: `SkipInternalKeys`, so no
        `__inputs`): for Kubernetes the object the API server returned, with its defaults, the deprecated
        `serviceAccount` mirror, controller labels, status and an HPA's `replicas`. A stack rule judges relations
        between resources and must find the same on any object the server may return
        (tests/policy/test_live_objects.py); what the user declared is judged by a resource rule."""
        return self._declare("stack", name, description, fix, None, topic, level, fields, floor, settings)

    def _declare(
        self,
        kind: str,
        name: str,
        description: str,
        fix: str,
        types: frozenset[str] | None,
        topic: str | None,
        level: EnforcementLevel,
        fields: tuple[str, ...],
        floor: Floor | None,
        settings: Mapping[str, Setting],
    ) -> Callable[[Check], Check]:
        if not name.startswith(self.prefix + "-"):
            raise ValueError(f"rule {name!r} in {self.module} must start with the section prefix {self.prefix}-")
        if not (topic or self.topic):
            raise ValueError(f"rule {name!r} in {self.module} names no factor or threat (topic)")
        if floor is not None and level is not MANDATORY:
            raise ValueError(f"rule {name!r} in {self.module} is in the floor, so it must be mandatory")
        unknown = sorted(set(floor.settings() if floor else ()) - set(settings))
        if unknown:
            raise ValueError(f"rule {name!r} in {self.module}: its floor names unknown settings {unknown}")

        def register(check: Check) -> Check:
            self.rules.append(
                Rule(
                    name,
                    description,
                    topic or self.topic,
                    level,
                    fix,
                    check,
                    kind,
                    self,
                    types,
                    settings,
                    fields,
                    floor,
                )
            )
            return check

        return register


@dataclass(frozen=True)
class Family:
    """A family of rules (twelve-factor, security, ...): its sections, in the order the pack and the docs list them."""

    name: str
    title: str
    """How the policy reference (docs/policies.md) heads the family."""
    sections: tuple[Section, ...]

    @property
    def rules(self) -> list[Rule]:
        return [rule for section in self.sections for rule in section.rules]

    def policies(self) -> list[ResourceValidationPolicy | StackValidationPolicy]:
        return [rule.policy(self.name) for rule in self.rules]


def _validate_resource(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    check = cast(ResourceCheck, rule.check)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if rule.types is not None and args.resource_type not in rule.types:
            return
        # The SDK builds `args` for each policy (pulumi-policy `policy.py` `Analyze`), so the view stays in this call.
        args.props = read_props(args.props)
        if rule.waivable and waived(args.props, rule.name):
            return  # reported by the waiver section, never silently
        for finding in check(args, rule.config(args.get_config())):
            report_violation(rule.explain(finding, args.props), None)

    return validate


def _validate_stack(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    check = cast(StackCheck, rule.check)

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = args.resources
        # Built for each policy too (`policy.py` `AnalyzeStack`).
        for resource, view in zip(resources, read_request([r.props for r in resources]), strict=True):
            resource.props = view
        props: dict[str, Mapping[str, Any]] = {}
        for finding, urn in check(resources, rule.config(args.get_config())):
            props = props or {r.urn: r.props for r in resources}  # only a finding needs them
            if rule.waivable and urn is not None and waived(props.get(urn), rule.name):
                continue  # the blamed resource waives this rule; the waiver section reports it
            report_violation(rule.explain(finding, props.get(urn) if urn else None), urn)

    return validate
