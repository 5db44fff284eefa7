"""XI Logs: event streams to stdout, never files."""

from __future__ import annotations

from collections.abc import Iterator

from .. import k8s
from ..framework import Config, HasProps, Item, Section, item_by_item
from ..k8s import items, workload_containers

SECTION = Section(__name__, "12f-logs", topic="XI Logs")


@SECTION.resource(
    "12f-logs-to-stdout",
    "No log files: no /var/log or *.log mounts and no LOG_FILE env.",
    "Log to stdout/stderr and let the platform ship the stream.",
    types=k8s.WORKLOADS,
)
@item_by_item
def check_logs_to_stdout(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    for label, container in workload_containers(res):
        with item():
            for mount in items(container.get("volumeMounts")):
                with item():
                    path = str(mount.get("mountPath", ""))
                    if path.startswith("/var/log") or path.endswith(".log"):
                        yield f"{label}: log-file mount {path}; write logs to stdout/stderr instead"
        with item():
            for variable in items(container.get("env")):
                with item():
                    if variable.get("name") in ("LOG_FILE", "LOG_PATH", "LOG_DIR"):
                        yield f"{label}: env {variable.get('name')} sends logs to a file; log to stdout"
