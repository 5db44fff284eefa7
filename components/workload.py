"""One app workload (e.g. `web`, `worker`): Deployment, ServiceAccount, PodDisruptionBudget, and where it serves
traffic a Service (and for `web` the public edge: an Ingress, or an HTTPRoute with its Envoy Gateway limits); a
HorizontalPodAutoscaler when configured.

Zero-downtime rules from the chapter live here: one new pod at a time and never one fewer (maxSurge 1,
maxUnavailable 0), probes, a preStop delay so endpoints drain before SIGTERM, and the grace period that covers it.
The app's port, probe and metrics paths, command and UID all come from the settings (bring your own app).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.app_config import AppConfig
from components.config_link import config_keys
from components.http_route import (
    HTTP_ROUTE_API_VERSION,
    TRAFFIC_POLICY_API_VERSION,
    http_route_spec,
    traffic_policy_spec,
)
from components.ingress import nginx_limit_annotations, tls_annotations, tls_ingress_spec
from components.pods import (
    container_security_context,
    labels,
    pod_security_context,
    selector,
    service_account,
    tmp_mount,
    tmp_volume,
)
from components.probes import APP, APP_STARTUP, Probe
from components.release import Release
from components.settings import INGRESS_WORKLOAD, AppSettings, EdgeController, Rollout, Workload
from components.timeline import WorkloadAwaits, await_timeouts

PORT_NAME = "http"
SERVICE_PORT = 80
_EDGE_LIMIT_KEYS = [
    f"app.edge.{key}" for key in ("maxBodySize", "requestsPerSecond", "burstMultiplier", "connectionsPerClient")
]


@dataclass
class AppWorkloadArgs:
    workload: str
    settings: Workload
    app: AppSettings
    rollout: Rollout
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]
    image_keys: list[str]
    """The settings the image reference comes from (`AppImage.config_keys`)."""
    release: Release
    pull_secret_name: str
    app_config: AppConfig
    migration_job: pulumi.Resource | None
    """The release's migration Job; None for a rollback or an app without migrations, which run none."""
    depends_on: list[pulumi.Resource]
    """What must exist before pods start: config, connection Secrets, backing services."""
    awaits: WorkloadAwaits
    """How long `up` waits for the Deployment, Service and Ingress (`components/timeline.py`)."""


