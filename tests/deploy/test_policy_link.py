"""What `deploy.policy_link` must mirror of the pack, and that each mirrored bound agrees with the pack's own rule.

The offline preview refuses a stack setting a mandatory policy would refuse, before the program runs; under the real
CLI only the pack judges. So every platform setting (`Setting.platform`: what the platform owner sets per stack) is
either mirrored over `Settings` here, or listed in NOT_MIRRORED with the reason; and for each mirrored one, the
link and the pack refuse the same thing: a policy config one step past the stack's value is refused by both, one at
it by neither (the pack judging the stack's objects after `up`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from components.settings import Settings, settings_from_config
from deploy.policy_link import PolicyConfig, conflicts, pack_registry, read_policy_config
from harness.analyzer import PolicyPackProcess, load_policy_config
from harness.phases import after_up
from harness.recording import Recording
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT, engine_config, read_stack_config
from tests.conftest import STACKS

STACK = "staging"
PINNED = {"shipsafe:gitSha": "0123456789ab"}  # staging builds from the working tree: no dependence on git

Bound = Callable[[Settings, Mapping[str, Any]], Any]
"""The policy setting's value, given the stack's settings and the policy's current settings."""

# (policy, setting) -> (a value one step past the stack's settings, a value at them or None where a list has no
# "at": the unchanged stacks agreeing with their config covers it).
MIRRORED: dict[tuple[str, str], tuple[Bound, Bound | None]] = {
    ("image-allowed-registries", "allowedRegistries"): (
        lambda s, p: [r for r in p["allowedRegistries"] if not s.registry.image_repository.startswith(r)],
        None,
    ),
    ("12f-build-immutable-image", "ownRegistries"): (lambda s, p: ["registry.example.com/someone-else"], None),
    ("12f-parity-backing-versions", "images"): (
        lambda s, p: {**p["images"], "database": f"{s.postgres.image}-other"},
        lambda s, p: {**p["images"], "database": s.postgres.image},
    ),
    ("12f-backing-attached", "serviceEnv"): (
        lambda s, p: [s.app.postgres_url_env, "NOT_ATTACHED_URL"],
        lambda s, p: [s.app.postgres_url_env, s.app.redis_url_env],
    ),
    ("network-least-access", "ingressNamespaces"): (lambda s, p: ["not-the-ingress"], None),
    ("network-least-access", "monitoringNamespaces"): (lambda s, p: ["not-the-monitoring"], None),
    ("12f-disposability-graceful-shutdown", "maxGracePeriodSeconds"): (
        lambda s, p: s.rollout.termination_grace_period_seconds - 1,
        lambda s, p: s.rollout.termination_grace_period_seconds,
    ),
    ("12f-disposability-graceful-shutdown", "minDrainSeconds"): (
        lambda s, p: s.rollout.termination_grace_period_seconds - s.rollout.pre_stop_seconds + 1,
        lambda s, p: s.rollout.termination_grace_period_seconds - s.rollout.pre_stop_seconds,
    ),
    ("rollout-zero-downtime", "minReadySeconds"): (
        lambda s, p: s.rollout.min_ready_seconds + 1,
        lambda s, p: s.rollout.min_ready_seconds,
    ),
    ("rollout-zero-downtime", "maxProgressDeadlineSeconds"): (
        lambda s, p: s.rollout.progress_deadline_seconds - 1,
        lambda s, p: s.rollout.progress_deadline_seconds,
    ),
    ("12f-concurrency-replica-range", "minReplicas"): (
        lambda s, p: min(w.replicas for w in s.workloads.values()) + 1,
        lambda s, p: min(w.replicas for w in s.workloads.values()),
    ),
    ("12f-concurrency-replica-range", "maxReplicas"): (
        lambda s, p: max(w.replicas for w in s.workloads.values()) - 1,
        lambda s, p: max(w.replicas for w in s.workloads.values()),
    ),
    ("12f-build-once", "allowImageBuild"): (lambda s, p: False, lambda s, p: True),
    ("12f-admin-migration-job-hygiene", "maxBackoffLimit"): (
        lambda s, p: s.migration.backoff_limit - 1,
        lambda s, p: s.migration.backoff_limit,
    ),
    ("edge-request-limits", "maxBodyBytes"): (
        lambda s, p: s.app.edge.max_body_bytes - 1,
        lambda s, p: s.app.edge.max_body_bytes,
    ),
    ("edge-request-limits", "maxRequestsPerSecond"): (
        lambda s, p: s.app.edge.requests_per_second - 1,
        lambda s, p: s.app.edge.requests_per_second,
    ),
    ("hardening-high-uid-gid", "minId"): (lambda s, p: s.app.run_as_user + 1, lambda s, p: s.app.run_as_user),
    ("hardening-resources", "requests"): (lambda s, p: [*p["requests"], "hugepages-2Mi"], None),
    ("hardening-resources", "limits"): (lambda s, p: [*p["limits"], "hugepages-2Mi"], None),
    ("hardening-resources", "requireCpuLimits"): (lambda s, p: True, lambda s, p: False),
}

