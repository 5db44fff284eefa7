"""Postgres or Redis, either in the cluster (StatefulSet + headless Service + generated password) or external.
A service with mode `none` gets no component at all (`__main__.py`).

Either way the app sees one Secret, `<app>-<database|redis>` with key `url`, so swapping an in-cluster server
for a managed one is a config change only (twelve-factor IV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.app_config import SECRET_URL_KEY
from components.config_link import config_keys
from components.pods import (
    container_security_context,
    labels,
    pull_policy,
    selector,
    service_account,
    single_stateful_set_spec,
    tmp_mount,
)
from components.probes import BACKING_SERVICE, BACKING_SERVICE_STARTUP, BACKING_SERVICE_TERMINATION_GRACE_SECONDS
from components.settings import BackingService, PostgresService, ServiceMode
from components.timeline import ServerAwaits, await_timeouts


@dataclass(frozen=True)
class ServiceKind:
    role: str
    """`postgres` or `redis`: names objects and the NetworkPolicy port."""
    component: str
    secret_suffix: str
    port: int
    data_path: str
    uid: int
    """The image's own non-root user, which owns its data directory layout."""


POSTGRES = ServiceKind("postgres", "database", "database", 5432, "/var/lib/postgresql/data", 999)
REDIS = ServiceKind("redis", "cache", "redis", 6379, "/data", 999)
DATABASE_NAME = "app"
DATABASE_USER = "app"
AUTH_MOUNT = "/run/secrets/auth"


@dataclass
class BackingServiceArgs:
    app: str
    namespace: pulumi.Input[str]
    kind: ServiceKind
    settings: BackingService
    external_url: pulumi.Input[str] | None = None
    """Connection URL from secret config; required (and only used) when the service is external."""
    awaits: ServerAwaits | None = None
    """How long `up` waits for the StatefulSet and Service (`components/timeline.py`); required when in-cluster."""
    pull_secret_name: str | None = None
    """The project registry's pull Secret: `shipsafe mirror` moves the image there, behind its credentials."""


