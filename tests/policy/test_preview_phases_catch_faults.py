"""The bad-variant catalogue in the two preview phases of the offline engine (`harness.phases`).

`test_bad_variants.py` runs every fault as recorded and after `up`; here each runs in a first preview (the program in
preview mode: image digest and passwords unknown, namespaced objects returned as inputs) and in a later preview (the
next release against the after-up state: unchanged objects are the live state, changed ones dry-run or inputs). In
a preview a fault must be caught, or, when it sits behind a value unknown until `up`, the policy must say it was
skipped on that resource: never a silent pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.analyzer import AnalysisReport
from harness.phases import after_up, first_preview, later_preview, next_release_overrides
from harness.recording import Recording
from harness.runtime import run_stack
from harness.stack_config import read_stack_config
from tests.conftest import STACKS, pinned
from tests.policy.conftest import IMAGE_BUILD, Analyze, with_compliant_build
from tests.policy.stack_edits import use_build_context, write_build_context
from tests.policy.test_bad_variants import CASES, Case

PREVIEW_PHASES = ("first-preview", "later-preview")


@pytest.fixture(scope="session")
def preview_runs(build_context: Path) -> dict[tuple[str, str], tuple[Recording, Recording | None]]:
    """Per stack and phase: the compliant preview run to inject faults into, and the after-up state it diffs with."""
    runs: dict[tuple[str, str], tuple[Recording, Recording | None]] = {}
    for stack in STACKS:
        runs[stack, "first-preview"] = (
            with_compliant_build(run_stack(stack, config_overrides=pinned(stack), preview=True), build_context),
            None,
        )
        state = with_compliant_build(run_stack(stack, config_overrides=pinned(stack)), build_context)
        _, config = read_stack_config(stack)
        overrides = {**pinned(stack), **next_release_overrides({**config, **pinned(stack)})}
        following = run_stack(stack, config_overrides=overrides, preview=True, prior=state)
        runs[stack, "later-preview"] = (with_compliant_build(following, build_context), state)
    return runs


def _modelled(phase: str, faulty: Recording, state: Recording | None) -> Recording:
    if phase == "first-preview":
        return first_preview(faulty).recording
    assert state is not None
    return later_preview(after_up(state), faulty).recording


def _caught_or_skipped(case: Case, report: AnalysisReport) -> bool:
    found = [v for v in report.violations if v.policy == case.policy]
    if case.resource is None:
        return bool(found) or any(s.startswith(f"{case.policy} on ") for s in report.skipped)
    return (
        case.resource in {v.resource for v in found}
        or f"{case.policy} on {case.resource}" in report.skipped
        or (f"{case.policy} on (stack)" in report.skipped)
    )


@pytest.mark.parametrize("phase", PREVIEW_PHASES)
@pytest.mark.parametrize("case", [c for c in CASES if c.dockerfile is None], ids=lambda c: c.id)
def test_bad_variant_is_caught_or_honestly_skipped_in_previews(
    case: Case,
    phase: str,
    preview_runs: dict[tuple[str, str], tuple[Recording, Recording | None]],
    analyze: Analyze,
) -> None:
    recording, state = preview_runs[case.stack, phase]
    try:
        faulty = case.fault(recording)
    except TypeError:  # the field the fault edits is itself unknown in this phase (a generated password's Secret)
        faulty = recording
    report = analyze(_modelled(phase, faulty, state))
    assert _caught_or_skipped(case, report), f"{case.id} passed silently in the {phase}: {report.violations}"


@pytest.mark.parametrize("phase", PREVIEW_PHASES)
@pytest.mark.parametrize("case", [c for c in CASES if c.dockerfile is not None], ids=lambda c: c.id)
def test_dockerfile_faults_are_caught_in_previews(
    case: Case,
    phase: str,
    preview_runs: dict[tuple[str, str], tuple[Recording, Recording | None]],
    analyze: Analyze,
    tmp_path: Path,
) -> None:
    recording, state = preview_runs[case.stack, phase]
    assert case.dockerfile is not None
    context = write_build_context(tmp_path, case.dockerfile, case.dockerignore)
    faulty = use_build_context(IMAGE_BUILD, context)(recording)
    report = analyze(_modelled(phase, case.fault(faulty), state))
    # The Dockerfile is read from disk, never unknown: these are caught outright, in every phase.
    assert case.policy in {v.policy for v in report.violations}, f"{case.id} not caught in the {phase}"
