"""Dev/prod parity: local development runs the same images and versions the stacks deploy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.services import APP_DIR, REPO_ROOT

COMPOSE_FILE = APP_DIR / "compose.yaml"
STACK_FILES = sorted(REPO_ROOT.glob("Pulumi.*.yaml"))
BACKING_SERVICES = ("postgres", "redis")


def stack_images(stack_file: Path) -> dict[str, str]:
    config = yaml.safe_load(stack_file.read_text())["config"]
    return {service: config[f"shipsafe:{service}"]["image"] for service in BACKING_SERVICES}


def parity_problems(compose: dict[str, Any], stack_file: Path) -> list[str]:
    services = compose["services"]
    return [
        f"{service}: compose runs {services[service].get('image')!r}, {stack_file.name} deploys {image!r}"
        for service, image in stack_images(stack_file).items()
        if services[service].get("image") != image
    ]


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    command = ["docker-compose", "--project-directory", str(APP_DIR), "-f", str(path), "config", "-q"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=lambda path: path.name)
def test_compose_runs_the_backing_service_versions_the_stack_deploys(stack_file: Path) -> None:
    assert parity_problems(yaml.safe_load(COMPOSE_FILE.read_text()), stack_file) == []


def test_stack_files_exist_and_agree_with_each_other() -> None:
    assert {path.name for path in STACK_FILES} >= {"Pulumi.staging.yaml", "Pulumi.prod.yaml"}
    assert len({tuple(stack_images(path).items()) for path in STACK_FILES}) == 1


def test_a_drifted_version_is_reported() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    compose["services"]["redis"]["image"] = "docker.io/library/redis:7.2.4-bookworm"
    assert parity_problems(compose, STACK_FILES[0]) == [
        f"redis: compose runs 'docker.io/library/redis:7.2.4-bookworm', {STACK_FILES[0].name} deploys "
        "'docker.io/library/redis:7.0.15-bookworm'"
    ]


def test_app_services_build_the_production_stage_of_this_dockerfile() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for name in ("app", "worker", "migrate"):
        assert services[name]["build"] == {"context": ".", "target": "production"}, name
    assert services["migrate"]["command"] == ["python", "-m", "notes_app", "migrate"]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="needs Debian's docker-compose (.ci/run installs it)"
)
def test_compose_file_is_valid_for_the_compose_tooling(tmp_path: Path) -> None:
    result = compose_config(COMPOSE_FILE)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("depends_on:", "depends_onn:", 1))
    assert compose_config(broken).returncode != 0, "control: an invalid file is rejected"
