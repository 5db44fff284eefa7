"""Real servers for tests, started on 127.0.0.1 with temporary data dirs and stopped afterwards.

Shared by every test area: Postgres and Redis from Debian packages, the notes app as a subprocess,
the Docker engine and a local registry. Import the fixtures you need into your conftest.py, e.g.
`from tests.support.services import postgres_server, redis_server, start_app  # noqa: F401`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "app"
# Debian and Ubuntu install each PostgreSQL major side by side here (15 on Debian 12, 16 on Ubuntu 24.04).
POSTGRES_INSTALL_ROOT = Path("/usr/lib/postgresql")
REGISTRY_ADDRESS = "127.0.0.1:5000"
_MAJOR_VERSION = re.compile(r"\d+(\.\d+)?")  # "16", or "9.6" before PostgreSQL 10
_database_names = itertools.count(1)
# setpriv execs (no intermediate process), so signals sent to the Popen reach postgres itself.
_SETPRIV_POSTGRES = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout} s")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, urllib.error.URLError):
        return None


def _as_unprivileged(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; CI runs as root, developers usually do not.
    return [*_SETPRIV_POSTGRES, *command] if os.geteuid() == 0 else command


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def postgres_bin(install_root: Path = POSTGRES_INSTALL_ROOT) -> Path:
    """The bin directory of the newest installed PostgreSQL server (`pg_config --bindir` names the client's)."""
    servers = [path for path in install_root.glob("*/bin/postgres") if _MAJOR_VERSION.fullmatch(path.parents[1].name)]
    if not servers:
        raise FileNotFoundError(
            f"no PostgreSQL server: nothing matches {install_root}/*/bin/postgres "
            "(install the postgresql package: scripts/install-system-packages.sh)"
        )
    newest = max(servers, key=lambda path: tuple(int(part) for part in path.parents[1].name.split(".")))
    return newest.parent


class PostgresServer:
    """A throwaway cluster of the newest installed PostgreSQL (trust auth on loopback), stoppable and restartable."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="shipsafe-pg-"))
        self.data_dir = self._dir / "data"
        self._process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres", "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust"]
        subprocess.run(
            _as_unprivileged([*initdb, "--no-sync", "-E", "UTF8"]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        command = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self._dir)}
        settings |= {"fsync": "off", "max_connections": "200"}  # test speed and many app processes
        command += [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
        log = (self._dir / "postgres.log").open("ab")
        self._process = subprocess.Popen(_as_unprivileged(command), stdout=log, stderr=log)
        wait_until(self._accepts_connections, 30, "postgres accepting connections")

    def stop(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no waiting on clients
            self._process.wait(30)
            self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(database)],
            input=sql.encode(),
            capture_output=True,
            check=True,
            timeout=30,
        )
        return result.stdout.decode().strip()

    def create_database(self, prefix: str = "test") -> str:
        name = f"{prefix}_{os.getpid()}_{next(_database_names)}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def _accepts_connections(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = (self._dir / "postgres.log").read_text(errors="replace")
            raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{log[-2000:]}")
        ready = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(ready, timeout=10).returncode == 0


class RedisServer:
    """A throwaway Redis 7.0 without persistence that can be stopped and restarted on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", 15, "redis answering PING")

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
            self._process = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def cli(self, *args: str) -> str:
        command = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args]
        result = subprocess.run(command, capture_output=True, timeout=10)
        return result.stdout.decode().strip()


class AppProcess:
    """`python -m notes_app <command>` as a subprocess of the test, logs (JSON lines) to a file."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env["PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(APP_DIR), **env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notes_app", command], env=full_env, stdout=self._log, stderr=self._log
        )

    def status(self, path: str) -> int | None:
        return http_status(self.base_url + path)

    def wait_ready(self, timeout: float = 20) -> None:
        wait_until(lambda: self._alive() and self.status("/readyz") == 200, timeout, "app ready")

    def log_lines(self) -> list[dict[str, object]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def stop(self) -> int:
        stop_process(self.process, timeout=35)
        self._log.close()
        return int(self.process.returncode)

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"app exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        return True


def app_env(postgres: PostgresServer, redis: RedisServer, database: str, **extra: str) -> dict[str, str]:
    """The environment the app contract defines, pointing at the test servers."""
    env = {
        "PORT": str(free_port()),
        "DATABASE_URL": postgres.url(database),
        "REDIS_URL": redis.url(),
        "APP_VERSION": "test-sha",
        "LOG_LEVEL": "info",
    }
    return env | extra


def migrate(database_url: str) -> subprocess.CompletedProcess[str]:
    """Run the migration command exactly as the migration Job does."""
    return subprocess.run(
        [sys.executable, "-m", "notes_app", "migrate"],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(APP_DIR), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def migrated_database(postgres_server: PostgresServer) -> str:
    """A fresh database at the head migration; returns its name."""
    name = postgres_server.create_database()
    result = migrate(postgres_server.url(name))
    assert result.returncode == 0, result.stdout + result.stderr
    return name


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., AppProcess]]:
    """Factory: start_app(env, command="serve") -> a ready AppProcess; all are stopped after the test."""
    started: list[AppProcess] = []

    def start(env: dict[str, str], command: str = "serve", wait: bool = True) -> AppProcess:
        app = AppProcess(command, env, tmp_path / f"app-{len(started)}.log")
        started.append(app)
        if wait:
            app.wait_ready()
        return app

    yield start
    for app in started:
        app.stop()


# ── Docker engine and registry ────────────────────────────────────────────────────────────────────────


def docker(
    *args: str, timeout: float = 600, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env} if env else None
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=environment)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A running dockerd. Uses the one already running, else starts one without bridge or iptables (this
    machine cannot create them); builds and containers then use --network host."""
    if docker("info", timeout=30, check=False).returncode == 0:
        yield
        return
    log = (tmp_path_factory.mktemp("dockerd") / "dockerd.log").open("wb")
    process = subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false"], stdout=log, stderr=log)
    try:
        wait_until(lambda: docker("info", timeout=30, check=False).returncode == 0, 60, "dockerd", 0.5)
        yield
    finally:
        stop_process(process, timeout=30)


@pytest.fixture(scope="session")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1:5000 with temporary storage."""
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY_ADDRESS}\n"
        "log:\n  level: warn\n"
    )
    log = (root / "registry.log").open("wb")
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        wait_until(lambda: http_status(f"http://{REGISTRY_ADDRESS}/v2/") == 200, 30, "registry")
        yield REGISTRY_ADDRESS
    finally:
        stop_process(process)


@contextlib.contextmanager
def stopped(server: PostgresServer | RedisServer) -> Iterator[None]:
    """Stop a server for the duration of the block, then start it again on the same port."""
    server.stop()
    try:
        yield
    finally:
        server.start()
