"""The offline preview's one report: what a person reads, and the `--output json` document.

One report per preview, however many phases and API server versions were checked: the resource tree once (siblings
by name, so two runs print the same tree), the pack's findings grouped by policy with the views they occur in,
skipped checks grouped by policy with counts and a few names, the next release bounded the same way, and a one-line
verdict last. Every list that grows with the stack (workloads, findings) shows `SHOWN` names and a count of the
rest; `--output json` carries every one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape

from deploy.offline.preview import Progress, Report
from harness.analyzer import WAIVER_REPORT, Violation
from harness.manifests import is_kubernetes, modelled_values_note
from harness.phases import PhaseRecording, server_name
from harness.recording import Recording

PREVIEW_SCHEMA_VERSION = 1
SHOWN = 3
"""Names listed per group (skipped resources, next-release steps) before `and N more`."""
FINDINGS_SHOWN = 10
"""Findings listed per policy before `and N more (--output json lists every one)`."""
MIN_COLUMN = 12
"""A tree column is never shortened below this: past it the line is left to the terminal."""


def tree_rows(recording: Recording) -> list[tuple[str, str]]:
    """The resource tree in `pulumi preview`'s shape: (type with its tree prefix, name). The engine registers
    siblings in whatever order the program's awaits finish; they are listed by name, then type, so the tree is
    the same on every run."""
    stack_urn = (
        f"urn:pulumi:{recording.stack}::{recording.project}::pulumi:pulumi:Stack::{recording.project}-{recording.stack}"
    )
    children: dict[str, list[Any]] = defaultdict(list)
    for resource in recording:
        children[resource.parent or stack_urn].append(resource)
    rows = [("pulumi:pulumi:Stack", f"{recording.project}-{recording.stack}")]

    def walk(parent: str, prefix: str) -> None:
        siblings = sorted(children[parent], key=lambda r: (r.name, r.type))
        for index, child in enumerate(siblings):
            last = index == len(siblings) - 1
            rows.append((f"{prefix}{'└─ ' if last else '├─ '}{child.type}", child.name))
            walk(child.urn, prefix + ("   " if last else "│  "))

    walk(stack_urn, "")
    return rows


def _shortened(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def tree_lines(recording: Recording, width: int) -> list[str]:
    """The tree as rows of at most `width - 1` characters: `pulumi preview` clamps every row of its tree table to
    the terminal's width minus one (pkg/backend/display/tree.go `clampLine`); rather than cut the Plan column off
    as that does, the widest column is shortened first, its cells ending in `…`."""
    rows = tree_rows(recording)
    marker, plan = " +   ", "create"
    widths = [max(len(kind) for kind, _ in rows) + 2, max(len(name) for _, name in rows) + 2]
    limit = width - 1 - len(marker) - len(plan)
    while sum(widths) > limit:
        widest = widths.index(max(widths))
        shorter = max(MIN_COLUMN, widths[widest] - (sum(widths) - limit))
        if shorter == widths[widest]:
            break
        widths[widest] = shorter
    type_width, name_width = widths
    lines = [f"{' ' * len(marker)}{'Type':<{type_width}}{'Name':<{name_width}}Plan"]
    for kind, name in rows:
        kind, name = _shortened(kind, type_width - 2), _shortened(name, name_width - 2)
        lines.append(f"{marker}{kind:<{type_width}}{name:<{name_width}}{plan}")
    return lines


def _some(names: Iterable[str], shown: int = SHOWN) -> str:
    """`a, b, c and 4 more`: a few names of a list that grows with the stack."""
    names = list(names)
    rest = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {rest} more" if rest > 0 else "")


def _views(phases: Iterable[PhaseRecording]) -> str:
    """`first-preview, after-up (Kubernetes 1.30, 1.35)`: each phase with the servers it was modelled for."""
    servers: dict[str, list[str]] = {}
    for phase in phases:
        servers.setdefault(str(phase.phase), []).append(server_name(phase.server))
    by_servers: dict[tuple[str, ...], list[str]] = {}
    for phase_name, names in servers.items():
        by_servers.setdefault(tuple(names), []).append(phase_name)
    return "; ".join(f"{', '.join(p)} (Kubernetes {', '.join(s)})" for s, p in by_servers.items())


class _Console:
    """The report's lines: prose wraps at the console's width, a table row never does."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def line(self, text: str = "", style: str | None = None) -> None:
        self.console.print(escape(text), style=style, highlight=False)

    def row(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, no_wrap=True, overflow="ellipsis", crop=True)


