"""VIII Concurrency: app Deployments scale out within the stack's replica range."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import PolicyResource

from .. import k8s
from ..floor import ROLLOUT
from ..framework import Config, Finding, Floor, Item, Section, Setting, item_by_item
from ..k8s import Lookup, dig, items, number

SECTION = Section(__name__, "12f-concurrency", topic="VIII Concurrency")


@SECTION.stack(
    "12f-concurrency-replica-range",
    "App Deployments scale out within the stack's replica range (HPA or fixed replicas).",
    "Set replicas (or the autoscaler's min/max) inside minReplicas..maxReplicas of this stack.",
    minReplicas=Setting("number", 2, "Fewest pods per app Deployment.", platform=True),
    maxReplicas=Setting("number", 20, "Most pods per app Deployment.", platform=True),
    **k8s.APP_SETTINGS,
    floor=Floor(
        ROLLOUT.why,
        at_least={"minReplicas": 2},
        free={"maxReplicas": "a cost ceiling; minReplicas still holds"},
    ),
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
            # An autoscaled Deployment's live spec.replicas is the HPA's business (whatever it last set, or the
            # server's default of 1): only the autoscaler's range is judged, and whether the program declared a
            # count too (`_declares_replicas`).
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
            with item():
                if _declares_replicas(deployment):
                    message = f"{where}: drop spec.replicas; the autoscaler owns the count"
                    yield Finding(message, ("spec.replicas",)), deployment.urn


PULUMI_MANAGERS = "pulumi-kubernetes"
"""pulumi-kubernetes' field managers: `pulumi-kubernetes` for its plain Create, `pulumi-kubernetes-<hex>` for a
server-side apply (`provider/pkg/await/await.go` `Creation`, `provider.go` `fieldManagerName`)."""


def _declares_replicas(deployment: PolicyResource) -> bool:
    """Whether the program sets spec.replicas. A live object always has it (defaulted, or set by the HPA through
    the scale subresource), so there it is read from who owns the field: the managed fields of pulumi-kubernetes'
    own requests, which the outputs keep (`provider.go` `checkpointObject`: the live object as returned). An
    object without managed fields is what the program sent (a preview whose dry run was skipped)."""
    managed = dig(deployment.props, "metadata", "managedFields")
    if not items(managed):
        return dig(deployment.props, "spec", "replicas") is not None
    return any(
        str(entry.get("manager") or "").startswith(PULUMI_MANAGERS)
        and "f:replicas" in (dig(entry, "fieldsV1", "f:spec") or {})
        for entry in items(managed)
    )
