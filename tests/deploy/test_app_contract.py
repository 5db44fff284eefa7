"""What the project can know about the app, it checks: each contradiction is refused with the keys named, by
`shipsafe config validate` and by the offline preview before the program runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from deploy import app_contract
from deploy.app_contract import CONTRACT_FILE
from deploy.exit_codes import ExitCode
from deploy.offline import preview
from deploy.offline.commands import config_problems
from tests.support.project_copy import copy_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("contract"), commit=False)


@contextmanager
def edited(path: Path, old: str, new: str) -> Iterator[None]:
    """`path` with `old` replaced by `new` for the duration."""
    committed = path.read_text()
    assert old in committed, f"{old!r} not in {path}"
    path.write_text(committed.replace(old, new))
    try:
        yield
    finally:
        path.write_text(committed)


@contextmanager
def without(path: Path) -> Iterator[None]:
    committed = path.read_text()
    path.unlink()
    try:
        yield
    finally:
        path.write_text(committed)


def offline_preview(project: Path, stack: str, *overrides: str, refused: bool = True) -> tuple[int, str]:
    out = project / "out-contract"
    shutil.rmtree(out, ignore_errors=True)
    report = preview.offline_preview(
        stack, preview.parse_overrides(stack, overrides, project), project_dir=project, out=out
    )
    assert out.exists() is not refused, "refused before the program ran" if refused else "the program ran"
    refusal = report.error
    return report.exit_code, "" if refusal is None else "\n".join([refusal.message, *refusal.problems])


def test_the_committed_stacks_keep_the_contract(project: Path) -> None:
    assert config_problems(project, "staging") == []
    assert config_problems(project, "prod") == []


def test_the_port_against_the_dockerfile_expose(project: Path) -> None:
    expected = "shipsafe:app.port = 8080, but app/Dockerfile EXPOSEs 3002"
    with without(project / "app" / CONTRACT_FILE):
        status, err = offline_preview(project, "staging", "app.port=8080")
        assert status == ExitCode.CONFIG_ERROR and expected in err, err
        with edited(project / "Pulumi.staging.yaml", "    port: 3002\n", "    port: 8080\n"):
            assert any(expected in problem for problem in config_problems(project, "staging"))


def test_the_liveness_path_against_the_dockerfile_healthcheck(project: Path) -> None:
    expected = "app/Dockerfile HEALTHCHECK requests /healthz, but shipsafe:app.livenessPath = /live"
    with without(project / "app" / CONTRACT_FILE):
        status, err = offline_preview(project, "staging", "app.livenessPath=/live")
        assert status == ExitCode.CONFIG_ERROR and expected in err, err
        with edited(project / "Pulumi.staging.yaml", "    port: 3002\n", "    port: 3002\n    livenessPath: /live\n"):
            assert any(expected in problem for problem in config_problems(project, "staging"))


def test_a_readiness_path_the_app_does_not_declare(project: Path) -> None:
    expected = f"shipsafe:app.readinessPath = /ready, but app/{CONTRACT_FILE} declares readinessPath: /readyz"
    status, err = offline_preview(project, "prod", "app.readinessPath=/ready")
    assert status == ExitCode.CONFIG_ERROR and expected in err, err
    with edited(project / "Pulumi.prod.yaml", "    port: 3002\n", "    port: 3002\n    readinessPath: /ready\n"):
        assert any(expected in problem for problem in config_problems(project, "prod"))


def test_an_unknown_key_in_the_contract_file_is_named(project: Path) -> None:
    with edited(project / "app" / CONTRACT_FILE, "port: 3002", "prot: 3002"):
        problems = config_problems(project, "staging")
    assert any(f"app/{CONTRACT_FILE}: unknown key 'prot'" in problem for problem in problems), problems


def test_a_migration_in_one_stack_of_the_app_and_not_the_other(project: Path) -> None:
    expected = "shipsafe:migration.command is set in Pulumi.prod.yaml but not in Pulumi.staging.yaml"
    staging = (project / "Pulumi.staging.yaml").read_text()
    start = staging.index("  shipsafe:migration:\n")
    end = staging.index("  shipsafe:verification:\n")
    with edited(project / "Pulumi.staging.yaml", staging[start:end], ""):
        for stack in ("staging", "prod"):
            assert any(expected in problem for problem in config_problems(project, stack)), stack
        status, err = offline_preview(project, "prod")
    assert status == ExitCode.CONFIG_ERROR and expected in err, err


def test_a_password_inside_a_url_setting_is_refused_unless_secret(project: Path) -> None:
    url = "https://reader:hunter2@prometheus.example.com:9090"
    status, err = offline_preview(project, "staging", f"verification.prometheusUrl={url}")
    assert status == ExitCode.CONFIG_ERROR, err
    assert "shipsafe:verification.prometheusUrl carries a credential (user info)" in err
    assert "hunter2" not in err
    plain = "    prometheusUrl: http://prometheus-operated.monitoring.svc:9090\n"
    with edited(project / "Pulumi.staging.yaml", plain, "    prometheusUrl: http://prom:9090/api?access_token=abc\n"):
        problems = config_problems(project, "staging")
    assert any("prometheusUrl carries a credential (the query parameter 'access_token')" in p for p in problems)


NODE_DOCKERFILE = """\
ARG NODE_IMAGE=docker.io/library/node:20.18.0-bookworm-slim
FROM ${NODE_IMAGE} AS build
ENV PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
FROM build AS production
ARG UNUSED
USER 10001:10001
EXPOSE ${PORT}/tcp
HEALTHCHECK CMD wget -qO- http://localhost:${PORT}/health || exit 1
CMD ["node", "dist/main.js"]
"""


def test_a_node_dockerfile_port_from_env_and_its_healthcheck(project: Path) -> None:
    context = project / "service"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(NODE_DOCKERFILE)
    settings = ("app.buildContext=service", "app.buildTarget=production")
    status, err = offline_preview(project, "staging", *settings)
    assert status == ExitCode.CONFIG_ERROR, err
    assert "shipsafe:app.port = 3002, but service/Dockerfile EXPOSEs 8080" in err
    assert "service/Dockerfile HEALTHCHECK requests /health, but shipsafe:app.livenessPath = /healthz" in err
    agreeing = ("app.port=8080", "app.livenessPath=/health", "gitSha=0123456789ab")
    status, err = offline_preview(project, "staging", *settings, *agreeing, refused=False)
    assert status != ExitCode.CONFIG_ERROR and "EXPOSEs" not in err and "HEALTHCHECK requests" not in err, err


HEALTHCHECK_CASES = [
    # (the Dockerfile's EXPOSE and HEALTHCHECK lines, what the problems name; None: the stack agrees)
    ("EXPOSE 3002\nHEALTHCHECK CMD curl -f http://localhost:3002/ && test -f /tmp/ready", None),
    ("EXPOSE 3002\nHEALTHCHECK CMD curl -f http://localhost:3002/actuator/health", None),
    ("EXPOSE 3002\nHEALTHCHECK CMD curl -f http://[::1]:9999/healthz", "HEALTHCHECK requests port 9999"),
    ("EXPOSE ${PORT:-8080}\nHEALTHCHECK CMD curl -f http://localhost:3002/healthz", "EXPOSEs 8080"),
    ("EXPOSE 3002 8125/udp\nHEALTHCHECK CMD curl -f http://localhost:3002/actuator/health", None),
    ("EXPOSE 3002\nHEALTHCHECK CMD curl -f http://localhost:3002/status", "HEALTHCHECK requests /status"),
]
"""Probes at /actuator/health/liveness and /actuator/health/readiness (Spring Boot's layout), port 3002."""


@pytest.mark.parametrize(("lines", "expected"), HEALTHCHECK_CASES)
def test_what_the_dockerfile_declares_against_the_probes(project: Path, lines: str, expected: str | None) -> None:
    context = project / "spring"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(f'FROM example.com/base:1.0\nUSER 10001:10001\n{lines}\nCMD ["/app"]\n')
    overrides = preview.parse_overrides(
        "staging",
        [
            "app.buildContext=spring",
            "app.livenessPath=/actuator/health/liveness",
            "app.readinessPath=/actuator/health/readiness",
        ],
        project,
    )
    settings = preview.stack_settings("staging", overrides, project)
    assert settings is not None
    problems = app_contract.image_problems(settings, project)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in problem for problem in problems), problems


def test_a_prebuilt_app_built_elsewhere_is_not_held_to_this_projects_contract_file(project: Path) -> None:
    """Another team's app, deployed prebuilt: its contract lives with its code (`shipsafe image check`), not in the
    notes app's build context that `app.buildContext` defaults to."""
    prod = (project / "Pulumi.prod.yaml").read_text()
    greeter = prod.replace("    name: notes\n", "    name: greeter\n").replace("    port: 3002\n", "    port: 8080\n")
    assert greeter != prod
    (project / "Pulumi.greeter.yaml").write_text(greeter)
    policy = project / "policy" / "config"
    (policy / "greeter.json").write_text((policy / "prod.json").read_text())
    try:
        problems = config_problems(project, "greeter")
    finally:
        (project / "Pulumi.greeter.yaml").unlink()
        (policy / "greeter.json").unlink()
    assert not [problem for problem in problems if CONTRACT_FILE in problem], problems
    with edited(project / "Pulumi.prod.yaml", "    port: 3002\n", "    port: 8080\n"):  # notes: promoted from staging
        assert any(CONTRACT_FILE in problem for problem in config_problems(project, "prod"))