class AppWorkload(pulumi.ComponentResource):
    deployment_name: str
    service_name: str | None

    def __init__(self, name: str, args: AppWorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:AppWorkload", name, None, opts)
        self._name, self._args = name, args
        self.deployment_name = f"{args.app.name}-{args.workload}"
        self._labels = labels(args.app.name, args.workload)
        self._selector = selector(args.app.name, args.workload)
        account = service_account(
            f"{name}-serviceaccount",
            name=self.deployment_name,
            namespace=args.namespace,
            component_labels=self._labels,
            parent=self,
        )
        self._deployment(account)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=self._metadata(),
            spec={
                "max_unavailable": 1,
                "unhealthy_pod_eviction_policy": "AlwaysAllow",
                "selector": {"match_labels": self._selector},
            },
            opts=self._child(),
        )
        if args.settings.autoscaling:
            self._autoscaler()
        if args.app.pod_monitor:
            self._pod_monitor()
        self.service_name = None
        if args.settings.expose:
            self.service_name = self.deployment_name
            service = k8s.core.v1.Service(
                f"{name}-service",
                metadata=self._metadata(),
                spec={
                    "type": "ClusterIP",
                    "selector": self._selector,
                    "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "target_port": PORT_NAME, "protocol": "TCP"}],
                },
                opts=self._child(custom_timeouts=_timeouts(args.awaits.service_seconds, "service")),
            )
            if args.workload == INGRESS_WORKLOAD and args.app.edge.controller is EdgeController.ENVOY_GATEWAY:
                self._http_route(service)
            elif args.workload == INGRESS_WORKLOAD:
                self._ingress(service)
        self.register_outputs({"deploymentName": self.deployment_name, "serviceName": self.service_name})

    def _child(self, **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **extra)

    def _metadata(self, **extra: Any) -> dict[str, Any]:
        return {
            "name": self.deployment_name,
            "namespace": self._args.namespace,
            "labels": self._labels,
            **extra,
        }

    def _deployment_keys(self) -> dict[str, str]:
        """Which setting produced which field of the Deployment (`components/config_link.py`)."""
        workload = f"workloads.{self._args.workload}"
        replicas = [f"{workload}.autoscaling"] if self._args.settings.autoscaling else [f"{workload}.replicas"]
        return config_keys(
            {
                "spec.replicas": replicas,
                "spec.strategy": ["rollout.maxSurge", "rollout.maxUnavailable"],
                "spec.minReadySeconds": ["rollout.minReadySeconds"],
                "spec.progressDeadlineSeconds": ["rollout.progressDeadlineSeconds"],
                "pod.terminationGracePeriodSeconds": ["rollout.terminationGracePeriodSeconds"],
                "pod.securityContext": ["app.runAsUser"],
                "container.image": self._args.image_keys,
                "container.command": [f"{workload}.command"],
                "container.ports": ["app.port"],
                "container.env": self._args.app_config.env_keys,
                "container.resources": [f"{workload}.resources"],
                "container.startupProbe": ["app.livenessPath"],
                "container.livenessProbe": ["app.livenessPath"],
                "container.readinessProbe": ["app.readinessPath"],
                "container.lifecycle": ["rollout.preStopSeconds"],
            }
        )

    def _deployment(self, account: k8s.core.v1.ServiceAccount) -> None:
        args, rollout = self._args, self._args.rollout
        versioned = labels(args.app.name, args.workload, args.release.sha)
        spec: dict[str, Any] = {
            "selector": {"match_labels": self._selector},
            "strategy": {
                "type": "RollingUpdate",
                "rolling_update": {
                    "max_surge": rollout.max_surge,
                    "max_unavailable": rollout.max_unavailable,
                },
            },
            "min_ready_seconds": rollout.min_ready_seconds,
            "progress_deadline_seconds": rollout.progress_deadline_seconds,
            "revision_history_limit": 10,
            "template": {
                "metadata": {
                    "labels": versioned,
                    "annotations": {
                        "shipsafe.dev/config-checksum": args.app_config.checksum,
                        # The common convention for Prometheus's kubernetes_sd `pod` role without the Operator.
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(args.app.port),
                        "prometheus.io/path": args.app.metrics_path,
                    },
                },
                "spec": self._pod_spec(account, versioned),
            },
        }
        if not args.settings.autoscaling:  # otherwise the autoscaler owns the count
            spec["replicas"] = args.settings.replicas
        dependencies = [*args.depends_on, *([args.migration_job] if args.migration_job else [])]
        k8s.apps.v1.Deployment(
            f"{self._name}-deployment",
            metadata=self._metadata(labels=versioned, annotations=self._deployment_keys()),
            spec=spec,
            opts=self._child(
                depends_on=dependencies,
                custom_timeouts=await_timeouts(args.awaits.deployment_seconds),
            ),
        )

    def _pod_spec(self, account: k8s.core.v1.ServiceAccount, pod_labels: dict[str, str]) -> dict[str, Any]:
        args, rollout = self._args, self._args.rollout
        spread = {
            "max_skew": 1,
            "topology_key": "kubernetes.io/hostname",
            "when_unsatisfiable": "ScheduleAnyway",
            "label_selector": {"match_labels": self._selector},
        }
        return {
            "service_account_name": account.metadata.apply(lambda m: m.name),
            "automount_service_account_token": False,
            "image_pull_secrets": [{"name": args.pull_secret_name}],
            "security_context": pod_security_context(args.app.run_as_user),
            "termination_grace_period_seconds": rollout.termination_grace_period_seconds,
            "topology_spread_constraints": [spread],
            "containers": [self._container()],
            "volumes": [tmp_volume()],
        }

    def _container(self) -> dict[str, Any]:
        args, rollout = self._args, self._args.rollout
        # Without a command the container runs the image's own ENTRYPOINT/CMD.
        command = {"command": args.settings.command} if args.settings.command else {}
        return {
            "name": args.workload,
            "image": args.image,
            "image_pull_policy": "IfNotPresent",
            **command,
            "ports": [{"name": PORT_NAME, "container_port": args.app.port, "protocol": "TCP"}],
            **args.app_config.container_env(),
            "resources": args.settings.resources.to_kubernetes(),
            "security_context": container_security_context(),
            "volume_mounts": [tmp_mount()],
            # Startup gates the others, so a slow boot is not killed by liveness.
            "startup_probe": _http_probe(APP_STARTUP, args.app.liveness_path),
            "readiness_probe": _http_probe(APP.readiness, args.app.readiness_path),
            "liveness_probe": _http_probe(APP.liveness, args.app.liveness_path),
            # Endpoints are removed asynchronously; keep serving while they drain, then SIGTERM starts shutdown.
            "lifecycle": {"pre_stop": {"sleep": {"seconds": rollout.pre_stop_seconds}}},
        }

    def _autoscaler(self) -> None:
        autoscaling = self._args.settings.autoscaling
        assert autoscaling is not None
        keys = f"workloads.{self._args.workload}.autoscaling"
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-autoscaler",
            metadata=self._metadata(
                annotations=config_keys(
                    {"spec.minReplicas": [f"{keys}.minReplicas"], "spec.maxReplicas": [f"{keys}.maxReplicas"]}
                )
            ),
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": self.deployment_name,
                },
                "min_replicas": autoscaling.min_replicas,
                "max_replicas": autoscaling.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {
                                "type": "Utilization",
                                "average_utilization": autoscaling.target_cpu_utilization,
                            },
                        },
                    }
                ],
            },
            opts=self._child(),
        )

    def _ingress(self, service: k8s.core.v1.Service) -> None:
        app = self._args.app
        annotations = {
            **tls_annotations(app.cluster_issuer),
            **nginx_limit_annotations(app.edge),
            **config_keys({"metadata.annotations": _EDGE_LIMIT_KEYS, "spec.rules": ["app.host", "app.publicPaths"]}),
        }
        k8s.networking.v1.Ingress(
            f"{self._name}-ingress",
            metadata=self._metadata(annotations=annotations),
            spec=tls_ingress_spec(
                host=app.host,
                class_name=app.ingress_class_name,
                tls_secret=app.tls_secret_name or f"{app.name}-tls",
                service_name=service.metadata.apply(lambda m: m.name),
                port_name=PORT_NAME,
                paths=app.public_paths,
            ),
            # The provider waits for the ingress controller to publish the address (docs/prerequisites.md: an ingress
            # controller serving `app.ingressClassName` is required).
            opts=self._child(custom_timeouts=_timeouts(self._args.awaits.ingress_seconds, "ingress")),
        )

    def _http_route(self, service: k8s.core.v1.Service) -> None:
        # Without a `pulumi.com/waitFor` annotation pulumi-kubernetes does not wait for a custom resource
        # (`provider/pkg/metadata/overrides.go` `ReadyCondition`): `deploy up` checks the Gateway beforehand.
        app = self._args.app
        route = k8s.apiextensions.CustomResource(
            f"{self._name}-httproute",
            api_version=HTTP_ROUTE_API_VERSION,
            kind="HTTPRoute",
            metadata=self._metadata(
                annotations=config_keys(
                    {
                        "spec.parentRefs": [
                            "app.edge.gatewayName",
                            "app.edge.gatewayNamespace",
                            "app.edge.gatewayListener",
                        ],
                        "spec.rules": ["app.host", "app.publicPaths"],
                    }
                )
            ),
            spec=http_route_spec(
                host=app.host,
                edge=app.edge,
                service_name=service.metadata.apply(lambda m: m.name),
                service_port=SERVICE_PORT,
                paths=app.public_paths,
            ),
            opts=self._child(),
        )
        k8s.apiextensions.CustomResource(
            f"{self._name}-traffic-policy",
            api_version=TRAFFIC_POLICY_API_VERSION,
            kind="BackendTrafficPolicy",
            metadata=self._metadata(annotations=config_keys({"spec": _EDGE_LIMIT_KEYS})),
            spec=traffic_policy_spec(app.edge, self.deployment_name),
            opts=self._child(depends_on=[route]),
        )

    def _pod_monitor(self) -> None:
        # The Prometheus Operator scrapes each pod's /metrics and labels the series with `namespace` and `pod`;
        # the app labels them with its own `version`, which `deploy verify` selects on.
        k8s.apiextensions.CustomResource(
            f"{self._name}-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=self._metadata(),
            spec={
                "selector": {"matchLabels": self._selector},
                "podMetricsEndpoints": [{"port": PORT_NAME, "path": self._args.app.metrics_path, "interval": "15s"}],
            },
            opts=self._child(),
        )


def _http_probe(probe: Probe, path: str) -> dict[str, Any]:
    return probe.spec({"http_get": {"path": path, "port": PORT_NAME}})


def _timeouts(seconds: int | None, role: str) -> pulumi.CustomTimeouts:
    if seconds is None:
        raise ValueError(f"the deploy timeline has no await timeout for this workload's {role}")
    return await_timeouts(seconds)
