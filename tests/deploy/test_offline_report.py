"""The offline preview's one report (`deploy.offline.report`), as a person reads it in an 80-column terminal: the
tree once in a stable order and within the width, each finding once with the views it occurs in, lists that grow
with the stack bounded, progress while it runs."""

from __future__ import annotations

import dataclasses
import functools
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.exit_codes import ExitCode
from deploy.offline import preview
from deploy.offline.preview import ReleaseStep, Report
from deploy.offline.report import FINDINGS_SHOWN, print_report, progress_display, tree_lines
from harness.analyzer import AnalysisReport, Violation
from harness.phases import ALL_PHASES, PhaseRecording
from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.deploy.memory_stack import MemoryStacks

WIDTH = 80


def _at_80_columns(out: Path) -> str:
    context = DeployContext(
        open_stack=MemoryStacks(),
        project_dir=REPO_ROOT,
        offline_preview=functools.partial(preview.offline_preview, out=out),
        console=Console(width=WIDTH, force_terminal=False),
    )
    result = CliRunner().invoke(cli, ["preview", "staging", "--offline", "--set", "gitSha=0123456789ab"], obj=context)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("out")
    return _at_80_columns(out), _at_80_columns(out)


def test_the_report_fits_80_columns(two_runs: tuple[str, str]) -> None:
    report, _ = two_runs
    too_wide = [line for line in report.splitlines() if len(line) > WIDTH]
    assert not too_wide, too_wide
    tree = [line for line in report.splitlines() if line.startswith(" +   ")]
    assert len(tree) > 40 and all(len(line) <= WIDTH - 1 for line in tree), "a row of the tree wrapped"
    assert any("…" in line for line in tree), "the staging tree is wider than 80 columns: a column was shortened"
    assert all(line.endswith("create") for line in tree), "the Plan column is never cut off"


def test_the_report_is_printed_once_for_every_phase_and_server(two_runs: tuple[str, str]) -> None:
    report, _ = two_runs
    assert report.count("pulumi:pulumi:Stack") == 1
    assert report.count("ADVISORY violations") == 1
    assert report.count("[12f-build-third-party-digest]") == 1
    assert report.count("Skipped (values unknown until `pulumi up`") == 1
    assert report.count("Policy check passed") == 1
    assert report.rstrip().splitlines()[-1].startswith("Policy check passed: 0 mandatory"), "the verdict is last"


def test_two_runs_print_the_same_report(two_runs: tuple[str, str]) -> None:
    first, second = two_runs
    assert first == second


def test_plain_progress_says_what_the_preview_is_doing(two_runs: tuple[str, str]) -> None:
    report, _ = two_runs
    for step in ("starting the policy pack", "running program (staging, before up)", "running program (staging, up)"):
        assert f"{step}…" in report
    assert "analysing later-preview (Kubernetes 1.35)…" in report


def _progress(console: Console, *, quiet: bool) -> None:
    with progress_display(console, quiet=quiet) as progress:
        progress("running program (staging, before up)")


def test_progress_is_live_on_a_terminal_plain_elsewhere_and_absent_when_quiet() -> None:
    plain = Console(file=io.StringIO(), width=WIDTH, force_terminal=False)
    _progress(plain, quiet=False)
    assert plain.file.getvalue() == "running program (staging, before up)…\n"  # type: ignore[attr-defined]
    quiet = Console(file=io.StringIO(), width=WIDTH, force_terminal=False)
    _progress(quiet, quiet=True)
    assert quiet.file.getvalue() == ""  # type: ignore[attr-defined]
    terminal = Console(file=io.StringIO(), width=WIDTH, force_terminal=True)
    _progress(terminal, quiet=False)
    assert "\x1b[" in terminal.file.getvalue(), "a live line, redrawn in place"  # type: ignore[attr-defined]


