"""Offline preview: `python -m harness.preview STACK` shows what `pulumi preview` would create, without a cluster.

Runs the real program under the mock runtime with `Pulumi.<STACK>.yaml` once per phase of the stack's life that
the engine shows the policy pack (`harness.phases`: the first preview, the state after `up`, the preview of the
next release), prints the resource tree and the stack outputs, writes the Kubernetes objects to
`out/<STACK>/manifests.yaml`, and runs the policy pack over every phase through the analyzer protocol (each phase
as soon as it is modelled: the pack, another process, works while the program runs for the next). Before the
program runs, the stack's settings are checked against its policy config (`harness.policy_link`). Exits with the
project's exit codes (`harness.exit_codes`): POLICY_VIOLATION on a mandatory policy violation in any phase,
CONFIG_ERROR on invalid config (or config the stack's policies refuse), POLICY_PACK_FAILED when the policy pack
itself fails (does not start, rejects its config, or a policy crashes). `--output json` prints one JSON report
(`docs/schemas/preview.schema.json`) on stdout and the human report on stderr. `shipsafe preview --offline` runs this.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pulumi

from components.settings import ConfigError, settings_from_config
from harness import analyzer, policy_link
from harness.exit_codes import ExitCode, exit_code_of
from harness.manifests import is_kubernetes, modelled_values_note, render
from harness.phases import ALL_PHASES, Phase, PhaseRecording, model_phases, server_name
from harness.recording import Recording
from harness.replacement import blocked_by_protect, is_data_bearing, plan_update
from harness.runtime import REPO_ROOT, ProgramFailed, engine_config, read_stack_config
from harness.stack_config import StackFileError, policy_config_path, read_stack_file, set_path

EXIT_POLICY_VIOLATION = ExitCode.POLICY_VIOLATION
EXIT_BAD_CONFIG = ExitCode.CONFIG_ERROR
EXIT_POLICY_PACK_FAILED = ExitCode.POLICY_PACK_FAILED
PREVIEW_SCHEMA_VERSION = 1


def tree_lines(recording: Recording) -> list[str]:
    """The resource tree in `pulumi preview`'s shape: type, name, plan."""
    stack_urn = (
        f"urn:pulumi:{recording.stack}::{recording.project}::pulumi:pulumi:Stack::{recording.project}-{recording.stack}"
    )
    rows: list[tuple[str, str]] = [("pulumi:pulumi:Stack", f"{recording.project}-{recording.stack}")]

    def walk(parent: str, prefix: str) -> None:
        children = [r for r in recording if (r.parent or stack_urn) == parent]
        for index, child in enumerate(children):
            last = index == len(children) - 1
            rows.append((f"{prefix}{'└─ ' if last else '├─ '}{child.type}", child.name))
            walk(child.urn, prefix + ("   " if last else "│  "))

    walk(stack_urn, "")
    width = max(len(kind) for kind, _ in rows) + 2
    name_width = max(len(name) for _, name in rows) + 2
    lines = [f"     {'Type':<{width}}{'Name':<{name_width}}Plan"]
    lines += [f" +   {kind:<{width}}{name:<{name_width}}create" for kind, name in rows]
    return lines


def write_manifests(recording: Recording, out_dir: Path) -> Path:
    target = out_dir / recording.stack / "manifests.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(recording))
    return target


