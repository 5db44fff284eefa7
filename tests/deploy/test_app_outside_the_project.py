"""An app whose code lives in its own repository: built from a context beside the project (`../greeter`), tagged with
that repository's commit and judged by the Dockerfile rules; or checked by its own CI with `shipsafe image check`
before it hands a prebuilt image over."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.deploy.memory_stack import MemoryStacks
from tests.support.project_copy import copy_project

pytestmark = pytest.mark.slow  # runs the offline preview or the CLI end to end

APP = "greeter"


def run_as_root(dockerfile: Path) -> None:
    """The app's Dockerfile with its production stage's USER replaced by root: a mandatory Dockerfile rule breaks."""
    text = dockerfile.read_text()
    assert text.count("\nUSER 10001:10001\n") == 1, "the reference Dockerfile's one USER"
    dockerfile.write_text(text.replace("\nUSER 10001:10001\n", "\nUSER root\n"))


def _git(*args: str, cwd: Path) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`platform/` (a copy of this project) and `greeter/` (the app's own repository, one commit) side by side."""
    root = tmp_path_factory.mktemp("checkouts")
    (root / "platform").mkdir()
    copy_project(root / "platform")
    shutil.copytree(REPO_ROOT / "app", root / APP, ignore=shutil.ignore_patterns("__pycache__"))
    for args in (("init", "-q"), ("add", "-A"), ("commit", "-q", "-m", "the app")):
        _git(*args, cwd=root / APP)
    return root


def shipsafe(platform: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "deploy", *args]
    return subprocess.run(command, cwd=platform, capture_output=True, text=True, timeout=300, check=False)


def test_the_offline_preview_builds_from_a_context_beside_the_project(layout: Path) -> None:
    result = shipsafe(layout / "platform", "preview", "staging", "--offline", f"--set=app.buildContext=../{APP}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_dockerfile_rules_judge_the_context_beside_the_project(layout: Path) -> None:
    bad = layout / f"root-{APP}"
    shutil.copytree(layout / APP, bad, ignore=shutil.ignore_patterns(".git"))
    run_as_root(bad / "Dockerfile")
    release = "--set=gitSha=0123456789abcdef0123456789abcdef01234567"  # no repository there
    result = shipsafe(
        layout / "platform", "preview", "staging", "--offline", f"--set=app.buildContext=../{bad.name}", release
    )
    assert result.returncode == ExitCode.POLICY_VIOLATION, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[docker-non-root-user]" in result.stdout + result.stderr


def test_the_release_is_the_commit_of_the_app_repository(layout: Path) -> None:
    head = _git("rev-parse", "HEAD", cwd=layout / APP)
    rendered = shipsafe(layout / "platform", "render", "staging", f"--set=app.buildContext=../{APP}")
    assert rendered.returncode == 0, rendered.stderr
    assert f"/shipsafe/notes:{head}@sha256:" in rendered.stdout
    assert f"notes-migrate-{head[:12]}" in rendered.stdout


def test_an_absolute_build_context_is_refused_naming_the_key(layout: Path) -> None:
    result = shipsafe(layout / "platform", "render", "staging", f"--set=app.buildContext={layout / APP}")
    assert result.returncode == ExitCode.CONFIG_ERROR, result.stderr
    assert "buildContext" in result.stderr and "not absolute" in result.stderr


# ── shipsafe image check, for the app's own CI ────────────────────────────────────────────────────────────────────


def _image_check(*args: str) -> tuple[int, str]:
    context = DeployContext(open_stack=MemoryStacks(), project_dir=REPO_ROOT)
    result = CliRunner().invoke(cli, ["image", "check", *args], obj=context)
    return result.exit_code, result.output


def test_image_check_passes_the_reference_dockerfile() -> None:
    code, output = _image_check("--dockerfile", str(REPO_ROOT / "app" / "Dockerfile"))
    assert code == 0, output
    assert output.count("Policy check passed: 0 mandatory") == len(list(REPO_ROOT.glob("Pulumi.*.yaml")))


def test_image_check_catches_a_bad_dockerfile_with_the_policy_exit_code(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "app", tmp_path / APP, ignore=shutil.ignore_patterns("__pycache__"))
    dockerfile = tmp_path / APP / "Dockerfile"
    run_as_root(dockerfile)
    code, output = _image_check("--dockerfile", str(dockerfile), "-s", "prod")
    assert code == ExitCode.POLICY_VIOLATION, output
    assert "[docker-non-root-user]" in output
    assert "the image breaks mandatory image rules for prod" in output.replace("\n", " ")
    assert "[12f-" not in output and "[hardening-" not in output, "only the Dockerfile rules are reported"


def _committed_image_ref() -> str:
    _, config = read_stack_config("prod")
    return str(config["shipsafe:imageRef"])


def test_image_check_passes_a_pushed_image_pinned_by_digest() -> None:
    code, output = _image_check("--image", _committed_image_ref())
    assert code == 0, output
    assert output.count("Policy check passed: 0 mandatory") == len(list(REPO_ROOT.glob("Pulumi.*.yaml")))


def test_image_check_catches_an_image_without_a_digest() -> None:
    tag_only = _committed_image_ref().split("@", 1)[0]
    code, output = _image_check("--image", tag_only, "-s", "staging")
    assert code == ExitCode.POLICY_VIOLATION, output
    assert "[12f-build-immutable-image]" in output and "notes-web-deployment" in output
    assert "notes-postgres-statefulset" not in output, "only the objects that run the image are judged"


def test_image_check_needs_something_to_check() -> None:
    code, output = _image_check()
    assert code == ExitCode.USAGE and "give --dockerfile, --image or both" in output
