"""The stack's settings checked against its policy config before the program runs: one place for each fact.

Constraints stay with whoever owns the platform, in `policy/config/<stack>.json` (trusted registries, the
ingress controller's and monitoring namespaces, replica and grace bounds); they are never derived from the stack
they constrain. A setting that a mandatory policy would refuse is reported here as a config error naming both
sides, e.g. `shipsafe:registry.server = ghcr.io is not a trusted registry (policy/config/staging.json:
image-allowed-registries.allowedRegistries)`. Under the real CLI only the pack sees its config, so there the
policy violation itself names the `shipsafe:` key (the `shipsafe.dev/config-keys` annotation).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from components.config_keys import CONFIG_NAMESPACE
from components.settings import INGRESS_WORKLOAD, ImageSource, RegistryMode, Resources, ServiceMode, Settings
from harness.analyzer import POLICY_DIR, PolicyPackError, load_policy_config
from harness.stack_config import REPO_ROOT


@dataclass(frozen=True)
class PolicyConfig:
    """Each policy's effective settings and level for one stack: the pack's defaults, then the config file."""

    path: str
    """How messages name the file (relative to the project when inside it)."""
    settings: Mapping[str, Mapping[str, Any]]
    levels: Mapping[str, str]

    def enforced(self, policy: str) -> Mapping[str, Any] | None:
        """The policy's settings when it blocks a deploy (mandatory); None when it only advises or is disabled."""
        return self.settings[policy] if self.levels.get(policy) == "mandatory" else None

    def where(self, policy: str, setting: str) -> str:
        return f"({self.path}: {policy}.{setting})"


def pack_registry() -> ModuleType:
    """The pack's family registry (`policy/shipsafe_policies`), imported: no pack process needed."""
    if str(POLICY_DIR) not in sys.path:
        sys.path.insert(0, str(POLICY_DIR))
    return importlib.import_module("shipsafe_policies")  # the pack's package lives in policy/, not on the path


def pack_floor() -> ModuleType:
    """The pack's platform floor (`policy/shipsafe_policies/floor.py`): the same judgement the pack makes."""
    pack_registry()
    return importlib.import_module("shipsafe_policies.floor")


def _pack_defaults() -> dict[str, tuple[str, dict[str, Any]]]:
    """Each policy's default level and settings, from the pack's own rules."""
    return {
        rule.name: (str(rule.level.value), {key: setting.default for key, setting in rule.settings.items()})
        for rule in pack_registry().all_rules()
    }


def read_policy_config(path: Path, *, production: bool = False) -> PolicyConfig:
    """What the engine would configure from `path` (`harness.analyzer.reconcile_config` validates it fully), with
    the pack's own refusals (`shipsafe_policies/floor.py`) made here first, naming the file: a name the pack has
    no policy for, and a config that lowers the platform floor (a `production` stack's, or any stack's floor of
    the image build)."""
    given = load_policy_config(path)
    pack = _pack_defaults()
    shown = path.resolve().relative_to(REPO_ROOT) if path.resolve().is_relative_to(REPO_ROOT) else path
    rules, floor = pack_registry().all_rules(), pack_floor()
    unknown = floor.unknown_names(given, rules)
    if unknown:
        raise PolicyPackError(f"{shown}: unknown policy names: {', '.join(unknown)}")
    every = given.get(floor.ALL, {}).get("enforcementLevel")
    settings, levels = {}, {}
    for name, (level, defaults) in pack.items():
        own = dict(given.get(name, {}))
        levels[name] = own.pop("enforcementLevel", None) or every or level
        settings[name] = {**defaults, **own}
    lowered = floor.lowered(rules, levels, settings, str(shown), production=production)
    if lowered:
        raise PolicyPackError("\n".join(lowered))
    return PolicyConfig(str(shown), settings, levels)


def is_production_stack(stack: str, config: Mapping[str, str]) -> bool:
    """Whether the platform floor holds this stack, decided as the pack decides it (`floor.is_production`)."""
    return bool(pack_floor().is_production(stack, config, {}))


def _key(path: str) -> str:
    return f"{CONFIG_NAMESPACE}:{path}"


def _trusted(repository: str, prefixes: list[str]) -> bool:
    # As the pack matches (`shipsafe_policies/images.py` `matches_prefix`): whole path segments.
    return any(repository == p.rstrip("/") or repository.startswith(p.rstrip("/") + "/") for p in prefixes)


def _image_name(reference: str) -> str:
    """`registry/repository` of a reference, without tag or digest."""
    rest = reference.split("@", 1)[0]
    head, _, tail = rest.rpartition(":")
    return head if head and "/" not in tail else rest


Check = Callable[[Settings, PolicyConfig], Iterator[str]]