def parse_overrides(stack: str, pairs: Sequence[str], project_dir: Path = REPO_ROOT) -> dict[str, object]:
    """Each `--set KEY=VALUE` applied in order as `pulumi config set --path KEY VALUE` would apply it to the stack
    file (`harness.stack_config.set_path`); the top-level values it changed, as config overrides."""
    stack_file = read_stack_file(stack, project_dir)
    config = dict(stack_file.config)
    changed = []
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise StackFileError(f"--set expects KEY=VALUE (e.g. rollout.maxSurge=2), got {pair!r}")
        changed.append(set_path(config, stack_file.project, key, value))
    return {key: config[key] for key in changed}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness.preview", description=__doc__.splitlines()[0])
    parser.add_argument("stack", nargs="?", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "-s", "--stack", dest="stack_option", metavar="STACK", help="the stack, as `pulumi -s` takes it"
    )
    parser.add_argument(
        "--project-dir", type=Path, default=REPO_ROOT, help="the Pulumi project (default: this checkout)"
    )
    parser.add_argument("--out", type=Path, help="where manifests go (default: out/ in the project directory)")
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="json: one report on stdout, the text on stderr"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config value for this preview only, as `pulumi config set --path` does: --set gitSha=abc1234, "
        "--set rollout.maxSurge=2, --set workloads.web.replicas=3 (repeatable; KEY=JSON sets a whole object)",
    )
    parser.add_argument(
        "--phase",
        dest="phases",
        action="append",
        type=Phase,
        choices=list(Phase),
        metavar="PHASE",
        help=f"model only this phase (repeatable; default: all of {', '.join(ALL_PHASES)})",
    )
    parser.add_argument("--policy-config", type=Path, help="policy config (default: policy/config/<stack>.json)")
    parser.add_argument("--no-policy", action="store_true", help="skip the policy pack")
    parser.add_argument(
        "--no-analysis-reuse",
        action="store_true",
        help=f"send every request to the policy pack, even one it answered before (as {analyzer.REUSE_VARIABLE}=off)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary and violations")
    return parser


def policy_conflicts(
    stack: str, overrides: dict[str, object], policy_config: Path, project_dir: Path = REPO_ROOT
) -> list[str]:
    """The stack's settings against its policy config (`harness.policy_link`); config the program itself refuses
    is left to the program, which names it."""
    _, values = read_stack_config(stack, project_dir, overrides)
    config, secret_keys = engine_config(values)
    try:
        settings = settings_from_config(config, lambda key: key in secret_keys)
    except ConfigError:
        return []
    return policy_link.conflicts(settings, policy_link.read_policy_config(policy_config))


class PhaseAnalyses:
    """Hands each phase to the policy pack as soon as it is modelled: the pack is another process, so it analyzes
    one phase while the program runs for the next. Without a pack (`--no-policy`) nothing is analyzed. A report
    counts (`kept`) only once the preview reads it, in phase order: analyses still queued when the preview stops
    early (a program failure, a failed analysis) are cancelled and never reported."""

    def __init__(
        self,
        analyze: Callable[[Recording], analyzer.AnalysisReport] | None,
        worker: Executor,
        kept: list[tuple[PhaseRecording, analyzer.AnalysisReport]],
    ) -> None:
        self.enabled = analyze is not None
        self._analyze, self._worker, self._kept = analyze, worker, kept
        self._pending: list[tuple[PhaseRecording, Future[analyzer.AnalysisReport]]] = []

    def submit(self, phase: PhaseRecording) -> None:
        if self._analyze is not None:
            self._pending.append((phase, self._worker.submit(self._analyze, phase.recording)))

    def reports(self) -> Iterator[tuple[PhaseRecording, analyzer.AnalysisReport]]:
        """Each phase with its report in phase order, once the pack has it; a failed analysis raises here."""
        for phase, pending in self._pending:
            self._kept.append((phase, pending.result()))
            yield self._kept[-1]


def _preview(
    args: argparse.Namespace,
    analyze: Callable[[Recording], analyzer.AnalysisReport] | None,
    analyzed: list[tuple[PhaseRecording, analyzer.AnalysisReport]],
) -> int:
    pack_worker = ThreadPoolExecutor(max_workers=1)
    try:
        return _preview_phases(args, PhaseAnalyses(analyze, pack_worker, analyzed))
    finally:
        pack_worker.shutdown(wait=True, cancel_futures=True)  # the running analysis finishes; queued ones never start


