"""Rollout safety: zero-downtime rolling updates, disruption budgets and selectors that really match."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyResource

from . import k8s
from .floor import ROLLOUT
from .framework import ADVISORY, Config, Finding, Floor, HasProps, Item, Section, Setting, item_by_item
from .indexes import SelectorIndex, workloads_by_pod_labels
from .k8s import Lookup, dig, items, number

SECTION = Section(__name__, "rollout", topic="Availability")


def _is_zero(value: Any) -> bool:
    return number(value) == 0.0 or value == "0%"


def _is_positive(value: Any) -> bool:
    amount = number(value)
    if amount is None and isinstance(value, str) and value.endswith("%"):
        amount = number(float(value[:-1])) if value[:-1].isdigit() else None
    return amount is not None and amount > 0


@SECTION.resource(
    "rollout-zero-downtime",
    "Deployments roll one surge pod at a time and never go below capacity.",
    "RollingUpdate with maxUnavailable 0, maxSurge 1, minReadySeconds and progressDeadlineSeconds.",
    types={k8s.DEPLOYMENT},
    topic="IX Disposability; VIII Concurrency",
    minReadySeconds=Setting("number", 5, "Smallest acceptable minReadySeconds.", platform=True),
    maxProgressDeadlineSeconds=Setting("number", 600, "Largest acceptable progressDeadlineSeconds.", platform=True),
    floor=Floor(ROLLOUT.why, at_least={"minReadySeconds": 5}, at_most={"maxProgressDeadlineSeconds": 600}),
)
@item_by_item
def check_rolling_update(res: HasProps, config: Config, item: Item) -> Iterator[str | Finding]:
    spec = res.props.get("spec") or {}
    strategy = ("spec.strategy",)
    with item():
        if dig(spec, "strategy", "type") != "RollingUpdate":
            yield Finding("set strategy.type: RollingUpdate explicitly", strategy)
    with item():
        if not _is_zero(dig(spec, "strategy", "rollingUpdate", "maxUnavailable")):
            yield Finding("set rollingUpdate.maxUnavailable: 0 so capacity never drops during a rollout", strategy)
    with item():
        if not _is_positive(dig(spec, "strategy", "rollingUpdate", "maxSurge")):
            yield Finding("set rollingUpdate.maxSurge >= 1 so the rollout can make progress", strategy)
    with item():
        ready = number(spec.get("minReadySeconds"))
        if ready is None or ready < float(config["minReadySeconds"]):
            yield Finding(
                f"minReadySeconds is {ready or 0:.0f}; set it >= {config['minReadySeconds']:.0f} so a pod must stay "
                "ready before it counts",
                ("spec.minReadySeconds",),
                ("minReadySeconds",),
            )
    with item():
        deadline = number(spec.get("progressDeadlineSeconds"))
        if deadline is None or deadline > float(config["maxProgressDeadlineSeconds"]):
            yield Finding(
                f"set progressDeadlineSeconds <= {config['maxProgressDeadlineSeconds']:.0f} "
                "so a stuck rollout fails the deploy",
                ("spec.progressDeadlineSeconds",),
                ("maxProgressDeadlineSeconds",),
            )


def _replicas(workload: PolicyResource, autoscaled: Lookup) -> float:
    if autoscaled.has(dig(workload.props, "metadata", "name")):
        return 2.0  # an autoscaler may run several: treat as replicated
    replicas = number(dig(workload.props, "spec", "replicas"))
    return 1.0 if replicas is None else replicas


def _allows_disruption(budget_spec: Any, replicas: float) -> bool:
    """Whether a node drain can evict at least one pod without violating the budget."""
    max_unavailable, min_available = budget_spec.get("maxUnavailable"), budget_spec.get("minAvailable")
    if max_unavailable is not None:
        return _is_positive(max_unavailable)
    if min_available is None:
        return False
    minimum = number(min_available)
    return min_available != "100%" if minimum is None else minimum < replicas


@SECTION.stack(
    "rollout-pdb-coverage",
    "Every replicated workload has a PodDisruptionBudget, and every budget still allows one eviction at the "
    "replicas of each workload it selects.",
    "Add a PDB with maxUnavailable: 1 and unhealthyPodEvictionPolicy: AlwaysAllow.",
    floor=ROLLOUT,
)
@item_by_item
def check_pdb_coverage(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[str, str | None]]:
    autoscaled = Lookup()
    for hpa in k8s.of_type(resources, k8s.HPA):
        with autoscaled.adding():
            autoscaled.entries[dig(hpa.props, "spec", "scaleTargetRef", "name")] = hpa
    budgets = Lookup()  # complete only if every budget's namespace is known
    by_selector: SelectorIndex[PolicyResource] = SelectorIndex()
    for budget in k8s.of_type(resources, k8s.PDB):
        with budgets.adding():
            namespace = dig(budget.props, "metadata", "namespace")
            budgets.entries[budget.urn] = budget
            by_selector.add(namespace, functools.partial(dig, budget.props, "spec", "selector"), budget)
    for workload in k8s.of_type(resources, k8s.DEPLOYMENT, k8s.STATEFUL_SET):
        with item():
            replicas = _replicas(workload, autoscaled)
            namespace = dig(workload.props, "metadata", "namespace")
            covering = by_selector.matching(namespace, k8s.pod_labels(workload))
            if replicas >= 2 and not covering:
                budgets.ensure_complete()  # a budget in an unknown namespace might be the one
                where = k8s.display(workload)
                yield f"{where}: add a PodDisruptionBudget selecting its pods (maxUnavailable: 1)", workload.urn
            # Any budget, single-replica workloads included: one that allows no eviction blocks every node drain.
            for budget in covering:
                with item():
                    spec = budget.props.get("spec") or {}
                    if not _allows_disruption(spec, replicas):
                        yield (
                            f"{k8s.display(budget)}: allows no disruption of the {replicas:.0f} pod(s) of "
                            f"{k8s.display(workload)}, so a node drain never finishes; allow one (maxUnavailable: 1)",
                            budget.urn,
                        )
                with item():
                    if dig(budget.props, "spec", "unhealthyPodEvictionPolicy") != "AlwaysAllow":
                        yield f"{k8s.display(budget)}: set unhealthyPodEvictionPolicy: AlwaysAllow", budget.urn


@SECTION.stack(
    "rollout-selector-integrity",
    "Selectors match: workloads their templates; Services, PDBs and NetworkPolicies select pods of the stack.",
    "Build selectors and labels from one helper (a selector's labels must be a subset of the pod labels).",
    topic="Correctness",
    floor=ROLLOUT,
)
@item_by_item
def check_selector_integrity(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    # The ports a Service targets are refs-service-target-ports' to check.
    pods, by_labels = workloads_by_pod_labels(resources)
    for workload in k8s.of_type(resources, k8s.DEPLOYMENT, k8s.STATEFUL_SET):
        with item():
            if not k8s.selector_matches(dig(workload.props, "spec", "selector"), k8s.pod_labels(workload)):
                yield f"{k8s.display(workload)}: spec.selector does not match its pod template labels", workload.urn
    for service in k8s.of_type(resources, k8s.SERVICE):
        with item():
            namespace = dig(service.props, "metadata", "namespace")
            if not by_labels.served_by(namespace, dig(service.props, "spec", "selector")):
                pods.ensure_complete()  # a workload read as unknown might be the one it selects
                yield f"{k8s.display(service)}: its selector matches no pod of the stack", service.urn
    for other in k8s.of_type(resources, k8s.PDB, k8s.NETWORK_POLICY):
        with item():
            key = "selector" if other.resource_type == k8s.PDB else "podSelector"
            selector = dig(other.props, "spec", key)
            namespace = dig(other.props, "metadata", "namespace")
            if not any(by_labels.selected_by(namespace, selector)):
                pods.ensure_complete()
                yield f"{k8s.display(other)}: spec.{key} matches no pod of the stack", other.urn


TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
"""The deprecated annotation form of publishNotReadyAddresses (`endpoints_controller.go`
`TolerateUnreadyEndpointsAnnotation`, honoured by the endpoints controllers of older clusters)."""


@SECTION.stack(
    "rollout-ready-traffic-only",
    "Services send traffic only to ready pods: no publishNotReadyAddresses (or its tolerate-unready annotation), "
    "and every container a Service targets has a readinessProbe (a Job's pods have none).",
    "Remove publishNotReadyAddresses / the tolerate-unready annotation, give the serving container a readinessProbe, "
    "and never select a Job's pods with a Service.",
    fields=("spec.publishNotReadyAddresses", "spec.selector"),
    topic="IX Disposability; Availability",
    floor=ROLLOUT,
)
@item_by_item
def check_ready_traffic_only(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    services = k8s.of_type(resources, k8s.SERVICE)
    pods, index = workloads_by_pod_labels(resources)
    for service in services:
        where = k8s.display(service)
        with item():
            # kubernetes staging/src/k8s.io/endpointslice/utils.go `podToEndpoint`: ready is
            # `PublishNotReadyAddresses || (serving && !terminating)`, so a starting pod gets traffic and a
            # terminating one keeps it through the preStop drain.
            if dig(service.props, "spec", "publishNotReadyAddresses") is True:
                yield (
                    f"{where}: publishNotReadyAddresses sends traffic to unready pods; remove it",
                    service.urn,
                )
        with item():
            if str(dig(service.props, "metadata", "annotations", TOLERATE_UNREADY)).lower() == "true":
                yield f"{where}: {TOLERATE_UNREADY} sends traffic to unready pods; remove it", service.urn
        with item():
            namespace = dig(service.props, "metadata", "namespace")
            for workload in index.served_by(namespace, dig(service.props, "spec", "selector")):
                for port in items(dig(service.props, "spec", "ports")):
                    with item():
                        target = port.get("targetPort")
                        target = port.get("port") if target is None else target  # SetDefaults_Service
                        for container in k8s.serving_containers(workload):
                            if k8s.declares_port(container, target) and not container.get("readinessProbe"):
                                yield (
                                    f"{where}: {k8s.display(workload)} container {container.get('name')} has no "
                                    "readinessProbe, so it gets traffic as soon as it starts; add one",
                                    service.urn,
                                )
            pods.ensure_complete()  # a workload read as unknown might be selected and unprobed


@SECTION.resource(
    "rollout-spread-replicas",
    "Replicated Deployments spread across nodes.",
    "Add topologySpreadConstraints (or podAntiAffinity) on kubernetes.io/hostname.",
    types={k8s.DEPLOYMENT},
    topic="VIII Concurrency; Availability",
    level=ADVISORY,
)
def check_spread(res: HasProps, config: Config) -> Iterator[str]:
    # One decision: whether a replicated Deployment spreads. An unknown read leaves it to the SDK (not run).
    replicas = number(dig(res.props, "spec", "replicas"))
    if replicas is not None and replicas < 2:
        return
    spec = k8s.pod_spec(res)
    if not items(dig(spec, "topologySpreadConstraints")) and not dig(spec, "affinity", "podAntiAffinity"):
        yield "spread replicas across nodes: add topologySpreadConstraints on kubernetes.io/hostname"
