"""Recordings of the real stack program, run offline once per test session."""

from __future__ import annotations

import pytest

from harness.phases import Phase, PhaseRecording, model_phases
from harness.recording import Recording
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT, read_stack_config, stack_names

# Real-server fixtures (Postgres, Redis, app processes, Docker engine, registry), shared by every test directory so
# one session starts each server at most once.
pytest_plugins = ["tests.support.services"]

SLOW_FIXTURES = frozenset({"pack", "analyze", "phase_recordings", "pack_in_process"})
"""Fixtures that boot the policy pack (a process over gRPC, or every policy in-process for exhaustive sweeps) or
model every preview phase of every stack: a test that uses one is end-to-end and `slow`."""


def pytest_itemcollected(item: pytest.Item) -> None:
    """Marks `slow` by what a test uses, so the mark holds wherever a test file lives."""
    if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)


STACKS = tuple(stack_names(REPO_ROOT))
"""Every stack the project has a `Pulumi.<stack>.yaml` for: a new stack file is tested like the committed ones."""
# A stack without a pinned release takes its SHA from the working tree; pin it so results don't depend on local
# edits.
STAGING_SHA = "0123456789abcdef0123456789abcdef01234567"


def pinned(stack: str) -> dict[str, object]:
    project, config = read_stack_config(stack, REPO_ROOT)
    return {} if f"{project}:gitSha" in config else {"shipsafe:gitSha": STAGING_SHA}


def record(stack: str, **overrides: object) -> Recording:
    return run_stack(stack, config_overrides={**pinned(stack), **overrides})


@pytest.fixture(scope="session")
def recordings() -> dict[str, Recording]:
    return {stack: record(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def recording(request: pytest.FixtureRequest, recordings: dict[str, Recording]) -> Recording:
    return recordings[request.param]


@pytest.fixture(scope="session")
def phase_recordings() -> dict[tuple[str, Phase], PhaseRecording]:
    """Every phase of the offline engine for every stack, as the preview and `make policy-check` model them."""
    return {
        (stack, phase.phase): phase for stack in STACKS for phase in model_phases(stack, config_overrides=pinned(stack))
    }
