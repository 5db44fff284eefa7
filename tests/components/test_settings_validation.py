"""Bad config stops the program before any resource is registered, naming the key, the value and what is allowed."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import pytest
import yaml

from components.quantities import QuantityError, parse_quantity
from components.settings import ConfigError, _credential_in, routes_path
from harness.runtime import ProgramFailed
from harness.stack_config import REPO_ROOT
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


# Issue 9: what the API server would refuse, and errors that name every key of a rule.
MORE_BAD_CONFIGS = [
    (
        "staging",
        _with("staging", "shipsafe:workloads", ["web", "resources"], {"memoryRequest": "1Gi", "memoryLimit": "256Mi"}),
        [
            "shipsafe:workloads.web.resources.memoryRequest = '1Gi', "
            "shipsafe:workloads.web.resources.memoryLimit = '256Mi': a request may not exceed its limit"
        ],
    ),
    (
        "prod",
        _with("prod", "shipsafe:postgres", ["resources", "cpuLimit"], "250m"),
        ["shipsafe:postgres.resources.cpuRequest = '500m', shipsafe:postgres.resources.cpuLimit = '250m'"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:migration", ["resources"], {"ephemeralStorageRequest": "1G"}),
        [
            "shipsafe:migration.resources.ephemeralStorageRequest = '1G', "
            "shipsafe:migration.resources.ephemeralStorageLimit = '256Mi'"
        ],
    ),
    ("staging", _with("staging", "shipsafe:app", ["publicPaths"], ["/"]), ["'/' would route /metrics"]),
    ("staging", _with("staging", "shipsafe:app", ["publicPaths"], ["/notes", "/m"]), ["'/m' would route /metrics"]),
    ("staging", _with("staging", "shipsafe:app", ["publicPaths"], ["/metrics/"]), ["'/metrics/' would route"]),
    ("staging", _with("staging", "shipsafe:app", ["publicPaths"], ["/a//b"]), ["contains '//'"]),
    (
        "staging",
        _with("staging", "shipsafe:postgres", ["resources"], {"memoryRequest": "1.1.M"}),
        ["shipsafe:postgres.resources.memoryRequest = '1.1.M'", "is not a Kubernetes quantity"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:postgres", ["storageSize"], "0"),
        ["storageSize = '0'", "greater than zero"],
    ),
    ("staging", _with("staging", "shipsafe:app", ["host"], "notes..example.com"), ["app.host", "DNS-1123 subdomain"]),
    (
        "staging",
        _with("staging", "shipsafe:app", ["name"], "n" * 40),
        ["shipsafe:app.name = '" + "n" * 40 + "': migration Job name", "longer than the 63"],
    ),
    ("staging", _with("staging", "shipsafe:app", ["name"], "9notes"), ["Service name <app>-postgres", "DNS-1035"]),
    (
        "staging",
        _with("staging", "shipsafe:rollout", ["minReadySeconds"], 300),
        ["shipsafe:rollout.progressDeadlineSeconds = 300, shipsafe:rollout.minReadySeconds = 300"],
    ),
    (
        "prod",
        _with("prod", "shipsafe:postgres", ["image"], "docker.io/library/postgres:16.4"),
        ["shipsafe:postgres.image = 'docker.io/library/postgres:16.4', shipsafe:postgres.version = '15.18'"],
    ),
    (
        "prod",
        {"shipsafe:imageSource": "build", "shipsafe:imageRef": None},
        ["shipsafe:environment = 'production', shipsafe:imageSource = 'build': production never builds"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:app", ["runAsUser"], 2**31),
        ["shipsafe:app.runAsUser = 2147483648", "less than or equal to 2147483647"],
    ),
    (
        "staging",
        _with("staging", "shipsafe:verification", ["failureLimit"], 9),
        [
            "shipsafe:verification.failureLimit = 9, shipsafe:verification.windowSeconds = 120, "
            "shipsafe:verification.intervalSeconds = 30: failureLimit must be below"
        ],
    ),
    (
        "staging",
        _with("staging", "shipsafe:verification", ["intervalSeconds"], 50),
        ["shipsafe:verification.windowSeconds = 120, shipsafe:verification.intervalSeconds = 50"],
    ),
]


@pytest.mark.parametrize(("stack", "overrides", "expected"), MORE_BAD_CONFIGS)
def test_what_the_api_server_refuses_is_refused_first_naming_every_key(
    stack: str, overrides: dict[str, Any], expected: list[str]
) -> None:
    test_bad_config_is_rejected_before_anything_is_registered(stack, overrides, expected)


@pytest.mark.parametrize(
    ("text", "value"),
    # kubernetes apimachinery `quantity_test.go` `TestQuantityParse` and `TestParseQuantityString`.
    [
        ("0", 0),
        ("0Ki", 0),
        ("1", 1),
        ("8Ki", 8 * 1024),
        ("7Mi", 7 * 1024**2),
        ("3Ei", 3 * 1024**6),
        ("5n", Fraction(5, 10**9)),
        ("4u", Fraction(4, 10**6)),
        ("3m", Fraction(3, 1000)),
        ("50k", 50_000),
        ("1E", 10**18),
        ("1E-3", Fraction(1, 1000)),
        ("1.3E+6", 1_300_000),
        ("100.035k", 100_035),
        ("0.0005k", Fraction(1, 2)),
        ("0.5e-2", Fraction(5, 1000)),
        ("3.001n", Fraction(4, 10**9)),
        ("0.0000000001", Fraction(1, 10**9)),
        ("0.00000012345", Fraction(124, 10**9)),
        ("9Ei", 2**63 - 1),
        ("100.035Ki", Fraction(10243584, 100)),
        ("0.5Mi", 512 * 1024),
        (".001", Fraction(1, 1000)),
        ("1.", 1),
        ("1.G", 10**9),
        ("0.000000000001Ki", Fraction(2, 10**9)),
        ("-1.025Ti", -Fraction(1025 * 1024**4, 1000)),
        ("+8Ki", 8192),
    ],
)
def test_quantities_parse_as_the_api_server_parses_them(text: str, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    ["1.1.M", "1+1.0M", "0.1mi", "0.1am", "aoeu", ".5i", "1i", "-3.01i", "-3.01e-", "1e4294967297", " 1", "1 ", ""],
)
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("prefix", "routes"),
    [
        ("/", True),
        ("/metrics", True),
        ("/metrics/", True),
        ("/m", True),
        ("/metrics/x", True),
        ("/notes", False),
        ("/metricsx", False),
        ("/healthz", False),
    ],
)
def test_a_public_prefix_routes_metrics_as_an_ingress_would(prefix: str, routes: bool) -> None:
    assert routes_path(prefix, "/metrics") is routes


@pytest.mark.parametrize(
    ("url", "credential"),
    [
        ("https://reader:hunter2@prom.example.com:9090", "user info"),
        ("https://ghp_abc123@prom.example.com", "user info"),
        ("https://token:@prom.example.com", "user info"),
        ("http://prom:9090/api?access_token=abc", "the query parameter 'access_token'"),
        ("http://prom:9090/api?AccessKey=abc", "the query parameter 'AccessKey'"),
        ("http://prom:9090/api?jwt=abc", "the query parameter 'jwt'"),
        ("http://prom:9090/api?X-Amz-Security-Token=abc", "the query parameter 'X-Amz-Security-Token'"),
        ("http://prom:9090/#access_token=abc", "the fragment parameter 'access_token'"),
        ("http://prom:9090/api?sig=abc&sv=2024", "the query parameter 'sig'"),
        ("http://prometheus-operated.monitoring.svc:9090", None),
        ("http://prom:9090/api?query=up&step=30s&monkey=1", None),
    ],
)
def test_a_credential_in_a_url_setting_is_found_in_any_of_its_forms(url: str, credential: str | None) -> None:
    found = _credential_in(("verification", "prometheusUrl"), url)
    assert found == credential