def _preview_phases(args: argparse.Namespace, analyses: PhaseAnalyses) -> int:
    try:
        overrides = parse_overrides(args.stack, args.overrides, args.project_dir)
        conflicts = (
            policy_conflicts(args.stack, overrides, args.policy_config, args.project_dir) if analyses.enabled else []
        )
        if conflicts:
            return _refused(args, "the stack's settings conflict with its policy config", conflicts, EXIT_BAD_CONFIG)
        phases = model_phases(
            args.stack,
            config_overrides=overrides,
            phases=args.phases or ALL_PHASES,
            project_dir=args.project_dir,
            on_phase=analyses.submit,
        )
    except StackFileError as error:
        return _refused(args, str(error), [str(error)], EXIT_BAD_CONFIG)
    except ProgramFailed as failure:
        if isinstance(failure.error, ConfigError):
            return _refused(args, "invalid stack configuration", failure.error.problems, EXIT_BAD_CONFIG)
        if not isinstance(failure.error, pulumi.RunError):
            raise
        return _refused(args, str(failure.error), [str(failure.error)], EXIT_BAD_CONFIG)
    # The tree, outputs and manifests are those of the deploy itself (after `up`: every value known).
    recording = _deployed(phases).recording
    if not args.quiet:
        print(f"Previewing update ({args.stack}), offline: mock runtime, no cluster\n")
        print("\n".join(tree_lines(recording)))
        print("\nOutputs:")
        for key, value in sorted(recording.stack_outputs.items()):
            print(f"    {key:<14}: {json.dumps(value)}")
    _print_timeline(recording.stack_outputs.get("deployTimeline"))
    manifests = write_manifests(recording, args.out)
    kubernetes_objects = sum(1 for r in recording if is_kubernetes(r))
    print(f"\nResources:\n    + {len(recording.resources) + 1} to create")
    print(f"Manifests: {kubernetes_objects} Kubernetes objects written to {manifests}")
    print(modelled_values_note(recording))
    print("Phases modelled (what the policy pack sees as outputs):")
    for phase in phases:
        print(f"    {phase.label:<34}: {phase.summary()}")
    release_plan_safe = check_release_plan(phases)
    for key in recording.placeholder_secrets:
        print(
            f"note: secret {key} is not in Pulumi.{args.stack}.yaml in plain text (set it with "
            f"`pulumi config set --secret {key}`); the offline preview used a placeholder"
        )
    if not analyses.enabled:
        return 0 if release_plan_safe else EXIT_POLICY_VIOLATION
    failed = not release_plan_safe
    for phase, report in analyses.reports():
        print(f"\n== phase {phase.label} ==")
        print(analyzer.format_report(report))
        failed = failed or bool(report.mandatory_violations)
    return EXIT_POLICY_VIOLATION if failed else 0


def _print_timeline(timeline: dict[str, Any] | None) -> None:
    """The program's `deployTimeline` output (`components/timeline.py`): the worst case of one `up`, by stage."""
    if not timeline:
        return
    stages = ", ".join(f"{stage} {seconds} s" for stage, seconds in timeline["stages"].items())
    print(f"\nDeploy timeline (worst case, one `up`): {stages}; total {timeline['totalSeconds']} s")


def check_release_plan(phases: list[PhaseRecording]) -> bool:
    """The second `up` (the next release against the after-up state), diffed with the providers' replacement rules;
    False when it would replace or delete a data-bearing resource or trip over `protect`."""
    by_phase = {p.phase: p.recording for p in phases}
    if Phase.AFTER_UP not in by_phase or Phase.LATER_PREVIEW not in by_phase:
        return True
    state, release = by_phase[Phase.AFTER_UP], by_phase[Phase.LATER_PREVIEW]
    steps = [s for s in plan_update(state, release) if s.op != "same"]
    resources = {r.urn: r for r in [*state, *release]}
    names = {s.urn: resources[s.urn].name for s in steps}
    print("Next release (modelled second up): " + (", ".join(f"{s.op} {names[s.urn]}" for s in steps) or "no change"))
    unsafe = [
        s for s in steps if s.op in ("replace", "delete") and is_data_bearing(resources[s.urn])
    ] + blocked_by_protect(steps)
    for step in unsafe:
        why = "; ".join(step.replace_reasons) or step.blocked
        print(f"error: the next release would {step.op} {names[step.urn]}: {why}")
    return not unsafe