class BackingServiceComponent(pulumi.ComponentResource):
    url_secret_name: str
    """Secret with key `url` the app and the migration Job read."""
    host: str | None
    """In-cluster DNS name, or None when external."""

    def __init__(self, name: str, args: BackingServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:BackingService", name, None, opts)
        self._name, self._args = name, args
        self.url_secret_name = f"{args.app}-{args.kind.secret_suffix}"
        if not args.settings.present:
            raise ValueError(f"{args.kind.role} has mode none: the stack declares nothing for it")
        if args.settings.mode is ServiceMode.EXTERNAL:
            if args.external_url is None:
                raise ValueError(f"{args.kind.role} is external but no connection URL was given")
            self.host = None
            self._url_secret(pulumi.Output.secret(args.external_url), depends_on=[])
        else:
            if args.awaits is None:
                raise ValueError(f"{args.kind.role} is in-cluster but the deploy timeline gave it no await timeouts")
            self.host = f"{args.app}-{args.kind.role}"
            self._create_in_cluster(args.awaits)
        self.register_outputs({"urlSecretName": self.url_secret_name})

    def _child(self, **extra: Any) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **extra)

    def _data(self, **extra: Any) -> pulumi.ResourceOptions:
        # Data outlives mistakes: `pulumi destroy` or an accidental rename must not drop it.
        return self._child(protect=self._args.settings.protect, **extra)

    def _url_secret(self, url: pulumi.Input[str], depends_on: list[pulumi.Resource]) -> None:
        args = self._args
        k8s.core.v1.Secret(
            f"{self._name}-url",
            metadata={
                "name": self.url_secret_name,
                "namespace": args.namespace,
                "labels": labels(args.app, args.kind.component),
            },
            type="Opaque",
            string_data={SECRET_URL_KEY: url},
            opts=self._child(depends_on=depends_on),
        )

    def _create_in_cluster(self, awaits: ServerAwaits) -> None:
        args, kind = self._args, self._args.kind
        password = random.RandomPassword(f"{self._name}-password", length=32, special=False, opts=self._data())
        host = f"{self.host}.{{namespace}}.svc.cluster.local"
        fqdn = pulumi.Output.from_input(args.namespace).apply(lambda ns: host.format(namespace=ns))
        if kind is POSTGRES:
            auth_data: dict[str, pulumi.Input[str]] = {"password": password.result}
            url = pulumi.Output.concat(
                f"postgresql://{DATABASE_USER}:", password.result, "@", fqdn, f":{kind.port}/{DATABASE_NAME}"
            )
        else:
            auth_data = {
                "password": password.result,
                "redis.conf": pulumi.Output.concat(
                    "requirepass ", password.result, f"\nappendonly yes\ndir {kind.data_path}\n"
                ),
            }
            url = pulumi.Output.concat("redis://:", password.result, "@", fqdn, f":{kind.port}/0")
        auth = k8s.core.v1.Secret(
            f"{self._name}-auth",
            metadata={
                "name": f"{args.app}-{kind.role}-auth",
                "namespace": args.namespace,
                "labels": labels(args.app, kind.component),
            },
            type="Opaque",
            string_data=auth_data,
            opts=self._data(),
        )
        account = service_account(
            f"{self._name}-serviceaccount",
            name=f"{args.app}-{kind.role}",
            namespace=args.namespace,
            component_labels=labels(args.app, kind.component),
            parent=self,
        )
        service = k8s.core.v1.Service(
            f"{self._name}-service",
            metadata={
                "name": self.host,
                "namespace": args.namespace,
                "labels": labels(args.app, kind.component),
            },
            spec={
                "cluster_ip": "None",  # headless: stable per-pod DNS for the StatefulSet
                "selector": selector(args.app, kind.component),
                "ports": [{"name": kind.role, "port": kind.port, "target_port": kind.role}],
            },
            opts=self._child(custom_timeouts=await_timeouts(awaits.service_seconds)),
        )
        self._stateful_set(auth, account, service, awaits)
        self._url_secret(url, depends_on=[auth])

    def _stateful_set(
        self,
        auth: k8s.core.v1.Secret,
        account: k8s.core.v1.ServiceAccount,
        service: k8s.core.v1.Service,
        awaits: ServerAwaits,
    ) -> None:
        args, kind, settings = self._args, self._args.kind, self._args.settings
        version_labels = labels(args.app, kind.component, settings.version)
        auth_volume = {"secret_name": auth.metadata.apply(lambda m: m.name), "default_mode": 0o440}
        k8s.apps.v1.StatefulSet(
            f"{self._name}-statefulset",
            metadata={
                "name": self.host,
                "namespace": args.namespace,
                "labels": version_labels,
                "annotations": config_keys(
                    {
                        "container.image": [f"{kind.role}.image", f"{kind.role}.version"],
                        "container.resources": [f"{kind.role}.resources"],
                        "spec.volumeClaimTemplates": [f"{kind.role}.storageSize", f"{kind.role}.storageClassName"],
                        "protect": [f"{kind.role}.protect"],
                    }
                ),
            },
            spec=single_stateful_set_spec(
                service=service,
                account=account,
                pod_selector=selector(args.app, kind.component),
                pod_labels=version_labels,
                uid=kind.uid,
                container=self._container(),
                volumes=[{"name": "run", "empty_dir": {"size_limit": "16Mi"}}, {"name": "auth", "secret": auth_volume}],
                storage_size=settings.storage_size,
                storage_class_name=settings.storage_class_name,
                termination_grace_period_seconds=BACKING_SERVICE_TERMINATION_GRACE_SECONDS,
                pull_secret_name=args.pull_secret_name,
            ),
            opts=self._data(custom_timeouts=await_timeouts(awaits.stateful_set_seconds)),
        )

    def _container(self) -> dict[str, Any]:
        kind, settings = self._args.kind, self._args.settings
        if settings.image is None:  # the settings require an image with mode in-cluster
            raise ValueError(f"{kind.role} is in-cluster but has no image")
        common: dict[str, Any] = {
            "name": kind.role,
            "image": settings.image,
            "image_pull_policy": pull_policy(settings.image),
            "ports": [{"name": kind.role, "container_port": kind.port, "protocol": "TCP"}],
            "resources": settings.resources.to_kubernetes(),
            "security_context": container_security_context(),
            "volume_mounts": [
                {"name": "data", "mount_path": kind.data_path},
                tmp_mount(),
                {"name": "auth", "mount_path": AUTH_MOUNT, "read_only": True},
            ],
        }
        if kind is POSTGRES:
            ready_check = ["pg_isready", "-h", "127.0.0.1", "-U", DATABASE_USER, "-d", DATABASE_NAME]
            common["env"] = [
                {"name": "POSTGRES_USER", "value": DATABASE_USER},
                {"name": "POSTGRES_DB", "value": DATABASE_NAME},
                {"name": "POSTGRES_PASSWORD_FILE", "value": f"{AUTH_MOUNT}/password"},
                {"name": "PGDATA", "value": f"{kind.data_path}/pgdata"},
            ]
            common["volume_mounts"].append({"name": "run", "mount_path": "/var/run/postgresql"})
            if not isinstance(settings, PostgresService):
                raise TypeError(f"Postgres needs PostgresService settings, got {type(settings).__name__}")
            common["args"] = ["-c", f"max_connections={settings.max_connections}"]
        else:
            ready_check = ["sh", "-c", 'REDISCLI_AUTH="$(cat /run/secrets/auth/password)" redis-cli ping']
            common["command"] = ["redis-server", f"{AUTH_MOUNT}/redis.conf"]
            common["volume_mounts"].append({"name": "run", "mount_path": "/var/run/redis"})
        listening = {"tcp_socket": {"port": kind.role}}
        common["readiness_probe"] = BACKING_SERVICE.readiness.spec({"exec": {"command": ready_check}})
        common["liveness_probe"] = BACKING_SERVICE.liveness.spec(listening)
        common["startup_probe"] = BACKING_SERVICE_STARTUP.spec(listening)
        return common
