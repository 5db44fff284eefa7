"""Each resource analyzed as the program registers it (`harness.analyzer.BootedPacks.prefetch`), as the engine
analyzes each registration (pulumi/pulumi `pkg/resource/deploy/step_generator.go`), so the packs work while the
program runs: a view's request then waits for the answer its registration asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import analyzer, runtime
from harness.phases import model_phases
from harness.recording import RecordedResource
from harness.stack_config import policy_config_path
from tests.conftest import STACKS, pinned

pytestmark = pytest.mark.slow  # the real pack over whole stacks


def test_the_monitor_tells_of_each_registration_as_it_is_made() -> None:
    unset = runtime.run_stack("staging", config_overrides=pinned("staging")).placeholder_secrets
    told: list[RecordedResource] = []
    recording = runtime.run_stack(  # the secrets found unset given: one run, no failed one before it
        "staging", config_overrides=pinned("staging"), missing_secrets=unset, on_registered=told.append
    )
    assert recording.resources and sorted(r.urn for r in told) == sorted(r.urn for r in recording)
    recorded = {r.urn: r for r in recording}
    assert all(r.inputs == recorded[r.urn].inputs and r.provider == recorded[r.urn].provider for r in told)


def _analyzed(stack: str, prefetch: bool) -> tuple[list[analyzer.AnalysisReport], analyzer.AnalysisReuse]:
    told: list[tuple[bool, RecordedResource]] = []
    phases = model_phases(
        stack, config_overrides=pinned(stack), on_registered=lambda preview, r: told.append((preview, r))
    )
    config = policy_config_path(Path.cwd(), stack)
    with analyzer.booted_in_background(config, project=phases[0].recording.project, stack=stack) as packs:
        for preview, resource in told if prefetch else ():
            packs.prefetch(preview, resource)
        return [packs.analyze(phase.recording) for phase in phases], packs.reuse


@pytest.mark.parametrize("stack", STACKS)
def test_every_prefetched_request_is_one_a_view_makes_and_the_reports_are_unchanged(stack: str) -> None:
    reports, prefetched = _analyzed(stack, prefetch=True)
    plain_reports, plain = _analyzed(stack, prefetch=False)
    assert reports == plain_reports
    assert prefetched.asked == plain.asked, "the pack answered each distinct request once: nothing asked twice"
    assert prefetched.reused > plain.reused, "the views' requests waited for their registrations' answers"