def print_report(report: Report, console: Console, errors: Console, *, quiet: bool = False) -> None:
    """The report once, on `console` (a refusal on `errors`); `quiet` leaves out the tree, outputs and phases."""
    out = _Console(console)
    if report.error is not None:
        err = _Console(errors)
        err.line(f"error: {report.error.message}", style="bold red")
        if report.error.problems != [report.error.message]:
            for problem in report.error.problems:
                err.line(f"  - {problem}")
    if report.deployed is not None:
        _print_model(report, out, quiet=quiet)
    if report.analyses:
        _print_findings(report, out)
    out.line()
    out.line(verdict(report), style="bold green" if report.passed else "bold red")


def _print_model(report: Report, out: _Console, *, quiet: bool) -> None:
    deployed = report.deployed
    assert deployed is not None
    if not quiet:
        out.line(f"Previewing update ({report.stack}), offline: mock runtime, no cluster")
        out.line()
        for line in tree_lines(deployed, out.console.width):
            out.row(line)
        out.line()
        out.line("Outputs:")
        for key, value in sorted(deployed.stack_outputs.items()):
            out.line(f"    {key:<14}: {json.dumps(value)}")
    timeline = deployed.stack_outputs.get("deployTimeline")
    if timeline:
        stages = ", ".join(f"{stage} {seconds} s" for stage, seconds in timeline["stages"].items())
        out.line()
        out.line(f"Deploy timeline (worst case, one `up`): {stages}; total {timeline['totalSeconds']} s")
    kubernetes_objects = sum(1 for r in deployed if is_kubernetes(r))
    out.line()
    out.line(f"Resources: + {len(deployed.resources) + 1} to create")
    out.line(f"Manifests: {kubernetes_objects} Kubernetes objects written to {report.manifests}")
    out.line(modelled_values_note(deployed))
    if not quiet:
        out.line("Phases modelled (what the policy pack sees as outputs):")
        summaries: dict[tuple[str, str], list[str]] = {}
        for phase in report.phases:
            summaries.setdefault((str(phase.phase), phase.summary()), []).append(server_name(phase.server))
        for (phase_name, summary), servers in summaries.items():
            out.line(f"  {phase_name} (Kubernetes {', '.join(servers)}): {summary}")
    if report.next_release is not None:
        steps = sorted(report.next_release, key=lambda s: (s.name, s.op))
        counts: dict[str, int] = defaultdict(int)
        for step in steps:
            counts[step.op] += 1
        if steps:
            ops = ", ".join(f"{op} {n}" for op, n in sorted(counts.items()))
            listed = _some((f"{s.op} {s.name}" for s in steps), SHOWN * 2)
            out.line(f"Next release (modelled second up): {len(steps)} changes ({ops}): {listed}")
        else:
            out.line("Next release (modelled second up): no change")
        for step in steps:
            if step.unsafe:
                out.line(f"error: the next release would {step.op} {step.name}: {step.unsafe}", style="red")
    if deployed.placeholder_secrets:
        out.line(
            f"note: not in Pulumi.{report.stack}.yaml in plain text, so the offline preview used a placeholder: "
            f"{', '.join(deployed.placeholder_secrets)} (set each with `pulumi config set --secret KEY`)"
        )


