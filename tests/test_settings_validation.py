"""Bad config stops the program before any resource is registered, naming the key, the value and what is allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.settings import ConfigError
from harness.runtime import REPO_ROOT, ProgramFailed
from tests.conftest import record


def _with(stack: str, key: str, path: list[str], value: Any) -> dict[str, str]:
    """The stack file's value of `key` with one nested field changed, as a config override."""
    current = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"][key]
    node = current
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return {key: json.dumps(current)}


BAD_CONFIGS = [
    (
        "prod",
        _with("prod", "shipsafe:workloads", ["web", "autoscaling", "maxReplicas"], 30),
        ["postgres.maxConnections 200 is below the 350 connections 35 app pods may open"],
    ),
    (
        "staging",
        {"shipsafe:workloads": json.dumps({"postgres": {"replicas": 2}})},
        ["shipsafe:workloads", "['postgres'] are reserved for the stack's own objects"],
    ),
    (
        "staging",
        {
            "shipsafe:registry": json.dumps(
                {
                    "mode": "in-cluster",
                    "server": "registry.internal:5000",
                    "repository": "shipsafe/notes",
                    "username": "ci",
                }
            )
        },
        ["shipsafe:registry", "give the bare host name"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:app", ["publicPaths"], ["/notes", "/metrics"]),
        ["shipsafe:app.publicPaths", "/metrics stays internal"],
    ),
    (
        "prod",
        _with("prod", "shipsafe:app", ["imagePlatform"], "windows/amd64"),
        ["shipsafe:app.imagePlatform = 'windows/amd64'", "linux/(amd64|arm64)"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:workloads", ["web", "replicas"], 0),
        ["shipsafe:workloads.web.replicas = 0", "greater than or equal to 1"],
    ),
    (
        "prod",
        _with("prod", "shipsafe:workloads", ["worker", "replicas"], -3),
        ["shipsafe:workloads.worker.replicas = -3", "greater than or equal to 1"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:registry", ["mode"], "dockerhub"),
        ["shipsafe:registry.mode = 'dockerhub'", "'external' or 'in-cluster'"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:postgres", ["mode"], "cloud"),
        ["shipsafe:postgres.mode = 'cloud'", "'in-cluster' or 'external'"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:rollout", ["terminationGracePeriodSeconds"], 8),
        ["shipsafe:rollout", "terminationGracePeriodSeconds 8 must be longer than preStopSeconds 5 + 5 s"],
    ),
    (
        "prod",
        _with("prod", "shipsafe:rollout", ["awaitTimeoutSeconds"], 600),
        ["shipsafe:rollout.awaitTimeoutSeconds = 600: shorter than the worst-case rollout of workload 'web'"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:rollout", ["progressDeadlineSeconds"], 60),
        ["shipsafe:rollout.progressDeadlineSeconds = 60: shorter than one rollout round"],
    ),
    ("prod", {"shipsafe:imageRef": None}, ["imageSource is prebuilt but imageRef is not set"]),
    ("prod", {"shipsafe:imageSource": "build", "shipsafe:imageRef": None}, ["production never builds"]),
    ("staging", {"shipsafe:gitSha": "HEAD~1"}, ["shipsafe:gitSha = 'HEAD~1'", "7-40 lowercase hex"]),
    (
        "staging",
        _with("staging", "shipsafe:app", ["port"], 70000),
        ["shipsafe:app.port = 70000", "less than or equal to 65535"],
    ),
    (
        "prod",
        {"shipsafe:imageRef": "registry.example.com/shipsafe/notes:latest", "shipsafe:gitSha": None},
        ["imageRef tag 'latest' is not a git SHA"],
    ),
    ("prod", {"shipsafe:gitSha": "3f9c2a1b7d4e-dirty"}, ["disagrees with gitSha"]),
    (
        "prod",
        {"shipsafe:imageRef": "registry.example.com/shipsafe/notes:3f9c2a1b7d4e-dirty", "shipsafe:gitSha": None},
        ["production refuses a dirty build (3f9c2a1b7d4e-dirty)"],
    ),
    (
        "prod",
        {"shipsafe:imageRef": "docker.io/someone/else:3f9c2a1b7d4e"},
        ["is not in the project repository registry.example.com/shipsafe/notes"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:rollout", ["maxUnavailable"], 1),
        ["shipsafe:rollout.maxUnavailable = 1", "less than or equal to 0"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:workloads", ["web", "replica"], 3),
        ["shipsafe:workloads.web.replica is not a known setting"],
    ),
    ("staging", {"shipsafe:environment": "qa"}, ["shipsafe:environment = 'qa'", "'staging' or 'production'"]),
    (
        "prod",
        _with("prod", "shipsafe:postgres", ["version"], "16.4"),
        ["shipsafe:postgres", "image tag '15.18-bookworm' does not carry version '16.4'"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:migration", ["backoffLimit"], 10),
        ["shipsafe:migration.backoffLimit = 10", "less than or equal to 3"],
    ),
    ("staging", {"shipsafe:workloads": "{}"}, ["shipsafe:workloads", "declare at least one workload"]),
    ("staging", {"shipsafe:app": None}, ["shipsafe:app is required"]),
]


@pytest.mark.parametrize(("stack", "overrides", "expected"), BAD_CONFIGS)
def test_bad_config_is_rejected_before_anything_is_registered(
    stack: str, overrides: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(ProgramFailed) as failure:
        record(stack, **overrides)
    assert isinstance(failure.value.error, ConfigError), failure.value.error
    message = str(failure.value.error)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert failure.value.recording.resources == [], "resources were registered before validation failed"


def test_every_problem_is_reported_at_once() -> None:
    overrides = {**_with("staging", "shipsafe:app", ["port"], 0), "shipsafe:gitSha": "zzz"}
    with pytest.raises(ProgramFailed) as failure:
        record("staging", **overrides)
    assert isinstance(failure.value.error, ConfigError)
    assert len(failure.value.error.problems) == 2
