"""Every rule of the pack, called directly on one resource (a resource rule) or on the stack (a stack rule).

The cases are the bad-variant catalogue of tests/policy/test_bad_variants.py (one line per case, shared with the
gRPC end-to-end tests, which add the protocol and the phases): each bad variant must be reported by its rule on
the resource it names, and the same resource of the compliant stack must pass that rule, as must the catalogue's
compliant variants. The rules are discovered from the pack: a rule without a bad case there fails
test_every_rule_has_a_bad_case, one without a compliant resource it judges fails its
test_the_rule_passes_the_compliant_resources.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.recording import Recording
from tests.policy.conftest import IMAGE_BUILD
from tests.policy.rules.one_rule import Outcome, pack_for, rules
from tests.policy.stack_edits import use_build_context, write_build_context
from tests.policy.test_bad_variants import CASES, COMPLIANT, Case, unchanged

RULES = rules()


def _bad(case: Case, compliant: dict[str, Recording], tmp_path: Path) -> Recording:
    recording = compliant[case.stack]
    if case.dockerfile is not None:
        recording = use_build_context(IMAGE_BUILD, write_build_context(tmp_path, case.dockerfile, case.dockerignore))(
            recording
        )
    return case.fault(recording)


def _run(policy: str, stack: str, recording: Recording, resource: str | None) -> Outcome:
    """A resource rule on that one resource; a stack rule on the whole stack."""
    return pack_for(stack).run(policy, recording, resource if RULES[policy].kind == "resource" else None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_bad_variant_violates_its_rule(case: Case, compliant: dict[str, Recording], tmp_path: Path) -> None:
    outcome = _run(case.policy, case.stack, _bad(case, compliant, tmp_path), case.resource)
    found = outcome.on(case.resource) if case.resource is not None else [r.message for r in outcome.reported]
    assert found, f"{case.policy} reported nothing on {case.resource}; skipped: {outcome.skipped}"
    assert outcome.level == case.level
    assert all(message.strip() for message in found)
    if case.reason is not None:
        baseline = _run(case.policy, case.stack, compliant[case.stack], case.resource)
        new = [m for m in found if m not in baseline.on(case.resource or "")]
        assert new, f"{case.policy} reports only what it reports on the compliant stack: {found}"
        assert all(case.reason in message for message in new), new


def _passes(policy: str, stack: str, recording: Recording, resource: str) -> str | None:
    """None when `policy` judges `resource` and reports nothing on it; else what went wrong."""
    rule, subject = RULES[policy], recording.named(resource)
    if rule.kind == "resource" and rule.types is not None and subject.type not in rule.types:
        return f"{policy} does not judge {subject.type}"  # a pass that proves nothing
    outcome = _run(policy, stack, recording, resource)
    if outcome.skipped:
        return f"{policy} could not judge {outcome.skipped} (unknown values)"
    return "; ".join(outcome.on(resource)) or None


def _compliant_counterparts(policy: str, compliant: dict[str, Recording]) -> list[tuple[str, str]]:
    """(stack, resource) the rule's bad variants blame, as the compliant stack has them: not a resource a variant
    adds, nor one a variant reports without changing the stack (that one is bad as it stands)."""
    return sorted(
        {
            (c.stack, c.resource)
            for c in CASES
            if c.policy == policy
            and c.resource is not None
            and c.resource in {r.name for r in compliant[c.stack]}
            and not (c.fault is unchanged and c.dockerfile is None)
        }
    )


@pytest.mark.parametrize("policy", sorted(RULES))
def test_the_rule_passes_the_compliant_resources(policy: str, compliant: dict[str, Recording]) -> None:
    """Each rule judges at least one compliant resource and passes it: the blamed resources as the compliant
    stacks have them, and the catalogue's compliant variants for this rule."""
    checked = {
        f"{stack} {resource}": _passes(policy, stack, compliant[stack], resource)
        for stack, resource in _compliant_counterparts(policy, compliant)
    }
    for case in (c for c in COMPLIANT if c.policy == policy):
        checked[case.id] = _passes(policy, case.stack, case.change(compliant[case.stack]), case.resource)
    assert checked, f"{policy} has no compliant case: add a Compliant line to tests/policy/test_bad_variants.py"
    assert not {where: error for where, error in checked.items() if error}


def test_every_rule_has_a_bad_case() -> None:
    """A rule without a bad variant in the catalogue has no test that it ever fires."""
    missing = sorted(set(RULES) - {c.policy for c in CASES})
    assert not missing, f"add a Case line to tests/policy/test_bad_variants.py for: {missing}"
