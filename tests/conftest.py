"""Recordings of the real stack program, run offline once per test session."""

from __future__ import annotations

import pytest

from harness.phases import Phase, PhaseRecording, model_phases
from harness.recording import Recording
from harness.runtime import run_stack

# Real-server fixtures (Postgres, Redis, app processes, Docker engine, registry), shared by every test directory so
# one session starts each server at most once.
pytest_plugins = ["tests.support.services"]

STACKS = ("staging", "prod")
# Staging takes its SHA from the working tree by default; pin it so results don't depend on local edits.
STAGING_SHA = "0123456789abcdef0123456789abcdef01234567"


def _pinned(stack: str) -> dict[str, object]:
    return {"shipsafe:gitSha": STAGING_SHA} if stack == "staging" else {}


def record(stack: str, **overrides: object) -> Recording:
    return run_stack(stack, config_overrides={**_pinned(stack), **overrides})


@pytest.fixture(scope="session")
def recordings() -> dict[str, Recording]:
    return {stack: record(stack) for stack in STACKS}


@pytest.fixture(params=STACKS)
def recording(request: pytest.FixtureRequest, recordings: dict[str, Recording]) -> Recording:
    return recordings[request.param]


@pytest.fixture(scope="session")
def phase_recordings() -> dict[tuple[str, Phase], PhaseRecording]:
    """Every phase of the offline engine for both stacks, as the preview and `make policy-check` model them."""
    return {
        (stack, phase.phase): phase
        for stack in STACKS
        for phase in model_phases(stack, config_overrides=_pinned(stack))
    }
