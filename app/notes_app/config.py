"""Twelve-factor config (III): every setting comes from the environment, validated once at startup."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

LOG_LEVELS = ("debug", "info", "warning", "error")
# terminationGracePeriodSeconds (30) minus the preStop sleep (5) minus headroom for closing pools.
SHUTDOWN_BUDGET_SECONDS = 24
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# A DNS name, optionally with a leading `*.` wildcard for every subdomain.
_HOST_PATTERN = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
Number = TypeVar("Number", int, float)


class ConfigError(ValueError):
    """A missing or invalid environment variable; the message names the variable and what is allowed."""


@dataclass(frozen=True)
class Settings:
    port: int
    database_url: str
    redis_url: str
    app_version: str
    log_level: str
    shutdown_timeout_seconds: float
    shutdown_drain_seconds: float
    worker_interval_seconds: float
    allowed_hosts: tuple[str, ...]
    """Host names the app answers to; IP literals (probes and scrapes use the pod IP) are always allowed."""

    def __repr__(self) -> str:
        # The URLs carry credentials: never let them reach a log line or a traceback.
        return f"Settings(port={self.port}, app_version={self.app_version!r}, log_level={self.log_level!r})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        log_level = env.get("LOG_LEVEL", "info").lower()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}. Got {log_level!r}")
        timeout = _number(env, "SHUTDOWN_TIMEOUT_SECONDS", "20", float, 1, 25)
        drain = _number(env, "SHUTDOWN_DRAIN_SECONDS", "1", float, 0, 10)
        if timeout + drain > SHUTDOWN_BUDGET_SECONDS:
            raise ConfigError(
                f"SHUTDOWN_TIMEOUT_SECONDS + SHUTDOWN_DRAIN_SECONDS must be at most {SHUTDOWN_BUDGET_SECONDS}"
                f" (the pod's 30 s grace period also covers the 5 s preStop). Got {timeout} + {drain}"
            )
        return cls(
            port=_number(env, "PORT", "3002", int, 1, 65535),
            database_url=_url(env, "DATABASE_URL", POSTGRES_SCHEMES),
            redis_url=_url(env, "REDIS_URL", ("redis://", "rediss://")),
            app_version=env.get("APP_VERSION", "dev") or "dev",
            log_level=log_level,
            shutdown_timeout_seconds=timeout,
            shutdown_drain_seconds=drain,
            worker_interval_seconds=_number(env, "WORKER_INTERVAL_SECONDS", "5", float, 0.1, 3600),
            allowed_hosts=_hosts(env, "ALLOWED_HOSTS", "localhost"),
        )


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """All the migration command needs: it runs without Redis and without the serving settings."""
    return _url(os.environ if environ is None else environ, "DATABASE_URL", POSTGRES_SCHEMES)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str:
    value = env.get(name, "")
    if not value.startswith(schemes):
        # Never echo the value: it is a secret.
        raise ConfigError(f"{name} must be set to a URL starting with {' or '.join(schemes)}")
    return value


def _hosts(env: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    hosts = tuple(host.strip().lower() for host in env.get(name, default).split(",") if host.strip())
    for host in hosts:
        if not _HOST_PATTERN.fullmatch(host):
            raise ConfigError(
                f"{name} must be a comma-separated list of DNS names (a leading *. matches subdomains;"
                f" IP addresses are always allowed). Got {host!r}"
            )
    if not hosts:
        raise ConfigError(f"{name} must name at least one host. Got {env.get(name)!r}")
    return hosts


def _number(env: Mapping[str, str], name: str, default: str, kind: type[Number], low: float, high: float) -> Number:
    raw = env.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__} between {low} and {high}. Got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}. Got {value}")
    return value
