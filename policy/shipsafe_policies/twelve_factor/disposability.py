"""IX Disposability: fast, observable start-up and a graceful shutdown."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import k8s
from ..floor import ROLLOUT
from ..framework import Config, Finding, Floor, HasProps, Item, Section, Setting, item_by_item
from ..k8s import dig, items, number

SECTION = Section(__name__, "12f-disposability", topic="IX Disposability")


def _probe_budget(probe: Mapping[str, Any]) -> float:
    """Seconds of failure a probe tolerates before acting."""
    return (number(probe.get("periodSeconds")) or 10.0) * (number(probe.get("failureThreshold")) or 3.0)


_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")


@SECTION.resource(
    "12f-disposability-probes",
    "Long-running containers have readiness and liveness probes (app also startup), sensibly tuned, on ports "
    "they declare.",
    "Add httpGet probes on the named port: startup and liveness on app.livenessPath, readiness on app.readinessPath.",
    types=k8s.WORKLOADS,
    fields=("container.startupProbe", "container.livenessProbe", "container.readinessProbe"),
    **k8s.APP_SETTINGS,
    floor=ROLLOUT,
)
@item_by_item
def check_probes(res: HasProps, config: Config, item: Item) -> Iterator[str]:
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    for container in items(dig(k8s.pod_spec(res), "containers")):
        with item():
            label = f"container {container.get('name')}"
            readiness, liveness = container.get("readinessProbe"), container.get("livenessProbe")
            if not readiness or not liveness:
                yield f"{label}: add readinessProbe and livenessProbe"
                continue
            with item():
                if k8s.is_app_workload(res, config) and not container.get("startupProbe"):
                    yield f"{label}: add a startupProbe so slow boots are not killed by liveness"
            with item():
                if _handler(readiness) == _handler(liveness):
                    yield (
                        f"{label}: liveness must differ from readiness (the same check with other timings still "
                        "restarts the pod when a dependency is down, and takes it out of traffic no sooner)"
                    )
            with item():
                if _probe_budget(liveness) < _probe_budget(readiness):
                    yield f"{label}: liveness must tolerate failure longer than readiness"
            for kind in _PROBES:
                with item():
                    yield from _undeclared_probe_port(label, kind, container)


_HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")


def _handler(probe: Mapping[str, Any]) -> dict[str, Any]:
    """What a probe checks, without its timings (kube-score `pod-probes-identical` compares the same)."""
    return {kind: probe.get(kind) for kind in _HANDLERS if probe.get(kind) is not None}


def _undeclared_probe_port(label: str, kind: str, container: Mapping[str, Any]) -> Iterator[str]:
    """A probe's port (httpGet, tcpSocket or grpc; a name or a number) is one the container declares: one it does
    not serve fails the probe forever."""
    probe = dig(container, kind) or {}
    port = dig(probe, "httpGet", "port") or dig(probe, "tcpSocket", "port") or dig(probe, "grpc", "port")
    declared = items(container.get("ports"))
    if isinstance(port, str) and port not in {p.get("name") for p in declared}:
        yield f"{label}: {kind} port {port} is not a declared port name"
    elif (wanted := number(port)) is not None and wanted not in {number(p.get("containerPort")) for p in declared}:
        yield f"{label}: {kind} port {wanted:.0f} is not a declared containerPort; probe the named port"


def _pre_stop_seconds(container: Mapping[str, Any]) -> float | None:
    hook = dig(container, "lifecycle", "preStop")
    seconds = number(dig(hook, "sleep", "seconds"))
    if seconds is None:
        command = items(dig(hook, "exec", "command"))
        if len(command) == 2 and command[0] in ("sleep", "/bin/sleep"):
            seconds = number(float(command[1])) if str(command[1]).isdigit() else None
    return seconds


@SECTION.resource(
    "12f-disposability-graceful-shutdown",
    "Explicit grace period; the app's covers its preStop delay and a drain, within the platform's bound.",
    "Set terminationGracePeriodSeconds >= preStop + drain (default 30 s with a 5 s preStop sleep).",
    types=k8s.WORKLOADS,
    maxGracePeriodSeconds=Setting(
        "number", 30, "Longest terminationGracePeriodSeconds of an app pod on this platform.", platform=True
    ),
    minDrainSeconds=Setting(
        "number", 5, "Least time the grace period leaves the app after the preStop delay.", platform=True
    ),
    **k8s.APP_SETTINGS,
    floor=Floor(
        ROLLOUT.why,
        at_least={"minDrainSeconds": 5},
        free={"maxGracePeriodSeconds": "a longer grace only lets a pod drain longer; minDrainSeconds still holds"},
    ),
)
@item_by_item
def check_graceful_shutdown(res: HasProps, config: Config, item: Item) -> Iterator[str | Finding]:
    """The rule, not the app's value: the grace period covers the preStop delay and leaves the app at least
    `minDrainSeconds` to finish in-flight requests after SIGTERM, within the platform's `maxGracePeriodSeconds`
    (a node drain or a rollout waits that long per pod)."""
    if res.resource_type not in k8s.LONG_RUNNING:
        return
    grace = number(dig(k8s.pod_spec(res), "terminationGracePeriodSeconds"))  # unknown: every item depends on it
    grace_field = ("pod.terminationGracePeriodSeconds",)
    if grace is None:
        yield Finding("set terminationGracePeriodSeconds explicitly", grace_field)
        return
    if res.resource_type != k8s.DEPLOYMENT or not k8s.is_app_workload(res, config):
        return
    bound, drain = float(config["maxGracePeriodSeconds"]), float(config["minDrainSeconds"])
    if grace > bound:
        yield Finding(
            f"terminationGracePeriodSeconds {grace:.0f} exceeds this platform's {bound:.0f} s",
            grace_field,
            ("maxGracePeriodSeconds",),
        )
    for container in items(dig(k8s.pod_spec(res), "containers")):
        with item():
            label = f"container {container.get('name')}"
            seconds = _pre_stop_seconds(container)
            if seconds is None or seconds <= 0:
                yield Finding(
                    f"{label}: add a lifecycle.preStop sleep so endpoints drain before SIGTERM",
                    ("container.lifecycle",),
                )
            elif grace - seconds < drain:
                yield Finding(
                    f"{label}: terminationGracePeriodSeconds {grace:.0f} leaves {grace - seconds:.0f} s after the "
                    f"{seconds:.0f} s preStop; the app needs at least {drain:.0f} s to drain before SIGKILL",
                    ("pod.terminationGracePeriodSeconds", "container.lifecycle"),
                    ("minDrainSeconds",),
                )
