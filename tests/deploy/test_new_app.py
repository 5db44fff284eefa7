"""`shipsafe new`: an app repository's files, written only when every option is valid and no file exists."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from shipsafe_policies.languages import PYTHON, identify

from deploy.cli import cli
from deploy.offline.commands import config_problems

REQUIRED = [
    "--host",
    "greeter.example.com",
    "--registry",
    "registry.example.com/team/greeter",
    "--public-path",
    "/greet",
]
FILES = {
    ".dockerignore",
    ".gitignore",
    "Pulumi.yaml",
    "Pulumi.staging.yaml",
    "README.md",
    "__main__.py",
    "policy/PulumiPolicy.yaml",
    "policy/__main__.py",
    "policy/config/staging.json",
    "requirements.txt",
}


def _new(directory: Path, *options: str) -> Result:
    return CliRunner().invoke(cli, ["new", str(directory), *REQUIRED, *options])


def _written(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()} if directory.exists() else set()


def test_new_writes_a_project_whose_stack_validates(tmp_path: Path) -> None:
    app = tmp_path / "greeter"
    result = _new(app, "--port", "9090", "--liveness-path", "/live", "--stack", "dev", "--build-target", "serve")
    assert result.exit_code == 0, result.output
    assert _written(app) == {f.replace("staging", "dev") for f in FILES}
    stack = (app / "Pulumi.dev.yaml").read_text()
    assert "port: 9090" in stack and 'livenessPath: "/live"' in stack and 'buildTarget: "serve"' in stack
    assert config_problems(app, "dev") == []


def test_new_overwrites_nothing_and_names_what_exists(tmp_path: Path) -> None:
    app = tmp_path / "greeter"
    (app / "policy" / "config").mkdir(parents=True)
    (app / "Pulumi.yaml").write_text("name: mine\n")
    (app / "policy" / "config" / "staging.json").write_text("{}")
    result = _new(app)
    assert result.exit_code == 2
    assert str(app / "Pulumi.yaml") in result.output and str(app / "policy/config/staging.json") in result.output
    assert _written(app) == {"Pulumi.yaml", "policy/config/staging.json"}
    assert (app / "Pulumi.yaml").read_text() == "name: mine\n"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--port", "70000"], "--port: shipsafe:app.port"),
        (["--name", "Greeter_App"], "--name 'Greeter_App'"),
        (["--registry", "greeter"], "--registry 'greeter'"),
        (["--stack", "no/slash"], "--stack 'no/slash'"),
        (["--metrics-path", "/greet"], "--public-path, --metrics-path: shipsafe:app.publicPaths"),
        (["--readiness-path", "ready"], "--readiness-path: shipsafe:app.readinessPath"),
        (["--run-as-user", "0"], "--run-as-user: shipsafe:app.runAsUser"),
        (["--image-source", "prebuilt"], "--image-source, --image-ref: shipsafe:imageSource"),
        (["--prometheus-url", "prometheus:9090"], "--prometheus-url: shipsafe:verification.prometheusUrl"),
    ],
)
def test_new_refuses_a_bad_option_by_name_and_writes_nothing(tmp_path: Path, options: list[str], named: str) -> None:
    app = tmp_path / "greeter"
    result = _new(app, *options)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert _written(app) == set()


def test_an_app_built_from_the_root_gets_a_dockerignore_that_keeps_the_project_out(tmp_path: Path) -> None:
    """The project's own requirements.txt must not make a Node (or dependency-free) app look like a Python build."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    assert _new(root).exit_code == 0
    assert _new(elsewhere, "--build-context", "app").exit_code == 0
    ignored = (root / ".dockerignore").read_text().splitlines()
    assert {"requirements.txt", "Pulumi.*.yaml", "policy/", "venv/", ".git", ".env*"} <= set(ignored)
    assert not (elsewhere / ".dockerignore").exists(), "the app's own context brings its own .dockerignore"
    (root / "server.py").write_text("print('hello')\n")
    assert identify(root, ["debian:12.8-slim"], [["python3", "server.py"]]) == [PYTHON]  # its tool, not the file
    assert identify(root, ["debian:12.8-slim"], [["/app/server"]]) == []
