"""The app's non-secret configuration (a ConfigMap) and the env every app container gets (twelve-factor III)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config_link import config_keys
from components.pods import labels
from components.settings import AppSettings

SECRET_URL_KEY = "url"
# The kubelet's default `--cluster-domain`: the suffix of every Service's fully qualified DNS name.
CLUSTER_DOMAIN = "cluster.local"


@dataclass
class AppConfigArgs:
    app: str
    namespace: pulumi.Input[str]
    port: int
    version: str
    log_level: str
    shutdown_timeout_seconds: int
    database_secret: str | None
    """The Secret holding the Postgres URL; None: the app has no Postgres, and no variable carries one."""
    redis_secret: str | None
    """The Secret holding the Redis URL; None: the app has no Redis, and no variable carries one."""
    database_url_env: str
    """The variable the app reads the Postgres URL from (`shipsafe:app.postgresUrlEnv`)."""
    redis_url_env: str
    """The variable the app reads the Redis URL from (`shipsafe:app.redisUrlEnv`)."""
    allowed_hosts_env: str | None = None
    """The variable listing the host names the app answers (`shipsafe:app.allowedHostsEnv`); None: not set."""
    allowed_hosts: tuple[str, ...] = ()
    """The host names it lists (`allowed_hosts`)."""


def allowed_hosts(app: AppSettings, exposed_workloads: list[str]) -> tuple[str, ...]:
    """The Host headers the app must answer: the public host, and every name other pods may reach an exposed
    workload's Service by (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.<cluster domain>`). The
    Services are named `<app>-<workload>` (`components/workload.py`); IP literals need no entry (the app always
    allows them: probes and scrapes use the pod IP)."""
    services = [f"{app.name}-{workload}" for workload in exposed_workloads]
    suffixes = ("", f".{app.namespace}", f".{app.namespace}.svc", f".{app.namespace}.svc.{CLUSTER_DOMAIN}")
    return (app.host, *(service + suffix for service in services for suffix in suffixes))


class AppConfig(pulumi.ComponentResource):
    config_map_name: str
    checksum: str
    """Hash of the ConfigMap data; a pod-template annotation, so a config change rolls the pods."""

    def __init__(self, name: str, args: AppConfigArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("shipsafe:components:AppConfig", name, None, opts)
        data = {
            "PORT": str(args.port),
            "LOG_LEVEL": args.log_level,
            "SHUTDOWN_TIMEOUT_SECONDS": str(args.shutdown_timeout_seconds),
        }
        keys = {
            "data.PORT": ["app.port"],
            "data.LOG_LEVEL": ["app.logLevel"],
            "data.SHUTDOWN_TIMEOUT_SECONDS": ["rollout.terminationGracePeriodSeconds", "rollout.preStopSeconds"],
        }
        if args.allowed_hosts_env:
            data[args.allowed_hosts_env] = ",".join(args.allowed_hosts)
            keys[f"data.{args.allowed_hosts_env}"] = ["app.allowedHostsEnv", "app.host", "app.namespace", "workloads"]
        self.config_map_name = f"{args.app}-config"
        self.checksum = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        self._args = args
        k8s.core.v1.ConfigMap(
            f"{name}-configmap",
            metadata={
                "name": self.config_map_name,
                "namespace": args.namespace,
                "labels": labels(args.app, "config"),
                "annotations": config_keys(keys),
            },
            data=data,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"configMapName": self.config_map_name})

    def container_env(self) -> dict[str, Any]:
        """`env` and `envFrom` for an app container: plain config from the ConfigMap, credentials from Secrets.

        The version sits in the pod template, not in the shared ConfigMap: an old pod that restarts mid-rollout
        must keep reporting its own version (verification compares versions)."""
        return {
            "env_from": [{"config_map_ref": {"name": self.config_map_name}}],
            "env": [
                {"name": "APP_VERSION", "value": self._args.version},
                *(_secret_env(variable, secret) for variable, secret, _ in self._service_urls()),
            ],
        }

    @property
    def env_keys(self) -> list[str]:
        """The settings that name the service URL variables of `container_env` (`components/config_link.py`)."""
        return [key for _, _, key in self._service_urls()]

    def _service_urls(self) -> list[tuple[str, str, str]]:
        """(variable, Secret, setting) of each backing service the app has."""
        args = self._args
        services = (
            (args.database_url_env, args.database_secret, "app.postgresUrlEnv"),
            (args.redis_url_env, args.redis_secret, "app.redisUrlEnv"),
        )
        return [(variable, secret, key) for variable, secret, key in services if secret is not None]


def _secret_env(variable: str, secret: str) -> dict[str, Any]:
    return {"name": variable, "value_from": {"secret_key_ref": {"name": secret, "key": SECRET_URL_KEY}}}