NOT_MIRRORED: dict[tuple[str, str], str] = {
    ("12f-backing-single-instance", "replicatedImages"): "every in-cluster backing service runs as one pod "
    "(`components/pods.py` `single_stateful_set_spec`): no setting can scale it",
    ("12f-backing-single-instance-not-autoscaled", "replicatedImages"): "the program creates autoscalers only for "
    "app workloads (`components/workload.py`): no setting autoscales a backing service",
    ("pss-restricted-namespace-enforced", "pssLevel"): "the namespace is always labelled `restricted` "
    "(`components/namespace.py` `PSS_LEVEL`): no setting lowers it",
    # Not mirrored yet: the pack alone refuses these, after the program runs (so offline, in the report, not before).
    ("12f-build-third-party-digest", "ownRegistries"): "not yet: advisory in every stack's config; a third-party "
    "image set by tag (postgres.image, redis.image, registry.image) is refused by the pack only",
}


def _platform_settings() -> set[tuple[str, str]]:
    return {(rule.name, key) for rule in pack_registry().all_rules() for key, s in rule.settings.items() if s.platform}


def test_every_platform_setting_is_mirrored_or_says_why_not() -> None:
    assert not set(MIRRORED) & set(NOT_MIRRORED)
    assert set(MIRRORED) | set(NOT_MIRRORED) == _platform_settings()


class _Reads(dict[str, Any]):
    """A policy's settings that remember which ones were read."""

    def __init__(self, policy: str, values: Mapping[str, Any], read: set[tuple[str, str]]) -> None:
        super().__init__(values)
        self.policy, self.read = policy, read

    def __getitem__(self, key: str) -> Any:
        self.read.add((self.policy, key))
        return super().__getitem__(key)


def _settings(stack: str) -> Settings:
    _, values = read_stack_config(stack, REPO_ROOT, PINNED if stack == STACK else {})
    config, secret_keys = engine_config(values)
    return settings_from_config(config, lambda key: key in secret_keys)


def _mandatory(policy: PolicyConfig) -> PolicyConfig:
    return PolicyConfig(policy.path, policy.settings, dict.fromkeys(policy.levels, "mandatory"))


def test_the_link_reads_exactly_the_mirrored_platform_settings() -> None:
    read: set[tuple[str, str]] = set()
    for stack in STACKS:
        policy = read_policy_config(REPO_ROOT / "policy" / "config" / f"{stack}.json")
        recording = {name: _Reads(name, values, read) for name, values in policy.settings.items()}
        conflicts(_settings(stack), _mandatory(PolicyConfig(policy.path, recording, policy.levels)))
    assert read == set(MIRRORED)


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        yield process


@pytest.fixture(scope="module")
def live() -> Recording:
    """The stack's objects as `up` leaves them: the link's cases change only the policy config."""
    return after_up(run_stack(STACK, config_overrides=PINNED)).recording


def _config_with(policy: str, setting: str, bound: Bound) -> dict[str, Any]:
    """The stack's policy config, every policy mandatory, with `policy.setting` set by `bound`."""
    path = REPO_ROOT / "policy" / "config" / f"{STACK}.json"
    config = copy.deepcopy({name: dict(value) for name, value in load_policy_config(path).items()})
    for name in config:
        config[name].pop("enforcementLevel", None)
    config["all"] = {"enforcementLevel": "mandatory"}
    effective = read_policy_config(path).settings[policy]
    config.setdefault(policy, {})[setting] = bound(_settings(STACK), effective)
    return config


def _both_sides(
    config: dict[str, Any], policy: str, pack: PolicyPackProcess, live: Recording, tmp_path: Path
) -> tuple[list[str], list[str]]:
    path = tmp_path / f"{STACK}.json"
    path.write_text(json.dumps(config))
    link = [p for p in conflicts(_settings(STACK), read_policy_config(path)) if f"{policy}." in p]
    pack.configure(load_policy_config(path))
    return link, [v.message for v in pack.analyze(live).violations if v.policy == policy]


@pytest.mark.parametrize(("policy", "setting"), list(MIRRORED), ids=[f"{p}.{s}" for p, s in MIRRORED])
def test_the_link_and_the_pack_refuse_the_same_bound(
    policy: str, setting: str, pack: PolicyPackProcess, live: Recording, tmp_path: Path
) -> None:
    beyond, at = MIRRORED[(policy, setting)]
    link, found = _both_sides(_config_with(policy, setting, beyond), policy, pack, live, tmp_path)
    assert link, f"the link lets through what {policy} refuses: {found}"
    assert found, f"the link refuses what {policy} lets through: {link}"
    if at is not None:
        assert _both_sides(_config_with(policy, setting, at), policy, pack, live, tmp_path) == ([], [])
