"""Staging and prod differ only where they should; everything else, versions included, is identical."""

from __future__ import annotations

from typing import Any

import yaml

from harness.stack_config import REPO_ROOT

# Dotted config paths allowed to differ, and why.
ALLOWED_DIFFERENCES = {
    "shipsafe:environment",  # what it is
    "shipsafe:imageSource",  # staging builds, prod promotes
    "shipsafe:imageRef",
    "shipsafe:gitSha",
    "shipsafe:app.namespace",
    "shipsafe:app.host",
    "shipsafe:app.logLevel",
    "shipsafe:postgres.storageSize",
    "shipsafe:postgres.resources",
    "shipsafe:redis.storageSize",
    "shipsafe:redis.resources",
    "shipsafe:workloads.web.replicas",
    "shipsafe:workloads.web.resources",
    "shipsafe:workloads.web.autoscaling",
    "shipsafe:workloads.worker.replicas",
    "shipsafe:verification.windowSeconds",  # prod watches longer, with tighter thresholds
    "shipsafe:verification.maxErrorRatio",
    "shipsafe:verification.maxP99LatencySeconds",
    "shipsafe:verification.minRequests",
}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


def _config(stack: str) -> dict[str, Any]:
    return _flatten(yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])


def _allowed(path: str) -> bool:
    return any(path == allowed or path.startswith(allowed + ".") for allowed in ALLOWED_DIFFERENCES)


def test_stacks_differ_only_in_the_allowed_settings() -> None:
    staging, prod = _config("staging"), _config("prod")
    differing = {path for path in staging.keys() | prod.keys() if staging.get(path) != prod.get(path)}
    assert differing, "the stacks should differ at least in environment"
    unexpected = sorted(path for path in differing if not _allowed(path))
    assert not unexpected, f"staging and prod must agree on: {unexpected}"


def test_the_parity_check_catches_a_version_drift() -> None:
    assert not _allowed("shipsafe:postgres.version")
    assert not _allowed("shipsafe:redis.image")
    assert not _allowed("shipsafe:rollout.maxUnavailable")