def _registries(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    registry = settings.registry
    if settings.image_source is ImageSource.PREBUILT and settings.image_ref:
        own = [(_key("imageRef"), settings.image_ref, _image_name(settings.image_ref))]
    else:
        own = [(_key("registry.server"), registry.server, registry.image_repository)]
    third_party = [
        (_key(f"{role}.image"), service.image, _image_name(service.image))
        for role, service in (("postgres", settings.postgres), ("redis", settings.redis))
        if service.mode is ServiceMode.IN_CLUSTER and service.image is not None  # set unless mode is none
    ]
    if registry.mode is RegistryMode.IN_CLUSTER:
        third_party.append((_key("registry.image"), registry.image, _image_name(registry.image)))
    allowed = policy.enforced("image-allowed-registries")
    if allowed is not None:
        for key, value, name in own + third_party:
            if not _trusted(name, list(allowed["allowedRegistries"])):
                where = policy.where("image-allowed-registries", "allowedRegistries")
                yield f"{key} = {value} is not a trusted registry ({name}) {where}"
    immutable = policy.enforced("12f-build-immutable-image")
    if immutable is not None:
        for key, value, name in own:
            if not _trusted(name, list(immutable["ownRegistries"])):
                where = policy.where("12f-build-immutable-image", "ownRegistries")
                yield f"{key} = {value} is not one of the stack's own registries ({name}) {where}"


def _dev_prod_parity(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    parity = policy.enforced("12f-parity-backing-versions")
    if parity is None:
        return
    for role, component, service in (("postgres", "database", settings.postgres), ("redis", "cache", settings.redis)):
        pinned = parity["images"].get(component)
        if service.mode is ServiceMode.IN_CLUSTER and pinned is not None and service.image != pinned:
            where = policy.where("12f-parity-backing-versions", f"images.{component}")
            yield f"{_key(f'{role}.image')} = {service.image} is not the image dev and CI pin, {pinned} {where}"


def _service_env(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    attached = policy.enforced("12f-backing-attached")
    if attached is None:
        return
    # What the program attaches from a Secret: each present service's URL variable (`components/app_config.py`).
    named = {
        key: variable
        for key, variable, service in (
            ("app.postgresUrlEnv", settings.app.postgres_url_env, settings.postgres),
            ("app.redisUrlEnv", settings.app.redis_url_env, settings.redis),
        )
        if service.present
    }
    for required in attached["serviceEnv"]:
        if required not in named.values():
            given = ", ".join(f"{_key(key)} = {variable}" for key, variable in named.items()) or "no service"
            where = policy.where("12f-backing-attached", "serviceEnv")
            yield f"{required} is not attached from a Secret: the settings attach {given} {where}"


def _namespaces(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    access = policy.enforced("network-least-access")
    if access is None:
        return
    for key, value, setting in (
        ("app.ingressNamespace", settings.app.ingress_namespace, "ingressNamespaces"),
        ("app.monitoringNamespace", settings.app.monitoring_namespace, "monitoringNamespaces"),
    ):
        if value not in access[setting]:
            where = policy.where("network-least-access", setting)
            yield f"{_key(key)} = {value} is not a namespace allowed to reach the app's port {where}"


def _edge(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    limits = policy.enforced("edge-request-limits")
    web = settings.workloads.get(INGRESS_WORKLOAD)
    if limits is None or web is None or not web.expose:  # no route, nothing for the rule to judge
        return
    edge = settings.app.edge
    if edge.max_body_bytes > limits["maxBodyBytes"]:
        where = policy.where("edge-request-limits", "maxBodyBytes")
        yield (
            f"{_key('app.edge.maxBodySize')} = {edge.max_body_size} ({edge.max_body_bytes} bytes) exceeds the "
            f"platform's {limits['maxBodyBytes']:.0f} bytes {where}"
        )
    if edge.requests_per_second > limits["maxRequestsPerSecond"]:
        where = policy.where("edge-request-limits", "maxRequestsPerSecond")
        yield (
            f"{_key('app.edge.requestsPerSecond')} = {edge.requests_per_second} exceeds the platform's "
            f"{limits['maxRequestsPerSecond']:g} per client {where}"
        )


def _rollout(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    rollout = settings.rollout
    shutdown = policy.enforced("12f-disposability-graceful-shutdown")
    if shutdown is not None:
        grace = rollout.termination_grace_period_seconds
        if grace > shutdown["maxGracePeriodSeconds"]:
            where = policy.where("12f-disposability-graceful-shutdown", "maxGracePeriodSeconds")
            yield (
                f"{_key('rollout.terminationGracePeriodSeconds')} = {grace} exceeds the platform's "
                f"{shutdown['maxGracePeriodSeconds']:.0f} s {where}"
            )
        if grace - rollout.pre_stop_seconds < shutdown["minDrainSeconds"]:
            yield (
                f"{_key('rollout.terminationGracePeriodSeconds')} = {grace} leaves less than "
                f"{shutdown['minDrainSeconds']:.0f} s to drain after {_key('rollout.preStopSeconds')} = "
                f"{rollout.pre_stop_seconds} {policy.where('12f-disposability-graceful-shutdown', 'minDrainSeconds')}"
            )
    update = policy.enforced("rollout-zero-downtime")
    if update is not None:
        if rollout.min_ready_seconds < update["minReadySeconds"]:
            where = policy.where("rollout-zero-downtime", "minReadySeconds")
            yield (
                f"{_key('rollout.minReadySeconds')} = {rollout.min_ready_seconds} is below the platform's "
                f"{update['minReadySeconds']:.0f} s {where}"
            )
        if rollout.progress_deadline_seconds > update["maxProgressDeadlineSeconds"]:
            where = policy.where("rollout-zero-downtime", "maxProgressDeadlineSeconds")
            yield (
                f"{_key('rollout.progressDeadlineSeconds')} = {rollout.progress_deadline_seconds} exceeds the "
                f"platform's {update['maxProgressDeadlineSeconds']:.0f} s {where}"
            )


def _replicas(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    concurrency = policy.enforced("12f-concurrency-replica-range")
    if concurrency is None:
        return
    low, high = concurrency["minReplicas"], concurrency["maxReplicas"]
    where = f"({policy.path}: 12f-concurrency-replica-range.minReplicas/maxReplicas)"
    for name, workload in settings.workloads.items():
        if workload.autoscaling:
            scaling = workload.autoscaling
            if scaling.min_replicas < low or scaling.max_replicas > high:
                yield (
                    f"{_key(f'workloads.{name}.autoscaling')} = {scaling.min_replicas}-{scaling.max_replicas} "
                    f"replicas is outside the platform's {low:.0f}-{high:.0f} {where}"
                )
        elif not low <= workload.replicas <= high:
            yield (
                f"{_key(f'workloads.{name}.replicas')} = {workload.replicas} is outside the platform's "
                f"{low:.0f}-{high:.0f} {where}"
            )


def _release(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    builds = policy.enforced("12f-build-once")
    if builds is not None and settings.image_source is ImageSource.BUILD and not builds["allowImageBuild"]:
        where = policy.where("12f-build-once", "allowImageBuild")
        yield f"{_key('imageSource')} = build, but this stack may not build images {where}"
    hygiene = policy.enforced("12f-admin-migration-job-hygiene")
    migrates = settings.migration.command is not None
    if hygiene is not None and migrates and settings.migration.backoff_limit > hygiene["maxBackoffLimit"]:
        where = policy.where("12f-admin-migration-job-hygiene", "maxBackoffLimit")
        yield f"{_key('migration.backoffLimit')} = {settings.migration.backoff_limit} exceeds {where}"


def _uid_and_resources(settings: Settings, policy: PolicyConfig) -> Iterator[str]:
    ids = policy.enforced("hardening-high-uid-gid")
    if ids is not None and settings.app.run_as_user < ids["minId"]:
        where = policy.where("hardening-high-uid-gid", "minId")
        yield f"{_key('app.runAsUser')} = {settings.app.run_as_user} is below the platform's {ids['minId']:.0f} {where}"
    resources = policy.enforced("hardening-resources")
    if resources is None:
        return
    declared: list[tuple[str, Resources]] = [
        (f"workloads.{n}.resources", w.resources) for n, w in settings.workloads.items()
    ]
    if settings.migration.command is not None:  # no migration Job otherwise
        declared.append(("migration.resources", settings.migration.resources))
    # As the pack reads them (`hardening.py`): `requireCpuLimits` adds cpu to the required limits.
    required = {
        "requests": resources["requests"],
        "limits": [*resources["limits"], *(["cpu"] if resources["requireCpuLimits"] else [])],
    }
    for prefix, given in declared:
        kubernetes = given.to_kubernetes()
        for kind in ("requests", "limits"):
            for name in required[kind]:
                if name not in kubernetes[kind]:
                    field = "cpuLimit" if (kind, name) == ("limits", "cpu") else f"{kind}.{name}"
                    where = policy.where("hardening-resources", kind)
                    yield f"{_key(f'{prefix}.{field}')} is not set, but the platform requires {kind}.{name} {where}"


CHECKS: tuple[Check, ...] = (
    _registries,
    _dev_prod_parity,
    _service_env,
    _namespaces,
    _edge,
    _rollout,
    _replicas,
    _release,
    _uid_and_resources,
)
"""Every setting a mandatory policy bounds, in one place."""


def conflicts(settings: Settings, policy: PolicyConfig) -> list[str]:
    """Each setting the stack's mandatory policies would refuse, naming the `shipsafe:` key and the policy
    setting the platform owner could change instead."""
    return [problem for check in CHECKS for problem in check(settings, policy)]
