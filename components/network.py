"""NetworkPolicies: deny everything in the namespace, then allow exactly the paths the app needs.

Postgres accepts only the app workloads and the migration Job (when the app has migrations); Redis only the app
workloads; the served workloads' port only the ingress controller, and every workload's port the monitoring
namespace (Prometheus scrapes /metrics); DNS only to kube-dns. A backing service with mode none gets no policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.backing_service import POSTGRES, REDIS, ServiceKind
from components.config_link import config_keys
from components.migration import COMPONENT as MIGRATION_COMPONENT
from components.pods import labels, selector
from components.registry import REGISTRY_PORT
from components.settings import BackingService, ServiceMode
from components.workload import PORT_NAME

NAME_LABEL = "kubernetes.io/metadata.name"
COMPONENT_LABEL = "app.kubernetes.io/component"


@dataclass
class NetworkPoliciesArgs:
    app: str
    namespace: pulumi.Input[str]
    workloads: list[str]
    migrates: bool
    """Whether the app declares migrations (a migration Job reaches Postgres)."""
    exposed_workloads: list[str]
    postgres: BackingService
    redis: BackingService
    ingress_namespace: str
    monitoring_namespace: str
    in_cluster_registry: bool


def _pods(app: str, components: list[str]) -> dict[str, Any]:
    return {
        "match_labels": {"app.kubernetes.io/name": app},
        "match_expressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": components}],
    }


def _namespace(name: str) -> dict[str, Any]:
    return {"namespace_selector": {"match_labels": {NAME_LABEL: name}}}


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:NetworkPolicies", name, None, opts)
        self._name, self._args = name, args
        app_and_migration = [*args.workloads, *([MIGRATION_COMPONENT] if args.migrates else [])]
        self._policy("default-deny", {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]})
        self._policy(
            "allow-dns",
            {
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                **_namespace("kube-system"),
                                "pod_selector": {"match_labels": {"k8s-app": "kube-dns"}},
                            }
                        ],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                    }
                ],
            },
        )
        http = [{"protocol": "TCP", "port": PORT_NAME}]
        if args.exposed_workloads:
            self._policy(
                "app-ingress",
                {
                    "pod_selector": _pods(args.app, args.exposed_workloads),
                    "policy_types": ["Ingress"],
                    "ingress": [{"from": [_namespace(args.ingress_namespace)], "ports": http}],
                },
                {"spec.ingress": ["app.ingressNamespace"]},
            )
        # Every workload serves /metrics on its http port, the worker too; only Prometheus may scrape it.
        self._policy(
            "metrics-ingress",
            {
                "pod_selector": _pods(args.app, args.workloads),
                "policy_types": ["Ingress"],
                "ingress": [{"from": [_namespace(args.monitoring_namespace)], "ports": http}],
            },
            {"spec.ingress": ["app.monitoringNamespace"]},
        )
        self._backing_service(POSTGRES, args.postgres, clients=app_and_migration)
        self._backing_service(REDIS, args.redis, clients=args.workloads)
        if args.in_cluster_registry:
            # Pushes and the nodes' pulls arrive through the ingress controller (htpasswd and TLS guard them).
            self._policy(
                "registry-ingress",
                {
                    "pod_selector": {"match_labels": selector(args.app, "registry")},
                    "policy_types": ["Ingress"],
                    "ingress": [
                        {
                            "from": [_namespace(args.ingress_namespace)],
                            "ports": [{"protocol": "TCP", "port": REGISTRY_PORT}],
                        }
                    ],
                },
                {"spec.ingress": ["app.ingressNamespace"]},
            )
        self.register_outputs({})

    def _policy(self, role: str, spec: dict[str, Any], keys: dict[str, list[str]] | None = None) -> None:
        """`keys`: which settings produced which fields of the spec (`components/config_link.py`)."""
        args = self._args
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-{role}",
            metadata={
                "name": f"{args.app}-{role}",
                "namespace": args.namespace,
                "labels": labels(args.app, "network-policy"),
                **({"annotations": config_keys(keys)} if keys else {}),
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _backing_service(self, kind: ServiceKind, settings: BackingService, clients: list[str]) -> None:
        if not settings.present:
            return
        args = self._args
        port = {"protocol": "TCP", "port": kind.port}
        if settings.mode is ServiceMode.EXTERNAL:
            destination: dict[str, Any] = {"ip_block": {"cidr": settings.external_cidr}}
        else:
            destination = {"pod_selector": {"match_labels": selector(args.app, kind.component)}}
            self._policy(
                f"{kind.role}-ingress",
                {
                    "pod_selector": {"match_labels": selector(args.app, kind.component)},
                    "policy_types": ["Ingress"],
                    "ingress": [{"from": [{"pod_selector": _pods(args.app, clients)}], "ports": [port]}],
                },
            )
        self._policy(
            f"{kind.role}-egress",
            {
                "pod_selector": _pods(args.app, clients),
                "policy_types": ["Egress"],
                "egress": [{"to": [destination], "ports": [port]}],
            },
            {"spec.egress": [f"{kind.role}.mode", f"{kind.role}.externalCidr"]},
        )
