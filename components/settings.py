"""The stack's settings: one typed model read from `shipsafe:*` config and validated before any resource exists.

Every per-environment difference lives in `Pulumi.<stack>.yaml`; nothing here branches on the stack name.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

CONFIG_NAMESPACE = "shipsafe"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
GIT_SHA = re.compile(r"^[0-9a-f]{7,40}(-dirty)?$")
# <registry host[:port]>/<path>[:<tag>][@sha256:<digest>]
IMAGE_REF = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9.-]*(?::[0-9]+)?(?:/[a-z0-9._-]+)+)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"

SHUTDOWN_MARGIN_SECONDS = 5
# The exposed workload the public Ingress routes to.
INGRESS_WORKLOAD = "web"
# The app contract: each process keeps a Postgres pool of at most this many connections.
APP_POOL_SIZE = 10
# Object names the stack already uses next to `<app>-<workload>`; a workload must not collide with them.
RESERVED_WORKLOAD_NAMES = frozenset(
    {"postgres", "redis", "registry", "migrate", "migration", "database", "cache", "config", "namespace", "tls"}
)

Port = Annotated[int, Field(ge=1, le=65535)]
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
Quantity = Annotated[str, Field(pattern=QUANTITY)]


class ConfigError(Exception):
    """Raised before any resource is registered; lists every bad key with its value and what is allowed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class Environment(StrEnum):
    STAGING = "staging"
    PRODUCTION = "production"


class ImageSource(StrEnum):
    BUILD = "build"
    PREBUILT = "prebuilt"


class RegistryMode(StrEnum):
    EXTERNAL = "external"
    IN_CLUSTER = "in-cluster"


class ServiceMode(StrEnum):
    IN_CLUSTER = "in-cluster"
    EXTERNAL = "external"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Resources(_Model):
    cpu_request: Quantity = "100m"
    memory_request: Quantity = "128Mi"
    memory_limit: Quantity = "256Mi"
    cpu_limit: Quantity | None = None
    ephemeral_storage_request: Quantity = "64Mi"
    ephemeral_storage_limit: Quantity = "256Mi"

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        limits = {"memory": self.memory_limit, "ephemeral-storage": self.ephemeral_storage_limit}
        if self.cpu_limit:
            limits["cpu"] = self.cpu_limit
        requests = {
            "cpu": self.cpu_request,
            "memory": self.memory_request,
            "ephemeral-storage": self.ephemeral_storage_request,
        }
        return {"requests": requests, "limits": limits}


