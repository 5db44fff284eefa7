"""The container registry: credentials, the namespace's image pull secret, and optionally the registry itself.

In `external` mode the password comes from secret config; in `in-cluster` mode a registry:2 StatefulSet with
persistent storage and htpasswd auth runs in the namespace, and pulumi-random generates its password.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config_link import config_keys
from components.ingress import tls_annotations, tls_ingress_spec
from components.pods import (
    container_security_context,
    labels,
    pull_policy,
    selector,
    service_account,
    single_stateful_set_spec,
    tmp_mount,
)
from components.probes import REGISTRY
from components.settings import RegistryMode, RegistrySettings
from components.timeline import RegistryAwaits, await_timeouts

REGISTRY_PORT = 5000
REGISTRY_UID = 10001


@dataclass
class RegistryArgs:
    app: str
    namespace: pulumi.Input[str]
    settings: RegistrySettings
    ingress_class_name: str
    cluster_issuer: str | None = None
    password: pulumi.Input[str] | None = None
    """Secret config `shipsafe:registryPassword`; required (and only used) in external mode."""
    awaits: RegistryAwaits | None = None
    """How long `up` waits for the StatefulSet, Service and Ingress (`components/timeline.py`); in-cluster only."""


def _docker_config_json(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})


class Registry(pulumi.ComponentResource):
    server: str
    username: str
    password: pulumi.Output[str]
    """Secret; the image build pushes with it."""
    pull_secret_name: str

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:Registry", name, None, opts)
        self._name, self._args = name, args
        settings = args.settings
        self.server, self.username = settings.server, settings.username
        if settings.mode is RegistryMode.EXTERNAL:
            if args.password is None:
                raise ValueError("external registry needs a password")
            self.password = pulumi.Output.secret(args.password)
        else:
            if args.awaits is None:
                raise ValueError("the in-cluster registry needs await timeouts from the deploy timeline")
            generated = random.RandomPassword(
                f"{name}-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
            )
            self.password = pulumi.Output.secret(generated.result)
            self._create_in_cluster(generated, args.awaits)
        self.pull_secret_name = f"{args.app}-registry"
        k8s.core.v1.Secret(
            f"{name}-pull-secret",
            metadata={
                "name": self.pull_secret_name,
                "namespace": args.namespace,
                "labels": labels(args.app, "registry"),
            },
            type="kubernetes.io/dockerconfigjson",
            string_data={
                ".dockerconfigjson": self.password.apply(
                    lambda password: _docker_config_json(self.server, self.username, password)
                )
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"server": self.server, "pullSecretName": self.pull_secret_name})

    def _create_in_cluster(self, password: random.RandomPassword, awaits: RegistryAwaits) -> None:
        args, name = self._args, self._name
        child = pulumi.ResourceOptions(parent=self)
        resource_name = f"{args.app}-registry"
        component_labels = labels(args.app, "registry")
        metadata = {"name": resource_name, "namespace": args.namespace, "labels": component_labels}
        htpasswd = k8s.core.v1.Secret(
            f"{name}-htpasswd",
            metadata={**metadata, "name": f"{resource_name}-htpasswd"},
            type="Opaque",
            string_data={"htpasswd": pulumi.Output.concat(self.username, ":", password.bcrypt_hash)},
            opts=child,
        )
        account = service_account(
            f"{name}-serviceaccount",
            name=resource_name,
            namespace=args.namespace,
            component_labels=component_labels,
            parent=self,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec={
                "selector": selector(args.app, "registry"),
                "ports": [{"name": "registry", "port": REGISTRY_PORT, "target_port": "registry"}],
            },
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=await_timeouts(awaits.service_seconds)),
        )
        image_keys = {"container.image": ["registry.image"], "spec.volumeClaimTemplates": ["registry.storageSize"]}
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata={**metadata, "annotations": config_keys(image_keys)},
            spec=single_stateful_set_spec(
                service=service,
                account=account,
                pod_selector=selector(args.app, "registry"),
                pod_labels=component_labels,
                uid=REGISTRY_UID,
                container=self._container(),
                volumes=[{"name": "auth", "secret": {"secret_name": htpasswd.metadata.apply(lambda m: m.name)}}],
                storage_size=args.settings.storage_size,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, protect=True, custom_timeouts=await_timeouts(awaits.stateful_set_seconds)
            ),
        )
        # The builder pushes and every node's container runtime pulls from outside the pod network, over TLS.
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata={
                **metadata,
                "annotations": {
                    **tls_annotations(args.cluster_issuer),
                    "nginx.ingress.kubernetes.io/proxy-body-size": "0",  # image layers are large
                },
            },
            spec=tls_ingress_spec(
                host=args.settings.server,
                class_name=args.ingress_class_name,
                tls_secret=f"{resource_name}-tls",
                service_name=service.metadata.apply(lambda m: m.name),
                port_name="registry",
                paths=["/"],
            ),
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=await_timeouts(awaits.ingress_seconds)),
        )

    def _container(self) -> dict[str, Any]:
        return {
            "name": "registry",
            "image": self._args.settings.image,
            "image_pull_policy": pull_policy(self._args.settings.image),
            "ports": [{"name": "registry", "container_port": REGISTRY_PORT, "protocol": "TCP"}],
            "env": [
                {"name": "REGISTRY_HTTP_ADDR", "value": f":{REGISTRY_PORT}"},
                {"name": "REGISTRY_AUTH", "value": "htpasswd"},
                {"name": "REGISTRY_AUTH_HTPASSWD_REALM", "value": "shipsafe"},
                {"name": "REGISTRY_AUTH_HTPASSWD_PATH", "value": "/auth/htpasswd"},
                {"name": "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "value": "/var/lib/registry"},
            ],
            "resources": {
                "requests": {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "64Mi"},
                "limits": {"memory": "256Mi", "ephemeral-storage": "256Mi"},
            },
            "security_context": container_security_context(),
            "readiness_probe": REGISTRY.readiness.spec({"tcp_socket": {"port": "registry"}}),
            "liveness_probe": REGISTRY.liveness.spec({"tcp_socket": {"port": "registry"}}),
            "volume_mounts": [
                {"name": "data", "mount_path": "/var/lib/registry"},
                {"name": "auth", "mount_path": "/auth", "read_only": True},
                tmp_mount(),
            ],
        }
