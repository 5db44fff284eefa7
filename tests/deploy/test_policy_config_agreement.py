"""Stack config and policy config, one place for each fact: a setting either works (the policies enforce the rule
with the new value) or is refused before the program runs, naming the `shipsafe:` key and the policy setting; and
every violation the pack reports names the key that produced the offending field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.offline.preview import policy_conflicts
from harness.analyzer import AnalysisReport, PolicyPackProcess, load_policy_config
from harness.phases import after_up
from harness.runtime import run_stack
from harness.stack_config import REPO_ROOT, read_stack_config
from tests.conftest import STACKS

CONFIG_DIR = REPO_ROOT / "policy" / "config"


def _with(stack: str, key: str, path: list[str], value: Any) -> dict[str, Any]:
    """Config overrides: the stack file's object `key` with `value` at `path`."""
    data = json.loads(json.dumps(read_stack_config(stack)[1][key]))
    node = data
    for step in path[:-1]:
        node = node.setdefault(step, {})
    node[path[-1]] = value
    return {key: data}


REFUSED = [
    ("registry.server", _with("staging", "shipsafe:registry", ["server"], "ghcr.io"),
     "shipsafe:registry.server = ghcr.io is not a trusted registry",
     "policy/config/staging.json: image-allowed-registries.allowedRegistries"),
    ("app.ingressNamespace", _with("staging", "shipsafe:app", ["ingressNamespace"], "traefik"),
     "shipsafe:app.ingressNamespace = traefik",
     "policy/config/staging.json: network-least-access.ingressNamespaces"),
    ("app.monitoringNamespace", _with("prod", "shipsafe:app", ["monitoringNamespace"], "observability"),
     "shipsafe:app.monitoringNamespace = observability",
     "policy/config/prod.json: network-least-access.monitoringNamespaces"),
    ("rollout.terminationGracePeriodSeconds", _with("prod", "shipsafe:rollout", ["terminationGracePeriodSeconds"], 60),
     "shipsafe:rollout.terminationGracePeriodSeconds = 60 exceeds the platform's 30 s",
     "policy/config/prod.json: 12f-disposability-graceful-shutdown.maxGracePeriodSeconds"),
    ("rollout.minReadySeconds", _with("staging", "shipsafe:rollout", ["minReadySeconds"], 3),
     "shipsafe:rollout.minReadySeconds = 3 is below the platform's 5 s",
     "policy/config/staging.json: rollout-zero-downtime.minReadySeconds"),
    ("workloads.worker.replicas", {"shipsafe:workloads": {"worker": {"replicas": 1, "expose": False}}},
     "shipsafe:workloads.worker.replicas = 1", "policy/config/prod.json: 12f-concurrency-replica-range.minReplicas"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "overrides", "setting_side", "policy_side"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_setting_the_platform_forbids_is_refused_naming_both_sides(
    key: str, overrides: dict[str, Any], setting_side: str, policy_side: str
) -> None:
    stack = policy_side.split("/")[2].split(".")[0]
    problems = policy_conflicts(stack, overrides, CONFIG_DIR / f"{stack}.json")
    assert any(setting_side in p and policy_side in p for p in problems), problems


def test_the_unchanged_stacks_agree_with_their_policy_config() -> None:
    for stack in STACKS:
        assert policy_conflicts(stack, {}, CONFIG_DIR / f"{stack}.json") == []


def test_the_platform_owner_can_allow_what_was_refused(tmp_path: Path) -> None:
    config = json.loads((CONFIG_DIR / "staging.json").read_text())
    config["image-allowed-registries"]["allowedRegistries"].append("ghcr.io/shipsafe")
    config["12f-build-immutable-image"]["ownRegistries"].append("ghcr.io/shipsafe")
    config["12f-disposability-graceful-shutdown"] = {"maxGracePeriodSeconds": 90}
    path = tmp_path / "staging.json"
    path.write_text(json.dumps(config))
    overrides = {
        **_with("staging", "shipsafe:registry", ["server"], "ghcr.io"),
        **_with("staging", "shipsafe:rollout", ["terminationGracePeriodSeconds"], 60),
    }
    assert policy_conflicts("staging", overrides, path) == []


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess() as process:
        yield process


def _after_up_report(pack: PolicyPackProcess, stack: str, overrides: dict[str, Any]) -> AnalysisReport:
    pack.configure(load_policy_config(CONFIG_DIR / f"{stack}.json"))
    # Staging builds from the working tree: pin the release so the test does not depend on git.
    pinned = {"shipsafe:gitSha": "0123456789ab"} if stack == "staging" else {}
    return pack.analyze(after_up(run_stack(stack, config_overrides={**pinned, **overrides})).recording)


WORKS = [
    ("app.port", _with("staging", "shipsafe:app", ["port"], 8080)),
    ("rollout.terminationGracePeriodSeconds",
     _with("staging", "shipsafe:rollout", ["terminationGracePeriodSeconds"], 25)),
    ("rollout.minReadySeconds", _with("staging", "shipsafe:rollout", ["minReadySeconds"], 20)),
]  # fmt: skip


@pytest.mark.parametrize(("key", "overrides"), WORKS, ids=[c[0] for c in WORKS])
def test_a_setting_within_the_rules_works(pack: PolicyPackProcess, key: str, overrides: dict[str, Any]) -> None:
    assert policy_conflicts("staging", overrides, CONFIG_DIR / "staging.json") == []
    report = _after_up_report(pack, "staging", overrides)
    assert report.mandatory_violations == [], [v.message for v in report.mandatory_violations]


def test_the_port_is_declared_once_and_everything_follows_it(pack: PolicyPackProcess) -> None:
    recording = run_stack("staging", config_overrides={"shipsafe:gitSha": "0123456789ab", **WORKS[0][1]})
    web = next(r.inputs for r in recording if r.name == "notes-web-deployment")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8080
    config_map = next(r.inputs for r in recording if r.name == "notes-config-configmap")
    assert config_map["data"]["PORT"] == "8080"


GRACEFUL = "12f-disposability-graceful-shutdown"
LINKED = [
    # Past the preview's cross-check (run_stack runs the program directly), the pack's message names the key.
    ("prod", _with("prod", "shipsafe:app", ["ingressNamespace"], "kube-public"), "network-least-access",
     "set by shipsafe:app.ingressNamespace", "network-least-access.ingressNamespaces"),
    ("staging", _with("staging", "shipsafe:rollout", ["minReadySeconds"], 3), "rollout-zero-downtime",
     "set by shipsafe:rollout.minReadySeconds", "rollout-zero-downtime.minReadySeconds"),
    ("prod", _with("prod", "shipsafe:rollout", ["terminationGracePeriodSeconds"], 60), GRACEFUL,
     "set by shipsafe:rollout.terminationGracePeriodSeconds", f"{GRACEFUL}.maxGracePeriodSeconds"),
    ("prod", {"shipsafe:workloads": {"worker": {"replicas": 1, "expose": False}}}, "12f-concurrency-replica-range",
     "set by shipsafe:workloads.worker.replicas", "12f-concurrency-replica-range.minReplicas"),
]  # fmt: skip


@pytest.mark.parametrize(("stack", "overrides", "policy", "key", "setting"), LINKED, ids=[c[2] for c in LINKED])
def test_a_violation_names_the_shipsafe_key_and_the_policy_setting(
    pack: PolicyPackProcess, stack: str, overrides: dict[str, Any], policy: str, key: str, setting: str
) -> None:
    found = [v for v in _after_up_report(pack, stack, overrides).violations if v.policy == policy]
    assert found and all(key in v.message and setting in v.message for v in found), [v.message for v in found]