class AppSettings(_Model):
    name: DnsLabel
    namespace: DnsLabel
    port: Port = 3002
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$")
    host: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    """Public host name the Ingress serves (TLS)."""
    ingress_class_name: str = "nginx"
    ingress_namespace: DnsLabel = "ingress-nginx"
    """Namespace of the ingress controller: with monitoring, the only source allowed to reach the app's port."""
    monitoring_namespace: DnsLabel = "monitoring"
    """Namespace of the Prometheus that scrapes /metrics (deploy verification reads it)."""
    tls_secret_name: DnsLabel | None = None
    """Secret with the host's certificate; default `<app>-tls` (cert-manager creates it when clusterIssuer is set)."""
    cluster_issuer: str | None = None
    """cert-manager ClusterIssuer that provisions the Ingress certificate; None: provide the TLS Secret yourself."""
    public_paths: list[str] = Field(["/notes", "/healthz", "/readyz"], min_length=1)
    """Path prefixes the Ingress routes to `web`; /metrics stays internal (Prometheus scrapes pods directly)."""
    pod_monitor: bool = False
    """Declare a Prometheus Operator PodMonitor per workload (needs the monitoring.coreos.com CRDs)."""
    run_as_user: int = Field(10001, ge=1)
    """Numeric UID of the image's USER; the pod runs as it."""
    image_platform: str = Field("linux/amd64", pattern=r"^linux/(amd64|arm64)$")
    """Platform the image is built for; match the cluster's nodes."""

    @field_validator("public_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        bad = [path for path in value if not re.match(r"^/[A-Za-z0-9._~/-]*$", path) or path.startswith("/metrics")]
        if bad:
            raise ValueError(f"{bad} are not public URL paths (start with '/', and /metrics stays internal)")
        return value


class RegistrySettings(_Model):
    mode: RegistryMode
    server: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?$")
    """Registry host[:port] that both the image builder and the cluster's nodes reach (in-cluster: the Ingress host)."""
    repository: str = Field(pattern=r"^[a-z0-9._/-]+$")
    """Path under the server, e.g. `shipsafe/notes`; the image is <server>/<repository>:<git sha>."""
    username: str = Field(min_length=1)
    image: str = "docker.io/library/registry:2.8.3"
    storage_size: Quantity = "20Gi"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mode is RegistryMode.IN_CLUSTER and ":" in self.server:
            raise ValueError(
                f"server {self.server!r}: an in-cluster registry is reached through its TLS Ingress on 443; "
                "give the bare host name"
            )
        return self

    @property
    def image_repository(self) -> str:
        return f"{self.server}/{self.repository}"


class BackingService(_Model):
    mode: ServiceMode
    version: str = Field(pattern=r"^[0-9]+(\.[0-9]+)+$")
    """Full server version, e.g. 15.18; must equal the image tag's version and match across stacks."""
    image: str
    storage_size: Quantity = "10Gi"
    storage_class_name: str | None = None
    resources: Resources = Resources()
    protect: bool = True
    """Pulumi `protect` on data-bearing resources, so `pulumi destroy` or a rename cannot drop the data."""
    external_cidr: str | None = Field(None, pattern=r"^[0-9.]+/[0-9]{1,2}$")
    """Network of an external service; the app's egress NetworkPolicy allows only it. Required when external."""
    max_connections: int = Field(200, ge=20, le=5000)
    """Postgres `max_connections` (in-cluster); must cover every app pod's pool at the autoscaler's maximum."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        match = IMAGE_REF.match(self.image)
        tag = match.group("tag") if match else None
        if not match or not tag:
            raise ValueError(f"image {self.image!r} must be <registry>/<repository>:<version tag>[@sha256:...]")
        if not (tag == self.version or tag.startswith(self.version + "-")):
            raise ValueError(f"image tag {tag!r} does not carry version {self.version!r}")
        if self.mode is ServiceMode.EXTERNAL and not self.external_cidr:
            raise ValueError("externalCidr is required when mode is external (the app's egress allows only it)")
        return self


class Autoscaling(_Model):
    min_replicas: int = Field(ge=2)
    max_replicas: int = Field(ge=2, le=100)
    target_cpu_utilization: int = Field(70, ge=10, le=95)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"maxReplicas {self.max_replicas} is below minReplicas {self.min_replicas}")
        return self


class Workload(_Model):
    replicas: int = Field(2, ge=1, le=100)
    command: list[str] = ["python", "-m", "notes_app", "serve"]
    expose: bool = True
    """Serve traffic through a Service (and the Ingress for the workload named `web`)."""
    resources: Resources = Resources()
    autoscaling: Autoscaling | None = None


class Rollout(_Model):
    max_surge: int = Field(1, ge=1)
    max_unavailable: int = Field(0, ge=0, le=0)
    """Always 0: a rolling update never takes a serving pod away before its replacement is ready."""
    min_ready_seconds: int = Field(10, ge=0, le=600)
    progress_deadline_seconds: int = Field(300, ge=30)
    """Kubernetes reports a rollout without progress for this long as ProgressDeadlineExceeded (pulumi-kubernetes
    only logs it); must exceed one rollout round so a healthy rollout is never reported as stuck."""
    await_timeout_seconds: int | None = Field(None, ge=60)
    """pulumi-kubernetes await timeout of every Deployment; default: derived from the worst-case rollout
    (`components/timeline.py`). The provider does not stop at the progress deadline, so this must cover the whole
    rollout."""
    termination_grace_period_seconds: int = Field(30, ge=1, le=300)
    pre_stop_seconds: int = Field(5, ge=1)
    """Delay before SIGTERM so endpoints and load balancers stop sending new requests first."""

    @property
    def app_shutdown_timeout_seconds(self) -> int:
        """How long the app may wait for in-flight requests after SIGTERM: what is left of the grace period after
        the preStop delay, minus a 5 s margin before the kubelet's SIGKILL, capped at the app contract's 20 s."""
        return min(self.termination_grace_period_seconds - self.pre_stop_seconds - SHUTDOWN_MARGIN_SECONDS, 20)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.termination_grace_period_seconds <= self.pre_stop_seconds + SHUTDOWN_MARGIN_SECONDS:
            raise ValueError(
                f"terminationGracePeriodSeconds {self.termination_grace_period_seconds} must be longer than "
                f"preStopSeconds {self.pre_stop_seconds} + {SHUTDOWN_MARGIN_SECONDS} s (the app needs time to drain "
                "after SIGTERM, before the kubelet's SIGKILL)"
            )
        return self


class Migration(_Model):
    command: list[str] = ["python", "-m", "notes_app", "migrate"]
    backoff_limit: int = Field(1, ge=0, le=3)
    active_deadline_seconds: int = Field(300, ge=30, le=3600)
    ttl_seconds_after_finished: int = Field(86400, ge=600)
    resources: Resources = Resources()


class Verification(_Model):
    prometheus_url: str = Field(pattern=r"^https?://")
    window_seconds: int = Field(300, ge=10)
    interval_seconds: int = Field(15, ge=1)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    max_p99_latency_seconds: float = Field(0.5, gt=0)
    min_requests: int = Field(100, ge=1)


class Settings(_Model):
    environment: Environment
    app: AppSettings
    registry: RegistrySettings
    image_source: ImageSource
    image_ref: str | None = None
    """Prebuilt reference `<server>/<repository>:<sha>[@sha256:<digest>]`; required when imageSource is prebuilt."""
    git_sha: str | None = None
    rollback: bool = False
    """A rollback redeploys an earlier image and skips the migration Job (migrations are forward-only)."""
    postgres: BackingService
    redis: BackingService
    workloads: dict[str, Workload]
    rollout: Rollout = Rollout()
    migration: Migration = Migration()
    verification: Verification

    @field_validator("git_sha")
    @classmethod
    def _sha(cls, value: str | None) -> str | None:
        if value is not None and not GIT_SHA.match(value):
            raise ValueError(f"{value!r} is not a git SHA (7-40 lowercase hex characters, optionally '-dirty')")
        return value

    @field_validator("workloads")
    @classmethod
    def _workload_names(cls, value: dict[str, Workload]) -> dict[str, Workload]:
        if not value:
            raise ValueError("declare at least one workload, e.g. {web: {replicas: 2}}")
        bad = [name for name in value if not re.match(DNS_LABEL, name)]
        if bad:
            raise ValueError(f"workload names {bad} must be DNS labels (lowercase letters, digits, '-')")
        reserved = sorted(RESERVED_WORKLOAD_NAMES & set(value))
        if reserved:
            raise ValueError(f"workload names {reserved} are reserved for the stack's own objects")
        return value

    @model_validator(mode="after")
    def _release_rules(self) -> Self:
        production = self.environment is Environment.PRODUCTION
        if production and self.image_source is not ImageSource.PREBUILT:
            raise ValueError("production never builds: set imageSource to prebuilt and imageRef to what staging runs")
        if self.image_source is ImageSource.PREBUILT:
            self._check_prebuilt_ref()
        elif self.image_ref is not None:
            raise ValueError("imageRef is only used when imageSource is prebuilt")
        if production and (self.release_sha or "").endswith("-dirty"):
            raise ValueError(f"production refuses a dirty build ({self.release_sha})")
        self._check_connection_budget()
        return self

    def _check_connection_budget(self) -> None:
        # Every pod at the autoscaler's maximum, one extra pod of maxSurge per workload, and the migration Job.
        pods = sum(
            (w.autoscaling.max_replicas if w.autoscaling else w.replicas) + self.rollout.max_surge
            for w in self.workloads.values()
        )
        needed = (pods + 1) * APP_POOL_SIZE
        if self.postgres.mode is ServiceMode.IN_CLUSTER and needed > self.postgres.max_connections:
            raise ValueError(
                f"postgres.maxConnections {self.postgres.max_connections} is below the {needed} connections "
                f"{pods + 1} app pods may open ({APP_POOL_SIZE} each); raise it or lower the replica maximums"
            )

    def _check_prebuilt_ref(self) -> None:
        if not self.image_ref:
            raise ValueError("imageSource is prebuilt but imageRef is not set (set shipsafe:imageRef)")
        match = IMAGE_REF.match(self.image_ref)
        if not match:
            raise ValueError(f"imageRef {self.image_ref!r} is not <server>/<repository>:<sha>[@sha256:<digest>]")
        tag, digest = match.group("tag"), match.group("digest")
        if match.group("repository") != self.registry.image_repository:
            raise ValueError(
                f"imageRef {self.image_ref!r} is not in the project repository {self.registry.image_repository}"
            )
        if tag is None and digest is None:
            raise ValueError(f"imageRef {self.image_ref!r} must be pinned by a git SHA tag and/or a digest")
        if tag is not None and not GIT_SHA.match(tag):
            raise ValueError(f"imageRef tag {tag!r} is not a git SHA (never a moving tag such as 'latest')")
        if tag is None and self.git_sha is None:
            raise ValueError("imageRef has no SHA tag, so shipsafe:gitSha must name the release")
        if tag and self.git_sha and tag != self.git_sha:
            raise ValueError(f"imageRef tag {tag!r} disagrees with gitSha {self.git_sha!r}")

    @property
    def release_sha(self) -> str | None:
        """The release's git SHA when config names it (prebuilt tag or gitSha); None means ask git."""
        if self.git_sha:
            return self.git_sha
        if self.image_ref:
            match = IMAGE_REF.match(self.image_ref)
            return match.group("tag") if match else None
        return None


# Read as plain strings, never JSON-parsed: a SHA such as "1234567" must not turn into a number.
_STRING_KEYS = frozenset({"environment", "imageSource", "imageRef", "gitSha"})


def _read_raw(config: pulumi.Config) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for field_name, field in Settings.model_fields.items():
        key = field.alias or field_name
        value = config.get(key) if key in _STRING_KEYS else config.get_object(key)
        if value is not None:
            raw[key] = value
    return raw


def _describe(error: ErrorDetails) -> str:
    path = ".".join(str(part) for part in error["loc"])
    key = f"{CONFIG_NAMESPACE}:{path}" if path else f"{CONFIG_NAMESPACE} config"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        return f"{key} is required"
    if error["type"] == "extra_forbidden":
        return f"{key} is not a known setting (see the config reference in README.md)"
    if isinstance(error.get("input"), dict):  # a rule across several keys of this object
        return f"{key}: {message}"
    return f"{key} = {error.get('input')!r}: {message}"


def parse_settings(raw: dict[str, Any]) -> Settings:
    """Validates raw config (camelCase keys as in Pulumi.<stack>.yaml, without the namespace)."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError([_describe(e) for e in error.errors(include_url=False)]) from None


def load_settings(config: pulumi.Config | None = None) -> Settings:
    return parse_settings(_read_raw(config or pulumi.Config(CONFIG_NAMESPACE)))
