"""Offline preview: what `pulumi preview` of a stack would create, without the Pulumi CLI or a cluster.

`offline_preview(stack, overrides)` runs the real program under the mock runtime with `Pulumi.<STACK>.yaml` once
per phase of the stack's life that the engine shows the policy pack (`harness.phases`: the first preview, the state
after `up`, the preview of the next release), writes the Kubernetes objects to `out/<STACK>/manifests.yaml`, and
runs the policy pack over every phase through the analyzer protocol (each phase as soon as it is modelled: the pack,
another process, works while the program runs for the next). Before the program runs, the stack's settings are
checked against its policy config (`deploy.policy_link`). It returns a `Report` with the project's exit code
(`deploy.exit_codes`): POLICY_VIOLATION on a mandatory policy violation in any phase or an unsafe next release,
CONFIG_ERROR on invalid config (or config the stack's policies refuse), POLICY_PACK_FAILED when the policy pack
itself fails (does not start, rejects its config, or a policy crashes). `deploy.offline.report` prints it once;
`shipsafe preview STACK --offline` runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from components.settings import ConfigError, Settings, settings_from_config
from deploy import app_contract, policy_link
from deploy.exit_codes import ExitCode
from harness import analyzer, pack_driver
from harness.manifests import render
from harness.phases import ALL_PHASES, Phase, PhaseRecording, model_phases
from harness.recording import Recording
from harness.replacement import blocked_by_protect, is_data_bearing, plan_update
from harness.runtime import ProgramFailed
from harness.stack_config import (
    REPO_ROOT,
    StackFileError,
    engine_config,
    policy_config_path,
    read_stack_config,
    read_stack_file,
    set_path,
)

Progress = Callable[[str], object]
"""Told what the preview is doing now, e.g. `running program (staging, before up)`."""


@dataclass(frozen=True)
class Refusal:
    """Why the preview stopped: one line, and each problem it found (the JSON report's `error`)."""

    message: str
    problems: list[str]


@dataclass(frozen=True)
class ReleaseStep:
    """One step of the modelled next release; `unsafe` says why it must not happen, when it must not."""

    op: str
    name: str
    unsafe: str | None = None


@dataclass
class Report:
    """One offline preview: what it modelled, what the pack found in each phase, and its exit code."""

    stack: str
    exit_code: ExitCode = ExitCode.OK
    error: Refusal | None = None
    deployed: Recording | None = None
    """The stack after `up` (every value known): the tree, the outputs and the manifests are this one's."""
    manifests: Path | None = None
    phases: list[PhaseRecording] = field(default_factory=list)
    next_release: list[ReleaseStep] | None = None
    """None when the phases asked for do not include both sides of the second `up`."""
    policy: bool = True
    """False when the pack was not run (`policy=False`): `analyses` is then empty by choice."""
    analyses: list[tuple[PhaseRecording, analyzer.AnalysisReport]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code is ExitCode.OK


def parse_overrides(
    stack: str, pairs: Sequence[str], project_dir: Path = REPO_ROOT, base: Mapping[str, str] | None = None
) -> dict[str, object]:
    """Each `--set KEY=VALUE` applied in order as `pulumi config set --path KEY VALUE` would apply it to the stack
    file (`harness.stack_config.set_path`), on top of `base` (flat config keys already set, e.g. the pipeline's
    release); the top-level values changed, as config overrides."""
    stack_file = read_stack_file(stack, project_dir)
    config = {**stack_file.config, **(base or {})}
    changed = list(base or {})
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise StackFileError(f"--set expects KEY=VALUE (e.g. rollout.maxSurge=2), got {pair!r}")
        changed.append(set_path(config, stack_file.project, key, value))
    return {key: config[key] for key in changed}


def policy_conflicts(
    stack: str, overrides: Mapping[str, object], policy_config: Path, project_dir: Path = REPO_ROOT
) -> list[str]:
    """The stack's settings against its policy config (`deploy.policy_link`); config the program itself refuses
    is left to the program, which names it."""
    _, values = read_stack_config(stack, project_dir, dict(overrides))
    config, _ = engine_config(values)
    production = policy_link.is_production_stack(stack, config)
    policy = policy_link.read_policy_config(policy_config, production=production)
    settings = stack_settings(stack, overrides, project_dir)
    return [] if settings is None else policy_link.conflicts(settings, policy)


def app_contract_problems(stack: str, overrides: Mapping[str, object], project_dir: Path = REPO_ROOT) -> list[str]:
    """The stack's settings against what the project knows about the app (`deploy.app_contract`)."""
    settings = stack_settings(stack, overrides, project_dir)
    return [] if settings is None else app_contract.problems(project_dir, stack, settings)


def stack_settings(stack: str, overrides: Mapping[str, object], project_dir: Path = REPO_ROOT) -> Settings | None:
    """The stack's settings with `overrides`, as the program validates them; None when the program would refuse
    them (it names every bad key itself)."""
    _, values = read_stack_config(stack, project_dir, dict(overrides))
    config, secret_keys = engine_config(values)
    try:
        return settings_from_config(config, lambda key: key in secret_keys)
    except ConfigError:
        return None


class PhaseAnalyses:
    """Hands each phase to the policy pack as soon as it is modelled: the pack is another process, so it analyzes
    one phase while the program runs for the next. Each pack (a preview's, an update's) has its own worker, so the
    two work side by side when the program is done. Without a pack nothing is analyzed. A report counts (`kept`) only
    once the preview reads it, in phase order: analyses still queued when the preview stops early (a program
    failure, a failed analysis) are cancelled and never reported."""

    def __init__(
        self,
        analyze: Callable[[Recording], analyzer.AnalysisReport] | None,
        workers: Mapping[bool, Executor],
        kept: list[tuple[PhaseRecording, analyzer.AnalysisReport]],
    ) -> None:
        self.enabled = analyze is not None
        self._analyze, self._workers, self._kept = analyze, workers, kept
        self._pending: list[tuple[PhaseRecording, Future[analyzer.AnalysisReport]]] = []

    def submit(self, phase: PhaseRecording) -> None:
        if self._analyze is not None:
            worker = self._workers[phase.recording.preview]  # one per pack: a pack answers one view at a time
            self._pending.append((phase, worker.submit(self._analyze, phase.recording)))

    def reports(self, waiting: Progress) -> Iterator[tuple[PhaseRecording, analyzer.AnalysisReport]]:
        """Each phase with its report in phase order, once the pack has it (`waiting` is told which phase it waits
        for); a failed analysis raises here."""
        for phase, pending in self._pending:
            waiting(f"analysing {phase.label}")
            self._kept.append((phase, pending.result()))
            yield self._kept[-1]


def release_plan(phases: list[PhaseRecording]) -> list[ReleaseStep] | None:
    """The second `up` (the next release against the after-up state), diffed with the providers' replacement rules;
    a step is unsafe when it would replace or delete a data-bearing resource or trip over `protect`."""
    by_phase = {p.phase: p.recording for p in phases}
    if Phase.AFTER_UP not in by_phase or Phase.LATER_PREVIEW not in by_phase:
        return None
    state, release = by_phase[Phase.AFTER_UP], by_phase[Phase.LATER_PREVIEW]
    steps = [s for s in plan_update(state, release) if s.op != "same"]
    resources = {r.urn: r for r in [*state, *release]}
    unsafe = {s.urn: s for s in steps if s.op in ("replace", "delete") and is_data_bearing(resources[s.urn])}
    unsafe.update({s.urn: s for s in blocked_by_protect(steps)})
    return [
        ReleaseStep(
            step.op,
            resources[step.urn].name,
            ("; ".join(unsafe[step.urn].replace_reasons) or unsafe[step.urn].blocked) if step.urn in unsafe else None,
        )
        for step in steps
    ]


def write_manifests(recording: Recording, out_dir: Path) -> Path:
    target = out_dir / recording.stack / "manifests.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(recording))
    return target


def _ignore(_: str) -> None:
    return None


def offline_preview(
    stack: str,
    overrides: Mapping[str, object],
    *,
    project_dir: Path = REPO_ROOT,
    out: Path | None = None,
    phases: Iterable[Phase] = ALL_PHASES,
    policy: bool = True,
    policy_config: Path | None = None,
    progress: Progress = _ignore,
    analysis_reuse: str | None = None,
) -> Report:
    """The offline preview of `stack` with config `overrides` (`parse_overrides`): every phase modelled, manifests
    written to `out` (default: out/ in the project directory), each phase checked by the policy pack with
    `policy_config` (default: the stack's own) unless `policy` is False."""
    # Absolute: the pack boots in the background while the program runs from the project directory.
    project_dir = project_dir.resolve()
    report = Report(stack, policy=policy)
    try:
        # The config the pack is told of is the program's, overrides included (as `pulumi config set` then
        # `pulumi preview`): the pack's floor reads `shipsafe:environment` from it.
        project, values = read_stack_config(stack, project_dir, dict(overrides))
    except StackFileError as error:
        return _refused(report, str(error), [str(error)], ExitCode.CONFIG_ERROR)
    run = _Run(stack, overrides, project_dir, out or project_dir / "out", list(phases), progress)
    if not policy:
        return run.preview(report, None)
    policy_config = policy_config or policy_config_path(project_dir, stack)
    progress("starting the policy pack")
    try:
        with pack_driver.booted_in_a_fork(
            policy_config,
            project=project,
            stack=stack,
            pack_dir=project_dir / "policy",
            stack_config=engine_config(values)[0],
            reuse=analysis_reuse,
        ) as analyze:
            return run.preview(report, analyze, policy_config)
    except analyzer.PolicyPackError as error:
        # One line per problem (each floor rule lowered, each unknown name), each printed once.
        problems = str(error).splitlines() or [repr(error)]
        message = (
            f"the policy pack failed: {problems[0]}" if len(problems) == 1 else "the policy pack refused its config"
        )
        return _refused(report, message, [message] if len(problems) == 1 else problems, ExitCode.POLICY_PACK_FAILED)


@dataclass(frozen=True)
class _Run:
    stack: str
    overrides: Mapping[str, object]
    project_dir: Path
    out: Path
    phases: list[Phase]
    progress: Progress

    def preview(
        self,
        report: Report,
        analyze: Callable[[Recording], analyzer.AnalysisReport] | None,
        policy_config: Path | None = None,
    ) -> Report:
        pack_workers = {dry_run: ThreadPoolExecutor(max_workers=1) for dry_run in (True, False)}
        try:
            return self._phases(report, PhaseAnalyses(analyze, pack_workers, report.analyses), policy_config)
        finally:
            # The running analysis finishes; queued ones never start.
            for worker in pack_workers.values():
                worker.shutdown(wait=True, cancel_futures=True)

    def _phases(self, report: Report, analyses: PhaseAnalyses, policy_config: Path | None) -> Report:
        try:
            if policy_config is not None:
                self.progress("checking the settings against the policy config")
                conflicts = policy_conflicts(self.stack, self.overrides, policy_config, self.project_dir)
                if conflicts:
                    message = "the stack's settings conflict with its policy config"
                    return _refused(report, message, conflicts, ExitCode.CONFIG_ERROR)
            contradicted = app_contract_problems(self.stack, self.overrides, self.project_dir)
            if contradicted:
                message = "the stack contradicts what the project declares"
                return _refused(report, message, contradicted, ExitCode.CONFIG_ERROR)
            report.phases = model_phases(
                self.stack,
                config_overrides=dict(self.overrides),
                phases=self.phases,
                project_dir=self.project_dir,
                on_phase=analyses.submit,
                on_run=lambda what: self.progress(f"running program ({self.stack}, {what})"),
            )
        except StackFileError as error:
            return _refused(report, str(error), [str(error)], ExitCode.CONFIG_ERROR)
        except ProgramFailed as failure:
            report.phases = []
            if isinstance(failure.error, ConfigError):
                return _refused(report, "invalid stack configuration", failure.error.problems, ExitCode.CONFIG_ERROR)
            if not isinstance(failure.error, pulumi.RunError):
                raise
            return _refused(report, str(failure.error), [str(failure.error)], ExitCode.CONFIG_ERROR)
        # The tree, outputs and manifests are those of the deploy itself (after `up`: every value known).
        report.deployed = next((p for p in report.phases if p.phase is Phase.AFTER_UP), report.phases[-1]).recording
        report.manifests = write_manifests(report.deployed, self.out)
        report.next_release = release_plan(report.phases)
        failed = any(step.unsafe for step in report.next_release or [])
        for _, analysis in analyses.reports(self.progress):
            failed = failed or bool(analysis.mandatory_violations)
        report.exit_code = ExitCode.POLICY_VIOLATION if failed else ExitCode.OK
        return report


def _refused(report: Report, message: str, problems: Sequence[str], code: ExitCode) -> Report:
    report.error, report.exit_code = Refusal(message, list(problems)), code
    return report
