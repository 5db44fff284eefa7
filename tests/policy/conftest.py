"""One policy pack process for the whole session, driven over gRPC like the engine drives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.analyzer import AnalysisReport, PolicyPackProcess, load_policy_config
from harness.recording import Recording
from harness.stack_config import REPO_ROOT
from tests.policy.stack_edits import (
    COMPLIANT_DOCKERFILE,
    use_build_context,
    write_build_context,
)

CONFIG_DIR = REPO_ROOT / "policy" / "config"
IMAGE_BUILD = "notes-image-build"

Analyze = Callable[[Recording], AnalysisReport]


@pytest.fixture(scope="session")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        yield process


@pytest.fixture(scope="session")
def analyze(pack: PolicyPackProcess) -> Analyze:
    """Analyze a recording with its own stack's policy config, as `pulumi preview --policy-pack-config` would."""

    def run(recording: Recording) -> AnalysisReport:
        pack.configure(load_policy_config(CONFIG_DIR / f"{recording.stack}.json"))
        return pack.analyze(recording)

    return run


@pytest.fixture(scope="session")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Dockerfile that satisfies every Dockerfile rule: the policy tests do not depend on app/Dockerfile."""
    return write_build_context(tmp_path_factory.mktemp("context"), COMPLIANT_DOCKERFILE)


def with_compliant_build(recording: Recording, build_context: Path) -> Recording:
    """The stack with its in-stack image build, if it has one, pointed at the compliant Dockerfile."""
    builds = any(resource.name == IMAGE_BUILD for resource in recording)
    return use_build_context(IMAGE_BUILD, build_context)(recording) if builds else recording


@pytest.fixture(scope="session")
def compliant(recordings: dict[str, Recording], build_context: Path) -> dict[str, Recording]:
    """The real stacks, each image build pointed at the compliant Dockerfile."""
    return {stack: with_compliant_build(recording, build_context) for stack, recording in recordings.items()}


@pytest.fixture(scope="session")
def compliant_reports(compliant: dict[str, Recording], analyze: Analyze) -> dict[str, AnalysisReport]:
    return {stack: analyze(recording) for stack, recording in compliant.items()}
