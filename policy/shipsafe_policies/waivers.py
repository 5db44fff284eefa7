"""Per-resource waivers: a resource may waive one rule for itself only, with a written reason, and every preview
reports the waiver (`framework.waived` makes the waived rule skip that resource). A rule of the platform floor is
never waivable: the annotation is program code, which is the same in every stack, so it would lower the floor in
production (`framework.Rule.waivable`)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from .framework import ADVISORY, WAIVER_ANNOTATION, Config, HasProps, Section, waivers

SECTION = Section(__name__, "waiver", topic="Sec", waivable=False)


@functools.cache
def _waivable_rules() -> dict[str, str | None]:
    """Policy name -> None when it may be waived, else why not. Read from the registry at check time (it imports
    this module)."""
    from . import all_rules

    return {
        rule.name: None
        if rule.waivable
        else f"it is part of the platform floor, and the annotation would waive it in production too: {rule.floor.why}"
        if rule.floor
        else "it is a waiver rule"
        for rule in all_rules()
    }


@SECTION.resource(
    "waiver-reasons",
    f"Every waiver annotation ({WAIVER_ANNOTATION}<policy>) names a waivable policy of the pack and gives a reason.",
    f'Write why on the resource: {WAIVER_ANNOTATION}<policy-name>: "<reason>", or remove the annotation.',
    types=None,
)
def check_waiver_reasons(res: HasProps, config: Config) -> Iterator[str]:
    rules = _waivable_rules()
    for policy, reason in waivers(res.props).items():
        key = f"{WAIVER_ANNOTATION}{policy}"
        if policy not in rules:
            yield f"{key}: no policy {policy!r} in this pack, so it waives nothing; name one of the pack's policies"
        elif rules[policy] is not None:
            yield f"{key}: {policy} cannot be waived ({rules[policy]}); remove the annotation"
        elif not isinstance(reason, str) or not reason.strip():
            yield f"{key}: give a written reason; a waiver without one waives nothing"


@SECTION.resource(
    "waiver-report",
    "Lists each rule a resource waives, with its written reason, in every preview.",
    "Nothing to fix while the reason holds; remove the annotation once the resource complies.",
    types=None,
    level=ADVISORY,
)
def check_waiver_report(res: HasProps, config: Config) -> Iterator[str]:
    rules = _waivable_rules()
    for policy, reason in sorted(waivers(res.props).items()):
        if policy in rules and rules[policy] is None and isinstance(reason, str) and reason.strip():
            yield f"waived {policy}: {reason.strip()}"
