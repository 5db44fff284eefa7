"""The second adoption path (docs/adopt.md): an app repository of its own installs shipsafe from the wheel this
project builds, is scaffolded by `shipsafe new`, and validates, previews offline under the installed pack and
renders, in its own venv, without one file of this project edited and without the network.

The new venv reaches the third-party dependencies through one path line in a .pth file naming this project's
.venv site-packages: site.py appends such a line to sys.path and processes no .pth file inside it
(`Lib/site.py` `addpackage`: only lines starting with `import` are executed, others are only added to the path),
so this checkout's editable install stays inactive there; the test proves each shipsafe package is the wheel's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from harness.stack_config import REPO_ROOT

pytestmark = pytest.mark.package

WHEEL_SOURCES = ("pyproject.toml", "deploy", "harness", "components", "policy/shipsafe_policies")
"""What `python -m pip wheel .` reads; copied so the build's own files (build/, *.egg-info) land outside the project."""
PACKAGES = ("components", "deploy", "harness", "shipsafe_policies")
EXAMPLE_APP = REPO_ROOT / "tests" / "example_app"
"""A database-free HTTP service with its own Dockerfile (stage `runtime`), port 8080, /live, /ready and /stats."""
DOCKERIGNORE = "venv\nout\n.git\n.env*\n"


def _env() -> dict[str, str]:
    """The environment minus what could point the app's processes back at this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHIPSAFE_PROJECT_DIR", "VIRTUAL_ENV")}
    return {**env, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in WHEEL_SOURCES:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO_ROOT / name, source / name)
    # The Makefile's install: no dependencies (they are the locks), setuptools from the locks, nothing downloaded.
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(out)],
        out,
    )
    (built,) = out.glob("shipsafe-*.whl")
    return built


@pytest.fixture(scope="module")
def app_repo(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("greeter-repo") / "greeter"
    venv = repo / "venv"  # where the scaffold's Pulumi.yaml and policy/PulumiPolicy.yaml look
    repo.mkdir()
    _venv_with_wheel(venv, wheel)
    # Scaffolded by the installed tool; it writes nothing into venv/.
    _run(
        [
            str(venv / "bin" / "shipsafe"),
            "new",
            str(repo),
            "--name",
            "greeter",
            "--host",
            "greeter.example.com",
            "--registry",
            "registry.example.com/team/greeter",
            "--port",
            "8080",
            "--liveness-path",
            "/live",
            "--readiness-path",
            "/ready",
            "--metrics-path",
            "/stats",
            "--public-path",
            "/greet",
            "--run-as-user",
            "20001",
            "--build-target",
            "runtime",
        ],
        repo.parent,
    )
    for name in ("Dockerfile", "hello.py"):
        shutil.copy(EXAMPLE_APP / name, repo)
    (repo / ".dockerignore").write_text(DOCKERIGNORE)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    _run(["git", "init", "-q"], repo)
    _run(["git", "add", "-A"], repo)
    _run([*git, "commit", "-qm", "greeter"], repo)
    return repo


def _venv_with_wheel(venv: Path, wheel: Path) -> None:
    """A new venv with shipsafe installed from `wheel` alone, its third-party dependencies this project's."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], venv.parent)
    python = venv / "bin" / "python"
    site_packages = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], venv).stdout.strip()
    )
    (site_packages / "shipsafe-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    _run([*pip, str(wheel)], venv)


def _shipsafe(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([str(repo / "venv" / "bin" / "shipsafe"), *args], repo)


def test_the_wheel_carries_the_tool_the_components_the_pack_and_the_app_template(wheel: Path) -> None:
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if "/" in name} >= {*PACKAGES}
    assert "deploy/app_template/policy/PulumiPolicy.yaml.tmpl" in names
    assert "shipsafe_policies/sdk_speedup.py" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "shipsafe = deploy.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_app_repository_runs_shipsafe_from_its_own_venv_not_this_checkout(app_repo: Path) -> None:
    python = app_repo / "venv" / "bin" / "python"
    where = json.loads(
        _run(
            [
                str(python),
                "-c",
                f"import json, importlib; print(json.dumps({{n: importlib.import_module(n).__file__ "
                f"for n in {PACKAGES!r}}}))",
            ],
            app_repo,
        ).stdout
    )
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], app_repo).stdout
    for package, path in where.items():
        assert Path(path).is_relative_to(purelib.strip()), f"{package} imported from {path}, not the wheel's install"
        assert not Path(path).is_relative_to(REPO_ROOT), f"{package} imported from this checkout: {path}"


def test_shipsafe_new_made_a_pulumi_project_with_a_stack_policy_config_and_pack(app_repo: Path) -> None:
    project = yaml.safe_load((app_repo / "Pulumi.yaml").read_text())
    assert project["name"] == "greeter"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    assert "from components.program import run" in (app_repo / "__main__.py").read_text()
    assert len((app_repo / "__main__.py").read_text().splitlines()) <= 6, "a few lines: the installed program"
    pack = yaml.safe_load((app_repo / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["options"]["virtualenv"] == "../venv"
    assert "from shipsafe_policies import all_policies" in (app_repo / "policy" / "__main__.py").read_text()
    policy = json.loads((app_repo / "policy" / "config" / "staging.json").read_text())
    assert policy["image-allowed-registries"]["allowedRegistries"] == ["registry.example.com/team/greeter"]
    assert not any(p.name == "components" for p in app_repo.iterdir()), "the components are the installed ones"


def test_config_validate_passes_in_the_app_repository(app_repo: Path) -> None:
    assert "staging: valid" in _shipsafe(app_repo, "config", "validate").stdout


def test_the_offline_preview_passes_every_phase_with_the_installed_pack(app_repo: Path) -> None:
    report = json.loads(_shipsafe(app_repo, "preview", "staging", "--offline", "--output", "json").stdout)
    assert report["result"] == "passed"
    assert len(report["phases"]) >= 6, "first preview, after up and the later preview, on each Kubernetes version"
    for phase in report["phases"]:
        assert phase["mandatory"] == 0, phase
    # The Dockerfile rules read the app repository's own Dockerfile (projectDir relative to its policy/).
    advisories = {v["policy"] for phase in report["phases"] for v in phase["violations"]}
    assert advisories == {"docker-base-image-digest"}, advisories


def test_render_deploys_the_app_with_its_own_contract_and_no_backing_service(app_repo: Path) -> None:
    documents = [d for d in yaml.safe_load_all(_shipsafe(app_repo, "render", "staging").stdout) if d]
    kinds = {d["kind"] for d in documents}
    assert not kinds & {"StatefulSet", "Job"}, sorted(kinds)
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert [e["name"] for e in container["env"]] == ["APP_VERSION"], "no DATABASE_URL or REDIS_URL"
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 20001
