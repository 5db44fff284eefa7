"""shipsafe's CrossGuard policies: the one registry of rule families that the pack, the policy reference
(docs/policies.md) and the tests read. A rule is declared in its section's module (`framework.Section`); a section
reaches the pack only through its family here."""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from . import docker, edge, references, rollout, security, twelve_factor, waivers
from .framework import Family, Rule, Section

FAMILIES: tuple[Family, ...] = (
    twelve_factor.FAMILY,
    security.FAMILY,
    Family("rollout", "Rollout safety", (rollout.SECTION,)),
    Family("references", "References that resolve", (references.SECTION,)),
    Family("edge", "Edge protection (the public Ingress or HTTPRoute)", (edge.SECTION,)),
    Family("dockerfile", "Dockerfile (read from the file the image build names)", (docker.SECTION,)),
    Family("waivers", "Waivers (one rule, one resource, a written reason)", (waivers.SECTION,)),
)


def all_rules() -> list[Rule]:
    return [rule for family in FAMILIES for rule in family.rules]


def all_sections() -> list[Section]:
    return [section for family in FAMILIES for section in family.sections]


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """What the pack enforces, family by family."""
    return [policy for family in FAMILIES for policy in family.policies()]
