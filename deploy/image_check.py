"""`shipsafe image check`: an app's Dockerfile and pushed image judged by the pack's image rules, offline, before its
CI hands the image's digest to a stack (`imageSource: prebuilt`).

The rules run as in a preview: the stack's own program builds from the given context and Dockerfile (so rules that
compare the image with the pods, like `docker-user-matches-pods`, see that stack's pods), or runs the given image
reference (its settings refuse a reference without a digest, naming the key), and the real policy pack judges it with
the stack's policy config. Only the findings about the image count: the Dockerfile rules', and the image and build
rules' on the objects that run the reference. The rest of the pack judges the stack, which `shipsafe preview` checks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

from components.settings import CONFIG_NAMESPACE
from deploy import app_contract
from deploy.errors import ExitCode, ShipsafeError
from deploy.offline.commands import config_overrides, run_program
from deploy.offline.preview import stack_settings
from harness.analyzer import AnalysisReport, PolicyPackError, analyze
from harness.recording import Recording
from harness.stack_config import policy_config_path

DOCKERFILE_RULES = "docker-"
"""The prefix of the pack's Dockerfile rules (`policy/shipsafe_policies/docker.py`, section `docker`)."""
IMAGE_RULES = ("image-", "12f-build-")
"""The prefixes of the rules on image references (`security/image.py`, `twelve_factor/build.py`)."""
RELEASE_PLACEHOLDER = "0" * 40
"""The check needs no git history: the release only names objects."""


@dataclasses.dataclass(frozen=True)
class DockerfileCheck:
    report: AnalysisReport
    """The Dockerfile rules' findings."""
    contradicted: list[str]
    """What the Dockerfile and the app's contract file say that the stack's settings contradict (the port its
    `EXPOSE` names, the path its `HEALTHCHECK` asks for): a prebuilt image's stack is held to its Dockerfile here."""


def check_dockerfile(
    project_dir: Path, stack: str, dockerfile: Path, context: Path, target: str | None
) -> DockerfileCheck:
    """The Dockerfile rules' findings on `dockerfile` (built from `context`) for `stack`, and the settings it
    contradicts."""
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
    report = _analyze(project_dir, stack, run_program(project_dir, stack, overrides))
    built = stack_settings(stack, overrides, project_dir)
    contradicted = [] if built is None else app_contract.image_problems(built, project_dir)
    return DockerfileCheck(_only(report, lambda policy, _: policy.startswith(DOCKERFILE_RULES)), contradicted)


def check_image(project_dir: Path, stack: str, image: str, git_sha: str) -> AnalysisReport:
    """The image and build rules' findings on the objects of `stack` that run `image` (built from `git_sha`)."""
    settings = ["imageSource=prebuilt", f"imageRef={image}", f"gitSha={git_sha}"]
    recording = run_program(project_dir, stack, config_overrides(project_dir, stack, settings))
    running = {resource.name for resource in recording if image in json.dumps(resource.inputs)}
    report = _analyze(project_dir, stack, recording)
    return _only(report, lambda policy, resource: policy.startswith(IMAGE_RULES) and resource in running)


def _analyze(project_dir: Path, stack: str, recording: Recording) -> AnalysisReport:
    try:
        return analyze(recording, policy_config_path(project_dir, stack), pack_dir=project_dir / "policy")
    except PolicyPackError as error:
        raise ShipsafeError(f"the policy pack failed: {error}", ExitCode.POLICY_PACK_FAILED) from None


def _only(report: AnalysisReport, keep: Callable[[str, str], bool]) -> AnalysisReport:
    """The report with only the findings `keep(policy, resource)` selects, and the checks skipped among them."""
    found = [v for v in report.violations if keep(v.policy, v.resource)]
    skipped = [entry for entry in report.skipped if keep(*entry.rsplit(" on ", 1))]
    return dataclasses.replace(report, violations=found, skipped=skipped)
