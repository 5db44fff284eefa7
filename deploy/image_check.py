"""`shipsafe image check`: an app's Dockerfile judged by the pack's Dockerfile rules, offline, before its CI hands the
pushed image's digest to a stack (`imageSource: prebuilt`).

The rules run as in a preview: the stack's own program builds from the given context and Dockerfile (so rules that
compare the image with the pods, like `docker-user-matches-pods`, see that stack's pods), the real policy pack reads
the Dockerfile, with the stack's policy config. Only the Dockerfile rules' findings count: the rest of the pack judges
the stack, which `shipsafe preview` checks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from components.settings import CONFIG_NAMESPACE
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline import config_overrides, run_program
from harness.analyzer import AnalysisReport, PolicyPackError, analyze
from harness.stack_config import policy_config_path

DOCKERFILE_RULES = "docker-"
"""The prefix of the pack's Dockerfile rules (`policy/shipsafe_policies/docker.py`, section `docker`)."""
RELEASE_PLACEHOLDER = "0" * 40
"""The check needs no git history: the release only names objects."""


def check_dockerfile(
    project_dir: Path, stack: str, dockerfile: Path, context: Path, target: str | None
) -> AnalysisReport:
    """The Dockerfile rules' findings on `dockerfile` (built from `context`) for `stack`."""
    if not dockerfile.is_file():
        raise ShipsafeError(f"--dockerfile {dockerfile}: no such file", ExitCode.USAGE)
    if not context.is_dir():
        raise ShipsafeError(f"--context {context}: no such directory", ExitCode.USAGE)
    settings = [
        "imageSource=build",
        # Production stacks refuse to build (they run promoted images); the Dockerfile rules do not depend on it.
        "environment=staging",
        f"gitSha={RELEASE_PLACEHOLDER}",
        f"app.buildContext={os.path.relpath(context.resolve(), project_dir)}",
        f"app.dockerfile={os.path.relpath(dockerfile.resolve(), project_dir)}",
        *([f"app.buildTarget={target}"] if target else []),
    ]
    overrides = {**config_overrides(project_dir, stack, settings), f"{CONFIG_NAMESPACE}:imageRef": None}
    recording = run_program(project_dir, stack, overrides)
    try:
        report = analyze(recording, policy_config_path(project_dir, stack), pack_dir=project_dir / "policy")
    except PolicyPackError as error:
        raise ShipsafeError(f"the policy pack failed: {error}", ExitCode.POLICY_PACK_FAILED) from None
    found = [v for v in report.violations if v.policy.startswith(DOCKERFILE_RULES)]
    skipped = [entry for entry in report.skipped if entry.startswith(DOCKERFILE_RULES)]
    return dataclasses.replace(report, violations=found, skipped=skipped)


def check_dockerfile_for_stacks(
    project_dir: Path, stacks: Sequence[str], dockerfile: Path, context: Path | None, target: str | None
) -> list[AnalysisReport]:
    return [check_dockerfile(project_dir, stack, dockerfile, context or dockerfile.parent, target) for stack in stacks]
