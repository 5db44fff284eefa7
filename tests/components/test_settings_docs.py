"""The settings' meanings as docs/configuration.md prints them (`deploy.docs.configuration`, from the settings models'
field docstrings): every key has one, and a backing service's key names no other service. And what those docstrings
promise: `maxConnections` is the in-cluster Postgres server's, refused wherever it would be ignored."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from components.settings import BackingService, ConfigError, Settings
from deploy.docs import configuration as config_docs
from harness.runtime import ProgramFailed
from harness.stack_config import REPO_ROOT
from tests.conftest import record

ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<allowed>.*) \| (?P<default>[^|]*) \| (?P<meaning>.*) \|$")


def _meanings() -> dict[str, str]:
    rows = [ROW.match(line) for line in config_docs.render_reference().splitlines()]
    return {row["key"]: row["meaning"].strip() for row in rows if row}


# The backing services, as the settings model declares them (a field whose model is a BackingService).
SERVICES = {
    name: name.title()
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BackingService)
}


def test_there_are_backing_services_to_check() -> None:
    assert {"postgres", "redis"} <= SERVICES.keys()


def test_every_setting_has_a_meaning() -> None:
    meanings = _meanings()
    assert len(meanings) > 100
    assert [key for key, meaning in meanings.items() if not meaning] == []


def test_a_backing_service_key_names_no_other_service() -> None:
    wrong = {}
    for key, meaning in _meanings().items():
        service = key.split(".", 1)[0]
        if service not in SERVICES:
            continue
        others = [label for name, label in SERVICES.items() if name != service]
        named = [other for other in others if re.search(rf"\b{other}\b", meaning, re.IGNORECASE)]
        if named:
            wrong[key] = named
    assert wrong == {}


def _with_service(stack: str, service: str, **fields: Any) -> dict[str, str]:
    current = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"][f"shipsafe:{service}"]
    return {f"shipsafe:{service}": json.dumps({**current, **fields})}


def _problems(stack: str, overrides: dict[str, str]) -> list[str]:
    with pytest.raises(ProgramFailed) as failure:
        record(stack, **overrides)
    assert isinstance(failure.value.error, ConfigError), failure.value.error
    return failure.value.error.problems


def test_redis_has_no_max_connections_to_ignore() -> None:
    [problem] = _problems("staging", _with_service("staging", "redis", maxConnections=500))
    assert problem.startswith("shipsafe:redis.maxConnections is not a known setting"), problem


def test_an_external_postgres_max_connections_is_refused() -> None:
    external = {"mode": "external", "version": "15.18", "externalCidr": "10.0.0.0/24", "maxConnections": 500}
    problems = _problems("staging", {"shipsafe:postgres": json.dumps(external)})
    assert any("shipsafe:postgres.maxConnections = 500" in p and "in-cluster server" in p for p in problems), problems


def test_the_in_cluster_postgres_takes_max_connections() -> None:
    recording = record("staging", **_with_service("staging", "postgres", maxConnections=400))
    statefulset = next(r for r in recording if r.name == "notes-postgres-statefulset")
    [container] = statefulset.inputs["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["-c", "max_connections=400"]