def test_quiet_leaves_out_the_tree_and_the_progress(tmp_path: Path) -> None:
    context = DeployContext(
        open_stack=MemoryStacks(),
        project_dir=REPO_ROOT,
        offline_preview=functools.partial(preview.offline_preview, out=tmp_path),
        console=Console(width=WIDTH, force_terminal=False),
    )
    result = CliRunner().invoke(cli, ["preview", "prod", "--offline", "--quiet"], obj=context)
    assert result.exit_code == 0, result.output
    assert "pulumi:pulumi:Stack" not in result.stdout and "running program" not in result.stdout
    assert "MANDATORY violations: 0" in result.stdout and "Policy check passed" in result.stdout


def test_quiet_applies_only_to_the_offline_preview(run_cli) -> None:
    result = run_cli("preview", "staging", "--quiet")
    assert result.exit_code == ExitCode.USAGE, result.output


# A stack of 200 workloads, built from the real staging recording: what grows with the stack stays bounded.
WORKLOADS = 200


def _large(recording: Recording) -> Recording:
    deployment = next(r for r in recording if r.type == "kubernetes:apps/v1:Deployment")
    copies = [
        dataclasses.replace(deployment, urn=f"{deployment.urn}-{i}", name=f"notes-workload-{i:03d}-with-a-long-name")
        for i in range(WORKLOADS)
    ]
    return dataclasses.replace(recording, resources=[*recording.resources, *copies])


def test_a_tree_of_any_size_fits_the_width_in_a_stable_order(recordings: dict[str, Recording]) -> None:
    large = _large(recordings["staging"])
    lines = tree_lines(large, WIDTH)
    assert len(lines) == len(large.resources) + 2
    assert all(len(line) <= WIDTH - 1 for line in lines)
    shuffled = dataclasses.replace(large, resources=list(reversed(large.resources)))
    assert tree_lines(shuffled, WIDTH) == lines, "registration order does not change the tree"


def _report_of(recording: Recording) -> Report:
    names = [f"notes-workload-{i:03d}" for i in range(WORKLOADS)]
    violations = [
        Violation("image-pull-policy", "mandatory", "imagePullPolicy is not Always", f"urn:{n}", n, "set it")
        for n in names
    ]
    analysis = AnalysisReport(
        "shipsafe",
        "staging",
        [],
        {"probe-paths": "disabled"},
        violations=violations,
        skipped=[f"12f-build-immutable-image on {n}" for n in names],
        resources=len(recording.resources),
    )
    phases = [PhaseRecording(phase, recording, {}) for phase in ALL_PHASES]
    return Report(
        "staging",
        ExitCode.POLICY_VIOLATION,
        deployed=recording,
        manifests=Path("out/staging/manifests.yaml"),
        phases=phases,
        next_release=[ReleaseStep("update", f"{n}-deployment") for n in names]
        + [ReleaseStep("replace", "notes-postgres-statefulset", "volumeClaimTemplates changed")],
        analyses=[(phase, analysis) for phase in phases],
    )


def test_lists_that_grow_with_the_stack_are_counted_not_spelled_out(recordings: dict[str, Recording]) -> None:
    console = Console(file=io.StringIO(), width=WIDTH, force_terminal=False)
    print_report(_report_of(recordings["staging"]), console, console, quiet=True)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    flat = " ".join(text.split())
    assert "MANDATORY violations: 200" in flat
    assert flat.count("imagePullPolicy is not Always") == FINDINGS_SHOWN, "each finding once, however many views"
    assert f"… and {WORKLOADS - FINDINGS_SHOWN} more (--output json lists every one)" in flat
    assert (
        "12f-build-immutable-image: 200 (notes-workload-000, notes-workload-001, notes-workload-002 and 197 more)"
        in flat
    )
    assert "201 changes (replace 1, update 200)" in flat and "and 195 more" in flat
    assert "error: the next release would replace notes-postgres-statefulset: volumeClaimTemplates changed" in flat
    verdict = "Policy check FAILED: 200 mandatory, 0 advisory, 0 waived in 3 views; next release UNSAFE (replace "
    assert flat.endswith(verdict + "notes-postgres-statefulset).")
    assert len(text.splitlines()) < 60, text
    assert all(len(line) <= WIDTH for line in text.splitlines())