def _findings(report: Report) -> dict[tuple[str, str], dict[tuple[str, str], list[str]]]:
    """(level, policy) -> (resource, message) -> the views it occurs in, in view order."""
    found: dict[tuple[str, str], dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for phase, analysis in report.analyses:
        for violation in analysis.violations:
            level = "waived" if violation.policy == WAIVER_REPORT else violation.level
            found[(level, violation.policy)][(violation.resource, violation.message)].append(phase.label)
    return found


def _fixes(report: Report) -> dict[str, str]:
    fixes: dict[str, str] = {}
    for _, analysis in report.analyses:
        fixes.update({v.policy: v.fix for v in analysis.violations})
    return fixes


def _print_findings(report: Report, out: _Console) -> None:
    first = report.analyses[0][1]
    views = [phase for phase, _ in report.analyses]
    out.line()
    out.line(
        f"Policy pack {first.pack} on stack {first.stack}: {len(first.policies)} policies, {first.resources} "
        f"resources, {len(views)} views checked: {_views(views)}"
    )
    findings, fixes = _findings(report), _fixes(report)
    headings = {
        "mandatory": "MANDATORY violations",
        "advisory": "ADVISORY violations",
        "waived": "WAIVERS (one rule waived for one resource, with its reason)",
    }
    for level, heading in headings.items():
        policies = sorted(policy for found_level, policy in findings if found_level == level)
        total = sum(len(findings[(level, policy)]) for policy in policies)
        out.line()
        out.line(f"{heading}: {total}" + (f" ({len(policies)} policies)" if len(policies) > 1 else ""))
        for policy in policies:
            _print_policy(policy, findings[(level, policy)], fixes.get(policy, ""), [v.label for v in views], out)
    _print_skipped(report, out)
    disabled = sorted({name for _, a in report.analyses for name, level in a.levels.items() if level == "disabled"})
    if disabled:
        out.line(f"Disabled for this stack: {_some(disabled, FINDINGS_SHOWN)}")


def _print_policy(
    policy: str, found: dict[tuple[str, str], list[str]], fix: str, views: list[str], out: _Console
) -> None:
    out.line(f"  [{policy}] {len(found)} found" + (f"; fix: {fix}" if fix else ""))
    ordered = sorted(found.items())
    for (resource, message), where in ordered[:FINDINGS_SHOWN]:
        seen = "" if sorted(set(where)) == sorted(views) else f" (only in {', '.join(dict.fromkeys(where))})"
        out.line(f"    - {resource}: {message}{seen}")
    if len(ordered) > FINDINGS_SHOWN:
        out.line(f"    … and {len(ordered) - FINDINGS_SHOWN} more (--output json lists every one)")


def _print_skipped(report: Report, out: _Console) -> None:
    """Checks the pack could not run on a value unknown until `pulumi up`: per policy, how many resources."""
    skipped: dict[str, set[str]] = defaultdict(set)
    phases: dict[str, None] = {}
    for phase, analysis in report.analyses:
        for entry in analysis.skipped:
            policy, _, resource = entry.partition(" on ")
            skipped[policy].add(resource)
            phases[str(phase.phase)] = None
    if not skipped:
        return
    checks = sum(len(resources) for resources in skipped.values())
    out.line()
    out.line(
        f"Skipped (values unknown until `pulumi up`, in {', '.join(phases)}): {checks} checks of "
        f"{len(skipped)} policies"
    )
    for policy in sorted(skipped):
        names = sorted(skipped[policy])
        out.line(f"  {policy}: " + ("stack-wide" if names == ["(stack)"] else f"{len(names)} ({_some(names)})"))


def verdict(report: Report) -> str:
    """The report's last line: what it comes to, in one line."""
    if report.error is not None:
        return f"Preview of {report.stack} stopped ({report.exit_code.name}): {report.error.message}"
    unsafe = [s for s in report.next_release or [] if s.unsafe]
    release = f"; next release UNSAFE ({_some(f'{s.op} {s.name}' for s in unsafe)})" if unsafe else ""
    if not report.policy:
        return f"Preview of {report.stack} {'passed' if report.passed else 'FAILED'}, policy pack not run{release}"
    findings = _findings(report)
    counts = {
        level: sum(len(found) for (found_level, _), found in findings.items() if found_level == level)
        for level in ("mandatory", "advisory", "waived")
    }
    result = "passed" if report.passed else "FAILED"
    return (
        f"Policy check {result}: {counts['mandatory']} mandatory, {counts['advisory']} advisory, "
        f"{counts['waived']} waived in {len(report.analyses)} views{release}."
    )


def json_document(report: Report) -> dict[str, Any]:
    """The `--output json` report (`docs/schemas/preview.schema.json`): each phase the preview read a report of."""
    return {
        "schemaVersion": PREVIEW_SCHEMA_VERSION,
        "command": "preview",
        "stack": report.stack,
        "mode": "offline",
        "result": "passed" if report.passed else "failed",
        "exitCode": report.exit_code.value,
        "exitName": report.exit_code.name,
        "manifests": str(report.manifests) if report.manifests else None,
        "changes": None,
        "phases": [
            {
                "phase": str(phase.phase),
                "kubernetes": server_name(phase.server),
                "mandatory": len(analysis.mandatory_violations),
                "advisory": len(analysis.advisory_violations),
                "violations": [_violation(v) for v in analysis.violations],
            }
            for phase, analysis in report.analyses
        ],
        **({"error": {"message": report.error.message, "problems": report.error.problems}} if report.error else {}),
    }


def _violation(violation: Violation) -> dict[str, str]:
    return {
        "policy": violation.policy,
        "level": violation.level,
        "resource": violation.resource,
        "message": violation.message,
    }


@contextmanager
def progress_display(console: Console, *, quiet: bool) -> Iterator[Progress]:
    """What the preview is doing, while it does it: a spinner line that changes in place on a terminal, as
    `pulumi preview`'s live display does; plain lines elsewhere (a CI log), none when `quiet`."""
    if console.is_terminal:
        with console.status("starting", spinner="dots") as status:
            yield lambda what: status.update(f"{escape(what)}…")
        return
    if quiet:
        yield lambda what: None
        return
    yield lambda what: console.print(f"{escape(what)}…", highlight=False, style="dim")
