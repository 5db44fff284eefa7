"""The app image on a real Docker engine: built, tagged with the git SHA, pushed to a registry, pulled back
by digest, inspected, and run against real Postgres/Redis until `docker stop` drains it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from components.release import working_tree_sha
from tests.app.images import Build, build, ensure_stand_in_base, image_id, image_layers, image_size
from tests.support.services import (
    APP_DIR,
    REPO_ROOT,
    PostgresServer,
    RedisServer,
    docker,
    free_port,
    wait_until,
)

pytestmark = [pytest.mark.image, pytest.mark.services]

SECRET_LOOKING = re.compile(r"pass|secret|token|api_?key|private|credential|dsn|database_url|redis_url", re.I)
STOP_GRACE_SECONDS = 30
# Like the pod: read-only root filesystem with a writable /tmp, all capabilities dropped.
POD_LIKE = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


@dataclass(frozen=True)
class BuiltImage:
    sha: str
    ref: str
    """`<registry>/<repository>:<git sha>`, the stack's tag scheme."""
    production: Build
    builder: Build
    code_only_rebuild: Build
    digest_ref: str = ""


@pytest.fixture(scope="module")
def built_image(
    docker_engine: None, local_registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BuiltImage]:
    ensure_stand_in_base()
    sha = working_tree_sha(REPO_ROOT)  # once: the tree may gain commits while the suite runs
    ref = f"{local_registry}/shipsafe/notes:{sha}"
    builder = build(f"{ref}-builder", target="builder")
    production = build(ref)
    # A code-only change must reuse every dependency layer: edit a copy of the context, never the repo.
    changed = tmp_path_factory.mktemp("context") / "app"
    shutil.copytree(APP_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
    with (changed / "notes_app" / "web.py").open("a") as source:
        source.write(f"\n# a code-only change {uuid.uuid4()}\n")  # unique: never cached by an earlier run
    rebuild = build(f"{ref}-code-change", context=changed)
    yield BuiltImage(sha, ref, production, builder, rebuild)
    # Keep `ref` and the builder tag: their layers are the next run's build cache.
    docker("rmi", "--no-prune", rebuild.tag, f"{ref}-stack", check=False)


@pytest.fixture(scope="module")
def pushed_image(built_image: BuiltImage) -> BuiltImage:
    docker("push", built_image.ref)
    digest_ref = json.loads(docker("image", "inspect", "--format", "{{json .RepoDigests}}", built_image.ref).stdout)[0]
    built_id = image_id(built_image.ref)
    # Drop the local copy (keeping the build cache's parent layers) so the pull really comes from the registry.
    docker("rmi", "--force", "--no-prune", built_id)  # every tag of it, e.g. from earlier runs
    assert docker("image", "inspect", built_id, check=False).returncode != 0, "image still present locally"
    pulled = docker("pull", digest_ref)
    assert "Downloaded newer image" in pulled.stdout, pulled.stdout
    assert image_id(digest_ref) == built_id, "the registry returned a different image"
    docker("tag", digest_ref, built_image.ref)
    return BuiltImage(**{**built_image.__dict__, "digest_ref": digest_ref})


@pytest.fixture(scope="module")
def faulty_image(pushed_image: BuiltImage) -> Iterator[str]:
    """The `faulty` test target: built after the push test removed the local release (a child image would pin it)."""
    faulty = build(f"{pushed_image.ref}-faulty", target="faulty")
    yield faulty.tag
    docker("rmi", faulty.tag, check=False)  # with its own intermediate images: they would pin the release


def test_image_is_tagged_with_the_git_sha_and_pulled_back_by_digest(pushed_image: BuiltImage) -> None:
    tag = pushed_image.ref.rsplit(":", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", tag), tag
    assert re.fullmatch(r"127\.0\.0\.1:5000/shipsafe/notes@sha256:[0-9a-f]{64}", pushed_image.digest_ref)


def test_image_config_follows_the_runtime_contract(pushed_image: BuiltImage) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", pushed_image.digest_ref).stdout)
    user, group = config["User"].split(":")
    assert user.isdigit() and int(user) == 10001 and group == "10001", "numeric non-root USER = pod runAsUser"
    assert config["Healthcheck"]["Test"][0] == "CMD", "HEALTHCHECK present, exec form"
    assert config["Cmd"] == ["python", "-m", "notes_app", "serve"], "exec-form CMD: python is PID 1"
    assert not config.get("Entrypoint"), "no shell wrapper in front of the app"
    assert set(config["ExposedPorts"]) == {"3002/tcp"}
    assert config["WorkingDir"] == "/app"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert not [name for name in env if SECRET_LOOKING.search(name)], env


def test_final_image_carries_only_runtime_and_app(pushed_image: BuiltImage) -> None:
    probe = (
        "import importlib.util, json, os, shutil;"
        "print(json.dumps([sorted(os.listdir('/app')), shutil.which('gcc'), importlib.util.find_spec('pip') is None,"
        " os.getuid(), __import__('psycopg').pq.__impl__, sorted(os.listdir('/opt')),"
        " importlib.util.find_spec('notes_faults') is None,"
        " getattr(importlib.util.find_spec('sitecustomize'), 'origin', '')]))"
    )
    result = docker("run", "--rm", "--network", "none", pushed_image.digest_ref, "python", "-c", probe)
    listing, gcc, no_pip, uid, libpq_impl, opt, no_faults, sitecustomize = json.loads(result.stdout)
    assert listing == ["notes_app"], "no .git, .env*, tests or lockfiles in the image"
    # Debian's python3 has its own sitecustomize (apport); the fault injection's would be under /opt.
    assert opt == ["venv"] and no_faults and not sitecustomize.startswith("/opt"), "no fault injection in production"
    assert gcc is None and no_pip, "compilers and pip stay in the builder stage"
    assert uid == 10001
    assert libpq_impl == "c", "psycopg's C implementation was built in the builder and runs here"


def test_the_faulty_test_image_is_the_production_image_plus_the_fault_code(
    pushed_image: BuiltImage, faulty_image: str
) -> None:
    production, faulty = image_layers(pushed_image.digest_ref), image_layers(faulty_image)
    assert faulty[: len(production)] == production and len(faulty) == len(production) + 1
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", faulty_image).stdout)
    assert "PYTHONPATH=/opt/fault_injection" in config["Env"]
    assert config["Cmd"] == ["python", "-m", "notes_app", "serve"], "the pod's own command runs faulty too"


def test_final_image_is_smaller_than_the_builder_stage(built_image: BuiltImage) -> None:
    final, builder = image_size(built_image.ref), image_size(built_image.builder.tag)
    print(f"\nimage sizes: final {final / 1e6:.1f} MB, builder {builder / 1e6:.1f} MB, ratio {final / builder:.2f}")
    assert final <= 0.40 * builder


def test_code_only_change_rebuilds_from_cache(built_image: BuiltImage) -> None:
    rebuild = built_image.code_only_rebuild
    print(f"\nbuild {built_image.production.seconds:.1f} s; code-only rebuild {rebuild.seconds:.1f} s")
    # Every step up to and including the dependency install comes from cache; only the app code is new.
    uncached = _uncached_steps(rebuild.output)
    assert "COPY notes_app ./notes_app" in uncached
    assert not [step for step in uncached if step.startswith(("RUN", "COPY requirements"))], uncached
    assert rebuild.seconds < 15


def _uncached_steps(output: str) -> list[str]:
    """Steps of a (classic builder) build log that did not print "Using cache" (FROM and ARG never do)."""
    parts = re.split(r"^Step \d+/\d+ : (.*)$", output, flags=re.MULTILINE)[1:]
    steps = zip(parts[0::2], parts[1::2], strict=True)
    return [step for step, log in steps if "Using cache" not in log and not step.startswith(("FROM", "ARG"))]


@pytest.fixture
def container(
    pushed_image: BuiltImage, faulty_image: str, postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[tuple[str, str]]:
    """The release's migration Job, then the `faulty` test image (3 s per /notes request) serving on a free port."""
    database = postgres_server.create_database()
    env = {"DATABASE_URL": postgres_server.url(database), "REDIS_URL": redis_server.url()}
    port = free_port()
    env_args = [arg for name, value in env.items() for arg in ("-e", f"{name}={value}")]
    # The migration Job's command, in the release image, before the app starts (migrations first).
    migrate_command = ["python", "-m", "notes_app", "migrate"]
    job = docker("run", "--rm", "--network", "host", *POD_LIKE, *env_args, pushed_image.digest_ref, *migrate_command)
    assert "schema at head" in job.stdout
    name = f"notes-test-{port}"
    faults = ["-e", "FAULT_LATENCY_MS=3000", "-e", f"PORT={port}"]
    docker("run", "-d", "--name", name, "--network", "host", *POD_LIKE, *env_args, *faults, faulty_image)
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        docker("rm", "-f", name, check=False)


def test_container_becomes_healthy_serves_and_drains_on_docker_stop(container: tuple[str, str]) -> None:
    name, url = container

    def health() -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()

    wait_until(lambda: health() == "healthy", 40, "container healthy", interval=0.5)
    created = httpx.post(url + "/notes", json={"title": "from docker", "body": "a b c"}, timeout=10)
    assert created.status_code == 201, created.text

    in_flight: list[int] = []
    request = threading.Thread(
        target=lambda: in_flight.append(
            httpx.post(url + "/notes", json={"title": "x", "body": "y"}, timeout=30).status_code
        )
    )
    request.start()
    time.sleep(1)  # the request is inside the app (3 s of injected latency) when the stop arrives
    started = time.monotonic()
    stop = subprocess.run(["docker", "stop", "-t", str(STOP_GRACE_SECONDS), name], capture_output=True, timeout=60)
    stopped_after = time.monotonic() - started
    request.join(30)

    assert stop.returncode == 0
    assert in_flight == [201], "the request in flight at SIGTERM completed"
    assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    assert stopped_after < STOP_GRACE_SECONDS, "exited by itself, not SIGKILLed at the deadline"
    messages = [json.loads(line)["msg"] for line in docker("logs", name).stdout.splitlines() if line.startswith("{")]
    assert messages[-1] == "Finished server process [1]", "PID 1 is python itself (exec-form CMD)"
    assert "stopped: pools closed" in messages


def test_stack_image_component_builds_this_dockerfile_with_the_same_tag_scheme(
    built_image: BuiltImage, local_registry: str
) -> None:
    from harness.runtime import run_stack

    registry = {"mode": "external", "server": local_registry, "repository": "shipsafe/notes", "username": "ci"}
    recording = run_stack(
        "staging", config_overrides={"shipsafe:gitSha": built_image.sha, "shipsafe:registry": registry}
    )
    (image,) = recording.of_type("docker:index/image:Image")
    inputs = image.inputs
    assert inputs["imageName"] == built_image.ref, f"{image.urn}: same <registry>/<repository>:<git sha>"
    context = REPO_ROOT / inputs["build"]["context"]
    dockerfile = REPO_ROOT / inputs["build"]["dockerfile"]
    assert (context, dockerfile) == (APP_DIR, APP_DIR / "Dockerfile"), image.urn
    # Building what the stack records yields the very image this suite built, layer for layer.
    stack_build = build(
        inputs["imageName"] + "-stack", context=context, dockerfile=dockerfile, target=inputs["build"]["target"]
    )
    assert image_layers(stack_build.tag) == image_layers(built_image.ref)
    assert Path(dockerfile).read_text().count(f"AS {inputs['build']['target']}") == 1
