"""The stack's settings: one typed model read from `shipsafe:*` config and validated before any resource exists.

Every per-environment difference lives in `Pulumi.<stack>.yaml`; nothing here branches on the stack name. Each
field's docstring is its entry in `docs/configuration.md` (`python -m deploy.docs`).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self, get_args
from urllib.parse import parse_qsl, urlsplit

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from components import api_rules
from components.api_rules import DNS1123_LABEL, DNS1123_SUBDOMAIN, MAX_USER_ID, NameRule
from components.config_keys import CONFIG_NAMESPACE, did_you_mean, field_names, key_problems, model_at, program_config
from components.quantities import GRAMMAR, parse_quantity

GIT_SHA = re.compile(r"^[0-9a-f]{7,40}(-dirty)?$")
# <registry host[:port]>/<path>[:<tag>][@sha256:<digest>]
IMAGE_REF = re.compile(
    r"^(?P<repository>[a-z0-9][a-z0-9.-]*(?::[0-9]+)?(?:/[a-z0-9._-]+)+)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
SHUTDOWN_MARGIN_SECONDS = 5
# The environment every app container gets besides the backing-service URLs (`components/app_config.py`).
APP_ENV = frozenset({"PORT", "LOG_LEVEL", "SHUTDOWN_TIMEOUT_SECONDS", "APP_VERSION"})
# The exposed workload the public Ingress or HTTPRoute routes to.
INGRESS_WORKLOAD = "web"
# The app contract: the app answers 413 to a request body above this many bytes (`app/notes_app/payloads.py`).
APP_MAX_BODY_BYTES = 64 * 1024
# Above this the edge would spool uploads to disk for an app built for small JSON documents.
EDGE_MAX_BODY_BYTES = 16 * 1024 * 1024
# The app contract: each process keeps a Postgres pool of at most this many connections.
APP_POOL_SIZE = 10
# Object names the stack already uses next to `<app>-<workload>`; a workload must not collide with them.
RESERVED_WORKLOAD_NAMES = frozenset(
    {"postgres", "redis", "registry", "migrate", "migration", "database", "cache", "config", "namespace", "tls"}
)


def _allowed(text: str) -> Any:
    """What a value may be, in words, for the generated config reference."""
    return Field(json_schema_extra={"allowed": text})


def _follows(rule: NameRule) -> AfterValidator:
    def check(value: str) -> str:
        problem = rule.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


def _quantity(*, positive: bool = False) -> AfterValidator:
    # The API server refuses negative resource quantities (`ValidateNonnegativeQuantity`) and a zero storage request
    # (`ValidatePositiveQuantityValue`), kubernetes `pkg/apis/core/validation/validation.go`.
    def check(value: str) -> str:
        amount = parse_quantity(value)
        if amount < 0 or (positive and amount == 0):
            raise ValueError(f"{value!r} must be {'greater than zero' if positive else 'zero or more'}")
        return value

    return AfterValidator(check)


Port = Annotated[int, Field(ge=1, le=65535)]


# An HTTP path the pods serve (probes, metrics): absolute, no query or fragment.
HttpPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/-]*$")]
# An environment variable name the app reads; kubernetes `validation.go` `validateEnv` accepts more (any printable
# but '='), but a shell and most runtimes read only identifiers.
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


def _relative_to_project(value: str) -> str:
    # `pulumi up` runs the program in the project directory, and pulumi-docker hands the context and Dockerfile to
    # the build as given, so a relative path resolves against it (the pack reads it the same way:
    # `policy/shipsafe_policies/dockerfiles.py` `load_build`). A relative path means the same on every checkout
    # laid out alike (the app's own repository beside this one: `../greeter`); an absolute one names one machine's
    # disk.
    if value.startswith("/") or not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValueError(
            f"{value!r} must be a path relative to the project directory (letters, digits, . _ / -), inside it "
            "(app) or beside it (../greeter: the app's repository checked out next to this one); not absolute"
        )
    return value


# A path relative to the project directory (the build context, the Dockerfile), possibly outside it.
ProjectPath = Annotated[str, AfterValidator(_relative_to_project)]
DnsLabel = Annotated[str, _allowed(DNS1123_LABEL.description), _follows(DNS1123_LABEL)]
DnsSubdomain = Annotated[str, _allowed(DNS1123_SUBDOMAIN.description), _follows(DNS1123_SUBDOMAIN)]
# A quantity may be written as a number (`--set ...cpuRequest=1` or YAML `1`), as the API accepts it in JSON.
_NUMBER_AS_TEXT = BeforeValidator(lambda v: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v)
Quantity = Annotated[str, _NUMBER_AS_TEXT, _allowed(GRAMMAR), _quantity()]
StorageSize = Annotated[str, _NUMBER_AS_TEXT, _allowed(f"{GRAMMAR}, above zero"), _quantity(positive=True)]


class RuleError(ValueError):
    """A rule across several settings, raised by a model validator: names every key (dotted, relative to the model
    that raises it) with its value, so the message can name each `shipsafe:` key in full."""

    def __init__(self, keys: Mapping[str, object], message: str) -> None:
        super().__init__(message)
        self.keys = dict(keys)
        self.message = message


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
    NONE = "none"
    IN_CLUSTER = "in-cluster"
    EXTERNAL = "external"


class EdgeController(StrEnum):
    INGRESS_NGINX = "ingress-nginx"
    ENVOY_GATEWAY = "envoy-gateway"


class SettingsModel(BaseModel):
    """The base of every settings model: camelCase keys, unknown keys refused, values frozen."""

    # A field's docstring documents it (`deploy.docs.configuration` reads them into docs/configuration.md); pydantic's
    # `use_attribute_docstrings` would parse this module's source at every import, on every program run.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Resources(SettingsModel):
    cpu_request: Quantity = "100m"
    """CPU the scheduler reserves per container, e.g. `100m` (a tenth of a core)."""
    memory_request: Quantity = "128Mi"
    """Memory the scheduler reserves per container."""
    memory_limit: Quantity = "256Mi"
    """Memory above which the container is OOM-killed; at least the request."""
    cpu_limit: Quantity | None = None
    """CPU the container is throttled at; unset: no throttling. At least the request when set."""
    ephemeral_storage_request: Quantity = "64Mi"
    """Local disk (logs, /tmp) the scheduler reserves."""
    ephemeral_storage_limit: Quantity = "256Mi"
    """Local disk above which the kubelet evicts the pod; at least the request."""

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

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        # kubernetes `pkg/apis/core/validation/validation.go` `ValidateResourceRequirements`: a request above its
        # limit is refused ("must be less than or equal to ... limit"), so the first `up` would fail.
        pairs = (
            ("cpuRequest", self.cpu_request, "cpuLimit", self.cpu_limit),
            ("memoryRequest", self.memory_request, "memoryLimit", self.memory_limit),
            (
                "ephemeralStorageRequest",
                self.ephemeral_storage_request,
                "ephemeralStorageLimit",
                self.ephemeral_storage_limit,
            ),
        )
        for request_key, request, limit_key, limit in pairs:
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise RuleError(
                    {request_key: request, limit_key: limit},
                    "a request may not exceed its limit (the API server refuses the pod); raise the limit or lower "
                    "the request",
                )
        return self


# A body size in binary units, written the way both controllers' settings can be derived from it.
BodySize = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,4}(Ki|Mi)$"), _allowed("a whole number of Ki or Mi, e.g. 64Ki")]
# A Gateway listener name (Gateway API `SectionName`).
SectionName = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=253)]


class Edge(SettingsModel):
    """What stands between the internet and `web`, and the limits it enforces before a request reaches a pod."""

    controller: EdgeController = EdgeController.INGRESS_NGINX
    """`ingress-nginx`: an Ingress of class `ingressClassName` carrying ingress-nginx's limit annotations;
    `envoy-gateway`: a Gateway API HTTPRoute on `gatewayName`, limited by an Envoy Gateway (1.4+)
    BackendTrafficPolicy; set `ingressNamespace` to where its Envoy proxies run (by default
    `envoy-gateway-system`). HTTPRoute itself has no body-size or rate-limit field, so no other Gateway API
    implementation is offered: the limits would not be enforced."""
    gateway_name: DnsSubdomain | None = None
    """The Gateway the HTTPRoute attaches to; required with envoy-gateway, which it must serve."""
    gateway_namespace: DnsLabel | None = None
    """Namespace of that Gateway; default: the app namespace (its listener must allow routes from it)."""
    gateway_listener: SectionName = "https"
    """The Gateway listener (`sectionName`) the route attaches to: its HTTPS listener for `host`, so the route is
    never served over plain HTTP."""
    max_body_size: BodySize = "64Ki"
    """Largest request body the edge forwards (413 above it): at least the app's own 64 KiB cap, so the edge never
    refuses what the app accepts, at most 16Mi."""
    requests_per_second: int = Field(20, ge=1, le=1000)
    """Requests per second one client IP may send, per controller replica (ingress-nginx `limit-rps`: 503 above;
    envoy-gateway: a local rate limit per distinct source IP: 429 above)."""
    burst_multiplier: int = Field(5, ge=1, le=10)
    """ingress-nginx only: a client may burst to this many times requestsPerSecond (`limit-burst-multiplier`).
    Envoy's local limit has no burst: its bucket holds one second of requests."""
    connections_per_client: int = Field(20, ge=1, le=1000)
    """ingress-nginx only: concurrent connections one client IP may hold (`limit-connections`, 503 above). Envoy
    Gateway has no per-client connection limit, so nothing is rendered for it there."""

    @property
    def max_body_bytes(self) -> int:
        return int(parse_quantity(self.max_body_size))

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not APP_MAX_BODY_BYTES <= self.max_body_bytes <= EDGE_MAX_BODY_BYTES:
            raise RuleError(
                {"maxBodySize": self.max_body_size},
                f"must be between the app's own cap of {APP_MAX_BODY_BYTES // 1024}Ki (a smaller edge limit refuses "
                f"bodies the app accepts) and {EDGE_MAX_BODY_BYTES // 1024 // 1024}Mi",
            )
        gateway = self.controller is EdgeController.ENVOY_GATEWAY
        if gateway and self.gateway_name is None:
            raise RuleError(
                {"controller": self.controller, "gatewayName": None},
                "envoy-gateway needs gatewayName: the Gateway (served by Envoy Gateway) the HTTPRoute attaches to",
            )
        if not gateway and (self.gateway_name or self.gateway_namespace):
            raise RuleError(
                {"controller": self.controller, "gatewayName": self.gateway_name},
                "gatewayName and gatewayNamespace are only used when controller is envoy-gateway",
            )
        return self