def _deployed(phases: list[PhaseRecording]) -> PhaseRecording:
    return next((p for p in phases if p.phase is Phase.AFTER_UP), phases[-1])


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.stack and args.stack_option and args.stack != args.stack_option:
        parser.error(f"two stacks given: {args.stack} and -s {args.stack_option}")
    args.stack = args.stack or args.stack_option
    if not args.stack:
        parser.error("the stack is required: STACK or -s/--stack STACK")
    # Absolute: the pack boots in the background while the program runs from the project directory.
    args.project_dir = args.project_dir.resolve()
    args.out = args.out or args.project_dir / "out"
    return args


def _refused(args: argparse.Namespace, message: str, problems: Sequence[str], status: int) -> int:
    """Prints why the preview stopped and keeps it for the JSON report's `error`; returns `status`."""
    print(f"error: {message}", file=sys.stderr)
    if list(problems) != [message]:
        print("\n".join(f"  - {problem}" for problem in problems), file=sys.stderr)
    args.error = {"message": message, "problems": list(problems)}
    return status


def _run(args: argparse.Namespace, analyzed: list[tuple[PhaseRecording, analyzer.AnalysisReport]]) -> int:
    try:
        project, _ = read_stack_config(args.stack, args.project_dir)
    except StackFileError as error:
        return _refused(args, str(error), [str(error)], EXIT_BAD_CONFIG)
    if args.no_policy:
        return _preview(args, None, analyzed)
    args.policy_config = args.policy_config or policy_config_path(args.project_dir, args.stack)
    pack_dir = args.project_dir / "policy"
    try:
        with analyzer.booted_in_background(
            args.policy_config,
            project=project,
            stack=args.stack,
            pack_dir=pack_dir,
            reuse="off" if args.no_analysis_reuse else None,
        ) as analyze:
            return _preview(args, analyze, analyzed)
    except analyzer.PolicyPackError as error:
        return _refused(args, f"the policy pack failed: {error}", [str(error)], EXIT_POLICY_PACK_FAILED)


def json_report(
    args: argparse.Namespace,
    status: int,
    analyzed: list[tuple[PhaseRecording, analyzer.AnalysisReport]],
    started: float,
) -> str:
    """The `--output json` report (`docs/schemas/preview.schema.json`): each phase the preview read a report of."""
    code = exit_code_of(status)
    manifests = args.out / args.stack / "manifests.yaml"
    fresh = manifests.is_file() and manifests.stat().st_mtime >= started
    report = {
        "schemaVersion": PREVIEW_SCHEMA_VERSION,
        "command": "preview",
        "stack": args.stack,
        "mode": "offline",
        "result": "passed" if code is ExitCode.OK else "failed",
        "exitCode": code.value,
        "exitName": code.name,
        "manifests": str(manifests) if fresh else None,
        "changes": None,
        "phases": [
            {
                "phase": str(phase.phase),
                "kubernetes": server_name(phase.server),
                "mandatory": len(analysis.mandatory_violations),
                "advisory": len(analysis.advisory_violations),
                "violations": [
                    {"policy": v.policy, "level": v.level, "resource": v.resource, "message": v.message}
                    for v in analysis.violations
                ],
            }
            for phase, analysis in analyzed
        ],
        **({"error": args.error} if getattr(args, "error", None) else {}),
    }
    return json.dumps(report, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    analyzed: list[tuple[PhaseRecording, analyzer.AnalysisReport]] = []
    if args.output == "text":
        return _run(args, analyzed)
    started = time.time() - 1  # file systems keep modification times coarser than the clock
    with contextlib.redirect_stdout(sys.stderr):
        status = _run(args, analyzed)
    print(json_report(args, status, analyzed, started))
    return status


if __name__ == "__main__":
    # A short-lived command: skip cyclic collections while it runs and the final sweep over the SDKs' large object
    # graph at exit (together about a quarter of the wall time); the process returns all memory when it ends.
    gc.disable()
    status = main()
    gc.freeze()
    sys.exit(status)
