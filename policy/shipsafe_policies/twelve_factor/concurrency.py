"""VIII Concurrency: app Deployments scale out within the stack's replica range."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource

from .. import k8s
from ..framework import Config, Finding, Item, Section, Setting, item_by_item
from ..k8s import Lookup, dig, number

SECTION = Section(__name__, "12f-concurrency", topic="VIII Concurrency")


@SECTION.stack(
    "12f-concurrency-replica-range",
    "App Deployments scale out within the stack's replica range (HPA or fixed replicas).",
    "Set replicas (or the autoscaler's min/max) inside minReplicas..maxReplicas of this stack.",
    minReplicas=Setting("number", 2, "Fewest pods per app Deployment.", platform=True),
    maxReplicas=Setting("number", 20, "Most pods per app Deployment.", platform=True),
    **k8s.APP_SETTINGS,
)
@item_by_item
def check_concurrency(resources: list[PolicyResource], config: Config, item: Item) -> Iterator[tuple[Finding, str]]:
    low, high = float(config["minReplicas"]), float(config["maxReplicas"])
    autoscalers = Lookup()
    for hpa in k8s.of_type(resources, k8s.HPA):
        with autoscalers.adding():
            target = dig(hpa.props, "spec", "scaleTargetRef") or {}
            if target.get("kind") == "Deployment":
                autoscalers.entries[target.get("name")] = hpa
    for deployment in k8s.app_deployments(resources, config):
        where = k8s.display(deployment)
        with item():
            hpa = autoscalers.get(dig(deployment.props, "metadata", "name"))
            # An autoscaled Deployment's spec.replicas is the HPA's business: the live object holds whatever the
            # HPA last set (or the server's default of 1), never what the program declared, so only the
            # autoscaler's range is judged. The program leaves replicas out under an HPA (components/workload.py).
            if hpa is None:
                replicas = number(dig(deployment.props, "spec", "replicas"))
                replicas = 1.0 if replicas is None else replicas
                if not low <= replicas <= high:
                    yield (
                        Finding(
                            f"{where}: replicas {replicas:.0f} must lie within {low:.0f}-{high:.0f} for this stack",
                            ("spec.replicas",),
                            ("minReplicas", "maxReplicas"),
                        ),
                        deployment.urn,
                    )
                continue
            with item():
                floor = number(dig(hpa.props, "spec", "minReplicas")) or 1.0
                ceiling = number(dig(hpa.props, "spec", "maxReplicas")) or 0.0
                if floor < low or ceiling < floor or ceiling > high:
                    yield (
                        Finding(
                            f"{where}: autoscaler range {floor:.0f}-{ceiling:.0f} must lie within {low:.0f}-{high:.0f}",
                            ("spec.minReplicas", "spec.maxReplicas"),
                            ("minReplicas", "maxReplicas"),
                        ),
                        hpa.urn,
                    )
