"""Postgres and Redis are each `none`, `in-cluster` or `external`: every value is honoured or refused naming its key,
and `none` leaves nothing behind in the timeline or the cluster's prerequisites (the program's objects:
tests/components/test_bring_your_own_app.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.config_keys import CONFIG_NAMESPACE
from components.settings import ConfigError, ServiceMode, Settings, parse_settings, settings_from_config
from components.timeline import deploy_timeline
from deploy.prerequisites import requirements_for
from harness.stack_config import REPO_ROOT
from tests.deploy.memory_stack import cluster_shape

EXTERNAL = {"mode": "external", "version": "15.18", "externalCidr": "10.20.0.0/16"}


def _staging(**changes: Any) -> dict[str, Any]:
    """The staging stack file's settings (keys without the namespace), top-level keys replaced or (None) removed."""
    config = yaml.safe_load((REPO_ROOT / "Pulumi.staging.yaml").read_text())["config"]
    raw = {key.removeprefix(f"{CONFIG_NAMESPACE}:"): value for key, value in config.items()}
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def _stateless(**changes: Any) -> dict[str, Any]:
    """Staging without a database, a cache or migrations."""
    return _staging(**{"postgres": {"mode": "none"}, "redis": {"mode": "none"}, "migration": None, **changes})


def _problems(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize("mode", list(ServiceMode))
def test_each_mode_is_accepted_for_each_service(mode: ServiceMode) -> None:
    service: dict[str, Any] = {"mode": str(mode)}
    if mode is ServiceMode.IN_CLUSTER:
        service |= {"version": "7.0.15", "image": "docker.io/library/redis:7.0.15-bookworm"}
    elif mode is ServiceMode.EXTERNAL:
        service |= {**EXTERNAL, "version": "7.0.15"}
    settings = parse_settings(_staging(redis=service))
    assert settings.redis.mode is mode
    assert settings.redis.present is (mode is not ServiceMode.NONE)


def test_unset_services_and_migration_mean_an_app_without_them() -> None:
    settings = parse_settings(_staging(postgres=None, redis=None, migration=None))
    assert settings.postgres.mode is ServiceMode.NONE and settings.redis.mode is ServiceMode.NONE
    assert settings.migration.command is None and not settings.runs_migration


REFUSED = [
    pytest.param(
        _stateless(postgres={"mode": "none", "version": "15.18", "storageSize": "5Gi"}),
        [
            "shipsafe:postgres.mode = 'none'",
            "shipsafe:postgres.storageSize = '5Gi'",
            "shipsafe:postgres.version = '15.18'",
            "mode none creates nothing for this service",
        ],
        id="settings-of-an-absent-service",
    ),
    pytest.param(
        _stateless(redis={"mode": "none", "protect": False}),
        ["shipsafe:redis.protect = False", "would be ignored"],
        id="protect-of-an-absent-service",
    ),
    pytest.param(
        _staging(postgres={"mode": "in-cluster"}),
        [
            "shipsafe:postgres.mode = 'in-cluster'",
            "shipsafe:postgres.version",
            "mode in-cluster needs version and image",
        ],
        id="in-cluster-without-image",
    ),
    pytest.param(
        _staging(postgres={**EXTERNAL, "version": None}),
        ["shipsafe:postgres.version", "mode external needs version (mode none"],
        id="external-without-version",
    ),
    pytest.param(
        _staging(postgres={**EXTERNAL, "image": "docker.io/library/postgres:15.18-bookworm", "storageSize": "5Gi"}),
        [
            "shipsafe:postgres.image = 'docker.io/library/postgres:15.18-bookworm'",
            "shipsafe:postgres.storageSize = '5Gi'",
            "mode external runs none",
        ],
        id="in-cluster-keys-of-an-external-server",
    ),
    pytest.param(
        _staging(registry={**_staging()["registry"], "mode": "external", "storageSize": "50Gi"}),
        ["shipsafe:registry.storageSize = '50Gi'", "shape the in-cluster registry"],
        id="in-cluster-keys-of-an-external-registry",
    ),
    pytest.param(
        _staging(
            redis={
                "mode": "in-cluster",
                "version": "7.0.15",
                "image": "docker.io/library/redis:7.0.15-bookworm",
                "externalCidr": "10.0.0.0/8",
            }
        ),
        ["shipsafe:redis.externalCidr = '10.0.0.0/8'", "only used when mode is external"],
        id="external-cidr-of-an-in-cluster-server",
    ),
    pytest.param(
        _stateless(migration={"command": ["python", "-m", "notes_app", "migrate"]}),
        ["shipsafe:migration.command", "shipsafe:postgres.mode = 'none'", "migrates the app's Postgres schema"],
        id="migrations-without-a-database",
    ),
    pytest.param(
        _stateless(migration={"backoffLimit": 2}),
        ["shipsafe:migration.backoffLimit = 2", "shipsafe:migration.command", "runs only when command is set"],
        id="migration-settings-without-a-command",
    ),
    pytest.param(
        _stateless(app={**_staging()["app"], "postgresUrlEnv": "PG_URL"}),
        ["shipsafe:app.postgresUrlEnv = 'PG_URL'", "shipsafe:postgres.mode = 'none'", "no variable carries its URL"],
        id="url-variable-of-an-absent-database",
    ),
    pytest.param(
        _stateless(app={**_staging()["app"], "redisUrlEnv": "CACHE_URL"}),
        ["shipsafe:app.redisUrlEnv = 'CACHE_URL'", "shipsafe:redis.mode = 'none'"],
        id="url-variable-of-an-absent-cache",
    ),
    pytest.param(
        _stateless(postgres={"mode": "managed"}),
        ["shipsafe:postgres.mode = 'managed'", "'none', 'in-cluster' or 'external'"],
        id="unknown-mode",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), REFUSED)
def test_a_value_that_would_be_ignored_or_cannot_work_is_refused_naming_its_keys(
    raw: dict[str, Any], expected: list[str]
) -> None:
    problems = _problems(raw)
    for text in expected:
        assert text in problems, problems


def test_a_stack_without_services_or_migrations_has_no_server_or_job_stage() -> None:
    timeline = deploy_timeline(parse_settings(_stateless(registry={**_staging()["registry"], "mode": "external"})))
    assert timeline.postgres is None and timeline.redis is None and timeline.migration_job_seconds is None
    assert list(timeline.stages) == ["rollout", "ingress"], timeline.stages
    awaits = timeline.as_output()["awaitTimeoutSeconds"]
    assert not any(
        key.startswith(("postgres.", "redis.", "migration.job")) and key != "migration.jobDelete" for key in awaits
    ), awaits


def test_a_stack_without_services_needs_no_storage_from_the_cluster() -> None:
    config = {
        key: value
        for key, value in cluster_shape("staging").items()
        if key not in (f"{CONFIG_NAMESPACE}:postgres", f"{CONFIG_NAMESPACE}:redis")
    }
    requirements = requirements_for(config)
    assert requirements.default_storage_class_for == () and dict(requirements.storage_classes) == {}


def test_the_notes_stacks_declare_both_services_and_their_migrations() -> None:
    for path in REPO_ROOT.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        settings = Settings.model_validate(
            {key.removeprefix(f"{CONFIG_NAMESPACE}:"): value for key, value in config.items()}
        )
        assert settings.postgres.present and settings.redis.present, path.name
        assert settings.migration.command is not None, f"{path.name}: the notes app's migrations are explicit"


@pytest.mark.parametrize("mode", ["none", "in-cluster"])
def test_a_connection_url_secret_only_an_external_service_reads_is_refused(mode: str) -> None:
    raw = _staging(postgres=_staging()["postgres"] if mode == "in-cluster" else {"mode": "none"}, migration=None)
    engine = {
        f"{CONFIG_NAMESPACE}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in raw.items()
    }
    url = {f"{CONFIG_NAMESPACE}:postgresUrl": "postgresql://app:hunter2@db.example.com:5432/app"}
    settings_from_config(engine, is_secret=lambda key: True)  # without the URL: valid
    with pytest.raises(ConfigError) as caught:
        settings_from_config({**engine, **url}, is_secret=lambda key: True)
    assert caught.value.problems == [
        f"shipsafe:postgresUrl is set, but shipsafe:postgres.mode is {mode}: only an external postgres reads it; "
        "remove it (`pulumi config rm shipsafe:postgresUrl`) or set the mode to external"
    ]
    assert "hunter2" not in str(caught.value)
    external = {f"{CONFIG_NAMESPACE}:postgres": json.dumps(EXTERNAL), f"{CONFIG_NAMESPACE}:migration": "{}"}
    assert settings_from_config({**engine, **url, **external}, is_secret=lambda key: True).postgres.present
