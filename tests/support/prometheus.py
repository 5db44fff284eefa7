"""A real Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping given targets every second.

Each instance gets a temp config and temp storage on a free port and is always stopped afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import free_port, stop_process, wait_until

STARTUP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_for_series(self, promql: str, timeout_seconds: float = 20.0) -> None:
        """Blocks until the query returns data, e.g. until a new app version has been scraped."""
        wait_until(lambda: bool(self.query(promql)), timeout_seconds, f"Prometheus data for {promql}", 0.5)


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: list[str]
    """`127.0.0.1:<port>` addresses serving `/metrics`."""
    labels: dict[str, str] = field(default_factory=dict)
    """Added to every series, like Kubernetes service discovery adds `namespace`."""


def _config(jobs: list[ScrapeJob], scrape_interval: str) -> str:
    document = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {"job_name": job.name, "static_configs": [{"targets": job.targets, "labels": job.labels}]} for job in jobs
        ],
    }
    return json.dumps(document)  # JSON is YAML


@contextmanager
def running_prometheus(
    jobs: list[ScrapeJob], workdir: Path, *, scrape_interval: str = "1s"
) -> Iterator[PrometheusServer]:
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed (scripts/install-system-packages.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(_config(jobs, scrape_interval))
    port = free_port()
    log = workdir / "prometheus.log"
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = PrometheusServer(f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        stop_process(process)


def _wait_ready(server: PrometheusServer, process: subprocess.Popen[bytes]) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}: {server.log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, STARTUP_TIMEOUT_SECONDS, "prometheus ready", 0.2)