def routes_path(prefix: str, path: str) -> bool:
    """Whether an Ingress `Prefix` path routes `path` or anything under it. The API matches element by element
    (kubernetes `networking/v1` `PathTypePrefix`); some controllers match characters, so either counts."""
    elements = [e for e in prefix.split("/") if e]
    target = [e for e in path.split("/") if e]
    return path.startswith(prefix) or target[: len(elements)] == elements or elements[: len(target)] == target


class AppSettings(SettingsModel):
    name: DnsLabel
    """The app's name: the prefix of every object name and the `app.kubernetes.io/name` label."""
    namespace: DnsLabel
    """Namespace the stack creates and deploys into."""
    port: Port = 3002
    """The container's port (named `http`), declared once: probes, Service, NetworkPolicies and `PORT` all use it."""
    build_context: ProjectPath = "app"
    """Directory the image is built from when imageSource is build, relative to the project: inside it (`app`) or
    the app's own repository checked out beside it (`../greeter`)."""
    dockerfile: ProjectPath | None = None
    """The Dockerfile (relative to the project) of that build, by default `<buildContext>/Dockerfile`; its final USER
    is `runAsUser`, it EXPOSEs `port`."""
    build_target: str | None = Field("production", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Stage of the Dockerfile to build; None: its last stage."""
    liveness_path: HttpPath = "/healthz"
    """Path the startup and liveness probes GET: answers while the process is healthy, whatever its dependencies."""
    readiness_path: HttpPath = "/readyz"
    """Path the readiness probe GETs: answers only while the app can serve (its backing services reachable)."""
    metrics_path: HttpPath = "/metrics"
    """Path the app serves Prometheus metrics on; the public Ingress must never route it (nor the probe paths)."""
    postgres_url_env: EnvName = "DATABASE_URL"
    """Environment variable the app reads the Postgres connection URL from (a Secret's `url`)."""
    redis_url_env: EnvName = "REDIS_URL"
    """Environment variable the app reads the Redis connection URL from (a Secret's `url`)."""
    allowed_hosts_env: EnvName | None = "ALLOWED_HOSTS"
    """Environment variable (in the app ConfigMap) listing the host names the app answers: `host` and the web
    Services' in-cluster DNS names, comma-separated; None: the app does not check Host and gets no such list."""
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$")
    """The app's `LOG_LEVEL`: debug, info, warning or error."""
    host: DnsSubdomain
    """Public host name the Ingress serves (TLS)."""
    ingress_class_name: DnsSubdomain = "nginx"
    """IngressClass of the controller that serves the public Ingress."""
    ingress_namespace: DnsLabel = "ingress-nginx"
    """Namespace of the ingress controller: with monitoring, the only source allowed to reach the app's port."""
    monitoring_namespace: DnsLabel = "monitoring"
    """Namespace of the Prometheus that scrapes /metrics (deploy verification reads it)."""
    tls_secret_name: DnsLabel | None = None
    """Secret with the host's certificate; default `<app>-tls` (cert-manager creates it when clusterIssuer is set)."""
    cluster_issuer: str | None = None
    """cert-manager ClusterIssuer that provisions the Ingress certificate; None: provide the TLS Secret yourself."""
    public_paths: list[str] = Field(["/notes"], min_length=1)
    """Path prefixes the Ingress routes to `web`; none may route `metricsPath` (Prometheus scrapes pods directly)
    or the probe paths (the kubelet probes pods directly; readiness names backends)."""
    edge: Edge = Edge()
    """The edge in front of `web`: which controller, and its body-size and rate limits."""
    pod_monitor: bool = False
    """Declare a Prometheus Operator PodMonitor per workload (needs the monitoring.coreos.com CRDs)."""
    run_as_user: int = Field(10001, ge=1, le=MAX_USER_ID)
    """Numeric UID of the image's USER; the pod runs as it (never root)."""
    image_platform: str = Field("linux/amd64", pattern=r"^linux/(amd64|arm64)$")
    """Platform the image is built for; match the cluster's nodes."""

    @field_validator("public_paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            problem = api_rules.path_problem(path)
            if problem is None and not re.fullmatch(r"/[A-Za-z0-9._~/-]*", path):
                problem = f"{path!r} may contain only letters, digits and . _ ~ / -"
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _metrics_stay_internal(self) -> Self:
        internal = {
            "metricsPath": self.metrics_path,
            "livenessPath": self.liveness_path,
            "readinessPath": self.readiness_path,
        }
        for path in self.public_paths:
            for key, internal_path in internal.items():
                if routes_path(path, internal_path):
                    raise RuleError(
                        {"publicPaths": self.public_paths, key: internal_path},
                        f"{path!r} would route {internal_path} to the internet ({internal_path} stays internal)",
                    )
        variables = [
            self.postgres_url_env,
            self.redis_url_env,
            *([self.allowed_hosts_env] if self.allowed_hosts_env else []),
        ]
        if len(set(variables)) < len(variables) or set(variables) & APP_ENV:
            raise RuleError(
                {
                    "postgresUrlEnv": self.postgres_url_env,
                    "redisUrlEnv": self.redis_url_env,
                    "allowedHostsEnv": self.allowed_hosts_env,
                },
                f"the URL and host variables must differ from each other and from the app's own {sorted(APP_ENV)}",
            )
        return self

    @property
    def dockerfile_path(self) -> str:
        """`dockerfile`, or `<buildContext>/Dockerfile` where docker looks without one."""
        return self.dockerfile or posixpath.join(self.build_context, "Dockerfile")


IN_CLUSTER_ONLY = frozenset({"image", "storage_size", "storage_class_name", "resources", "protect"})
"""Settings of a server the stack runs itself (registry, backing service): refused with mode external."""


class RegistrySettings(SettingsModel):
    mode: RegistryMode
    """`external`: an existing registry (set the `registryPassword` secret); `in-cluster`: the stack runs one."""
    server: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*(:[0-9]{1,5})?$")
    """Registry host[:port] that both the image builder and the cluster's nodes reach (in-cluster: the Ingress host)."""
    repository: str = Field(pattern=r"^[a-z0-9._/-]+$")
    """Path under the server, e.g. `shipsafe/notes`; the image is <server>/<repository>:<git sha>."""
    username: str = Field(min_length=1)
    """Registry user the image builder and the pull Secret log in as."""
    image: str = "docker.io/library/registry:2.8.3"
    """Image of the in-cluster registry."""
    storage_size: StorageSize = "20Gi"
    """Volume size of the in-cluster registry."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.mode is RegistryMode.IN_CLUSTER:
            problem = "give the bare host name" if ":" in self.server else DNS1123_SUBDOMAIN.problem(self.server)
            if problem:
                raise RuleError(
                    {"mode": self.mode, "server": self.server},
                    f"an in-cluster registry is reached through its TLS Ingress on 443: {problem}",
                )
        elif given := {to_camel(name): getattr(self, name) for name in sorted(self.model_fields_set & IN_CLUSTER_ONLY)}:
            raise RuleError(
                {"mode": self.mode, **given},
                "these keys shape the in-cluster registry, and mode external runs none: remove them, or set mode to "
                "in-cluster",
            )
        return self

    @property
    def image_repository(self) -> str:
        return f"{self.server}/{self.repository}"


class BackingService(SettingsModel):
    in_cluster_only: ClassVar[frozenset[str]] = IN_CLUSTER_ONLY

    mode: ServiceMode = ServiceMode.NONE
    """`none` (the default): the app has no such service, and the stack creates nothing for it; `in-cluster`: a
    StatefulSet the stack runs; `external`: a managed service (set the `<role>Url` secret)."""
    version: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)+$")
    """Full server version, dot-separated numbers as the image tag starts with them; must equal the image tag's
    version and match across stacks. Required unless mode is none."""
    image: str | None = None
    """Server image `<registry>/<repository>:<version tag>[@sha256:...]`; the tag carries `version`. Required with mode
    in-cluster, refused otherwise."""
    storage_size: StorageSize = "10Gi"
    """Volume size of the in-cluster server (a change after creation replaces nothing: volumes only grow by hand)."""
    storage_class_name: DnsSubdomain | None = None
    """StorageClass of the volume; default: the cluster's default class."""
    resources: Resources = Resources()
    """Requests and limits of the server container."""
    protect: bool = True
    """Pulumi `protect` on data-bearing resources, so `pulumi destroy` or a rename cannot drop the data."""
    external_cidr: str | None = Field(None, pattern=r"^[0-9.]+/[0-9]{1,2}$")
    """Network of an external service; the app's egress NetworkPolicy allows only it. Required when external, refused
    otherwise."""

    @property
    def present(self) -> bool:
        """Whether the app has this service at all (mode in-cluster or external)."""
        return self.mode is not ServiceMode.NONE

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.present:
            # Nothing is created for an absent service, so any other key would be silently ignored.
            given = {to_camel(name): getattr(self, name) for name in sorted(self.model_fields_set - {"mode"})}
            if given:
                raise RuleError(
                    {"mode": self.mode, **given},
                    "mode none creates nothing for this service, so these keys would be ignored: remove them, or "
                    "set mode to in-cluster or external",
                )
            return self
        if self.mode is ServiceMode.EXTERNAL:
            # An external server runs elsewhere: the stack creates no pod, volume or protected resource for it, so
            # keys that shape one would be silently ignored. Its version stays (declared, and held equal across stacks).
            shaping = sorted(self.model_fields_set & self.in_cluster_only)
            given = {to_camel(name): getattr(self, name) for name in shaping}
            if given:
                raise RuleError(
                    {"mode": self.mode, **given},
                    "these keys shape the in-cluster server, and mode external runs none (an external server's "
                    "settings are made where it runs): remove them, or set mode to in-cluster",
                )
        in_cluster = self.mode is ServiceMode.IN_CLUSTER
        if self.version is None or (in_cluster and self.image is None):
            needed = {"version": self.version, **({"image": self.image} if in_cluster else {})}
            raise RuleError(
                {"mode": self.mode, **needed},
                f"mode {self.mode} needs {' and '.join(needed)} (mode none: the app has no such service)",
            )
        if self.image is None:
            return self._check_cidr()
        match = IMAGE_REF.match(self.image)
        tag = match.group("tag") if match else None
        if not match or not tag:
            raise RuleError({"image": self.image}, "must be <registry>/<repository>:<version tag>[@sha256:<digest>]")
        if not (tag == self.version or tag.startswith(self.version + "-")):
            raise RuleError(
                {"image": self.image, "version": self.version},
                f"image tag {tag!r} does not carry version {self.version!r}",
            )
        return self._check_cidr()

    def _check_cidr(self) -> Self:
        external = self.mode is ServiceMode.EXTERNAL
        if external != bool(self.external_cidr):
            raise RuleError(
                {"mode": self.mode, "externalCidr": self.external_cidr},
                "externalCidr is required when mode is external (the app's egress allows only it)"
                if external
                else "externalCidr is only used when mode is external (an in-cluster server is reached by its pods)",
            )
        return self


class PostgresService(BackingService):
    max_connections: int = Field(200, ge=20, le=5000)
    """The in-cluster server's `max_connections`; must cover every app pod's pool at the autoscaler's maximum. An
    external server's is set where it runs, so it is refused with mode external."""

    in_cluster_only: ClassVar[frozenset[str]] = IN_CLUSTER_ONLY | {"max_connections"}


class Autoscaling(SettingsModel):
    min_replicas: int = Field(ge=2)
    """Fewest pods the HorizontalPodAutoscaler keeps (at least 2, so one can always be disrupted)."""
    max_replicas: int = Field(ge=2, le=100)
    """Most pods the autoscaler may run; at least minReplicas."""
    target_cpu_utilization: int = Field(70, ge=10, le=95)
    """Average CPU, in percent of the request, the autoscaler aims for."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.max_replicas < self.min_replicas:
            raise RuleError(
                {"maxReplicas": self.max_replicas, "minReplicas": self.min_replicas},
                "maxReplicas must be at least minReplicas",
            )
        return self


class Workload(SettingsModel):
    replicas: int = Field(2, ge=1, le=100)
    """Pods when there is no autoscaling."""
    command: list[str] | None = Field(None, min_length=1)
    """The container's command (same image for every workload); None: the image's own ENTRYPOINT/CMD."""
    expose: bool = True
    """Serve traffic through a Service (and the Ingress for the workload named `web`)."""
    resources: Resources = Resources()
    """Requests and limits of the app container."""
    autoscaling: Autoscaling | None = None
    """A HorizontalPodAutoscaler instead of fixed replicas."""


class Rollout(SettingsModel):
    max_surge: int = Field(1, ge=1)
    """Extra pods a rolling update may start above the desired count."""
    max_unavailable: int = Field(0, ge=0, le=0)
    """Always 0: a rolling update never takes a serving pod away before its replacement is ready."""
    min_ready_seconds: int = Field(10, ge=0, le=600)
    """How long a new pod must stay ready before it counts as available."""
    progress_deadline_seconds: int = Field(300, ge=30)
    """Kubernetes reports a rollout without progress for this long as ProgressDeadlineExceeded (pulumi-kubernetes
    only logs it); must exceed one rollout round so a healthy rollout is never reported as stuck."""
    await_timeout_seconds: int | None = Field(None, ge=60)
    """pulumi-kubernetes await timeout of every Deployment; default: derived from the worst-case rollout
    (`components/timeline.py`). The provider does not stop at the progress deadline, so this must cover the whole
    rollout."""
    termination_grace_period_seconds: int = Field(30, ge=1, le=300)
    """Time from the pod's deletion to SIGKILL: covers the preStop delay, the app's drain and a 5 s margin."""
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
            raise RuleError(
                {
                    "terminationGracePeriodSeconds": self.termination_grace_period_seconds,
                    "preStopSeconds": self.pre_stop_seconds,
                },
                f"terminationGracePeriodSeconds {self.termination_grace_period_seconds} must be longer than "
                f"preStopSeconds {self.pre_stop_seconds} + {SHUTDOWN_MARGIN_SECONDS} s (the app needs time to drain "
                "after SIGTERM, before the kubelet's SIGKILL)",
            )
        # kubernetes `pkg/apis/apps/validation/validation.go` `ValidateDeploymentSpec`.
        if self.progress_deadline_seconds <= self.min_ready_seconds:
            raise RuleError(
                {"progressDeadlineSeconds": self.progress_deadline_seconds, "minReadySeconds": self.min_ready_seconds},
                "progressDeadlineSeconds must be greater than minReadySeconds (the API server refuses the Deployment)",
            )
        return self


class Migration(SettingsModel):
    command: list[str] | None = Field(None, min_length=1)
    """The migration Job's command, run once per release before the new pods start; None: the app has no
    migrations and no Job runs."""
    backoff_limit: int = Field(1, ge=0, le=3)
    """Retries of a failed migration before the Job fails (and the deploy with it)."""
    active_deadline_seconds: int = Field(300, ge=30, le=3600)
    """The Job is failed after this long, however many retries are left."""
    ttl_seconds_after_finished: int = Field(86400, ge=600)
    """A finished Job is deleted after this long (its logs go with it)."""
    resources: Resources = Resources()
    """Requests and limits of the migration container."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        given = {to_camel(name): getattr(self, name) for name in sorted(self.model_fields_set - {"command"})}
        if self.command is None and given:
            raise RuleError(
                {"command": None, **given},
                "these keys shape the migration Job, which runs only when command is set: set command (the app's "
                "migration command) or remove them",
            )
        return self


class Verification(SettingsModel):
    """How `deploy verify` judges a new version: per-interval measurements decided like Argo Rollouts' analysis.

    Every bound below closes a way a bad release could pass (docs/deploy.md "How verification decides").
    """

    prometheus_url: str = Field(pattern=r"^https?://")
    """The Prometheus `shipsafe verify` queries for the new version's request metrics (its HTTP API base URL);
    `--prometheus-url` overrides it, e.g. for a port-forward from a CI runner."""
    window_seconds: int = Field(300, ge=10, le=3600)
    """How long verification watches the new version; a whole number of intervals."""
    interval_seconds: int = Field(30, ge=1)
    """Each measurement covers its own interval; it must span at least two scrapes of the pods (PodMonitor: 15 s)."""
    max_error_ratio: float = Field(0.01, ge=0, le=0.5, allow_inf_nan=False)
    """Server errors (5xx) over served requests in one interval."""
    max_client_error_ratio: float | None = Field(None, ge=0, le=0.5, allow_inf_nan=False)
    """Optional: client errors (4xx) over served requests in one interval (scanner 404s are not served routes)."""
    max_p99_latency_seconds: float = Field(0.5, gt=0, le=30, allow_inf_nan=False)
    """Judged on the slowest route."""
    min_requests: int = Field(100, ge=20)
    """Served requests one interval needs to be judged; a quieter interval is inconclusive, never a pass."""
    min_route_requests: int = Field(20, ge=10)
    """Requests a route needs in one interval for its p99 to be judged."""
    failure_limit: int = Field(1, ge=0)
    """Failed measurements tolerated (Argo `failureLimit`): one short burst neither rolls back nor hides."""
    consecutive_error_limit: int = Field(4, ge=0)
    """Measurements with bad data tolerated in a row before giving up (Argo `consecutiveErrorLimit`)."""

    @model_validator(mode="after")
    def _judgeable(self) -> Self:
        if self.window_seconds % self.interval_seconds:
            raise RuleError(
                {"windowSeconds": self.window_seconds, "intervalSeconds": self.interval_seconds},
                "the window must be a whole number of intervals: one measurement per interval",
            )
        measurements = self.window_seconds // self.interval_seconds
        if self.failure_limit >= measurements:
            raise RuleError(
                {
                    "failureLimit": self.failure_limit,
                    "windowSeconds": self.window_seconds,
                    "intervalSeconds": self.interval_seconds,
                },
                f"failureLimit must be below the window's {measurements} measurements, or no release could ever fail",
            )
        if self.min_route_requests > self.min_requests:
            raise RuleError(
                {"minRouteRequests": self.min_route_requests, "minRequests": self.min_requests},
                "a route's minimum may not exceed the release's minimum",
            )
        return self


class Settings(SettingsModel):
    environment: Environment
    """`staging` or `production`: production never builds and refuses a dirty release."""
    app: AppSettings
    """The app: names, port, public host and paths."""
    registry: RegistrySettings
    """Where the image is pushed and pulled from."""
    image_source: ImageSource
    """`build`: build `app.buildContext` from this commit and push it; `prebuilt`: deploy `imageRef` (production)."""
    image_ref: str | None = None
    """Prebuilt reference `<server>/<repository>:<sha>[@sha256:<digest>]`; required when imageSource is prebuilt."""
    git_sha: str | None = None
    """The release's commit (7-40 lowercase hex, optionally `-dirty`); default: `git rev-parse HEAD` of the tree."""
    rollback: bool = False
    """A rollback redeploys an earlier image and skips the migration Job (migrations are forward-only)."""
    postgres: PostgresService = PostgresService()
    """The app's Postgres; default mode none: no database, and nothing created for one."""
    redis: BackingService = BackingService()
    """The app's Redis; default mode none: no cache, and nothing created for one."""
    workloads: dict[str, Workload]
    """One Deployment per entry, all running the same image; `web` also gets the public Ingress."""
    rollout: Rollout = Rollout()
    """How a new release replaces the running pods."""
    migration: Migration = Migration()
    """The schema migration Job of each release, when the app declares `command` (which needs a postgres)."""
    verification: Verification
    """How `deploy verify` judges a new release from Prometheus."""

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
        bad = [name for name in value if DNS1123_LABEL.problem(name)]
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
            raise RuleError(
                {"environment": self.environment, "imageSource": self.image_source},
                "production never builds: set imageSource to prebuilt and imageRef to what staging runs",
            )
        if self.image_source is ImageSource.PREBUILT:
            self._check_prebuilt_ref()
        elif self.image_ref is not None:
            raise RuleError(
                {"imageRef": self.image_ref, "imageSource": self.image_source},
                "imageRef is only used when imageSource is prebuilt",
            )
        if production and (self.release_sha or "").endswith("-dirty"):
            raise RuleError(
                {"environment": self.environment, self._release_key: self.release_sha},
                f"production refuses a dirty build ({self.release_sha})",
            )
        self._check_backing_services_used()
        self._check_connection_budget()
        self._check_derived_names()
        return self

    def _check_backing_services_used(self) -> None:
        """Settings that only mean something for a service the app has are refused when it has none."""
        for role, service, env_field in (
            ("postgres", self.postgres, "postgres_url_env"),
            ("redis", self.redis, "redis_url_env"),
        ):
            if not service.present and env_field in self.app.model_fields_set:
                key = f"app.{to_camel(env_field)}"
                raise RuleError(
                    {key: getattr(self.app, env_field), f"{role}.mode": service.mode},
                    f"{role}.mode is none, so no variable carries its URL: remove {key} or declare {role}",
                )
        if self.migration.command is not None and not self.postgres.present:
            raise RuleError(
                {"migration.command": self.migration.command, "postgres.mode": self.postgres.mode},
                "the migration Job migrates the app's Postgres schema, and postgres.mode is none: remove "
                "migration.command, or declare postgres (in-cluster or external)",
            )

    def _check_derived_names(self) -> None:
        for derived in api_rules.derived_fields(self):
            problem = derived.rule.problem(derived.value)
            if problem:
                raise RuleError(derived.keys, f"{derived.field}: {problem}")

    def _check_connection_budget(self) -> None:
        # Every pod at the autoscaler's maximum, one extra pod of maxSurge per workload, and the migration Job.
        pods = sum(
            (w.autoscaling.max_replicas if w.autoscaling else w.replicas) + self.rollout.max_surge
            for w in self.workloads.values()
        )
        needed = (pods + 1) * APP_POOL_SIZE
        if self.postgres.mode is ServiceMode.IN_CLUSTER and needed > self.postgres.max_connections:
            raise RuleError(
                {
                    "postgres.maxConnections": self.postgres.max_connections,
                    "workloads": None,
                    "rollout.maxSurge": self.rollout.max_surge,
                },
                f"postgres.maxConnections {self.postgres.max_connections} is below the {needed} connections "
                f"{pods + 1} app pods may open ({APP_POOL_SIZE} each); raise it or lower the replica maximums",
            )

    def _check_prebuilt_ref(self) -> None:
        ref = {"imageRef": self.image_ref}
        if not self.image_ref:
            raise RuleError(
                {"imageSource": self.image_source, "imageRef": self.image_ref},
                "imageSource is prebuilt but imageRef is not set (set shipsafe:imageRef)",
            )
        match = IMAGE_REF.match(self.image_ref)
        if not match:
            raise RuleError(ref, "imageRef is not <server>/<repository>:<sha>[@sha256:<digest>]")
        tag, digest = match.group("tag"), match.group("digest")
        if match.group("repository") != self.registry.image_repository:
            raise RuleError(
                {**ref, "registry.server": self.registry.server, "registry.repository": self.registry.repository},
                f"imageRef is not in the project repository {self.registry.image_repository}",
            )
        if tag is None and digest is None:
            raise RuleError(ref, "imageRef must be pinned by a git SHA tag and/or a digest")
        if tag is not None and not GIT_SHA.match(tag):
            raise RuleError(ref, f"imageRef tag {tag!r} is not a git SHA (never a moving tag such as 'latest')")
        if tag is None and self.git_sha is None:
            raise RuleError(
                {**ref, "gitSha": None}, "imageRef has no SHA tag, so shipsafe:gitSha must name the release"
            )
        if tag and self.git_sha and tag != self.git_sha:
            raise RuleError(
                {**ref, "gitSha": self.git_sha}, f"imageRef tag {tag!r} disagrees with gitSha {self.git_sha!r}"
            )

    @property
    def runs_migration(self) -> bool:
        """Whether this deploy runs a migration Job: the app has migrations and this is no rollback."""
        return self.migration.command is not None and not self.rollback

    @property
    def _release_key(self) -> str:
        return "gitSha" if self.git_sha else "imageRef"

    @property
    def release_sha(self) -> str | None:
        """The release's git SHA when config names it (prebuilt tag or gitSha); None means ask git."""
        if self.git_sha:
            return self.git_sha
        if self.image_ref:
            match = IMAGE_REF.match(self.image_ref)
            return match.group("tag") if match else None
        return None


def _is_text(annotation: Any) -> bool:
    """Whether a top-level setting is read as the plain string the engine hands over, never JSON-parsed: a SHA
    such as "1234567" must not turn into a number."""
    kinds = get_args(annotation) or (annotation,)
    return all(kind is type(None) or (isinstance(kind, type) and issubclass(kind, str)) for kind in kinds)


def _raw_value(name: str, text: str) -> Any:
    field = next(f for n, f in Settings.model_fields.items() if (f.alias or n) == name)
    if _is_text(field.annotation):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # validation names the key and the type it expected


def _shown(value: object) -> str:
    return repr(str(value)) if isinstance(value, StrEnum) else repr(value)


def _key(path: tuple[str | int, ...]) -> str:
    return f"{CONFIG_NAMESPACE}:{'.'.join(str(part) for part in path)}"


def describe_errors(error: ValidationError, at: tuple[str, ...] = (), secret_keys: Collection[str] = ()) -> list[str]:
    """One line per problem naming the full `shipsafe:` key(s); `at` is where the validated model sits in the config.
    A value under a top-level key in `secret_keys` (stored with `--secret`) is never shown."""
    return [_describe(e, at, secret_keys) for e in error.errors(include_url=False)]


def _describe(error: ErrorDetails, at: tuple[str, ...] = (), secret_keys: Collection[str] = ()) -> str:
    loc = (*at, *error["loc"])
    key = _key(loc) if loc else f"{CONFIG_NAMESPACE} config"
    hidden = bool(loc) and _key(loc[:1]) in secret_keys

    def shown(value: object) -> str:
        return "[secret]" if hidden else _shown(value)

    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, RuleError):
        named = ", ".join(
            _key((*loc, name)) + ("" if value is None else f" = {shown(value)}") for name, value in cause.keys.items()
        )
        return f"{named}: {cause.message}"
    message = error["msg"].removeprefix("Value error, ")
    if hidden and isinstance(error.get("input"), str) and error["input"]:
        message = message.replace(error["input"], "[secret]")  # validators quote the value they refuse
    if error["type"] == "missing":
        return f"{key} is required"
    if error["type"] == "extra_forbidden":
        parent = model_at(Settings, loc[:-1])
        siblings = field_names(parent) if parent else []
        prefix = "".join(f"{part}." for part in loc[:-1])
        return f"{key} is not a known setting{did_you_mean(str(loc[-1]), prefix, siblings, Settings)}"
    if isinstance(error.get("input"), dict):  # a rule across several keys of this object
        return f"{key}: {message}"
    return f"{key} = {'[secret]' if hidden else repr(error.get('input'))}: {message}"


def parse_settings(raw: dict[str, Any], secret_keys: Collection[str] = ()) -> Settings:
    """Validates raw config (camelCase keys as in Pulumi.<stack>.yaml, without the namespace); the values of
    `secret_keys` never appear in the errors."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, secret_keys=secret_keys)) from None


def settings_from_config(config: Mapping[str, str], is_secret: Callable[[str], bool]) -> Settings:
    """Validates the program's config as the engine hands it over (`<namespace>:<key>` -> string): every
    `shipsafe:` key known, every secret a secret, every value valid; all problems in one ConfigError."""
    prefix = f"{CONFIG_NAMESPACE}:"
    problems = key_problems(config, Settings, is_secret)
    known = set(field_names(Settings))
    raw = {
        name: _raw_value(name, value)
        for key, value in config.items()
        if (name := key.removeprefix(prefix)) in known and key.startswith(prefix)
    }
    try:
        settings = parse_settings(raw, secret_keys=[key for key in config if is_secret(key)])
    except ConfigError as error:
        problems += error.problems
    else:
        problems += _unused_service_urls(config, settings)
        problems += _credentials_in_urls(settings, is_secret)
    if problems:
        raise ConfigError(problems)
    return settings


def _unused_service_urls(config: Mapping[str, str], settings: Settings) -> list[str]:
    """A `<role>Url` secret only an external service reads; under any other mode it would be silently ignored."""
    problems = []
    for role, service in (("postgres", settings.postgres), ("redis", settings.redis)):
        key = _key((f"{role}Url",))
        if key in config and service.mode is not ServiceMode.EXTERNAL:
            problems.append(
                f"{key} is set, but {_key((role, 'mode'))} is {service.mode}: only an external {role} reads it; "
                f"remove it (`pulumi config rm {key}`) or set the mode to external"
            )
    return problems


_CREDENTIAL_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "signature",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "jwt",
        "key",
        "apikey",
        "accesskey",
        "sas",
        "bearer",
    }
)
"""Words of a query or fragment parameter's name that say it carries a credential (`?token=`, `?api_key=`,
`?X-Amz-Signature=`, `?AccessKey=`, `#access_token=`, `?jwt=`): the name is split at `_`, `.`, `-` and camelCase."""


def _names_a_credential(name: str) -> bool:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
    parts = [part for part in re.split(r"[_.\-]+", words) if part]
    return any(part in _CREDENTIAL_WORDS for part in [*parts, "".join(parts)])


def _strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _strings(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _strings(child, (*path, index))


def _credential_in(path: tuple[str | int, ...], text: str) -> str | None:
    """What credential a URL value carries, if any: user info (a password, or a token given as the user name, as
    `https://<token>@host` does), or a token-like query or fragment parameter. A value is a URL when it parses with
    a scheme and a host, or when its setting's name ends in `Url`/`URL`."""
    named_url = str(path[-1]).endswith(("Url", "URL"))
    parts = urlsplit(text if "://" in text or not named_url else f"//{text}")
    if not parts.netloc or not (parts.scheme or named_url):
        return None
    if "@" in parts.netloc:
        return "user info"
    for where, query in (("query", parts.query), ("fragment", parts.fragment)):
        names = [name for name, _ in parse_qsl(query, keep_blank_values=True) if _names_a_credential(name)]
        if names:
            return f"the {where} parameter {names[0]!r}"
    return None


def _credentials_in_urls(settings: Settings, is_secret: Callable[[str], bool]) -> list[str]:
    """Every URL setting (found in the settings themselves, not listed) that carries a credential while its key is
    not a secret: it would sit in plain text in the stack file, in git and in `pulumi config` output. The value is
    never shown."""
    problems = []
    for name, value in settings.model_dump(by_alias=True, mode="json").items():
        if is_secret(_key((name,))):
            continue
        for path, text in _strings(value, (name,)):
            credential = _credential_in(path, text)
            if credential:
                problems.append(
                    f"{_key(path)} carries a credential ({credential}) in plain text: remove it from the URL, or "
                    f"store the whole setting as a secret (`pulumi config set --secret {_key((name,))} ...`)"
                )
    return problems


def load_settings(config: pulumi.Config | None = None) -> Settings:
    """The settings from the config the engine handed this program (`config` names the namespace to read)."""
    if config is not None and config.name != CONFIG_NAMESPACE:
        raise ValueError(f"settings live in the {CONFIG_NAMESPACE!r} namespace, not {config.name!r}")
    return settings_from_config(program_config(), pulumi.runtime.is_config_secret)
