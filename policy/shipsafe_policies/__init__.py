"""shipsafe's CrossGuard policies, grouped by family; `all_policies()` is what the pack enforces."""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from . import dockerfile_rules, rollout_safety, security, twelve_factor


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [*twelve_factor.build(), *security.build(), *rollout_safety.build(), *dockerfile_rules.build()]
