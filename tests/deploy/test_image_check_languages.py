"""`shipsafe image check` end to end on a Node, a Go, a Python and a dependency-free app: the stack's program builds
from the app's context and the real pack judges its Dockerfile; a good image passes, a bad one exits
POLICY_VIOLATION with the fix in the app's own language."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from deploy.cli import cli
from deploy.context import DeployContext
from deploy.errors import ExitCode
from harness.stack_config import REPO_ROOT
from tests.deploy.memory_stack import MemoryStacks
from tests.policy.test_dockerfile_languages import GOOD, write_context


def image_check(context: Path, stack: str = "staging") -> tuple[int, str]:
    deploy = DeployContext(open_stack=MemoryStacks(), project_dir=REPO_ROOT)
    arguments = ["image", "check", "--dockerfile", str(context / "Dockerfile"), "-s", stack]
    result = CliRunner().invoke(cli, arguments, obj=deploy)
    return result.exit_code, " ".join(result.output.split())


# (good variant, text replaced, replacement, rule, the language's fix in the message)
BAD = {
    "node": ("RUN npm ci\n", "RUN npm install\n", "docker-reproducible-deps", "use `npm ci` with the committed"),
    "go": ("USER nonroot:nonroot\n", "", "docker-non-root-user", "`USER nonroot:nonroot` (distroless)"),
    "single-script": (
        "COPY app.py /app/app.py\n",
        "COPY app.py /app/app.py\nENV API_TOKEN=abcdef123456\n",
        "docker-no-baked-secrets",
        "RUN --mount=type=secret,id=api_token,env=API_TOKEN",
    ),
    "static-binary": (
        'CMD ["/app/server"]',
        "CMD /app/server --port 8080",
        "docker-runtime-contract",
        'CMD ["/app/server",',
    ),
}


@pytest.mark.parametrize("variant", sorted(BAD))
def test_a_good_image_passes(variant: str, tmp_path: Path) -> None:
    dockerfile, files = GOOD[variant]
    code, output = image_check(write_context(tmp_path / variant, dockerfile, files))
    assert code == 0, output
    assert "Policy check passed: 0 mandatory" in output


def test_the_stack_is_held_to_the_port_the_dockerfile_exposes(tmp_path: Path) -> None:
    """A prebuilt app's Dockerfile lives in its own repository: the check is where the stack meets it."""
    dockerfile, files = GOOD["go"]
    code, output = image_check(write_context(tmp_path / "go", dockerfile.replace("EXPOSE 3002", "EXPOSE 8080"), files))
    assert code == ExitCode.CONFIG_ERROR, output
    assert "shipsafe:app.port = 3002, but" in output and "EXPOSEs 8080" in output
    assert "the Dockerfile contradicts the settings of staging" in output


CREATES_APP = "RUN groupadd --gid {gid} app && useradd --uid {uid} --gid {gid} app\nUSER app\n"


def test_a_created_named_user_is_compared_with_the_pods_by_its_ids(tmp_path: Path) -> None:
    """The staging pods run as 10001:10001 (shipsafe:app.runAsUser); `USER app` is whatever the useradd made it."""
    dockerfile, files = GOOD["single-script"]
    same = dockerfile.replace("USER 10001:10001\n", CREATES_APP.format(uid=10001, gid=10001))
    code, output = image_check(write_context(tmp_path / "same", same, files))
    assert code == 0, output
    other = dockerfile.replace("USER 10001:10001\n", CREATES_APP.format(uid=10002, gid=10001))
    code, output = image_check(write_context(tmp_path / "other", other, files))
    assert code == ExitCode.POLICY_VIOLATION, output
    assert (
        "[docker-user-matches-pods]" in output and "runAsUser is 10001, but the image's USER is 10002:10001" in output
    )


@pytest.mark.parametrize("variant", sorted(BAD))
def test_a_bad_image_fails_with_the_language_fix(variant: str, tmp_path: Path) -> None:
    dockerfile, files = GOOD[variant]
    old, new, rule, fix = BAD[variant]
    assert old in dockerfile
    code, output = image_check(write_context(tmp_path / variant, dockerfile.replace(old, new, 1), files))
    assert code == ExitCode.POLICY_VIOLATION, output
    assert f"[{rule}]" in output and fix in output, output


def test_a_build_no_known_package_manager_runs_is_named_not_refused_even_in_prod(tmp_path: Path) -> None:
    """prod sets every level to mandatory ("all"), but not this one: a tool the pack cannot judge, in a builder
    stage, is reported with what it could not identify, never failed for it (policy/config/prod.json)."""
    dockerfile, files = GOOD["go"]
    unknown = dockerfile.replace("RUN go mod download\n", "RUN cargo fetch --locked\n")
    code, output = image_check(write_context(tmp_path, unknown, files), "prod")
    assert code == 0, output
    assert "[docker-package-manager-known]" in output
    assert "could not identify a package manager in `cargo fetch --locked`" in output


def test_a_compile_in_the_final_stage_fails_in_any_language(tmp_path: Path) -> None:
    """A Rust build in one stage: the pack judges no Rust lockfile, but the toolchain shipping is plain to see."""
    dockerfile, files = GOOD["static-binary"]
    rust = dockerfile.replace("COPY server /app/server\n", "COPY . /src\nRUN cargo build --release\n")
    code, output = image_check(write_context(tmp_path, rust, files), "prod")
    assert code == ExitCode.POLICY_VIOLATION, output
    assert "[docker-reproducible-deps]" in output
    assert "`cargo build --release` compiles in the final stage, so the Rust toolchain (cargo) ships" in output


@pytest.mark.parametrize("wrapped", ['RUN sh -c "npm install"\n', "RUN bash -lc 'env CI=1 npm install'\n"])
def test_a_shell_wrapped_unlocked_install_fails_in_prod(wrapped: str, tmp_path: Path) -> None:
    dockerfile, files = GOOD["node"]
    code, output = image_check(write_context(tmp_path, dockerfile.replace("RUN npm ci\n", wrapped, 1), files), "prod")
    assert code == ExitCode.POLICY_VIOLATION, output
    assert "[docker-reproducible-deps]" in output and "use `npm ci` with the committed" in output, output
