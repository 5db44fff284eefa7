"""Rollout safety: zero-downtime rolling updates, disruption budgets and selectors that really match."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyResource

from . import k8s
from .framework import ADVISORY, Config, Finding, HasProps, Item, Section, Setting, item_by_item
from .indexes import LabelIndex, SelectorIndex
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
    "Every replicated workload has a PodDisruptionBudget that still allows one eviction.",
    "Add a PDB with maxUnavailable: 1 and unhealthyPodEvictionPolicy: AlwaysAllow.",
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
            if replicas < 2:
                continue
            namespace = dig(workload.props, "metadata", "namespace")
            pod_labels = k8s.pod_labels(workload)
            covering = by_selector.matching(namespace, pod_labels)
            if not covering:
                budgets.ensure_complete()  # a budget in an unknown namespace might be the one
                where = k8s.display(workload)
                yield f"{where}: add a PodDisruptionBudget selecting its pods (maxUnavailable: 1)", workload.urn
            for budget in covering:
                with item():
                    spec = budget.props.get("spec") or {}
                    if not _allows_disruption(spec, replicas):
                        yield f"{k8s.display(budget)}: allow at least one disruption (maxUnavailable: 1)", budget.urn
                with item():
                    if dig(budget.props, "spec", "unhealthyPodEvictionPolicy") != "AlwaysAllow":
                        yield f"{k8s.display(budget)}: set unhealthyPodEvictionPolicy: AlwaysAllow", budget.urn


@SECTION.stack(
    "rollout-selector-integrity",
    "Selectors match: workloads their templates, Services/PDBs/NetworkPolicies real pods and ports.",
    "Build selectors and labels from one helper; name targetPorts after declared container ports.",
    topic="Correctness",
)
@item_by_item
def check_selector_integrity(
    resources: list[PolicyResource], config: Config, item: Item
) -> Iterator[tuple[str, str | None]]:
    pods = Lookup()  # complete only if every workload's namespace, pod labels and port names are known
    by_labels: LabelIndex[set[Any]] = LabelIndex()  # each workload's container port names by namespace and labels
    for workload in k8s.of_type(resources, *k8s.WORKLOADS):
        with pods.adding():
            names = {p.get("name") for c in k8s.containers(k8s.pod_spec(workload)) for p in items(c.get("ports"))}
            namespace, pod_labels = dig(workload.props, "metadata", "namespace"), k8s.pod_labels(workload)
            pods.entries[workload.urn] = workload
            by_labels.add(namespace, pod_labels, names)
        with item():
            selector = dig(workload.props, "spec", "selector")
            if workload.resource_type in (k8s.DEPLOYMENT, k8s.STATEFUL_SET) and not k8s.selector_matches(
                selector, k8s.pod_labels(workload)
            ):
                yield f"{k8s.display(workload)}: spec.selector does not match its pod template labels", workload.urn
    for service in k8s.of_type(resources, k8s.SERVICE):
        with item():
            namespace = dig(service.props, "metadata", "namespace")
            selector = dig(service.props, "spec", "selector")
            targets = by_labels.served_by(namespace, selector)
            if not targets:
                pods.ensure_complete()  # a workload read as unknown might be the one it selects
                yield f"{k8s.display(service)}: its selector matches no pod of the stack", service.urn
                continue
            for port in items(dig(service.props, "spec", "ports")):
                with item():
                    target = port.get("targetPort")
                    if isinstance(target, str) and not all(target in names for names in targets):
                        yield (
                            f"{k8s.display(service)}: targetPort {target} is not a port name of the selected pods",
                            (service.urn),
                        )
                    elif isinstance(target, str):
                        pods.ensure_complete()  # an unknown selected workload might lack the port name
    for other in k8s.of_type(resources, k8s.PDB, k8s.NETWORK_POLICY):
        with item():
            key = "selector" if other.resource_type == k8s.PDB else "podSelector"
            selector = dig(other.props, "spec", key)
            namespace = dig(other.props, "metadata", "namespace")
            if not any(by_labels.selected_by(namespace, selector)):
                pods.ensure_complete()
                yield f"{k8s.display(other)}: spec.{key} matches no pod of the stack", other.urn


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
